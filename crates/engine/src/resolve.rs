//! Settling an unknown outcome after the operator checked SCM (`certs resolve`): a renewal (by
//! certificate id) or an enrollment from Jira (by issue key) whose billable call's answer was
//! lost. Either SCM did issue a certificate, which is adopted with its history and Jira link
//! kept, or it did not, and the certificate is due again (the issue may ask again).

use chrono::{DateTime, Utc};
use sectigo_core::text::ts;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use sectigo_jira::events::Event;
use sectigo_state::{blocking, CertOrigin, CertRecord, CertState, EnrollState, IssueRecord};

use crate::{is_issue_key, issued_record, Engine, EngineError};

/// What the operator found in SCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// SCM issued this certificate for the lost request.
    RenewedAs(String),
    /// SCM did not act on the lost request.
    NotRenewed,
}

/// What `resolve` did, in words for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub target: String,
    pub outcome: String,
}

/// Whether the certificate SCM issued is for the names the lost request asked for.
fn same_names(want_cn: &str, want_sans: &[String], got_cn: &str, got_sans: &[String]) -> bool {
    let norm = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    want_cn.eq_ignore_ascii_case(got_cn) && norm(want_sans) == norm(got_sans)
}

impl Engine {
    /// Settles the unknown outcome of `target`: a certificate id, or the key of an issue whose
    /// enrollment's outcome is unknown.
    pub async fn resolve(
        &self,
        target: &str,
        finding: Finding,
        now: DateTime<Utc>,
    ) -> Result<Resolved, EngineError> {
        if is_issue_key(target) {
            let key = target.to_string();
            if let Some(rec) = blocking(&self.store, move |s| s.issue(&key)).await? {
                if matches!(rec.enroll, Some(EnrollState::OutcomeUnknown { .. })) {
                    return self.resolve_enrollment(rec, finding, now).await;
                }
            }
        }
        let Some(_claim) = self.shared.claim(target) else {
            return Err(EngineError::Refused(format!(
                "certificate {target} is being renewed right now; try again in a minute"
            )));
        };
        let rec = self.certificate(target).await?;
        if !matches!(rec.state, CertState::OutcomeUnknown { .. }) {
            return Err(EngineError::Invalid(format!(
                "certificate {target} is {}, not outcome-unknown: nothing to resolve",
                rec.state.name()
            )));
        }
        match finding {
            Finding::NotRenewed => self.declare_not_renewed(rec, now).await,
            Finding::RenewedAs(new_id) => self.adopt_renewal(rec, &new_id, now).await,
        }
    }

