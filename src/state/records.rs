//! What the store holds. Serialized as JSON: new fields get defaults, so old records still load.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One tracked certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertRecord {
    /// SCM's certificate id (`certId`).
    pub id: String,
    pub profile: String,
    pub subject_cn: String,
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub state: CertState,
    #[serde(default)]
    pub jira_issue: Option<String>,
    pub origin: CertOrigin,
    /// Consecutive failed renewal attempts (reset on success).
    #[serde(default)]
    pub failures: u32,
    /// Not before this time is the next automatic attempt made (persisted backoff).
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The notAfter for which "expiring without auto-renew" was last reported.
    #[serde(default)]
    pub reported_no_auto_renew: Option<DateTime<Utc>>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// Where a certificate in the inventory came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CertOrigin {
    Imported { at: DateTime<Utc> },
    Renewed { from: String, at: DateTime<Utc> },
    Enrolled { at: DateTime<Utc> },
}

/// Lifecycle of a tracked certificate. The two in-flight states are the journal of a billable
/// call: `RenewRequested` is written and flushed *before* the renew call; `Collecting` after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CertState {
    /// Issued and tracked; renewed when due.
    Active,
    /// Intent journaled: a renew call for this due date may have been sent.
    RenewRequested {
        due: DateTime<Utc>,
        at: DateTime<Utc>,
        forced: bool,
    },
    /// SCM accepted the renewal as `new_id`; waiting for it to be issued and collected.
    Collecting {
        new_id: String,
        at: DateTime<Utc>,
    },
    /// Replaced by the certificate `by`.
    Superseded {
        by: String,
        at: DateTime<Utc>,
    },
    /// The daemon stopped between a renew call and recording its answer: SCM may or may not
    /// have renewed (and billed). Never renewed again automatically; a human decides.
    OutcomeUnknown {
        due: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// SCM refused the renewal for good (e.g. -180 profile does not allow renew).
    Failed {
        reason: String,
        at: DateTime<Utc>,
    },
    Revoked {
        at: DateTime<Utc>,
    },
}

impl CertState {
    pub fn name(&self) -> &'static str {
        match self {
            CertState::Active => "active",
            CertState::RenewRequested { .. } => "renew-requested",
            CertState::Collecting { .. } => "collecting",
            CertState::Superseded { .. } => "superseded",
            CertState::OutcomeUnknown { .. } => "outcome-unknown",
            CertState::Failed { .. } => "failed",
            CertState::Revoked { .. } => "revoked",
        }
    }

    pub fn is_in_flight(&self) -> bool {
        matches!(
            self,
            CertState::RenewRequested { .. } | CertState::Collecting { .. }
        )
    }

    /// Counts toward the live inventory (not replaced or revoked).
    pub fn is_live(&self) -> bool {
        !matches!(
            self,
            CertState::Superseded { .. } | CertState::Revoked { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub event: String,
}

impl CertRecord {
    pub fn log(&mut self, at: DateTime<Utc>, event: impl Into<String>) {
        self.history.push(HistoryEntry {
            at,
            event: event.into(),
        });
    }

    /// When this certificate was itself obtained by a renewal, the time of that renewal.
    pub fn renewed_at(&self) -> Option<DateTime<Utc>> {
        match &self.origin {
            CertOrigin::Renewed { at, .. } => Some(*at),
            _ => None,
        }
    }
}

/// Persisted per-profile state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileState {
    /// Identity, to recognise a profile file renamed by hand.
    pub client_id: String,
    pub scm_url: String,
    /// The `force_renewal` setting as last seen; a false → true change starts a force run.
    #[serde(default)]
    pub force_setting_seen: bool,
    #[serde(default)]
    pub force: Option<ForceRun>,
}

/// One force renewal of a whole profile: every certificate not renewed since `started` is
/// renewed by `started + 24h`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForceRun {
    pub started: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    #[serde(default)]
    pub completed: Option<DateTime<Utc>>,
    /// What started it: "setting" or "command".
    pub cause: String,
}

/// What the last cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleSummary {
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub renewed: u64,
    pub requested: u64,
    pub failed: u64,
    pub pending: u64,
    pub skipped_no_auto_renew: u64,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// A Jira update waiting for delivery. Written in the same transaction as the state change it
/// reports; removed once delivered. `marker` makes it idempotent: the same event is never
/// queued twice, and the comment carries the marker so a retry can see it already landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Delivery order; assigned by the store.
    #[serde(default)]
    pub seq: u64,
    pub marker: String,
    pub issue: String,
    /// The event's name (`renewal_started`, `renewed`, ...): selects the transition.
    pub event: String,
    pub cert_id: String,
    pub profile: String,
    /// The comment, as plain text (paragraphs separated by blank lines).
    pub comment: String,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Steps Jira confirmed.
    #[serde(default)]
    pub done: Steps,
    /// Steps sent at least once (after a crash, check Jira before sending again).
    #[serde(default)]
    pub tried: Steps,
    /// Jira can never take this update (issue gone, no permission): kept for the operator.
    #[serde(default)]
    pub dead: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steps {
    pub comment: bool,
    pub attachment: bool,
    pub transition: bool,
}
