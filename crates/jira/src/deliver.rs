//! Delivers the outbox to Jira: comment, attachment, transition, each step recorded once Jira
//! confirms it. Jira being down delays delivery (backoff, Retry-After) but never loses or
//! doubles an update; order is kept (a stuck item holds the ones behind it).

use sectigo_core::text::ts;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::outbox::marker_line;
use super::{FieldCache, JiraClient, JiraError};
use sectigo_core::clock::SharedClock;
use sectigo_model::OutboxItem;
use sectigo_state::{blocking, SharedStore, StoreError};

/// How long a sent, unconfirmed step is left to land before it is looked for and sent again.
const SETTLE: Duration = Duration::seconds(5);

pub struct Deliverer {
    client: JiraClient,
    transitions: BTreeMap<String, String>,
    store: SharedStore,
    /// The field that holds the certificate id (`[jira.workflow] cert_id_field`); unset:
    /// updates set only the summary.
    cert_id_field: Option<String>,
    fields: FieldCache,
    clock: SharedClock,
}

#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub delivered: usize,
    pub dead: usize,
    /// When the next pass should run (an item waiting for its retry time).
    pub next: Option<DateTime<Utc>>,
    /// Items still queued (not dead).
    pub pending: usize,
}

/// Delay before retry `attempts`: 30 s doubling, at most 30 min, at least what Jira asked.
pub fn retry_delay(attempts: u32, retry_after: Option<std::time::Duration>) -> Duration {
    let backoff = Duration::seconds(30) * (1i32 << attempts.saturating_sub(1).min(6));
    let asked = retry_after
        .and_then(|d| Duration::from_std(d).ok())
        .unwrap_or_else(Duration::zero);
    backoff.min(Duration::minutes(30)).max(asked)
}

impl Deliverer {
    pub fn new(
        client: JiraClient,
        transitions: BTreeMap<String, String>,
        store: SharedStore,
        clock: SharedClock,
    ) -> Self {
        Deliverer {
            client,
            transitions,
            store,
            cert_id_field: None,
            fields: FieldCache::default(),
            clock,
        }
    }

    /// Sets the field that receives certificate ids.
    pub fn with_cert_id_field(mut self, name: Option<String>) -> Self {
        self.cert_id_field = name;
        self
    }

    /// A Deliverer for the `[jira]` configuration.
    pub fn for_config(
        client: JiraClient,
        cfg: &sectigo_core::config::JiraConfig,
        store: SharedStore,
        clock: SharedClock,
    ) -> Self {
        Deliverer::new(client, cfg.transitions.clone(), store, clock)
            .with_cert_id_field(cfg.workflow.as_ref().map(|w| w.cert_id_field.clone()))
    }

