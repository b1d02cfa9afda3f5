//! What the daemon has to say: the events of a certificate's and a request's life that a
//! person hears of (on the certificate's Jira issue, through `[notify] command`). Pure data
//! and the words a person reads; the Jira crate renders an event as an outbox item (its
//! marker, the attachment, the fields it sets), the engine's notifier runs the command.

use chrono::{DateTime, Utc};

use sectigo_core::names::{CertId, IssueKey, ProfileName};
use sectigo_core::text::ts;

use crate::records::{CertRecord, CertState};

pub enum Event<'a> {
    RenewalStarted {
        cert: &'a CertRecord,
        forced: bool,
    },
    Renewed {
        old: &'a CertRecord,
        new: &'a CertRecord,
        pem: &'a str,
    },
    RenewalFailed {
        cert: &'a CertRecord,
        reason: &'a str,
        will_retry: Option<DateTime<Utc>>,
    },
    ExpiringNoAutoRenew {
        cert: &'a CertRecord,
    },
    OutcomeUnknown {
        cert: &'a CertRecord,
        reason: &'a str,
    },
    /// Workflow: SCM accepted an enrollment asked for by `issue`.
    EnrollRequested {
        issue: &'a IssueKey,
        profile: &'a ProfileName,
        cert_id: &'a CertId,
        domain: &'a str,
    },
    /// Workflow: the enrolled certificate was issued.
    Enrolled {
        cert: &'a CertRecord,
        pem: &'a str,
    },
    /// Workflow: a request (`action`: enroll, renew, revoke) could not be carried out.
    /// `profile: None` when naming it would tell the requester what it may not know.
    RequestFailed {
        issue: &'a IssueKey,
        profile: Option<&'a ProfileName>,
        action: &'a str,
        reason: &'a str,
        at: DateTime<Utc>,
    },
    /// Workflow: a request waits: until `until` (a limit is reached), or, `None`, on SCM
    /// (an enrollment accepted and not issued in time).
    RequestWaiting {
        issue: &'a IssueKey,
        profile: &'a ProfileName,
        action: &'a str,
        reason: &'a str,
        until: Option<DateTime<Utc>>,
    },
    /// Workflow: the daemon stopped between an enroll call and recording its answer.
    EnrollOutcomeUnknown {
        issue: &'a IssueKey,
        profile: &'a ProfileName,
        reason: &'a str,
    },
    /// A renewal SCM accepted is not issued after `[renewal] collect_timeout_hours`.
    Stalled {
        cert: &'a CertRecord,
        new_id: &'a CertId,
        since: DateTime<Utc>,
        scm_status: &'a str,
    },
    /// The certificate was found revoked in SCM (not by the connector): no longer renewed.
    RevokedInScm {
        cert: &'a CertRecord,
        detail: &'a str,
    },
    /// A certificate issued but not deployed: its files or its hook failed (retried).
    DeployFailed {
        cert: &'a CertRecord,
        error: &'a str,
        retry_at: DateTime<Utc>,
    },
    /// Workflow: revoked at the request of the certificate's issue.
    Revoked {
        cert: &'a CertRecord,
        issue: &'a IssueKey,
        message: &'a str,
    },
}

fn sans(c: &CertRecord) -> String {
    if c.sans.is_empty() {
        "-".into()
    } else {
        c.sans.join(", ")
    }
}

/// An event that needs a person, for `[notify] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event: &'static str,
    /// Empty when the event concerns no certificate yet (an enrollment).
    pub cert_id: String,
    pub profile: String,
    pub message: String,
}

