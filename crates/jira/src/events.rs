//! What the daemon reports on a certificate's Jira issue, rendered as an outbox item. Pure:
//! no IO, `now` passed in. Each comment ends with its marker, so a retry can see whether an
//! earlier attempt already landed.

use chrono::{DateTime, Utc};

use sectigo_state::{Attachment, CertRecord, IssueEdit, OutboxItem, Steps};

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
        issue: &'a str,
        profile: &'a str,
        cert_id: &'a str,
        domain: &'a str,
    },
    /// Workflow: the enrolled certificate was issued.
    Enrolled {
        cert: &'a CertRecord,
        pem: &'a str,
    },
    /// Workflow: a request (`action`: enroll, renew, revoke) could not be carried out.
    RequestFailed {
        issue: &'a str,
        profile: &'a str,
        action: &'a str,
        reason: &'a str,
        at: DateTime<Utc>,
    },
    /// Workflow: a request waits: until `until` (a limit is reached), or, `None`, on SCM
    /// (an enrollment accepted and not issued in time).
    RequestWaiting {
        issue: &'a str,
        profile: &'a str,
        action: &'a str,
        reason: &'a str,
        until: Option<DateTime<Utc>>,
    },
    /// Workflow: the daemon stopped between an enroll call and recording its answer.
    EnrollOutcomeUnknown {
        issue: &'a str,
        profile: &'a str,
        reason: &'a str,
    },
    /// A renewal SCM accepted is not issued after `[renewal] collect_timeout_hours`.
    Stalled {
        cert: &'a CertRecord,
        new_id: &'a str,
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
        issue: &'a str,
        message: &'a str,
    },
}

use sectigo_core::text::ts;

fn sans(c: &CertRecord) -> String {
    if c.sans.is_empty() {
        "-".into()
    } else {
        c.sans.join(", ")
    }
}

/// The attachment's file name: the subject and the certificate id.
fn pem_filename(c: &CertRecord) -> String {
    format!(
        "{}-{}.pem",
        c.subject_cn.replace(['*', '/', '\\'], "_"),
        c.id
    )
}

