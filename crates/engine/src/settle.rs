//! Settling an unknown outcome after the operator checked SCM (`certs resolve`): a renewal (by
//! certificate id) or an enrollment from Jira (by issue key) whose billable call's answer was
//! lost. Either SCM did issue a certificate, which is adopted with its history and Jira link
//! kept, or it did not, and the certificate is due again (the issue may ask again).
//!
//! The same steps serve the daemon when a profile has `[admin]` ([`By::Daemon`], see
//! the module `settle_auto`), and the pre-bill check that finds a certificate renewed outside
//! the daemon ([`By::Outside`], see the module `prebill`).

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use sectigo_core::names::{CertId, IssueKey};
use sectigo_core::text::ts;
use sectigo_model::{CertOrigin, CertRecord, CertState, EnrollState, Event, IssueRecord};

use crate::clients::ScmClients;
use crate::collect::issued_record;
use crate::deploy::{self, Deployer};
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::shared::{ClaimKey, Claims};

/// What the operator found in SCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// SCM issued this certificate for the lost request.
    RenewedAs(CertId),
    /// SCM did not act on the lost request.
    NotRenewed,
}

/// What is settled: a certificate's renewal, or an issue's enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Target {
    Issue(IssueKey),
    Cert(CertId),
}

impl Target {
    /// An issue key or a certificate id.
    pub fn parse(s: &str) -> Option<Target> {
        IssueKey::parse(s)
            .map(Target::Issue)
            .or_else(|_| CertId::parse(s).map(Target::Cert))
            .ok()
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        Target::parse(s).ok_or_else(|| {
            format!(
                "{:?} is neither a certificate id nor a Jira issue key",
                sectigo_core::text::bounded(&sectigo_core::text::Escaped(s).to_string(), 64)
            )
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Issue(k) => k.fmt(f),
            Target::Cert(id) => id.fmt(f),
        }
    }
}

/// Who settles an outcome, as the history and the log say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// `certs resolve`, after a person checked SCM.
    Operator,
    /// The daemon, from SCM's records (`[admin]`): the certificate carrying the request's
    /// marker, or none long enough after the call.
    Daemon,
    /// The daemon's pre-bill check: SCM shows the certificate renewed outside the daemon, and
    /// exactly one certificate that can be its successor.
    Outside,
}

impl By {
    fn who(self) -> &'static str {
        match self {
            By::Operator => "the operator",
            By::Daemon => "the daemon from SCM's records",
            By::Outside => "the daemon (renewed outside it, found in SCM's records)",
        }
    }
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

#[derive(Clone)]
pub struct Settler {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) claims: Claims,
    pub(crate) deployer: Deployer,
}

impl Settler {
    /// Settles the unknown outcome of `target`.
    pub async fn resolve(
        &self,
        target: &Target,
        finding: Finding,
    ) -> Result<Resolved, EngineError> {
        let id = match target {
            Target::Issue(key) => {
                if let Some(rec) = self.ledger.issue(key).await? {
                    if matches!(rec.enroll, Some(EnrollState::OutcomeUnknown { .. })) {
                        return self.resolve_enrollment(rec, finding, By::Operator).await;
                    }
                }
                return Err(EngineError::Invalid(format!(
                    "{key}: its enrollment's outcome is not unknown (see `status`)"
                )));
            }
            Target::Cert(id) => id,
        };
        let Some(_claim) = self.claims.claim(ClaimKey::Cert(id.clone())) else {
            return Err(EngineError::Busy(id.clone()));
        };
        let rec = self.ledger.cert(id).await?;
        if !matches!(rec.state, CertState::OutcomeUnknown { .. }) {
            return Err(EngineError::Invalid(format!(
                "certificate {id} is {}, not outcome-unknown: nothing to resolve",
                rec.state.name()
            )));
        }
        match finding {
            Finding::NotRenewed => self.declare_not_renewed(rec, By::Operator).await,
            Finding::RenewedAs(new_id) => self.adopt_renewal(rec, &new_id, By::Operator).await,
        }
    }

