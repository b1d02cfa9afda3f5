//! Requests from Jira issues (`[jira.workflow]`): enroll a CSR, renew or revoke the issue's
//! certificate. Jira users are untrusted: a request acts only on its issue's own certificate,
//! of a profile requests may use, within the daily cap, and never overrides the engine's
//! safety. Each request is recorded as handled, durably, before anything is sent, so polling
//! the same issue again, or a crash mid-way, never does it twice.

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use sectigo_core::config::Profile;
use sectigo_core::names::{CertId, IssueKey, ProfileName};
use sectigo_core::text::{bounded, ts};
use sectigo_core::x509::Csr;
use sectigo_model::{CertRecord, CertState, EnrollState, Event, IssueRecord, RevokeIntent};
use sectigo_scm::ScmError;

use crate::clients::ScmClients;
use crate::enroll::{Collection, Enrolled, Enroller};
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::policy::Reason;
use crate::renew::{RenewOutcome, Renewer};
use crate::settings::{Profiles, RequestLimits};
use crate::shared::{Claim, ClaimKey, Claims};

/// What became of a request from an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Sent to SCM (enroll accepted, renewal requested, revoked).
    Done(String),
    /// Refused before anything was sent; the issue was told why.
    Rejected(String),
    /// Not handled now (SCM unreachable, rate limit): the next poll tries again.
    Deferred(String),
    /// The outcome of a billable call is unknown; a human decides.
    Unknown(String),
}

/// Why an issue's request cannot act on the certificate it names (told to the issue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotTheIssues {
    #[error("certificate {id} is not tracked by the connector (import it with `sectigo-connector certs import --profile P --cert-id {id} --issue {key}`)")]
    Untracked { id: CertId, key: IssueKey },
    #[error("certificate {id} is linked to {other}, not to this issue; the connector acts only on an issue's own certificate")]
    LinkedElsewhere { id: CertId, other: String },
    #[error("certificate {0}: renewal chain too long")]
    ChainTooLong(CertId),
    #[error("the issue names no certificate: its certificate id field is empty and it did not enroll one")]
    NoneNamed,
}

#[derive(Clone)]
pub struct Requests {
    pub(crate) ledger: Ledger,
    pub(crate) claims: Claims,
    pub(crate) scm: ScmClients,
    pub(crate) profiles: Profiles,
    pub(crate) limits: RequestLimits,
    pub(crate) renewer: Renewer,
    pub(crate) enroller: Enroller,
}

impl Requests {
    /// Holds one issue's request for the caller, and reads the issue's record. `None`: the
    /// request is being handled, or was just handled, by another task.
    async fn claim_request(
        &self,
        key: &IssueKey,
        action: &str,
    ) -> Result<Option<(Claim, IssueRecord)>, EngineError> {
        let Some(claim) = self.claims.claim(ClaimKey::Request(key.clone())) else {
            return Ok(None);
        };
        let rec = self
            .ledger
            .issue(key)
            .await?
            .unwrap_or_else(|| IssueRecord::new(key));
        Ok((!rec.is_handled(action)).then_some((claim, rec)))
    }

    pub async fn issue_record(&self, key: &IssueKey) -> Result<Option<IssueRecord>, EngineError> {
        self.ledger.issue(key).await
    }

    /// Records a request as handled and refused, and tells the issue why. `profile: None`
    /// when naming it would tell the requester what it may not know.
    pub async fn reject(
        &self,
        mut rec: IssueRecord,
        action: &str,
        profile: Option<&ProfileName>,
        reason: &str,
    ) -> Result<IssueOutcome, EngineError> {
        let now = self.ledger.now();
        warn!(jira_key = %rec.key, profile = profile.map(ProfileName::as_str).unwrap_or(""), "{action} request from {} not carried out: {reason}", rec.key);
        rec.set_handled(action, Some(now));
        rec.log(now, format!("{action} request refused: {reason}"));
        let news = self.ledger.announce(Event::RequestFailed {
            issue: &rec.key,
            profile,
            action,
            reason,
            at: now,
        });
        self.ledger.commit_all(vec![], vec![rec], news).await?;
        Ok(IssueOutcome::Rejected(reason.to_string()))
    }

