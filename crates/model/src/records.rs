//! What the store holds. Serialized as JSON: new fields get defaults, so old records still load.
//! Ids, issue keys and names are their own types (`sectigo_core::names`): a record holding a
//! bad one does not decode.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sectigo_core::names::{CertId, CertName, IssueKey, ProfileName};

/// One tracked certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertRecord {
    /// SCM's certificate id (`certId`).
    pub id: CertId,
    pub profile: ProfileName,
    pub subject_cn: String,
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub state: CertState,
    #[serde(default)]
    pub jira_issue: Option<IssueKey>,
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
    /// When a renewal in collection was reported as stalled (once per renewal).
    #[serde(default)]
    pub stall_reported: Option<DateTime<Utc>>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Its directory's name under the profile's `[deploy] dir` (`certs import --name`);
    /// `None`: the CN, made safe for a file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<CertName>,
    /// Files and hook still owed for this certificate: written in the same step as the record
    /// that made it active, so a crash before the files are in place finishes them at restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployJob>,
    /// SCM's own auto-renewal is on for it (seen through `[admin]`): SCM and the daemon would
    /// both renew, and bill. A warning in `status` and `certs show` until it is off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scm_auto_renew: bool,
}

/// A deployment not yet done (or whose hook failed): retried on a backoff; never a renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployJob {
    pub since: DateTime<Utc>,
    /// The certificate this one replaces (`SECTIGO_OLD_CERT_ID`), if any.
    #[serde(default)]
    pub old_id: Option<CertId>,
    /// The files are in place; only the hook is owed.
    #[serde(default)]
    pub files_done: bool,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Where a certificate in the inventory came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CertOrigin {
    Imported { at: DateTime<Utc> },
    Renewed { from: CertId, at: DateTime<Utc> },
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
        /// The request id sent in `comments`, to find the request in SCM.
        #[serde(default)]
        request: Option<String>,
    },
    /// SCM accepted the renewal as `new_id`; waiting for it to be issued and collected.
    Collecting {
        new_id: CertId,
        at: DateTime<Utc>,
    },
    /// Replaced by the certificate `by`.
    Superseded {
        by: CertId,
        at: DateTime<Utc>,
    },
    /// The daemon stopped between a renew call and recording its answer: SCM may or may not
    /// have renewed (and billed). Never renewed again automatically; a human decides.
    OutcomeUnknown {
        due: DateTime<Utc>,
        at: DateTime<Utc>,
        /// The request id of the call whose answer was lost (search SCM's comments for it).
        #[serde(default)]
        request: Option<String>,
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
    /// Every state's name, in lifecycle order (what `certs list --state` takes).
    pub const NAMES: [&'static str; 7] = [
        "active",
        "renew-requested",
        "collecting",
        "outcome-unknown",
        "failed",
        "superseded",
        "revoked",
    ];

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

    /// Its directory's name under its profile's `[deploy] dir`: its `--name`, else its CN made
    /// fit for a file name, else `cert-ID`.
    pub fn dir_name(&self) -> CertName {
        self.name
            .clone()
            .or_else(|| CertName::from_cn(&self.subject_cn))
            .unwrap_or_else(|| CertName::for_id(&self.id))
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
    /// The last configuration applied to the state (a start, a reload, `run --once`, or the
    /// command that imported into it) had this profile. Only such a profile, gone from the
    /// next configuration, can be taken for a file renamed by hand: one removed earlier never
    /// is. (Absent in states written before it: no profile is taken for a rename until the
    /// first configuration is applied.)
    #[serde(default)]
    pub configured: bool,
    /// Its file went away while these profiles, with its client_id and scm_url, appeared,
    /// and which one is its new name could not be told (two candidates, or another vanished
    /// profile with the same identity): nothing was moved. `status` names the
    /// `profiles rename` to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rename_candidates: Vec<ProfileName>,
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

/// One billable call the daemon sent (or may have sent: its answer was lost), for the daily
/// budget and the operator's audit: which profile, when, for what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingEntry {
    pub profile: ProfileName,
    pub at: DateTime<Utc>,
    /// The certificate renewed (its id), or what was enrolled (an issue key, a name).
    pub what: String,
    /// The request id sent in `comments`.
    pub request: String,
    /// Why: `window`, `forced`, `operator`, `requested`, `enroll`.
    pub reason: String,
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
    /// Renewals not sent, by profile: SCM (or its token endpoint) could not be reached, or
    /// refused the profile's credentials. Tried again at the next cycle, not failed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deferred: BTreeMap<ProfileName, u64>,
    /// Scheduled renewals waiting for the daily budget, by profile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<ProfileName, u64>,
    /// What could not be reached, or refused the credentials, when the cycle ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<Outage>,
}

/// Something SCM-side that stops renewals: a host that cannot be reached, or a profile's
/// credentials refused. One problem, however many certificates it holds up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub kind: OutageKind,
    /// The host (`host:port`), or the profile whose credentials are refused.
    pub what: String,
    pub since: DateTime<Utc>,
    pub error: String,
    /// Renewals it held up in the last cycle.
    #[serde(default)]
    pub waiting: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutageKind {
    /// SCM's host, or its token endpoint's, cannot be reached.
    Unreachable,
    /// The profile's token endpoint refuses its credentials.
    CredentialsRefused,
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
    pub issue: IssueKey,
    /// The event's name (`renewal_started`, `renewed`, ...): selects the transition.
    pub event: String,
    pub cert_id: String,
    pub profile: String,
    /// The comment, as plain text (paragraphs separated by blank lines).
    pub comment: String,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    /// Fields to set on the issue (summary, certificate id).
    #[serde(default)]
    pub edit: Option<IssueEdit>,
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
    /// When a step was last sent: a request still in flight from a process that died is
    /// given time to land before the step is looked for and sent again.
    #[serde(default)]
    pub tried_at: Option<DateTime<Utc>>,
    /// Jira can never take this update (issue gone, no permission): kept for the operator.
    #[serde(default)]
    pub dead: Option<String>,
}

/// Issue fields an update sets. Setting a field is idempotent: no marker needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueEdit {
    #[serde(default)]
    pub summary: Option<String>,
    /// The certificate id, for the `[jira.workflow] cert_id_field` field.
    #[serde(default)]
    pub cert_id: Option<String>,
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
    #[serde(default)]
    pub edit: bool,
    pub transition: bool,
}