    async fn declare_not_renewed(
        &self,
        mut rec: CertRecord,
        now: DateTime<Utc>,
    ) -> Result<Resolved, EngineError> {
        rec.state = CertState::Active;
        rec.failures = 0;
        rec.next_attempt = None;
        rec.last_error = None;
        rec.log(
            now,
            "outcome settled by the operator: SCM did not renew it; due again",
        );
        warn!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "{} declared not renewed by the operator: it is renewed again when due", rec.id);
        let target = rec.id.clone();
        self.commit(vec![rec], None).await?;
        self.flush().await?;
        Ok(Resolved {
            target,
            outcome: "declared not renewed: renewed again by the next cycle while it is due".into(),
        })
    }

    async fn adopt_renewal(
        &self,
        mut old: CertRecord,
        new_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Resolved, EngineError> {
        if new_id == old.id {
            return Err(EngineError::Invalid(
                "the new certificate id is the old one".into(),
            ));
        }
        let n = new_id.to_string();
        if blocking(&self.store, move |s| s.get(&n)).await?.is_some() {
            return Err(EngineError::Invalid(format!(
                "certificate {new_id} is tracked already"
            )));
        }
        let client = self.client(&old.profile)?.clone();
        let d = client.download(new_id).await?;
        if !same_names(&old.subject_cn, &old.sans, &d.info.subject_cn, &d.info.sans) {
            return Err(EngineError::Invalid(format!(
                "certificate {new_id} is for CN={} (SANs {}), not CN={} (SANs {}): it is not this certificate's renewal; nothing changed",
                d.info.subject_cn,
                d.info.sans.join(", "),
                old.subject_cn,
                old.sans.join(", ")
            )));
        }
        let request = match &old.state {
            CertState::OutcomeUnknown {
                request: Some(r), ..
            } => format!(" (request {r})"),
            _ => String::new(),
        };
        let mut new = issued_record(
            new_id,
            &old.profile,
            &d.info,
            CertOrigin::Renewed {
                from: old.id.clone(),
                at: now,
            },
            old.jira_issue.clone(),
        );
        new.log(
            now,
            format!(
                "adopted by the operator as the renewal of {}{request} ({} until {})",
                old.id,
                new.subject_cn,
                ts(new.not_after)
            ),
        );
        old.state = CertState::Superseded {
            by: new_id.to_string(),
            at: now,
        };
        old.log(
            now,
            format!("outcome settled by the operator: renewed as {new_id}{request}"),
        );
        info!(profile = %old.profile, cert_id = %old.id, new_cert_id = %new_id, jira_key = old.jira_issue.as_deref(),
            "{} settled: renewed as {new_id}, valid until {}", old.id, ts(new.not_after));
        let ev = self.event(
            Event::Renewed {
                old: &old,
                new: &new,
                pem: &d.pem,
            },
            now,
        );
        self.commit(vec![old.clone(), new], ev).await?;
        self.flush().await?;
        Ok(Resolved {
            target: old.id,
            outcome: format!(
                "superseded by {new_id}, which is now tracked (history and Jira link kept)"
            ),
        })
    }

    async fn resolve_enrollment(
        &self,
        mut rec: IssueRecord,
        finding: Finding,
        now: DateTime<Utc>,
    ) -> Result<Resolved, EngineError> {
        let Some(EnrollState::OutcomeUnknown {
            profile, request, ..
        }) = rec.enroll.clone()
        else {
            return Err(EngineError::Invalid(format!(
                "{}: its enrollment's outcome is not unknown",
                rec.key
            )));
        };
        let request = request
            .map(|r| format!(" (request {r})"))
            .unwrap_or_default();
        let key = rec.key.clone();
        match finding {
            Finding::NotRenewed => {
                rec.enroll = Some(EnrollState::Rejected {
                    reason: "the operator found that SCM did not enroll it".into(),
                    at: now,
                });
                rec.set_handled("enroll", None);
                rec.log(
                    now,
                    format!("outcome settled by the operator: not enrolled{request}; the issue may ask again"),
                );
                warn!(jira_key = %key, "enrollment of {key} declared not enrolled by the operator: the issue may ask again");
                self.commit_issue(vec![], rec, None).await?;
                Ok(Resolved {
                    target: key,
                    outcome: "declared not enrolled: the issue may request it again".into(),
                })
            }
            Finding::RenewedAs(cert_id) => {
                let c = cert_id.clone();
                if blocking(&self.store, move |s| s.get(&c)).await?.is_some() {
                    return Err(EngineError::Invalid(format!(
                        "certificate {cert_id} is tracked already"
                    )));
                }
                let client = self.client(&profile)?.clone();
                let d = client.download(&cert_id).await?;
                let mut cert = issued_record(
                    &cert_id,
                    &profile,
                    &d.info,
                    CertOrigin::Enrolled { at: now },
                    Some(key.clone()),
                );
                cert.log(
                    now,
                    format!("adopted by the operator as the enrollment of {key}{request}"),
                );
                rec.enroll = Some(EnrollState::Issued {
                    cert_id: cert_id.clone(),
                    at: now,
                });
                rec.log(
                    now,
                    format!("outcome settled by the operator: enrolled as {cert_id}{request}"),
                );
                info!(jira_key = %key, cert_id = %cert_id, "enrollment of {key} settled: certificate {cert_id}, valid until {}", ts(cert.not_after));
                let ev = self.event(
                    Event::Enrolled {
                        cert: &cert,
                        pem: &d.pem,
                    },
                    now,
                );
                self.commit_issue(vec![cert], rec, ev).await?;
                Ok(Resolved {
                    target: key,
                    outcome: format!(
                        "enrolled as {cert_id}, which is now tracked and linked to the issue"
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_match_whatever_the_case_and_order() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(same_names(
            "a.example.com",
            &s(&["a.example.com", "b.example.com"]),
            "A.example.com",
            &s(&["b.example.com", "a.example.com"])
        ));
        assert!(!same_names(
            "a.example.com",
            &s(&["a.example.com"]),
            "a.example.com",
            &s(&["a.example.com", "evil.example.com"])
        ));
        assert!(!same_names("a.example.com", &[], "b.example.com", &[]));
    }
}