    /// A configured profile that requests from Jira may use.
    fn request_profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name).filter(|_| self.limits.allows(name))
    }

    /// The daily cap is reached: the request waits (not marked handled, so a later poll takes
    /// it); the issue is told until when, once per wait.
    async fn defer(
        &self,
        mut rec: IssueRecord,
        profile: &ProfileName,
        until: DateTime<Utc>,
    ) -> Result<IssueOutcome, EngineError> {
        let why = format!(
            "the daily limit of enrollments from Jira ([jira.workflow] max_enrollments_per_day = {}) is reached",
            self.limits.max_enrollments_per_day
        );
        if rec
            .waiting_until
            .is_some_and(|w| w >= until - Duration::minutes(1))
        {
            return Ok(IssueOutcome::Deferred(why));
        }
        warn!(jira_key = %rec.key, profile = %profile, "enrollment for {} waits until {}: {why}", rec.key, ts(until));
        rec.waiting_until = Some(until);
        rec.log(
            self.ledger.now(),
            format!("enrollment waits until {}: {why}", ts(until)),
        );
        let news = self.ledger.announce(Event::RequestWaiting {
            issue: &rec.key,
            profile,
            action: "enroll",
            reason: &why,
            until: Some(until),
        });
        self.ledger.commit_all(vec![], vec![rec], news).await?;
        Ok(IssueOutcome::Deferred(why))
    }

    /// Why the issue may not enroll `csr` under `profile`, or the profile when it may.
    async fn check_enroll(
        &self,
        rec: &IssueRecord,
        profile: &str,
        csr: &Csr,
    ) -> Result<Result<Profile, (Option<ProfileName>, String)>, EngineError> {
        if let Some(e) = rec.enroll.as_ref().filter(|e| e.holds_csr()) {
            let why = match e {
                EnrollState::Issued { cert_id, .. } => format!("this issue already enrolled certificate {cert_id}; create a new issue for another certificate"),
                other => format!("this issue's enrollment is {} already; it is not sent twice", other.name()),
            };
            return Ok(Err((None, why)));
        }
        let sha = csr.sha256.clone();
        let key = rec.key.clone();
        if let Some(other) = self
            .ledger
            .read(move |s| s.issue_by_csr(&sha))
            .await?
            .filter(|o| *o != key)
        {
            let why = format!("the same CSR was already enrolled from {other}. Nothing was sent to SCM. Each certificate needs its own request: generate a new CSR");
            return Ok(Err((None, why)));
        }
        let Some(p) = self.request_profile(profile) else {
            // Other profiles' names are not the requester's business.
            let why = format!(
                "profile {:?} may not be used for requests from Jira. Nothing was sent to SCM; ask the connector's operator which profile to use",
                bounded(profile, 64)
            );
            return Ok(Err((None, why)));
        };
        let names = std::iter::once(csr.subject_cn.as_str())
            .filter(|n| !n.is_empty())
            .chain(csr.sans.iter().map(String::as_str));
        if let Err(name) = p.allows_names(names) {
            let why = format!(
                "the CSR names {:?}, which profile {profile:?} may not enroll (its allowed_domains). Nothing was sent to SCM",
                bounded(&name, 80)
            );
            return Ok(Err((Some(p.name.clone()), why)));
        }
        Ok(Ok(p.clone()))
    }

    /// Enrolls `csr` under `profile` for the issue `key`: at most once per issue and once per
    /// CSR, within the daily cap, journaled before the billable call.
    pub async fn enroll_for_issue(
        &self,
        key: &IssueKey,
        profile: &str,
        csr: &Csr,
    ) -> Result<IssueOutcome, EngineError> {
        let Some((_claim, mut rec)) = self.claim_request(key, "enroll").await? else {
            return Ok(IssueOutcome::Deferred("handled by another task".into()));
        };
        let p = match self.check_enroll(&rec, profile, csr).await? {
            Ok(p) => p,
            Err((named, why)) => return self.reject(rec, "enroll", named.as_ref(), &why).await,
        };
        // The rolling daily cap, counted over enrollment starts persisted in the state.
        let now = self.ledger.now();
        let mut starts = self.ledger.read(|s| s.enrollment_starts()).await?;
        starts.retain(|t| *t > now - Duration::hours(24));
        starts.sort();
        let cap = self.limits.max_enrollments_per_day as usize;
        if starts.len() >= cap {
            let until = starts
                .get(starts.len() - cap)
                .map_or(now, |t| *t + Duration::hours(24));
            return self.defer(rec, &p.name, until).await;
        }
        let client = self.scm.get(&p.name)?;
        let reserved = match client.reserve().await {
            Ok(r) => r,
            Err(e) => {
                warn!(jira_key = %key, profile = %p.name, "enrollment for {key} deferred: {e}");
                return Ok(IssueOutcome::Deferred(e.to_string()));
            }
        };
        // Asked for from Jira (the issue's workflow, within the cap above): never held by the
        // daily budget, but counted in it.
        let ticket = self.enroller.budget.take_consented(&p.name).await?;
        rec.set_handled("enroll", Some(now));
        rec.waiting_until = None;
        starts.push(now);
        self.ledger
            .read(move |s| s.put_enrollment_starts(&starts))
            .await?;
        let enrolled = self
            .enroller
            .enroll(
                &mut rec,
                &p,
                csr,
                &client,
                crate::enroll::Call::Enroll(reserved),
                None,
                ticket,
            )
            .await?;
        self.enrolled(rec, &p.name, csr, enrolled).await
    }

    /// Tells the issue what SCM made of its enrollment, with the record.
    async fn enrolled(
        &self,
        rec: IssueRecord,
        profile: &ProfileName,
        csr: &Csr,
        enrolled: Enrolled,
    ) -> Result<IssueOutcome, EngineError> {
        let (outcome, news) = match enrolled {
            Enrolled::Accepted(cert_id) => {
                let news = self.ledger.announce(Event::EnrollRequested {
                    issue: &rec.key,
                    profile,
                    cert_id: &cert_id,
                    domain: csr.domain(),
                });
                (IssueOutcome::Done(cert_id.to_string()), news)
            }
            Enrolled::Unknown(e) => {
                let news = self.ledger.announce(Event::EnrollOutcomeUnknown {
                    issue: &rec.key,
                    profile,
                    reason: &e.to_string(),
                });
                (IssueOutcome::Unknown(e.to_string()), news)
            }
            Enrolled::Refused(why) => {
                return self.reject(rec, "enroll", Some(profile), &why).await;
            }
            Enrolled::NotSent(e) => (IssueOutcome::Deferred(e.to_string()), Default::default()),
        };
        self.ledger.commit_all(vec![], vec![rec], news).await?;
        Ok(outcome)
    }

    /// Collects issued enrollments and finishes revocations left unanswered. Returns how many
    /// certificates were collected.
    pub async fn issue_work(&self) -> Result<usize, EngineError> {
        let work = self.ledger.read(|s| s.issues_with_work()).await?;
        let mut collected = 0;
        for rec in work {
            if let Some(EnrollState::Collecting {
                profile,
                cert_id,
                at: since,
            }) = rec.enroll.clone()
            {
                match self
                    .enroller
                    .collect(rec.clone(), &profile, &cert_id, since)
                    .await?
                {
                    Collection::Issued => collected += 1,
                    Collection::Pending => {}
                    Collection::Failed(why) => {
                        let mut rec = rec.clone();
                        rec.enroll = Some(EnrollState::Failed {
                            cert_id: cert_id.clone(),
                            reason: why.clone(),
                            at: self.ledger.now(),
                        });
                        self.reject(rec, "enroll", Some(&profile), &why).await?;
                    }
                }
            }
            if rec.revoking.is_some() {
                let rec = self.ledger.issue(&rec.key).await?.unwrap_or(rec);
                self.finish_revoke(rec).await?;
            }
        }
        Ok(collected)
    }

    /// The live certificate an issue's request is about: `cert_id` (from the issue's field, or
    /// the certificate the issue enrolled), followed through its renewals. It must be linked
    /// to this issue: an issue cannot act on another issue's certificate.
    pub async fn issue_certificate(
        &self,
        key: &IssueKey,
        cert_id: &CertId,
    ) -> Result<Result<CertRecord, NotTheIssues>, EngineError> {
        let mut id = cert_id.clone();
        for _ in 0..1000 {
            let Some(c) = self.ledger.get(&id).await? else {
                return Ok(Err(NotTheIssues::Untracked {
                    id,
                    key: key.clone(),
                }));
            };
            if c.jira_issue.as_ref() != Some(key) {
                return Ok(Err(NotTheIssues::LinkedElsewhere {
                    id,
                    other: c
                        .jira_issue
                        .map_or_else(|| "no issue".into(), |k| k.to_string()),
                }));
            }
            match &c.state {
                CertState::Superseded { by, .. } => id = by.clone(),
                _ => return Ok(Ok(c)),
            }
        }
        Ok(Err(NotTheIssues::ChainTooLong(cert_id.clone())))
    }

    /// The certificate an issue's request acts on, when it may: the issue's own, of a profile
    /// requests from Jira may use. Otherwise the request is refused (the outcome).
    async fn issue_target(
        &self,
        rec: IssueRecord,
        cert_id: Option<&CertId>,
        action: &str,
    ) -> Result<Result<(IssueRecord, CertRecord), IssueOutcome>, EngineError> {
        let enrolled = match &rec.enroll {
            Some(EnrollState::Issued { cert_id, .. }) => Some(cert_id.clone()),
            _ => None,
        };
        let found = match cert_id.cloned().or(enrolled) {
            Some(id) => self.issue_certificate(&rec.key, &id).await?,
            None => Err(NotTheIssues::NoneNamed),
        };
        let why = match found {
            Ok(cert) if self.request_profile(&cert.profile).is_some() => {
                return Ok(Ok((rec, cert)))
            }
            Ok(cert) => format!(
                "certificate {}'s profile may not be used for requests from Jira; ask the connector's operator",
                cert.id
            ),
            Err(why) => why.to_string(),
        };
        self.reject(rec, action, None, &why).await.map(Err)
    }

    /// Why the issue may not renew `cert` now, if it may not.
    fn renew_refusal(&self, cert: &CertRecord, now: DateTime<Utc>) -> Option<String> {
        let id = &cert.id;
        let refusal = match &cert.state {
            CertState::Active => None,
            CertState::OutcomeUnknown { .. } => Some(format!(
                "the last renewal of certificate {id} has an unknown outcome: SCM may have renewed, and billed, it. Nothing was sent to SCM. The connector's operator settles it first (`sectigo-connector certs resolve {id}`)"
            )),
            CertState::Failed { reason, .. } => Some(format!(
                "the renewal of certificate {id} failed for good ({}). Nothing was sent to SCM. The connector's operator fixes the cause, then renews it (`sectigo-connector renew {id}`)",
                bounded(reason, 300)
            )),
            CertState::Revoked { .. } => Some(format!(
                "certificate {id} is revoked: it cannot be renewed; request a new certificate"
            )),
            CertState::RenewRequested { .. } | CertState::Collecting { .. } => Some(format!(
                "a renewal of certificate {id} is under way already; its result is reported here"
            )),
            CertState::Superseded { by, .. } => {
                Some(format!("certificate {id} was replaced by {by}"))
            }
        };
        refusal.or_else(|| {
            let last = cert.renewed_at()?;
            let again = last + self.limits.min_renewal_interval;
            (now < again).then(|| format!(
                "certificate {id} was renewed at {}; a renewal can be asked for again from {} ([jira.workflow] min_renewal_interval_hours). Nothing was sent to SCM",
                ts(last),
                ts(again)
            ))
        })
    }

    /// Renews the issue's certificate: the `renew ID` path, recorded as handled first. A
    /// request from Jira never overrides the engine's safety.
    pub async fn renew_for_issue(
        &self,
        key: &IssueKey,
        cert_id: Option<&CertId>,
    ) -> Result<IssueOutcome, EngineError> {
        let Some((_claim, rec)) = self.claim_request(key, "renew").await? else {
            return Ok(IssueOutcome::Deferred("handled by another task".into()));
        };
        let (mut rec, cert) = match self.issue_target(rec, cert_id, "renew").await? {
            Ok(t) => t,
            Err(refused) => return Ok(refused),
        };
        let now = self.ledger.now();
        if let Some(why) = self.renew_refusal(&cert, now) {
            return self.reject(rec, "renew", Some(&cert.profile), &why).await;
        }
        rec.set_handled("renew", Some(now));
        rec.log(now, format!("renewal of {} requested", cert.id));
        self.ledger
            .commit_all(vec![], vec![rec.clone()], Default::default())
            .await?;
        info!(jira_key = %key, cert_id = %cert.id, "renewal of {} requested from {key}", cert.id);
        match self.renewer.renew(&cert.id, Reason::Requested).await {
            Ok(RenewOutcome::Requested { new_id }) => Ok(IssueOutcome::Done(new_id.to_string())),
            Ok(RenewOutcome::Failed(e)) => Ok(IssueOutcome::Done(format!("failed: {e}"))),
            // Nothing was sent: the request waits for the next poll.
            Ok(RenewOutcome::Deferred(e)) => {
                let mut rec = rec;
                rec.set_handled("renew", None);
                self.ledger
                    .commit_all(vec![], vec![rec], Default::default())
                    .await?;
                Ok(IssueOutcome::Deferred(e.to_string()))
            }
            Ok(RenewOutcome::Held(u)) => Ok(IssueOutcome::Deferred(format!(
                "waiting for the daily budget ({} used)",
                u.used
            ))),
            Ok(RenewOutcome::Unknown(e)) => Ok(IssueOutcome::Unknown(e.to_string())),
            Ok(RenewOutcome::Skipped(why)) => {
                let why = format!("certificate {} was not renewed: {why}", cert.id);
                self.reject(rec, "renew", Some(&cert.profile), &why).await
            }
            Err(e) => {
                let why = format!("certificate {} was not renewed: {e}", cert.id);
                self.reject(rec, "renew", Some(&cert.profile), &why).await
            }
        }
    }

    /// Revokes the issue's certificate in SCM and stops renewing it.
    pub async fn revoke_for_issue(
        &self,
        key: &IssueKey,
        cert_id: Option<&CertId>,
        message: &str,
        reason_code: i32,
    ) -> Result<IssueOutcome, EngineError> {
        let Some((_claim, rec)) = self.claim_request(key, "revoke").await? else {
            return Ok(IssueOutcome::Deferred("handled by another task".into()));
        };
        let (mut rec, cert) = match self.issue_target(rec, cert_id, "revoke").await? {
            Ok(t) => t,
            Err(refused) => return Ok(refused),
        };
        let refuse = match &cert.state {
            CertState::Revoked { .. } => Some(format!("certificate {} is revoked already", cert.id)),
            s if s.is_in_flight() => Some(format!("a renewal of certificate {} is under way; ask again once it is done (the new certificate will be revoked)", cert.id)),
            _ => None,
        };
        if let Some(why) = refuse {
            return self.reject(rec, "revoke", Some(&cert.profile), &why).await;
        }
        let now = self.ledger.now();
        rec.set_handled("revoke", Some(now));
        rec.revoking = Some(RevokeIntent {
            cert_id: cert.id.clone(),
            message: message.to_string(),
            reason_code,
            at: now,
        });
        rec.log(now, format!("revocation of {} requested", cert.id));
        self.ledger
            .commit_all(vec![], vec![rec.clone()], Default::default())
            .await?;
        self.finish_revoke(rec).await
    }

    /// Sends a journaled revocation (again, after a crash or a transient error: revoking is
    /// not billable, and a certificate revoked already counts as done).
    async fn finish_revoke(&self, mut rec: IssueRecord) -> Result<IssueOutcome, EngineError> {
        let Some(intent) = rec.revoking.clone() else {
            return Ok(IssueOutcome::Done(String::new()));
        };
        let Some(_claim) = self.claims.claim(ClaimKey::Cert(intent.cert_id.clone())) else {
            return Ok(IssueOutcome::Deferred(
                "a renewal of it is under way".into(),
            ));
        };
        let Some(mut cert) = self.ledger.get(&intent.cert_id).await? else {
            rec.revoking = None;
            let why = format!("certificate {} is no longer tracked", intent.cert_id);
            return self.reject(rec, "revoke", None, &why).await;
        };
        let Ok(client) = self.scm.get(&cert.profile) else {
            warn!(jira_key = %rec.key, "revocation of {} waits: profile {:?} is not configured", cert.id, cert.profile);
            return Ok(IssueOutcome::Deferred("profile not configured".into()));
        };
        let result = client
            .revoke(&cert.id, &intent.message, intent.reason_code)
            .await;
        let at = self.ledger.now();
        match result {
            // Revoked already (SCM -159, or -110) counts as done.
            Ok(()) | Err(ScmError::AlreadyRevoked { .. }) => {
                cert.state = CertState::Revoked { at };
                cert.next_attempt = None;
                cert.log(
                    at,
                    format!("revoked at the request of {}: {}", rec.key, intent.message),
                );
                rec.revoking = None;
                rec.log(at, format!("certificate {} revoked", cert.id));
                info!(jira_key = %rec.key, profile = %cert.profile, cert_id = %cert.id, "revoked {} ({}) at the request of {}", cert.id, cert.subject_cn, rec.key);
                let news = self.ledger.announce(Event::Revoked {
                    cert: &cert,
                    issue: &rec.key,
                    message: &intent.message,
                });
                let id = cert.id.to_string();
                self.ledger.commit_all(vec![cert], vec![rec], news).await?;
                Ok(IssueOutcome::Done(id))
            }
            Err(
                e @ (ScmError::Permanent { .. }
                | ScmError::Refused { .. }
                | ScmError::Auth(_)
                | ScmError::Malformed { .. }),
            ) => {
                rec.revoking = None;
                let why = format!("SCM refused to revoke certificate {}: {e}", cert.id);
                self.reject(rec, "revoke", Some(&cert.profile), &why).await
            }
            Err(e) => {
                warn!(jira_key = %rec.key, cert_id = %cert.id, "revocation of {} failed, will retry at the next poll: {e}", cert.id);
                Ok(IssueOutcome::Deferred(e.to_string()))
            }
        }
    }
}
