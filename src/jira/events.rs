//! What the daemon reports on a certificate's Jira issue, rendered as an outbox item. Pure:
//! no IO, `now` passed in. Each comment ends with its marker, so a retry can see whether an
//! earlier attempt already landed.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::state::{Attachment, CertRecord, OutboxItem, Steps};

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
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn sans(c: &CertRecord) -> String {
    if c.sans.is_empty() {
        "-".into()
    } else {
        c.sans.join(", ")
    }
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
        }
    }

    /// The certificate whose issue gets the update.
    fn cert(&self) -> &CertRecord {
        match self {
            Event::RenewalStarted { cert, .. }
            | Event::RenewalFailed { cert, .. }
            | Event::ExpiringNoAutoRenew { cert }
            | Event::OutcomeUnknown { cert, .. } => cert,
            Event::Renewed { old, .. } => old,
        }
    }

    /// The outbox item for this event, or `None` when the certificate has no linked issue.
    pub fn outbox_item(&self, now: DateTime<Utc>) -> Option<OutboxItem> {
        let c = self.cert();
        let issue = c.jira_issue.clone()?;
        let kind = match self {
            Event::RenewalFailed {
                will_retry: Some(_),
                ..
            } => ":retrying",
            Event::RenewalFailed {
                will_retry: None, ..
            } => ":final",
            _ => "",
        };
        let marker = format!("{}:{}:{}{kind}", self.name(), c.id, ts(c.not_after));
        let mut attachment = None;
        let body = match self {
            Event::RenewalStarted { cert, forced } => format!(
                "Renewal of certificate {} started{}.\nSubject: CN={}\nExpires: {}",
                cert.id,
                if *forced { " (force renewal of profile ".to_string() + &cert.profile + ")" } else { String::new() },
                cert.subject_cn,
                ts(cert.not_after)
            ),
            Event::Renewed { old, new, pem } => {
                let filename = format!("{}-{}.pem", new.subject_cn.replace(['*', '/', '\\'], "_"), new.id);
                attachment = Some(Attachment { filename: filename.clone(), content: pem.to_string() });
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
                "Needs a human: the outcome of the renewal of certificate {} (CN={}) is unknown ({reason}). SCM may have renewed, and billed, it.\nCheck SCM: if it was not renewed, run `sectigo-connector renew {}`; if it was, import the new certificate with `sectigo-connector certs import --profile {} --cert-id NEW --issue {}`.",
                cert.id, cert.subject_cn, cert.id, cert.profile, issue
            ),
        };
        let comment = format!("{body}\n\n{}", marker_line(&marker));
        Some(OutboxItem {
            seq: 0,
            marker,
            issue,
            event: self.name().to_string(),
            cert_id: c.id.clone(),
            profile: c.profile.clone(),
            comment,
            attachment,
            created: now,
            attempts: 0,
            next_attempt: None,
            last_error: None,
            done: Steps::default(),
            tried: Steps::default(),
            dead: None,
        })
    }
}
