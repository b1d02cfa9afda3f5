//! A domain event (`sectigo_model::event`) rendered for Jira: the outbox item that carries it to
//! the certificate's issue. Pure: no IO, `now` passed in. Each comment ends with its marker, so
//! a retry can see whether an earlier attempt already landed.

use chrono::{DateTime, Utc};

use sectigo_core::names::IssueKey;
use sectigo_core::text::ts;
use sectigo_model::event::Event;
use sectigo_model::records::{Attachment, CertRecord, IssueEdit, OutboxItem, Steps};

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

/// The outbox item for `ev`, or `None` when the certificate has no linked issue.
pub fn outbox_item(ev: &Event<'_>, now: DateTime<Utc>) -> Option<OutboxItem> {
    let (issue, cert_id, profile, marker) = target(ev)?;
    let mut body = ev.text();
    let (attachment, edit) = extras(ev);
    if let Some(a) = &attachment {
        body.push_str(&match ev {
            Event::Renewed { .. } => format!(
                "\n\nThe new certificate and its chain are attached as {}.",
                a.filename
            ),
            _ => format!(
                "\n\nThe certificate and its chain are attached as {}.",
                a.filename
            ),
        });
    }
    let comment = format!("{body}\n\n{}", marker_line(&marker));
    Some(OutboxItem {
        seq: 0,
        marker,
        issue,
        event: ev.name().to_string(),
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

/// What an update attaches (the new certificate) and which fields it sets.
fn extras(ev: &Event<'_>) -> (Option<Attachment>, Option<IssueEdit>) {
    match ev {
        Event::Renewed { new, pem, .. } => (
            Some(Attachment {
                filename: pem_filename(new),
                content: pem.to_string(),
            }),
            Some(IssueEdit {
                summary: None,
                cert_id: Some(new.id.to_string()),
            }),
        ),
        Event::Enrolled { cert, pem } => (
            Some(Attachment {
                filename: pem_filename(cert),
                content: pem.to_string(),
            }),
            Some(IssueEdit {
                summary: Some(format!("Certificate enrolled:{}", cert.subject_cn)),
                cert_id: Some(cert.id.to_string()),
            }),
        ),
        _ => (None, None),
    }
}

/// The issue that gets the update (`None`: the certificate has no linked issue), the
/// certificate id and profile it concerns, and the update's marker.
fn target(ev: &Event<'_>) -> Option<(IssueKey, String, String, String)> {
    let name = ev.name();
    let of_cert = |c: &CertRecord, kind: &str| {
        c.jira_issue.clone().map(|i| {
            let marker = format!("{name}:{}:{}{kind}", c.id, ts(c.not_after));
            (i, c.id.to_string(), c.profile.to_string(), marker)
        })
    };
    match ev {
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
            (*issue).clone(),
            cert.id.to_string(),
            cert.profile.to_string(),
            format!("{name}:{}:{issue}", cert.id),
        )),
        Event::EnrollRequested {
            issue,
            profile,
            cert_id,
            ..
        } => Some((
            (*issue).clone(),
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
            (*issue).clone(),
            String::new(),
            profile.map(ToString::to_string).unwrap_or_default(),
            format!("{name}:{issue}:{action}:{}", at.timestamp_millis()),
        )),
        Event::RequestWaiting {
            issue,
            profile,
            action,
            until,
            ..
        } => Some((
            (*issue).clone(),
            String::new(),
            profile.to_string(),
            match until {
                Some(u) => format!("{name}:{issue}:{action}:{}", u.timestamp() / 60),
                None => format!("{name}:{issue}:{action}:stalled"),
            },
        )),
        Event::EnrollOutcomeUnknown { issue, profile, .. } => Some((
            (*issue).clone(),
            String::new(),
            profile.to_string(),
            format!("{name}:{issue}"),
        )),
    }
}
