//! Requests from Jira issues (`[jira.workflow]`): enrolling a CSR (billable, journaled like a
//! renewal), collecting the issued certificate, renewing and revoking an issue's certificate.
//! Each request is recorded as handled, durably, before anything is sent, so that polling the
//! same issue again, or a crash mid-way, never does it twice.

use chrono::{DateTime, Duration, Utc};
use tracing::{error, info, warn};

use super::{bump, Engine, EngineError, RenewOutcome};
use sectigo_core::config::Profile;
use sectigo_core::text::ts;
use sectigo_core::x509::Csr;
use sectigo_jira::events::Event;
use sectigo_scm::{EnrollRequest, ScmError};
use sectigo_state::{
    blocking, CertOrigin, CertRecord, CertState, EnrollState, IssueRecord, OutboxItem,
    RevokeIntent, StoreError,
};

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
    Untracked { id: String, key: String },
    #[error("certificate {id} is linked to {other}, not to this issue; the connector acts only on an issue's own certificate")]
    LinkedElsewhere { id: String, other: String },
    #[error("certificate {0}: renewal chain too long")]
    ChainTooLong(String),
    #[error("the issue names no certificate: its certificate id field is empty and it did not enroll one")]
    NoneNamed,
}

/// Why a request from Jira may not act on `cert` (its profile is not in `[jira.workflow]
/// profiles`); names no profile.
fn profile_not_for_jira(cert: &CertRecord) -> String {
    format!(
        "certificate {}'s profile may not be used for requests from Jira; ask the connector's operator",
        cert.id
    )
}

impl Engine {
    /// Holds one issue's request for the caller, and reads the issue's record. `None`: the
    /// request is being handled, or was just handled, by another task.
    async fn claim_request(
        &self,
        key: &str,
        action: &str,
    ) -> Result<Option<(super::Claim, IssueRecord)>, EngineError> {
        let Some(claim) = self.shared.claim(&format!("jira-request:{key}")) else {
            return Ok(None);
        };
        let rec = self
            .issue_record(key)
            .await?
            .unwrap_or_else(|| IssueRecord::new(key));
        Ok((!rec.is_handled(action)).then_some((claim, rec)))
    }

    pub async fn issue_record(&self, key: &str) -> Result<Option<IssueRecord>, EngineError> {
        let k = key.to_string();
        Ok(blocking(&self.store, move |s| s.issue(&k)).await?)
    }

    pub(crate) async fn commit_issue(
        &self,
        certs: Vec<CertRecord>,
        issue: IssueRecord,
        ev: Option<OutboxItem>,
    ) -> Result<(), EngineError> {
        let items: Vec<OutboxItem> = ev.into_iter().collect();
        let wake = !items.is_empty();
        blocking(&self.store, move |s| {
            s.commit_all(&certs, &[issue], &items)?;
            s.flush()
        })
        .await?;
        if wake {
            self.shared.outbox.notify_one();
        }
        Ok(())
    }

