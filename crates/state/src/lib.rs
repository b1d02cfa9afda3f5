//! Certificate inventory and per-certificate state.
//!
//! The REST Enrollment API cannot list certificates, so this store is the daemon's memory: every
//! tracked certificate, its lifecycle state (including the journal of billable calls in flight),
//! the profiles' persisted state (force renewals, identity for rename detection) and the last
//! cycle's summary. [`Store`] is the seam; [`SledStore`] is the implementation.

pub mod export;
mod keys;
mod sled_store;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use export::{Counts, ExportError};
pub use keys::KeyStore;
// The records this store keeps are the model's; imported here for the trait's signatures.
use sectigo_core::names::{CertId, CertName, IssueKey, ProfileName};
use sectigo_model::{
    BillingEntry, CertRecord, CycleSummary, DeclaredRecord, IssueRecord, OutboxItem, ProfileState,
};
pub use sled_store::{SledStore, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state directory {dir} is in use by another process (is the daemon running? commands given while it runs go through it; otherwise stop it first)")]
    Locked { dir: String },
    #[error("the state in {dir} has schema version {found}; this sectigo-connector understands version {expected}: {hint}")]
    Schema {
        dir: String,
        found: u32,
        expected: u32,
        hint: &'static str,
    },
    // The sled error is part of the message, not a `source`: printed once, whether the error
    // is shown alone or with its chain.
    #[error("cannot open the state directory {dir}: {error}")]
    Open { dir: String, error: sled::Error },
    #[error("state database error: {0}")]
    Db(sled::Error),
    #[error("corrupt record {key:?} in the state: {error}")]
    Corrupt { key: String, error: String },
    #[error("{0}")]
    Conflict(String),
    #[error("an import into the state in {dir} did not finish: run `sectigo-connector state import FILE` again (it starts over), or move its db/ (and keys/) away")]
    RestoreUnfinished { dir: String },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e)
    }
}