/// A Jira issue the workflow acted on: the journal of what it asked for (enroll, renew,
/// revoke) and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRecord {
    pub key: IssueKey,
    /// Requests handled while the issue sat in their requested status. A request is handled
    /// once; it is handled again only after the issue left that status and came back (a
    /// person asked again).
    #[serde(default)]
    pub handled: Vec<Handled>,
    /// The enrollment this issue asked for.
    #[serde(default)]
    pub enroll: Option<EnrollState>,
    /// SHA-256 (hex) of the enrolled CSR (DER): one enrollment per CSR across all issues.
    #[serde(default)]
    pub csr_sha256: Option<String>,
    /// A revocation journaled before its call and not yet answered.
    #[serde(default)]
    pub revoking: Option<RevokeIntent>,
    /// The request waits for the daily cap until then (the issue was told, once).
    #[serde(default)]
    pub waiting_until: Option<DateTime<Utc>>,
    /// When the enrollment in collection was reported as stalled (once).
    #[serde(default)]
    pub stall_reported: Option<DateTime<Utc>>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// Lifecycle of an enrollment asked for by an issue. `Requested` is the journal of the
/// billable call: written and flushed before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EnrollState {
    Requested {
        profile: ProfileName,
        at: DateTime<Utc>,
        /// The request id sent in `comments`.
        #[serde(default)]
        request: Option<String>,
    },
    /// SCM accepted the enrollment as `cert_id`; waiting for issuance.
    Collecting {
        profile: ProfileName,
        cert_id: CertId,
        at: DateTime<Utc>,
    },
    Issued {
        cert_id: CertId,
        at: DateTime<Utc>,
    },
    /// Refused before anything was billed (bad CSR, unknown profile, duplicate CSR, SCM
    /// refused the request): the issue may ask again.
    Rejected {
        reason: String,
        at: DateTime<Utc>,
    },
    /// SCM accepted the enrollment but it can never be collected.
    Failed {
        cert_id: CertId,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The daemon stopped between the enroll call and recording its answer: SCM may have
    /// enrolled (and billed). Never enrolled again automatically.
    OutcomeUnknown {
        profile: ProfileName,
        at: DateTime<Utc>,
        #[serde(default)]
        request: Option<String>,
    },
}