    /// Records a request as handled and refused, and tells the issue why.
    pub async fn reject_request(
        &self,
        mut rec: IssueRecord,
        action: &str,
        profile: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<IssueOutcome, EngineError> {
        warn!(jira_key = %rec.key, profile = %profile, "{action} request from {} not carried out: {reason}", rec.key);
        rec.set_handled(action, Some(now));
        rec.log(now, format!("{action} request refused: {reason}"));
        let ev = self.event(
            Event::RequestFailed {
                issue: &rec.key,
                profile,
                action,
                reason,
                at: now,
            },
            now,
        );
        self.commit_issue(vec![], rec, ev).await?;
        Ok(IssueOutcome::Rejected(reason.to_string()))
    }

    /// A configured profile that requests from Jira may use.
    fn request_profile(&self, name: &str) -> Option<Profile> {
        let allowed = self
            .limits
            .profiles
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p == name));
        self.profiles.get(name).filter(|_| allowed).cloned()
    }

    /// The daily cap is reached: the request waits (not marked handled, so a later poll takes
    /// it); the issue is told until when, once per wait.
    async fn defer_request(
        &self,
        mut rec: IssueRecord,
        profile: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
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
        warn!(jira_key = %rec.key, profile = %profile, "enrollment for {} waits until {until}: {why}", rec.key, until = ts(until));
        rec.waiting_until = Some(until);
        rec.log(
            now,
            format!("enrollment waits until {until}: {why}", until = ts(until)),
        );
        let ev = self.event(
            Event::RequestWaiting {
                issue: &rec.key,
                profile,
                action: "enroll",
                reason: &why,
                until: Some(until),
            },
            now,
        );
        self.commit_issue(vec![], rec, ev).await?;
        Ok(IssueOutcome::Deferred(why))
    }

    /// Enrolls `csr` under `profile` for the issue `key`: at most once per issue and once per
    /// CSR, journaled before the billable call.
    pub async fn enroll_for_issue(
        &self,
        key: &str,
        profile: &str,
        csr: &Csr,
        now: DateTime<Utc>,
    ) -> Result<IssueOutcome, EngineError> {
        let Some((_claim, mut rec)) = self.claim_request(key, "enroll").await? else {
            return Ok(IssueOutcome::Deferred("handled by another task".into()));
        };
        if let Some(e) = rec.enroll.as_ref().filter(|e| e.holds_csr()) {
            let why = match e {
                EnrollState::Issued { cert_id, .. } => format!("this issue already enrolled certificate {cert_id}; create a new issue for another certificate"),
                other => format!("this issue's enrollment is {} already; it is not sent twice", other.name()),
            };
            return self.reject_request(rec, "enroll", profile, &why, now).await;
        }
        let sha = csr.sha256.clone();
        if let Some(other) = blocking(&self.store, move |s| s.issue_by_csr(&sha))
            .await?
            .filter(|o| o != key)
        {
            let why = format!("the same CSR was already enrolled from {other}. Nothing was sent to SCM. Each certificate needs its own request: generate a new CSR");
            return self.reject_request(rec, "enroll", profile, &why, now).await;
        }
        let Some(p) = self.request_profile(profile) else {
            // Other profiles' names are not the requester's business.
            let why = format!(
                "profile {:?} may not be used for requests from Jira. Nothing was sent to SCM; ask the connector's operator which profile to use",
                sectigo_core::text::bounded(profile, 64)
            );
            return self.reject_request(rec, "enroll", "", &why, now).await;
        };
        let names: Vec<&str> = std::iter::once(csr.subject_cn.as_str())
            .filter(|n| !n.is_empty())
            .chain(csr.sans.iter().map(String::as_str))
            .collect();
        if let Err(name) = p.allows_names(names) {
            let why = format!(
                "the CSR names {:?}, which profile {profile:?} may not enroll (its allowed_domains). Nothing was sent to SCM",
                sectigo_core::text::bounded(&name, 80)
            );
            return self.reject_request(rec, "enroll", profile, &why, now).await;
        }
        // The rolling daily cap, counted over enrollment starts persisted in the state.
        let day_ago = now - Duration::hours(24);
        let mut starts = blocking(&self.store, |s| s.enrollment_starts()).await?;
        starts.retain(|t| *t > day_ago);
        starts.sort();
        let cap = self.limits.max_enrollments_per_day as usize;
        if starts.len() >= cap {
            let until = starts
                .get(starts.len() - cap)
                .map_or(now, |t| *t + Duration::hours(24));
            return self.defer_request(rec, profile, until, now).await;
        }
        let client = self.client(profile)?.clone();
        let reserved = match client.reserve().await {
            Ok(r) => r,
            Err(e) => {
                warn!(jira_key = %key, profile = %profile, "enrollment for {key} deferred: {e}");
                return Ok(IssueOutcome::Deferred(e.to_string()));
            }
        };
        // Journal the intent, durably, before the billable call.
        let request = crate::request_id(&format!("{key}\n{}", csr.sha256), Utc::now());
        rec.enroll = Some(EnrollState::Requested {
            profile: profile.to_string(),
            at: Utc::now(),
            request: Some(request.clone()),
        });
        rec.csr_sha256 = Some(csr.sha256.clone());
        rec.set_handled("enroll", Some(now));
        rec.waiting_until = None;
        starts.push(now);
        blocking(&self.store, move |s| s.put_enrollment_starts(&starts)).await?;
        rec.log(
            Utc::now(),
            format!("enrollment of {} started (profile {profile})", csr.domain()),
        );
        match self.commit_issue(vec![], rec.clone(), None).await {
            Err(EngineError::Store(StoreError::Conflict(why))) => {
                rec.enroll = None;
                return self.reject_request(rec, "enroll", profile, &why, now).await;
            }
            other => other?,
        }
        info!(jira_key = %key, profile = %profile, "enrolling {} for {key}", csr.domain());
        let req = EnrollRequest {
            csr: csr.base64.clone(),
            subj_alt_names: Vec::new(),
            comments: sectigo_scm::comments_with_request(&p.ssl_cert_comments, &request),
            custom_fields: p
                .custom_fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        };
        let result = client.enroll_reserved(Some(reserved), &req).await;
        let at = Utc::now();
        let mut ev = None;
        let outcome = match result {
            Ok(cert_id) => {
                rec.enroll = Some(EnrollState::Collecting {
                    profile: profile.to_string(),
                    cert_id: cert_id.clone(),
                    at,
                });
                rec.log(
                    at,
                    format!("enrollment accepted: SCM certificate {cert_id}"),
                );
                info!(jira_key = %key, profile = %profile, cert_id = %cert_id, "enrollment for {key} accepted by SCM as certificate {cert_id}");
                ev = self.event(
                    Event::EnrollRequested {
                        issue: key,
                        profile,
                        cert_id: &cert_id,
                        domain: csr.domain(),
                    },
                    at,
                );
                IssueOutcome::Done(cert_id)
            }
            Err(e) if e.maybe_billed() => {
                rec.enroll = Some(EnrollState::OutcomeUnknown {
                    profile: profile.to_string(),
                    at,
                    request: Some(request.clone()),
                });
                rec.log(at, format!("enrollment outcome unknown: {e}"));
                error!(jira_key = %key, profile = %profile, "enrollment outcome unknown for {key}: {e}; SCM may have enrolled (and billed) it, so it is not sent again");
                ev = self.event(
                    Event::EnrollOutcomeUnknown {
                        issue: key,
                        profile,
                        reason: &e.to_string(),
                    },
                    at,
                );
                IssueOutcome::Unknown(e.to_string())
            }
            Err(e @ (ScmError::Permanent { .. } | ScmError::Refused { .. })) => {
                let why = format!("SCM refused the enrollment: {e}");
                rec.enroll = Some(EnrollState::Rejected {
                    reason: why.clone(),
                    at,
                });
                return self.reject_request(rec, "enroll", profile, &why, at).await;
            }
            Err(e) => {
                // Nothing reached SCM: forget the attempt; the next poll tries again.
                rec.enroll = None;
                rec.set_handled("enroll", None);
                rec.log(at, format!("enrollment attempt failed, will retry: {e}"));
                if matches!(e, ScmError::Auth(_)) {
                    // The operator's to fix (profile credentials), not the requester's.
                    error!(jira_key = %key, profile = %profile, "enrollment for {key} waits: SCM refused profile {profile:?}'s credentials ({e}); fix client_id / client_secret in its profile file");
                } else {
                    warn!(jira_key = %key, profile = %profile, "enrollment for {key} failed, will retry at the next poll: {e}");
                }
                IssueOutcome::Deferred(e.to_string())
            }
        };
        self.commit_issue(vec![], rec, ev).await?;
        Ok(outcome)
    }

    /// Collects issued enrollments and finishes revocations left unanswered. Returns how many
    /// certificates were collected.
    pub async fn issue_work(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let work = blocking(&self.store, |s| s.issues_with_work()).await?;
        let mut collected = 0;
        for rec in work {
            if let Some(EnrollState::Collecting {
                profile,
                cert_id,
                at: since,
            }) = rec.enroll.clone()
            {
                if self
                    .collect_enrollment(rec.clone(), &profile, &cert_id, since, now)
                    .await?
                {
                    collected += 1;
                }
            }
            if rec.revoking.is_some() {
                let rec = self.issue_record(&rec.key).await?.unwrap_or(rec);
                self.finish_revoke(rec, now).await?;
            }
        }
        Ok(collected)
    }

    async fn collect_enrollment(
        &self,
        mut rec: IssueRecord,
        profile: &str,
        cert_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        let Ok(client) = self.client(profile).cloned() else {
            warn!(jira_key = %rec.key, "enrollment {cert_id} for {} waits: profile {profile:?} is no longer configured", rec.key);
            return Ok(false);
        };
        let at = Utc::now();
        match client.download(cert_id).await {
            Ok(d) => {
                let existing = self.get(cert_id).await?;
                let mut cert = existing.unwrap_or_else(|| {
                    super::issued_record(
                        cert_id,
                        profile,
                        &d.info,
                        CertOrigin::Enrolled { at },
                        None,
                    )
                });
                cert.jira_issue = Some(rec.key.clone());
                cert.deploy = super::deploy::job_for(self.deploy_config(profile), None, at);
                let deploys = cert.deploy.is_some();
                cert.log(
                    at,
                    format!(
                        "issued: enrolled from {} ({} until {})",
                        rec.key,
                        cert.subject_cn,
                        ts(cert.not_after)
                    ),
                );
                rec.enroll = Some(EnrollState::Issued {
                    cert_id: cert_id.to_string(),
                    at,
                });
                rec.log(at, format!("certificate {cert_id} issued"));
                info!(jira_key = %rec.key, profile = %profile, cert_id = %cert_id, "enrolled {} for {}: certificate {cert_id} valid until {}", cert.subject_cn, rec.key, ts(cert.not_after));
                let ev = self.event(
                    Event::Enrolled {
                        cert: &cert,
                        pem: &d.pem,
                    },
                    at,
                );
                self.commit_issue(vec![cert], rec, ev).await?;
                if deploys {
                    self.deploy(cert_id, Some(&d.pem), now).await?;
                }
                Ok(true)
            }
            Err(ScmError::Pending { .. } | ScmError::Refused { .. }) => {
                // Past `[renewal] collect_timeout_hours`: reported as stalled, once; still
                // collected.
                let timeout = Duration::hours(self.renewal.collect_timeout_hours as i64);
                if now - since >= timeout && rec.stall_reported.is_none() {
                    let scm_status = match client.status(cert_id).await {
                        Ok(s) if !s.is_empty() => sectigo_core::text::bounded(
                            &sectigo_core::text::Escaped(&s).to_string(),
                            40,
                        ),
                        Ok(_) => "unknown".into(),
                        Err(e) => format!("not known: {e}"),
                    };
                    let hours = (now - since).num_hours();
                    error!(jira_key = %rec.key, profile = %profile, cert_id = %cert_id,
                        "enrollment for {} stalled: SCM accepted it as {cert_id} {hours} h ago and has not issued it (SCM status: {scm_status}); approve it in SCM if the account needs approval. Still collecting it", rec.key);
                    rec.stall_reported = Some(at);
                    rec.log(at, format!("stalled: {cert_id} not issued after {hours} h (SCM status: {scm_status})"));
                    let why = format!(
                        "SCM accepted the enrollment as certificate {cert_id} {hours} hours ago and has not issued it (SCM status: {scm_status}); if the account needs approval, approve it in SCM",
                    );
                    let ev = self.event(
                        Event::RequestWaiting {
                            issue: &rec.key,
                            profile,
                            action: "enroll",
                            reason: &why,
                            until: None,
                        },
                        at,
                    );
                    self.commit_issue(vec![], rec, ev).await?;
                    bump(&self.shared.counters.stalled);
                }
                Ok(false)
            }
            Err(e @ (ScmError::Permanent { .. } | ScmError::Revoked { .. })) => {
                let why = format!("SCM accepted the enrollment as certificate {cert_id}, but it cannot be collected: {e}");
                error!(jira_key = %rec.key, profile = %profile, cert_id = %cert_id, "{why}");
                rec.enroll = Some(EnrollState::Failed {
                    cert_id: cert_id.to_string(),
                    reason: why.clone(),
                    at,
                });
                self.reject_request(rec, "enroll", profile, &why, at)
                    .await
                    .map(|_| false)
            }
            Err(e) => {
                warn!(jira_key = %rec.key, cert_id = %cert_id, "collecting enrollment {cert_id} failed, will retry: {e}");
                Ok(false)
            }
        }
    }

    /// Marks enrollments whose call was journaled but never answered (the daemon stopped).
    pub(super) async fn recover_enrollments(
        &self,
        now: DateTime<Utc>,
    ) -> Result<usize, EngineError> {
        let work = blocking(&self.store, |s| s.issues_with_work()).await?;
        let mut n = 0;
        for mut rec in work {
            if let Some(EnrollState::Requested {
                profile, request, ..
            }) = rec.enroll.clone()
            {
                error!(jira_key = %rec.key, profile = %profile, "enrollment outcome unknown: the daemon stopped after journaling the enroll call for {} and before recording SCM's answer; SCM may have enrolled (and billed) it. It is not sent again", rec.key);
                rec.enroll = Some(EnrollState::OutcomeUnknown {
                    profile: profile.clone(),
                    at: now,
                    request,
                });
                rec.log(now, "enrollment outcome unknown (daemon stopped mid-call)");
                let ev = self.event(
                    Event::EnrollOutcomeUnknown {
                        issue: &rec.key,
                        profile: &profile,
                        reason:
                            "the daemon stopped between the enroll call and recording its answer",
                    },
                    now,
                );
                self.commit_issue(vec![], rec, ev).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The live certificate an issue's request is about: `cert_id` (from the issue's field, or
    /// the certificate the issue enrolled), followed through its renewals. It must be linked
    /// to this issue: an issue cannot act on another issue's certificate.
    pub async fn issue_certificate(
        &self,
        key: &str,
        cert_id: &str,
    ) -> Result<Result<CertRecord, NotTheIssues>, EngineError> {
        let mut id = cert_id.to_string();
        for _ in 0..1000 {
            let Some(c) = self.get(&id).await? else {
                return Ok(Err(NotTheIssues::Untracked {
                    id,
                    key: key.to_string(),
                }));
            };
            if c.jira_issue.as_deref() != Some(key) {
                return Ok(Err(NotTheIssues::LinkedElsewhere {
                    id,
                    other: c.jira_issue.unwrap_or_else(|| "no issue".into()),
                }));
            }
            match &c.state {
                CertState::Superseded { by, .. } => id = by.clone(),
                _ => return Ok(Ok(c)),
            }
        }
        Ok(Err(NotTheIssues::ChainTooLong(cert_id.to_string())))
    }

    /// Renews the issue's certificate: the `renew ID` path, recorded as handled first.
    pub async fn renew_for_issue(
        &self,
        key: &str,
        cert_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<IssueOutcome, EngineError> {
        let Some((_claim, rec)) = self.claim_request(key, "renew").await? else {
            return Ok(IssueOutcome::Deferred("handled by another task".into()));
        };
        // A request from Jira never overrides the engine's safety.
        let (rec, cert) = match self.issue_target(key, rec, cert_id, "renew", now).await? {
            Ok(t) => t,
            Err(refused) => return Ok(refused),
        };
        let refuse = match &cert.state {
            CertState::Active => None,
            CertState::OutcomeUnknown { .. } => Some(format!(
                "the last renewal of certificate {} has an unknown outcome: SCM may have renewed, and billed, it. Nothing was sent to SCM. The connector's operator settles it first (`sectigo-connector certs resolve {}`)",
                cert.id, cert.id
            )),
            CertState::Failed { reason, .. } => Some(format!(
                "the renewal of certificate {} failed for good ({}). Nothing was sent to SCM. The connector's operator fixes the cause, then renews it (`sectigo-connector renew {}`)",
                cert.id,
                sectigo_core::text::bounded(reason, 300),
                cert.id
            )),
            CertState::Revoked { .. } => Some(format!(
                "certificate {} is revoked: it cannot be renewed; request a new certificate",
                cert.id
            )),
            CertState::RenewRequested { .. } | CertState::Collecting { .. } => Some(format!(
                "a renewal of certificate {} is under way already; its result is reported here",
                cert.id
            )),
            CertState::Superseded { by, .. } => Some(format!(
                "certificate {} was replaced by {by}",
                cert.id
            )),
        };
        if let Some(why) = refuse {
            return self
                .reject_request(rec, "renew", &cert.profile, &why, now)
                .await;
        }
        if let Some(last) = cert.renewed_at() {
            let again = last + self.limits.min_renewal_interval;
            if now < again {
                let why = format!(
                    "certificate {} was renewed at {}; a renewal can be asked for again from {} ([jira.workflow] min_renewal_interval_hours). Nothing was sent to SCM",
                    cert.id,
                    last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    again.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                return self
                    .reject_request(rec, "renew", &cert.profile, &why, now)
                    .await;
            }
        }
        let mut rec = rec;
        rec.set_handled("renew", Some(now));
        rec.log(now, format!("renewal of {} requested", cert.id));
        self.commit_issue(vec![], rec.clone(), None).await?;
        info!(jira_key = %key, cert_id = %cert.id, "renewal of {} requested from {key}", cert.id);
        match self
            .renew(&cert.id, Some(super::policy::Reason::Requested))
            .await
        {
            Ok(RenewOutcome::Requested { new_id }) => Ok(IssueOutcome::Done(new_id)),
            Ok(RenewOutcome::Failed(e) | RenewOutcome::Unreachable(e)) => {
                Ok(IssueOutcome::Done(format!("failed: {e}")))
            }
            Ok(RenewOutcome::Unknown(e)) => Ok(IssueOutcome::Unknown(e)),
            Ok(RenewOutcome::Skipped(why)) => {
                let why = format!("certificate {} was not renewed: {why}", cert.id);
                self.reject_request(rec, "renew", &cert.profile, &why, now)
                    .await
            }
            Err(e) => {
                let why = format!("certificate {} was not renewed: {e}", cert.id);
                self.reject_request(rec, "renew", &cert.profile, &why, now)
                    .await
            }
        }
    }

    /// The certificate an issue's request acts on, when it may: the issue's own, of a profile
    /// requests from Jira may use. Otherwise the request is refused (the outcome).
    async fn issue_target(
        &self,
        key: &str,
        rec: IssueRecord,
        cert_id: Option<&str>,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(IssueRecord, CertRecord), IssueOutcome>, EngineError> {
        let why = match self.issue_cert(key, &rec, cert_id).await? {
            Ok(cert) if self.request_profile(&cert.profile).is_some() => {
                return Ok(Ok((rec, cert)))
            }
            Ok(cert) => profile_not_for_jira(&cert),
            Err(why) => why.to_string(),
        };
        self.reject_request(rec, action, "", &why, now)
            .await
            .map(Err)
    }

    async fn issue_cert(
        &self,
        key: &str,
        rec: &IssueRecord,
        cert_id: Option<&str>,
    ) -> Result<Result<CertRecord, NotTheIssues>, EngineError> {
        let enrolled = match &rec.enroll {
            Some(EnrollState::Issued { cert_id, .. }) => Some(cert_id.as_str()),
            _ => None,
        };
        match cert_id.or(enrolled) {
            Some(id) => self.issue_certificate(key, id).await,
            None => Ok(Err(NotTheIssues::NoneNamed)),
        }
    }

    /// Revokes the issue's certificate in SCM and stops renewing it.
    pub async fn revoke_for_issue(
        &self,
        key: &str,
        cert_id: Option<&str>,
        message: &str,
        reason_code: i32,
        now: DateTime<Utc>,
    ) -> Result<IssueOutcome, EngineError> {
        let Some((_claim, rec)) = self.claim_request(key, "revoke").await? else {
            return Ok(IssueOutcome::Deferred("handled by another task".into()));
        };
        let (mut rec, cert) = match self.issue_target(key, rec, cert_id, "revoke", now).await? {
            Ok(t) => t,
            Err(refused) => return Ok(refused),
        };
        let refuse = match &cert.state {
            CertState::Revoked { .. } => Some(format!("certificate {} is revoked already", cert.id)),
            s if s.is_in_flight() => Some(format!("a renewal of certificate {} is under way; ask again once it is done (the new certificate will be revoked)", cert.id)),
            _ => None,
        };
        if let Some(why) = refuse {
            return self
                .reject_request(rec, "revoke", &cert.profile, &why, now)
                .await;
        }
        rec.set_handled("revoke", Some(now));
        rec.revoking = Some(RevokeIntent {
            cert_id: cert.id.clone(),
            message: message.to_string(),
            reason_code,
            at: now,
        });
        rec.log(now, format!("revocation of {} requested", cert.id));
        self.commit_issue(vec![], rec.clone(), None).await?;
        self.finish_revoke(rec, now).await
    }

    /// Sends a journaled revocation (again, after a crash or a transient error: revoking is
    /// not billable, and a certificate revoked already counts as done).
    async fn finish_revoke(
        &self,
        mut rec: IssueRecord,
        now: DateTime<Utc>,
    ) -> Result<IssueOutcome, EngineError> {
        let Some(intent) = rec.revoking.clone() else {
            return Ok(IssueOutcome::Done(String::new()));
        };
        let Some(_claim) = self.shared.claim(&intent.cert_id) else {
            return Ok(IssueOutcome::Deferred(
                "a renewal of it is under way".into(),
            ));
        };
        let Some(mut cert) = self.get(&intent.cert_id).await? else {
            rec.revoking = None;
            let why = format!("certificate {} is no longer tracked", intent.cert_id);
            return self.reject_request(rec, "revoke", "", &why, now).await;
        };
        let Ok(client) = self.client(&cert.profile).cloned() else {
            warn!(jira_key = %rec.key, "revocation of {} waits: profile {:?} is not configured", cert.id, cert.profile);
            return Ok(IssueOutcome::Deferred("profile not configured".into()));
        };
        let result = client
            .revoke(&cert.id, &intent.message, intent.reason_code)
            .await;
        let at = Utc::now();
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
                let ev = self.event(
                    Event::Revoked {
                        cert: &cert,
                        issue: &rec.key,
                        message: &intent.message,
                    },
                    at,
                );
                let id = cert.id.clone();
                self.commit_issue(vec![cert], rec, ev).await?;
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
                self.reject_request(rec, "revoke", &cert.profile, &why, at)
                    .await
            }
            Err(e) => {
                warn!(jira_key = %rec.key, cert_id = %cert.id, "revocation of {} failed, will retry at the next poll: {e}", cert.id);
                Ok(IssueOutcome::Deferred(e.to_string()))
            }
        }
    }
}