    /// Delivers until `cancel`: a pass, then sleep until an update is queued (`wake`) or a
    /// retry is due. No polling while the outbox is empty.
    pub async fn run(&self, wake: &tokio::sync::Notify, cancel: &CancellationToken) {
        loop {
            let now = self.clock.now();
            let wait = match self.pass(now).await {
                Ok(r) => r
                    .next
                    .map(|at| (at - now).to_std().unwrap_or(std::time::Duration::ZERO)),
                Err(e) => {
                    error!("Jira delivery: state error: {e}");
                    Some(std::time::Duration::from_secs(60))
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            }
        }
    }

    /// Delivers for up to `limit` (for `run --once` and `demo`): returns (delivered, still
    /// pending).
    pub async fn drain(&self, limit: std::time::Duration) -> (usize, usize) {
        let end = tokio::time::Instant::now() + limit;
        let mut delivered = 0;
        loop {
            let now = self.clock.now();
            match self.pass(now).await {
                Ok(r) => {
                    delivered += r.delivered;
                    let Some(at) = r.next else {
                        return (delivered, r.pending);
                    };
                    let wait = (at - now).to_std().unwrap_or_default();
                    if tokio::time::Instant::now() + wait > end {
                        return (delivered, r.pending);
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    error!("Jira delivery: state error: {e}");
                    return (delivered, 0);
                }
            }
        }
    }

    /// Makes every queued update that waits for its retry time (after a refused token, Jira
    /// down) due now: what a reload does, when the operator may have fixed the cause. Returns
    /// how many. Updates Jira can never take (dead) stay as they are.
    pub async fn retry_now(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let items = blocking(&self.store, |s| s.outbox(10_000)).await?;
        let mut n = 0;
        for mut item in items {
            if item.dead.is_some() || item.next_attempt.is_none_or(|at| at <= now) {
                continue;
            }
            item.next_attempt = None;
            let it = item.clone();
            blocking(&self.store, move |s| s.update_outbox(&it)).await?;
            n += 1;
        }
        if n > 0 {
            blocking(&self.store, |s| s.flush()).await?;
        }
        Ok(n)
    }

    async fn save(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let it = item.clone();
        blocking(&self.store, move |s| {
            s.update_outbox(&it)?;
            s.flush()
        })
        .await
    }

    /// Delivers what is due, in order. Stops at the first transient failure.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<PassReport, StoreError> {
        let items = blocking(&self.store, |s| s.outbox(10_000)).await?;
        let mut report = PassReport::default();
        let mut blocked = false;
        for mut item in items {
            if item.dead.is_some() {
                continue;
            }
            if blocked {
                report.pending += 1;
                continue;
            }
            // A step sent before (by a process that died, say) and never confirmed: a request
            // still in flight is given time to land before the step is looked for again.
            let unconfirmed = (item.tried.comment && !item.done.comment)
                || (item.tried.attachment && !item.done.attachment);
            let settle = item
                .tried_at
                .map(|t| t + SETTLE)
                .filter(|at| unconfirmed && *at > now);
            if let Some(at) = item
                .next_attempt
                .filter(|at| *at > now)
                .into_iter()
                .chain(settle)
                .max()
            {
                report.next = Some(report.next.map_or(at, |n| n.min(at)));
                report.pending += 1;
                blocked = true;
                continue;
            }
            match self.deliver_retrying(&mut item).await {
                Ok(()) => {
                    let seq = item.seq;
                    blocking(&self.store, move |s| {
                        s.remove_outbox(seq)?;
                        s.flush()
                    })
                    .await?;
                    info!(profile = %item.profile, cert_id = %item.cert_id, jira_key = %item.issue, "Jira {} updated ({})", item.issue, item.event);
                    report.delivered += 1;
                }
                Err(DeliverError::Store(e)) => return Err(e),
                Err(DeliverError::Jira(e)) => {
                    item.attempts += 1;
                    item.last_error = Some(e.to_string());
                    match &e {
                        JiraError::Permanent { .. } => {
                            error!(profile = %item.profile, cert_id = %item.cert_id, jira_key = %item.issue, "Jira update {} cannot be delivered, keeping it for the operator: {e}", item.event);
                            item.dead = Some(e.to_string());
                            report.dead += 1;
                        }
                        JiraError::Auth => {
                            let at = now + Duration::minutes(5);
                            error!(jira_key = %item.issue, "{e}; Jira updates wait, next try at {at}", at = ts(at));
                            item.next_attempt = Some(at);
                            report.next = Some(at);
                            report.pending += 1;
                            blocked = true;
                        }
                        JiraError::Transient { retry_after, .. } => {
                            let at = now + retry_delay(item.attempts, *retry_after);
                            warn!(jira_key = %item.issue, "Jira update delayed (attempt {}): {e}; next try at {at}", item.attempts, at = ts(at));
                            item.next_attempt = Some(at);
                            report.next = Some(at);
                            report.pending += 1;
                            blocked = true;
                        }
                    }
                    self.save(&item).await?;
                }
            }
        }
        Ok(report)
    }

    /// Delivers one item, retrying a passing error (a sporadic 500, a short Retry-After) a
    /// few times before deferring the item with a persisted backoff.
    async fn deliver_retrying(&self, item: &mut OutboxItem) -> Result<(), DeliverError> {
        let mut delay = std::time::Duration::from_secs(1);
        for _ in 0..3 {
            match self.deliver(item).await {
                Err(DeliverError::Jira(JiraError::Transient { retry_after, .. }))
                    if retry_after.unwrap_or_default() <= std::time::Duration::from_secs(5) =>
                {
                    tokio::time::sleep(retry_after.unwrap_or(delay).max(delay)).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        self.deliver(item).await
    }

    async fn deliver(&self, item: &mut OutboxItem) -> Result<(), DeliverError> {
        let key = item.issue.clone();
        if !item.done.comment {
            // After an attempt whose answer was lost, look before sending again.
            let marker = marker_line(&item.marker);
            if item.tried.comment
                && self
                    .client
                    .comments(&key)
                    .await?
                    .iter()
                    .any(|c| c.contains(&marker))
            {
                item.done.comment = true;
            } else {
                item.tried.comment = true;
                item.tried_at = Some(self.clock.now());
                self.save(item).await?;
                self.client.add_comment(&key, &item.comment).await?;
                item.done.comment = true;
            }
            self.save(item).await?;
        }
        if let Some(att) = item.attachment.clone().filter(|_| !item.done.attachment) {
            if item.tried.attachment
                && self
                    .client
                    .attachment_names(&key)
                    .await?
                    .contains(&att.filename)
            {
                item.done.attachment = true;
            } else {
                item.tried.attachment = true;
                item.tried_at = Some(self.clock.now());
                self.save(item).await?;
                self.client
                    .attach(&key, &att.filename, att.content.as_bytes())
                    .await?;
                item.done.attachment = true;
            }
            self.save(item).await?;
        }
        if let Some(edit) = item.edit.clone().filter(|_| !item.done.edit) {
            let mut fields = serde_json::Map::new();
            if let Some(s) = edit.summary {
                fields.insert("summary".into(), s.into());
            }
            let edited = async {
                if let (Some(id), Some(name)) = (edit.cert_id, &self.cert_id_field) {
                    fields.insert(self.fields.id(&self.client, name).await?, id.into());
                }
                if !fields.is_empty() {
                    self.client.edit(&key, fields).await?;
                }
                Ok::<(), JiraError>(())
            };
            match edited.await {
                // The field missing, or not on this issue's edit screen (an issue outside the
                // Certificate project): the comment and attachment went in; carry on.
                Err(JiraError::Permanent { what, .. }) => {
                    warn!(jira_key = %key, "the fields of {key} were not set for {}: {what}", item.event);
                }
                other => other?,
            }
            item.done.edit = true;
            self.save(item).await?;
        }
        if !item.done.transition {
            if let Some(name) = self.transitions.get(&item.event) {
                let ts = self.client.transitions(&key).await?;
                match ts.iter().find(|t| t.answers_to(name)) {
                    Some(t) => self.client.transition(&key, &t.id).await?,
                    None => {
                        let avail: Vec<String> = ts
                            .iter()
                            .map(|t| format!("{:?} (to {:?})", t.name, t.to))
                            .collect();
                        warn!(jira_key = %key, "transition {name:?} for {} is not available from {key}'s current status; the comment went in; available: {}", item.event, if avail.is_empty() { "none".into() } else { avail.join(", ") });
                    }
                }
            }
            item.done.transition = true;
        }
        Ok(())
    }
}

enum DeliverError {
    Jira(JiraError),
    Store(StoreError),
}

impl From<JiraError> for DeliverError {
    fn from(e: JiraError) -> Self {
        DeliverError::Jira(e)
    }
}

impl From<StoreError> for DeliverError {
    fn from(e: StoreError) -> Self {
        DeliverError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        let s: Vec<i64> = (1..=8)
            .map(|a| retry_delay(a, None).num_seconds())
            .collect();
        assert_eq!(s, vec![30, 60, 120, 240, 480, 960, 1800, 1800]);
        assert_eq!(
            retry_delay(1, Some(std::time::Duration::from_secs(120))).num_seconds(),
            120
        );
    }
}