impl Event<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Event::RenewalStarted { .. } => "renewal_started",
            Event::Renewed { .. } => "renewed",
            Event::RenewalFailed { .. } => "renewal_failed",
            Event::ExpiringNoAutoRenew { .. } => "expiring_no_auto_renew",
            Event::OutcomeUnknown { .. } => "outcome_unknown",
            Event::EnrollRequested { .. } => "enroll_requested",
            Event::Enrolled { .. } => "enrolled",
            Event::RequestFailed { .. } => "request_failed",
            Event::EnrollOutcomeUnknown { .. } => "enroll_outcome_unknown",
            Event::Revoked { .. } => "revoked",
            Event::Stalled { .. } => "renewal_stalled",
            Event::RequestWaiting { .. } => "request_waiting",
            Event::RevokedInScm { .. } => "revoked_in_scm",
            Event::DeployFailed { .. } => "deploy_failed",
        }
    }

    /// For `[notify] command`: the events that need a person, with the certificate and
    /// profile they concern and the text a person reads.
    pub fn notification(&self) -> Option<Notification> {
        let (cert_id, profile) = match self {
            Event::RenewalFailed { cert, .. }
            | Event::OutcomeUnknown { cert, .. }
            | Event::Stalled { cert, .. }
            | Event::ExpiringNoAutoRenew { cert }
            | Event::DeployFailed { cert, .. } => (cert.id.to_string(), cert.profile.to_string()),
            Event::EnrollOutcomeUnknown { profile, .. } => (String::new(), profile.to_string()),
            _ => return None,
        };
        Some(Notification {
            event: self.name(),
            cert_id,
            profile,
            message: self.text(),
        })
    }

    /// What a person reads: the body of the Jira comment, the `[notify]` message.
    pub fn text(&self) -> String {
        match self {
            Event::RenewalStarted { cert, forced } => format!(
                "Renewal of certificate {} started{}.\nSubject: CN={}\nExpires: {}",
                cert.id,
                if *forced {
                    format!(" (force renewal of profile {})", cert.profile)
                } else {
                    String::new()
                },
                cert.subject_cn,
                ts(cert.not_after)
            ),
            Event::Renewed { old, new, .. } => format!(
                "Certificate renewed.\nOld certificate: {} (expires {})\nNew certificate: {}\nSubject: CN={}\nSANs: {}\nValid until: {}",
                old.id, ts(old.not_after), new.id, new.subject_cn, sans(new), ts(new.not_after)
            ),
            Event::RenewalFailed { cert, reason, will_retry } => format!(
                "Renewal of certificate {} (CN={}, expires {}) failed: {reason}\n{}",
                cert.id,
                cert.subject_cn,
                ts(cert.not_after),
                match will_retry {
                    Some(t) => format!("The connector will try again at {}.", ts(*t)),
                    None => format!("The connector will not retry: fix the cause, then run `sectigo-connector renew {}`.", cert.id),
                }
            ),
            Event::ExpiringNoAutoRenew { cert } => format!(
                "Certificate {} (CN={}) expires {} and is inside the expiry window, but profile {} has Auto Renew off: it will not be renewed automatically.\nRenew it with `sectigo-connector renew {}`, or turn auto_renew on.",
                cert.id, cert.subject_cn, ts(cert.not_after), cert.profile, cert.id
            ),
            Event::OutcomeUnknown { cert, reason } => format!(
                "Needs a human: the outcome of the renewal of certificate {} (CN={}) is unknown ({reason}). SCM may have renewed, and billed, it.\nCheck SCM{}: if it issued a new certificate, run `sectigo-connector certs resolve {} --renewed-as NEW_ID`; if not, `sectigo-connector certs resolve {} --not-renewed`.",
                cert.id, cert.subject_cn,
                match &cert.state {
                    CertState::OutcomeUnknown { request: Some(r), .. } => format!(" (search its certificates' comments for \"{r}\")"),
                    _ => String::new(),
                },
                cert.id, cert.id
            ),
            Event::EnrollRequested { profile, cert_id, domain, .. } => format!(
                "Enrollment requested: SCM accepted the certificate signing request for {domain} (profile {profile}) as certificate {cert_id}. The certificate will be attached here once Sectigo issues it."
            ),
            Event::Enrolled { cert, .. } => format!(
                "Certificate enrolled: {}\nSubject: CN={}\nSANs: {}\nValid until: {}\nProfile: {} (renewed automatically before it expires, as the profile says)",
                cert.id, cert.subject_cn, sans(cert), ts(cert.not_after), cert.profile
            ),
            Event::RequestFailed { action, reason, .. } => format!(
                "The {action} request was not carried out: {reason}\nFix the cause, then move the issue back to request it again."
            ),
            Event::RequestWaiting { action, reason, until, .. } => match until {
                Some(u) => format!(
                    "The {action} request waits: {reason}. It is carried out after {} (leave the issue in its status).",
                    ts(*u)
                ),
                None => format!(
                    "Needs a human: the {action} request is stalled: {reason}. The certificate is attached here once SCM issues it."
                ),
            },
            Event::EnrollOutcomeUnknown { issue, profile, reason } => format!(
                "Needs a human: the outcome of this enrollment (profile {profile}) is unknown ({reason}). SCM may have enrolled, and billed, a certificate for this CSR. It will not be enrolled again automatically.\nCheck SCM: if a certificate was issued, run `sectigo-connector certs resolve {issue} --renewed-as CERT_ID`; if not, `sectigo-connector certs resolve {issue} --not-renewed`, then request it again."
            ),
            Event::Stalled { cert, new_id, since, scm_status } => format!(
                "Needs a human: the renewal of certificate {} (CN={}) was accepted by SCM as certificate {new_id} at {}, and is still not issued (SCM status: {scm_status}).\nIf the REST account needs approval, approve certificate {new_id} in SCM; the connector keeps collecting it and attaches it here when it is issued.",
                cert.id, cert.subject_cn, ts(*since)
            ),
            Event::RevokedInScm { cert, detail } => format!(
                "Certificate {} (CN={}, valid until {}) was revoked in SCM, not by the connector ({detail}).\nIt will not be renewed again. If a replacement is needed, request a new certificate.",
                cert.id, cert.subject_cn, ts(cert.not_after)
            ),
            Event::DeployFailed { cert, error, retry_at } => format!(
                "Needs a human: certificate {} (CN={}, valid until {}) is issued but not deployed: {error}.\nThe connector tries again at {}; no renewal is made for this. `sectigo-connector certs show {}` shows the attempts.",
                cert.id, cert.subject_cn, ts(cert.not_after), ts(*retry_at), cert.id
            ),
            Event::Revoked { cert, message, .. } => format!(
                "Certificate {} (CN={}, valid until {}) was revoked in SCM: {message}\nIt will not be renewed again.",
                cert.id, cert.subject_cn, ts(cert.not_after)
            ),
        }
    }
}