/// The text every comment of ours ends with.
pub fn marker_line(marker: &str) -> String {
    format!("[sectigo-connector {marker}]")
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

    /// The issue that gets the update (`None`: the certificate has no linked issue), the
    /// certificate id and profile it concerns, and the update's marker.
    fn target(&self) -> Option<(String, String, String, String)> {
        let name = self.name();
        let of_cert = |c: &CertRecord, kind: &str| {
            c.jira_issue.clone().map(|i| {
                let marker = format!("{name}:{}:{}{kind}", c.id, ts(c.not_after));
                (i, c.id.clone(), c.profile.clone(), marker)
            })
        };
        match self {
            Event::RenewalStarted { cert, .. }
            | Event::ExpiringNoAutoRenew { cert }
            | Event::OutcomeUnknown { cert, .. }
            | Event::Enrolled { cert, .. }
            | Event::Stalled { cert, .. }
            | Event::DeployFailed { cert, .. }
            | Event::RevokedInScm { cert, .. } => of_cert(cert, ""),
            Event::RenewalFailed {
                cert, will_retry, ..
            } => of_cert(
                cert,
                if will_retry.is_some() {
                    ":retrying"
                } else {
                    ":final"
                },
            ),
            Event::Renewed { old, .. } => of_cert(old, ""),
            Event::Revoked { cert, issue, .. } => Some((
                issue.to_string(),
                cert.id.clone(),
                cert.profile.clone(),
                format!("{name}:{}:{issue}", cert.id),
            )),
            Event::EnrollRequested {
                issue,
                profile,
                cert_id,
                ..
            } => Some((
                issue.to_string(),
                cert_id.to_string(),
                profile.to_string(),
                format!("{name}:{issue}:{cert_id}"),
            )),
            Event::RequestFailed {
                issue,
                profile,
                action,
                at,
                ..
            } => Some((
                issue.to_string(),
                String::new(),
                profile.to_string(),
                format!("{name}:{issue}:{action}:{}", at.timestamp_millis()),
            )),
            Event::RequestWaiting {
                issue,
                profile,
                action,
                until,
                ..
            } => Some((
                issue.to_string(),
                String::new(),
                profile.to_string(),
                match until {
                    Some(u) => format!("{name}:{issue}:{action}:{}", u.timestamp() / 60),
                    None => format!("{name}:{issue}:{action}:stalled"),
                },
            )),
            Event::EnrollOutcomeUnknown { issue, profile, .. } => Some((
                issue.to_string(),
                String::new(),
                profile.to_string(),
                format!("{name}:{issue}"),
            )),
        }
    }

    /// The outbox item for this event, or `None` when the certificate has no linked issue.
    pub fn outbox_item(&self, now: DateTime<Utc>) -> Option<OutboxItem> {
        let (issue, cert_id, profile, marker) = self.target()?;
        let (body, attachment, edit) = self.message();
        let comment = format!("{body}\n\n{}", marker_line(&marker));
        Some(OutboxItem {
            seq: 0,
            marker,
            issue,
            event: self.name().to_string(),
            cert_id,
            profile,
            comment,
            attachment,
            edit,
            created: now,
            attempts: 0,
            next_attempt: None,
            last_error: None,
            done: Steps::default(),
            tried: Steps::default(),
            tried_at: None,
            dead: None,
        })
    }

    /// For `[notify] command`: the events that need a person, with the certificate and
    /// profile they concern and the text a person reads (the Jira comment's).
    pub fn notification(&self) -> Option<Notification> {
        let (cert_id, profile) = match self {
            Event::RenewalFailed { cert, .. }
            | Event::OutcomeUnknown { cert, .. }
            | Event::Stalled { cert, .. }
            | Event::ExpiringNoAutoRenew { cert }
            | Event::DeployFailed { cert, .. } => (cert.id.clone(), cert.profile.clone()),
            Event::EnrollOutcomeUnknown { profile, .. } => (String::new(), profile.to_string()),
            _ => return None,
        };
        Some(Notification {
            event: self.name(),
            cert_id,
            profile,
            message: self.message().0,
        })
    }

    /// The text of the update, and what it attaches and edits.
    fn message(&self) -> (String, Option<Attachment>, Option<IssueEdit>) {
        let mut attachment = None;
        let mut edit = None;
        let body = match self {
            Event::RenewalStarted { cert, forced } => format!(
                "Renewal of certificate {} started{}.\nSubject: CN={}\nExpires: {}",
                cert.id,
                if *forced { " (force renewal of profile ".to_string() + &cert.profile + ")" } else { String::new() },
                cert.subject_cn,
                ts(cert.not_after)
            ),
            Event::Renewed { old, new, pem } => {
                let filename = pem_filename(new);
                attachment = Some(Attachment { filename: filename.clone(), content: pem.to_string() });
                edit = Some(IssueEdit { summary: None, cert_id: Some(new.id.clone()) });
                format!(
                    "Certificate renewed.\nOld certificate: {} (expires {})\nNew certificate: {}\nSubject: CN={}\nSANs: {}\nValid until: {}\n\nThe new certificate and its chain are attached as {filename}.",
                    old.id, ts(old.not_after), new.id, new.subject_cn, sans(new), ts(new.not_after)
                )
            }
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
                    sectigo_state::CertState::OutcomeUnknown { request: Some(r), .. } => format!(" (search its certificates' comments for \"{r}\")"),
                    _ => String::new(),
                },
                cert.id, cert.id
            ),
            Event::EnrollRequested { profile, cert_id, domain, .. } => format!(
                "Enrollment requested: SCM accepted the certificate signing request for {domain} (profile {profile}) as certificate {cert_id}. The certificate will be attached here once Sectigo issues it."
            ),
            Event::Enrolled { cert, pem } => {
                let filename = pem_filename(cert);
                attachment = Some(Attachment { filename: filename.clone(), content: pem.to_string() });
                edit = Some(IssueEdit {
                    summary: Some(format!("Certificate enrolled:{}", cert.subject_cn)),
                    cert_id: Some(cert.id.clone()),
                });
                format!(
                    "Certificate enrolled: {}\nSubject: CN={}\nSANs: {}\nValid until: {}\nProfile: {} (renewed automatically before it expires, as the profile says)\n\nThe certificate and its chain are attached as {filename}.",
                    cert.id, cert.subject_cn, sans(cert), ts(cert.not_after), cert.profile
                )
            }
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
            Event::EnrollOutcomeUnknown {
                issue,
                profile,
                reason,
            } => format!(
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
        };
        (body, attachment, edit)
    }
}

/// An event that needs a person, for `[notify] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event: &'static str,
    pub cert_id: String,
    pub profile: String,
    pub message: String,
}