impl StoreError {
    /// Whether trying again later may succeed (exit 75), as opposed to a real failure.
    pub fn is_temporary(&self) -> bool {
        matches!(self, StoreError::Locked { .. })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The state store. Calls may block on disk: async code runs them through [`blocking`].
pub trait Store: Send + Sync + 'static {
    fn get(&self, id: &CertId) -> StoreResult<Option<CertRecord>>;
    /// Inserts or replaces records, with their indexes, in one atomic step.
    fn put(&self, recs: &[CertRecord]) -> StoreResult<()> {
        self.commit(recs, &[])
    }
    /// Records and new Jira updates in one atomic step. An update whose marker was queued
    /// before (delivered or not) is not queued again.
    fn commit(&self, recs: &[CertRecord], outbox: &[OutboxItem]) -> StoreResult<()> {
        self.commit_all(recs, &[], outbox)
    }
    /// The same, with issue records. Fails with [`StoreError::Conflict`] when an issue would
    /// take a CSR another issue holds.
    fn commit_all(
        &self,
        recs: &[CertRecord],
        issues: &[IssueRecord],
        outbox: &[OutboxItem],
    ) -> StoreResult<()>;
    fn issue(&self, key: &IssueKey) -> StoreResult<Option<IssueRecord>>;
    /// The issue holding a CSR (by its SHA-256), if any.
    fn issue_by_csr(&self, sha256: &str) -> StoreResult<Option<IssueKey>>;
    /// Issues the daemon still owes work (enrollments in flight, revocations unanswered).
    fn issues_with_work(&self) -> StoreResult<Vec<IssueRecord>>;
    /// The issues whose `action` request is marked handled.
    fn issues_handled(&self, action: &str) -> StoreResult<Vec<IssueRecord>>;
    /// Every issue record (for `status`).
    fn issues(&self) -> StoreResult<Vec<IssueRecord>>;
    /// Queued Jira updates, oldest first (dead ones included), at most `limit`.
    fn outbox(&self, limit: usize) -> StoreResult<Vec<OutboxItem>>;
    /// Saves a queued update's progress.
    fn update_outbox(&self, item: &OutboxItem) -> StoreResult<()>;
    /// Removes a delivered update (its marker stays, so it is never queued again).
    fn remove_outbox(&self, seq: u64) -> StoreResult<()>;
    /// Pending (not dead) updates, the oldest one's creation time, and dead ones.
    fn outbox_stats(&self) -> StoreResult<(usize, Option<DateTime<Utc>>, usize)>;
    fn remove(&self, id: &CertId) -> StoreResult<Option<CertRecord>>;
    /// Active certificates whose notAfter is before `before`, earliest first. The cost grows
    /// with the number returned, not the number tracked.
    fn active_expiring_before(&self, before: DateTime<Utc>) -> StoreResult<Vec<CertRecord>>;
    /// Certificates whose files or hook are owed ([`DeployJob`]).
    fn deploys_owed(&self) -> StoreResult<Vec<CertRecord>>;
    /// Certificates with a billable call journaled and not yet resolved.
    fn in_flight(&self) -> StoreResult<Vec<CertRecord>>;
    /// Every record of one profile (all states).
    fn by_profile(&self, profile: &ProfileName) -> StoreResult<Vec<CertRecord>>;
    /// Visits every record; `f` returns false to stop.
    fn scan(&self, f: &mut dyn FnMut(CertRecord) -> bool) -> StoreResult<()>;
    fn len(&self) -> StoreResult<usize>;
    fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.len()? == 0)
    }
    fn profile_state(&self, name: &ProfileName) -> StoreResult<Option<ProfileState>>;
    fn put_profile_state(&self, name: &ProfileName, st: &ProfileState) -> StoreResult<()>;
    fn profile_states(&self) -> StoreResult<BTreeMap<ProfileName, ProfileState>>;
    /// Moves a profile's persisted state and all its certificates to a new name, atomically.
    fn rename_profile(&self, old: &ProfileName, new: &ProfileName) -> StoreResult<usize>;
    /// Moves all the certificates of `old` to `new`, which the state may know already (a
    /// profile renamed by hand that the daemon took for a new one): `new`'s persisted state
    /// stays when it has one (else `old`'s moves), `old`'s is dropped. Atomic.
    fn merge_profile(&self, old: &ProfileName, new: &ProfileName) -> StoreResult<usize>;
    fn last_cycle(&self) -> StoreResult<Option<CycleSummary>>;
    fn put_last_cycle(&self, c: &CycleSummary) -> StoreResult<()>;
    /// Records a billable call in the billing log.
    fn record_billing(&self, e: &BillingEntry) -> StoreResult<()>;
    /// When the billable calls of `profile` since `since` were sent, oldest first.
    fn billing_since(
        &self,
        profile: &ProfileName,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>>;
    /// Forgets billing entries older than `before`; returns how many.
    fn prune_billing(&self, before: DateTime<Utc>) -> StoreResult<usize>;
    /// When enrollments from Jira started, for the rolling daily cap (pruned by the caller).
    fn enrollment_starts(&self) -> StoreResult<Vec<DateTime<Utc>>>;
    fn put_enrollment_starts(&self, starts: &[DateTime<Utc>]) -> StoreResult<()>;
    /// Makes everything written so far durable (fsync).
    fn flush(&self) -> StoreResult<()>;

    /// The records of declared certificates (`certificates.d/`), by name.
    fn declared_records(&self) -> StoreResult<Vec<DeclaredRecord>>;
    fn declared_record(&self, name: &CertName) -> StoreResult<Option<DeclaredRecord>>;
    /// Certificate records, declared records (and the removal of the records named in
    /// `drop`) and Jira updates in one atomic step.
    fn commit_declared(
        &self,
        recs: &[CertRecord],
        declared: &[DeclaredRecord],
        drop: &[CertName],
        outbox: &[OutboxItem],
    ) -> StoreResult<()>;

    /// Visits every record that is not an index, as stored, then [`Entry::Done`]; no write
    /// happens until it returns, so what `f` sees is one consistent moment. `f` must not write
    /// to the store (it would wait for itself).
    fn snapshot(&self, f: &mut dyn FnMut(Entry<'_>) -> StoreResult<()>) -> StoreResult<()>;
    /// Starts a restore: refused with [`StoreError::Conflict`] unless the state tracks nothing
    /// (no certificate, issue or Jira update, queued or delivered). An unfinished restore is
    /// cleared and starts over. Until [`Store::finish_restore`], opening the state is refused.
    fn begin_restore(&self) -> StoreResult<()>;
    /// What the state tracks, in words (`7 certificates`), for a refused restore; empty when
    /// it tracks nothing.
    fn holds(&self) -> StoreResult<Vec<String>>;
    /// Whether a restore began and did not finish.
    fn restore_unfinished(&self) -> StoreResult<bool>;
    /// Writes restored records with their indexes (a batch at a time, in file order).
    fn restore(&self, recs: Vec<Record>) -> StoreResult<()>;
    /// Ends a restore: the state opens again, durably.
    fn finish_restore(&self) -> StoreResult<()>;
}

/// A record of a snapshot, as stored (JSON), borrowed from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Cert(&'a [u8]),
    Profile {
        name: &'a str,
        state: &'a [u8],
    },
    Issue(&'a [u8]),
    Csr {
        sha256: &'a str,
        issue: &'a str,
    },
    Outbox(&'a [u8]),
    /// A Jira update's marker and its sequence number; kept after delivery, so the same
    /// update is never queued twice.
    Marker {
        marker: &'a str,
        seq: u64,
    },
    LastCycle(&'a [u8]),
    EnrollmentStarts(&'a [u8]),
    /// One entry of the billing log, as stored.
    Billing(&'a [u8]),
    /// A declared certificate's record, as stored.
    Declared(&'a [u8]),
    /// Every record was visited; writers are still held off.
    Done,
}

/// A record to restore.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Cert(Box<CertRecord>),
    Profile {
        name: ProfileName,
        state: ProfileState,
    },
    Issue(Box<IssueRecord>),
    Csr {
        sha256: String,
        issue: IssueKey,
    },
    Outbox(Box<OutboxItem>),
    Marker {
        marker: String,
        seq: u64,
    },
    LastCycle(CycleSummary),
    EnrollmentStarts(Vec<DateTime<Utc>>),
    Billing(Box<BillingEntry>),
    Declared(Box<DeclaredRecord>),
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the configured sled store.
pub fn open(cfg: &sectigo_core::config::StateConfig) -> StoreResult<SharedStore> {
    Ok(Arc::new(SledStore::open(&cfg.dir, cfg.cache_mb)?))
}

/// Opens the configured sled store for `state import`, which may take over an unfinished one.
pub fn open_for_restore(cfg: &sectigo_core::config::StateConfig) -> StoreResult<SharedStore> {
    Ok(Arc::new(SledStore::open_with(
        &cfg.dir,
        cfg.cache_mb,
        true,
    )?))
}

/// Runs a store call on the blocking pool, off the async workers.
pub async fn blocking<T, F>(store: &SharedStore, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&*s))
        .await
        .expect("store task panicked")
}
