//! The engine's one way to the state: the store, the clock every record is stamped with, and
//! the events a change announces. A change and the Jira update announcing it are committed in
//! one transaction (the outbox), and each event that needs a person also runs `[notify]`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use sectigo_core::clock::SharedClock;
use sectigo_core::names::CertName;
use sectigo_core::names::{CertId, IssueKey};
use sectigo_model::{CertRecord, DeclaredRecord, Event, IssueRecord, OutboxItem};
use sectigo_state::{blocking, SharedStore, Store, StoreResult};

use crate::error::EngineError;
use crate::notify::Notifier;

/// What an event leaves to commit: the Jira update, when Jira is configured and the event
/// concerns a linked issue.
#[must_use = "an announcement is committed with the records it is about"]
#[derive(Debug, Default)]
pub(crate) struct Announcement(Option<OutboxItem>);

#[derive(Clone)]
pub(crate) struct Ledger {
    store: SharedStore,
    clock: SharedClock,
    notifier: Notifier,
    /// Jira is configured: events become outbox items.
    jira: bool,
    /// Woken when a Jira update is queued.
    outbox: Arc<tokio::sync::Notify>,
}

impl Ledger {
    pub(crate) fn new(
        store: SharedStore,
        clock: SharedClock,
        notifier: Notifier,
        jira: bool,
        outbox: Arc<tokio::sync::Notify>,
    ) -> Ledger {
        Ledger {
            store,
            clock,
            notifier,
            jira,
            outbox,
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Runs a store call off the async workers.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    {
        Ok(blocking(&self.store, f).await?)
    }

    pub(crate) async fn get(&self, id: &CertId) -> Result<Option<CertRecord>, EngineError> {
        let id = id.clone();
        self.read(move |s| s.get(&id)).await
    }

    /// A tracked certificate, or [`EngineError::UnknownCert`].
    pub(crate) async fn cert(&self, id: &CertId) -> Result<CertRecord, EngineError> {
        self.get(id)
            .await?
            .ok_or_else(|| EngineError::UnknownCert(id.clone()))
    }

    pub(crate) async fn issue(&self, key: &IssueKey) -> Result<Option<IssueRecord>, EngineError> {
        let key = key.clone();
        self.read(move |s| s.issue(&key)).await
    }

    /// Makes the announcement of `ev`: runs `[notify]` for an event that needs a person, and
    /// renders the Jira update.
    pub(crate) fn announce(&self, ev: Event<'_>) -> Announcement {
        if let Some(n) = ev.notification() {
            self.notifier.send(n);
        }
        Announcement(
            self.jira
                .then(|| sectigo_jira::outbox::outbox_item(&ev, self.now()))
                .flatten(),
        )
    }

    /// Tells `[notify]` of what is no certificate's event (an outage, refused credentials).
    pub(crate) fn tell(&self, n: sectigo_model::Notification) {
        self.notifier.send(n);
    }

    /// Records and what they announce, in one transaction, durably; wakes the delivery.
    pub(crate) async fn commit(
        &self,
        recs: Vec<CertRecord>,
        news: Announcement,
    ) -> Result<(), EngineError> {
        self.commit_all(recs, Vec::new(), news).await
    }

    /// Records, issue records and what they announce, in one transaction, durably.
    pub(crate) async fn commit_all(
        &self,
        recs: Vec<CertRecord>,
        issues: Vec<IssueRecord>,
        news: Announcement,
    ) -> Result<(), EngineError> {
        let items: Vec<OutboxItem> = news.0.into_iter().collect();
        let wake = !items.is_empty();
        self.read(move |s| {
            s.commit_all(&recs, &issues, &items)?;
            s.flush()
        })
        .await?;
        if wake {
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// Records, a journal (an issue's or a declaration's) and what they announce, in one
    /// transaction, durably.
    pub(crate) async fn commit_journal<J: crate::journal::Journal>(
        &self,
        recs: Vec<CertRecord>,
        journal: J,
        news: Announcement,
    ) -> Result<(), EngineError> {
        match journal.into_entry() {
            crate::journal::Journaled::Issue(i) => self.commit_all(recs, vec![i], news).await,
            crate::journal::Journaled::Declared(d) => {
                self.commit_declared(recs, vec![d], vec![], news).await
            }
        }
    }

    /// Records, declared certificates' records (and the removal of those named in `drop`)
    /// and what they announce, in one transaction, durably.
    pub(crate) async fn commit_declared(
        &self,
        recs: Vec<CertRecord>,
        declared: Vec<DeclaredRecord>,
        drop: Vec<CertName>,
        news: Announcement,
    ) -> Result<(), EngineError> {
        let items: Vec<OutboxItem> = news.0.into_iter().collect();
        let wake = !items.is_empty();
        self.read(move |s| {
            s.commit_declared(&recs, &declared, &drop, &items)?;
            s.flush()
        })
        .await?;
        if wake {
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// Records without an announcement, not flushed yet (the caller flushes).
    pub(crate) async fn put(&self, recs: Vec<CertRecord>) -> Result<(), EngineError> {
        self.read(move |s| s.put(&recs)).await
    }

    pub(crate) async fn flush(&self) -> Result<(), EngineError> {
        self.read(|s| s.flush()).await
    }
}