impl EnrollState {
    pub fn name(&self) -> &'static str {
        match self {
            EnrollState::Requested { .. } => "requested",
            EnrollState::Collecting { .. } => "collecting",
            EnrollState::Issued { .. } => "issued",
            EnrollState::Rejected { .. } => "rejected",
            EnrollState::Failed { .. } => "failed",
            EnrollState::OutcomeUnknown { .. } => "outcome-unknown",
        }
    }

    /// Whether SCM may hold (or have billed) a certificate for this enrollment: the CSR is
    /// taken, and the issue never enrolls again.
    pub fn holds_csr(&self) -> bool {
        !matches!(self, EnrollState::Rejected { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handled {
    /// "enroll", "renew" or "revoke".
    pub action: String,
    pub at: DateTime<Utc>,
    /// Complete searches in a row that did not find the issue in the requested status.
    #[serde(default)]
    pub misses: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeIntent {
    pub cert_id: CertId,
    pub message: String,
    pub reason_code: i32,
    pub at: DateTime<Utc>,
}

impl IssueRecord {
    pub fn new(key: &IssueKey) -> IssueRecord {
        IssueRecord {
            key: key.clone(),
            handled: Vec::new(),
            enroll: None,
            csr_sha256: None,
            revoking: None,
            waiting_until: None,
            stall_reported: None,
            history: Vec::new(),
        }
    }

    pub fn log(&mut self, at: DateTime<Utc>, event: impl Into<String>) {
        self.history.push(HistoryEntry {
            at,
            event: event.into(),
        });
    }

    pub fn is_handled(&self, action: &str) -> bool {
        self.handled.iter().any(|h| h.action == action)
    }

    pub fn set_handled(&mut self, action: &str, at: Option<DateTime<Utc>>) {
        self.handled.retain(|h| h.action != action);
        if let Some(at) = at {
            self.handled.push(Handled {
                action: action.to_string(),
                at,
                misses: 0,
            });
        }
    }

    /// Work the daemon still owes this issue (an enrollment to collect or resolve, a
    /// revocation to finish).
    pub fn has_work(&self) -> bool {
        matches!(
            self.enroll,
            Some(EnrollState::Requested { .. } | EnrollState::Collecting { .. })
        ) || self.revoking.is_some()
    }

    /// The CSR hash this issue holds in the duplicate index.
    pub fn held_csr(&self) -> Option<&str> {
        match &self.enroll {
            Some(e) if e.holds_csr() => self.csr_sha256.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_name_is_listed_once() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let id = CertId::parse("1").unwrap();
        let all = [
            CertState::Active,
            CertState::RenewRequested {
                due: t,
                at: t,
                forced: false,
                request: None,
            },
            CertState::Collecting {
                new_id: id.clone(),
                at: t,
            },
            CertState::OutcomeUnknown {
                due: t,
                at: t,
                request: None,
            },
            CertState::Failed {
                reason: String::new(),
                at: t,
            },
            CertState::Superseded { by: id, at: t },
            CertState::Revoked { at: t },
        ];
        let names: Vec<&str> = all.iter().map(CertState::name).collect();
        assert_eq!(names, CertState::NAMES);
    }
}