    /// Declares `rec`'s renewal not made: active, due again. The caller holds its claim.
    pub(crate) async fn declare_not_renewed(
        &self,
        mut rec: CertRecord,
        by: By,
    ) -> Result<Resolved, EngineError> {
        rec.state = CertState::Active;
        rec.failures = 0;
        rec.next_attempt = None;
        rec.last_error = None;
        rec.log(
            self.ledger.now(),
            format!(
                "outcome settled by {}: SCM did not renew it; due again",
                by.who()
            ),
        );
        warn!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "{} declared not renewed by {}: it is renewed again when due", rec.id, by.who());
        let target = rec.id.to_string();
        self.ledger.commit(vec![rec], Default::default()).await?;
        Ok(Resolved {
            target,
            outcome: "declared not renewed: renewed again by the next cycle while it is due".into(),
        })
    }

    /// Checks that `new_id` can be adopted: not the old one, not tracked yet.
    async fn check_new(&self, old: Option<&CertId>, new_id: &CertId) -> Result<(), EngineError> {
        if old == Some(new_id) {
            return Err(EngineError::Invalid(
                "the new certificate id is the old one".into(),
            ));
        }
        if self.ledger.get(new_id).await?.is_some() {
            return Err(EngineError::Invalid(format!(
                "certificate {new_id} is tracked already"
            )));
        }
        Ok(())
    }

    /// Adopts `new_id` as `old`'s renewal (downloaded, names checked, history and Jira link
    /// kept, Jira told, deployed). The caller holds `old`'s claim.
    pub(crate) async fn adopt_renewal(
        &self,
        mut old: CertRecord,
        new_id: &CertId,
        by: By,
    ) -> Result<Resolved, EngineError> {
        self.check_new(Some(&old.id), new_id).await?;
        let d = self.scm.get(&old.profile)?.download(new_id).await?;
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
        let now = self.ledger.now();
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
        new.name = old.name.clone();
        new.deploy = deploy::job_for(self.deployer.config_for(&new), Some(&old.id), now);
        new.log(
            now,
            format!(
                "adopted by {} as the renewal of {}{request} ({} until {})",
                by.who(),
                old.id,
                new.subject_cn,
                ts(new.not_after)
            ),
        );
        old.state = CertState::Superseded {
            by: new_id.clone(),
            at: now,
        };
        old.log(
            now,
            format!(
                "outcome settled by {}: renewed as {new_id}{request}",
                by.who()
            ),
        );
        info!(profile = %old.profile, cert_id = %old.id, new_cert_id = %new_id, jira_key = old.jira_issue.as_deref(),
            "{} settled by {}: renewed as {new_id}, valid until {}", old.id, by.who(), ts(new.not_after));
        let news = self.ledger.announce(Event::Renewed {
            old: &old,
            new: &new,
            pem: &d.pem,
        });
        let target = old.id.to_string();
        let deploys = new.deploy.is_some();
        self.ledger.commit(vec![old, new], news).await?;
        if deploys {
            self.deployer.deploy(new_id, Some(&d.pem)).await?;
        }
        Ok(Resolved {
            target,
            outcome: format!(
                "superseded by {new_id}, which is now tracked (history and Jira link kept)"
            ),
        })
    }

    /// Settles an issue's enrollment whose outcome is unknown.
    pub(crate) async fn resolve_enrollment(
        &self,
        mut rec: IssueRecord,
        finding: Finding,
        by: By,
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
        let now = self.ledger.now();
        let Finding::RenewedAs(cert_id) = finding else {
            rec.enroll = Some(EnrollState::Rejected {
                reason: format!("{} found that SCM did not enroll it", by.who()),
                at: now,
            });
            rec.set_handled("enroll", None);
            rec.log(
                now,
                format!(
                    "outcome settled by {}: not enrolled{request}; the issue may ask again",
                    by.who()
                ),
            );
            warn!(jira_key = %key, "enrollment of {key} declared not enrolled by {}: the issue may ask again", by.who());
            self.ledger
                .commit_all(vec![], vec![rec], Default::default())
                .await?;
            return Ok(Resolved {
                target: key.to_string(),
                outcome: "declared not enrolled: the issue may request it again".into(),
            });
        };
        self.check_new(None, &cert_id).await?;
        let d = self.scm.get(&profile)?.download(&cert_id).await?;
        let mut cert = issued_record(
            &cert_id,
            &profile,
            &d.info,
            CertOrigin::Enrolled { at: now },
            Some(key.clone()),
        );
        cert.deploy = deploy::job_for(self.deployer.config_for(&cert), None, now);
        cert.log(
            now,
            format!(
                "adopted by {} as the enrollment of {key}{request}",
                by.who()
            ),
        );
        rec.enroll = Some(EnrollState::Issued {
            cert_id: cert_id.clone(),
            at: now,
        });
        rec.log(
            now,
            format!(
                "outcome settled by {}: enrolled as {cert_id}{request}",
                by.who()
            ),
        );
        info!(jira_key = %key, cert_id = %cert_id, "enrollment of {key} settled: certificate {cert_id}, valid until {}", ts(cert.not_after));
        let news = self.ledger.announce(Event::Enrolled {
            cert: &cert,
            pem: &d.pem,
        });
        let deploys = cert.deploy.is_some();
        self.ledger.commit_all(vec![cert], vec![rec], news).await?;
        if deploys {
            self.deployer.deploy(&cert_id, Some(&d.pem)).await?;
        }
        Ok(Resolved {
            target: key.to_string(),
            outcome: format!("enrolled as {cert_id}, which is now tracked and linked to the issue"),
        })
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

    #[test]
    fn a_target_is_an_issue_key_or_a_certificate_id() {
        assert_eq!(
            Target::parse("CERT-7"),
            Some(Target::Issue(IssueKey::parse("CERT-7").unwrap()))
        );
        assert_eq!(
            Target::parse("1234"),
            Some(Target::Cert(CertId::parse("1234").unwrap()))
        );
        assert_eq!(Target::parse("../x"), None);
    }
}
