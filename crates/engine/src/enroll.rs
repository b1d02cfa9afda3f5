//! Enrolling a new certificate: the billable call, journaled in its issue record before it is
//! sent and after it is answered (a crash between the two is an unknown outcome, never sent
//! again), and collecting the certificate once SCM issues it (tracked, linked, deployed).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use sectigo_core::config::Profile;
use sectigo_core::names::{CertId, ProfileName};
use sectigo_core::text::ts;
use sectigo_core::x509::Csr;
use sectigo_model::{CertOrigin, EnrollState, Event, IssueRecord};
use sectigo_scm::{EnrollRequest, Reserved, ScmClient, ScmError};
use sectigo_state::StoreError;

use crate::budget::{Budget, Ticket};
use crate::clients::ScmClients;
use crate::collect::{issued_record, scm_status};
use crate::deploy::{self, Deployer};
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::renew::request_id;
use crate::settings::Tuning;
use crate::shared::{bump, Counters};

/// What SCM made of an enrollment.
#[derive(Debug)]
pub(crate) enum Enrolled {
    /// Accepted as this certificate (billed); collected once issued.
    Accepted(CertId),
    /// The answer was lost: SCM may have enrolled (and billed) it; never sent again.
    Unknown(ScmError),
    /// SCM refused it (nothing billed): the record says why.
    Refused(String),
    /// Nothing reached SCM: the journal was undone, the caller may try again later.
    NotSent(ScmError),
}

/// What a collection found.
#[derive(Debug)]
pub(crate) enum Collection {
    Issued,
    Pending,
    /// Accepted, and will never be collected: the record says why.
    Failed(String),
}

#[derive(Clone)]
pub struct Enroller {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) deployer: Deployer,
    pub(crate) tuning: Tuning,
    pub(crate) counters: Arc<Counters>,
    pub(crate) budget: Budget,
}

impl Enroller {
    /// Sends the enrollment of `csr` under `profile` for the issue `rec`, on the `reserved`
    /// request slot: the intent is committed (durably, with what the caller already set on
    /// `rec`) first, then the call. SCM's answer is recorded on `rec`, which the caller
    /// commits with the update it announces. The profile's daily budget `ticket` is spent
    /// when the call may have been billed (accepted, or its answer lost).
    pub(crate) async fn enroll(
        &self,
        rec: &mut IssueRecord,
        profile: &Profile,
        csr: &Csr,
        client: &ScmClient,
        reserved: Reserved,
        ticket: Ticket,
    ) -> Result<Enrolled, EngineError> {
        let now = self.ledger.now();
        let request = request_id(&format!("{}\n{}", rec.key, csr.sha256), now);
        rec.enroll = Some(EnrollState::Requested {
            profile: profile.name.clone(),
            at: now,
            request: Some(request.clone()),
        });
        rec.csr_sha256 = Some(csr.sha256.clone());
        rec.log(
            now,
            format!(
                "enrollment of {} started (profile {})",
                csr.domain(),
                profile.name
            ),
        );
        match self
            .ledger
            .commit_all(vec![], vec![rec.clone()], Default::default())
            .await
        {
            // Another issue took the same CSR meanwhile: nothing was sent.
            Err(EngineError::Store(StoreError::Conflict(why))) => {
                rec.enroll = None;
                return Ok(Enrolled::Refused(why));
            }
            other => other?,
        }
        info!(jira_key = %rec.key, profile = %profile.name, "enrolling {} for {}", csr.domain(), rec.key);
        let req = EnrollRequest {
            csr: csr.base64.clone(),
            subj_alt_names: Vec::new(),
            comments: sectigo_scm::comments_with_request(&profile.ssl_cert_comments, &request),
            custom_fields: profile
                .custom_fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        };
        let result = client.enroll_reserved(Some(reserved), &req).await;
        let at = self.ledger.now();
        if result
            .as_ref()
            .map_or_else(ScmError::maybe_billed, |_| true)
        {
            let entry = sectigo_model::BillingEntry {
                profile: profile.name.clone(),
                at,
                what: rec.key.to_string(),
                request: request.clone(),
                reason: "enroll".into(),
            };
            self.budget.spend(ticket, entry).await?;
        }
        Ok(self.answered(rec, &profile.name, csr.domain(), request, result, at))
    }

    /// Records SCM's answer on the issue record (the caller commits it).
    fn answered(
        &self,
        rec: &mut IssueRecord,
        profile: &ProfileName,
        domain: &str,
        request: String,
        result: Result<CertId, ScmError>,
        at: DateTime<Utc>,
    ) -> Enrolled {
        let key = rec.key.clone();
        match result {
            Ok(cert_id) => {
                rec.enroll = Some(EnrollState::Collecting {
                    profile: profile.clone(),
                    cert_id: cert_id.clone(),
                    at,
                });
                rec.log(
                    at,
                    format!("enrollment accepted: SCM certificate {cert_id}"),
                );
                info!(jira_key = %key, profile = %profile, cert_id = %cert_id, "enrollment for {key} accepted by SCM as certificate {cert_id} ({domain})");
                Enrolled::Accepted(cert_id)
            }
            Err(e) if e.maybe_billed() => {
                rec.enroll = Some(EnrollState::OutcomeUnknown {
                    profile: profile.clone(),
                    at,
                    request: Some(request),
                });
                rec.log(at, format!("enrollment outcome unknown: {e}"));
                error!(jira_key = %key, profile = %profile, "enrollment outcome unknown for {key}: {e}; SCM may have enrolled (and billed) it, so it is not sent again");
                bump(&self.counters.unknown);
                Enrolled::Unknown(e)
            }
            Err(e @ (ScmError::Permanent { .. } | ScmError::Refused { .. })) => {
                let why = format!("SCM refused the enrollment: {e}");
                rec.enroll = Some(EnrollState::Rejected {
                    reason: why.clone(),
                    at,
                });
                Enrolled::Refused(why)
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
                Enrolled::NotSent(e)
            }
        }
    }

    /// Collects an accepted enrollment: issued, it becomes a tracked certificate linked to the
    /// issue (and deployed); pending past `[renewal] collect_timeout_hours`, it is reported as
    /// stalled, once.
    pub(crate) async fn collect(
        &self,
        mut rec: IssueRecord,
        profile: &ProfileName,
        cert_id: &CertId,
        since: DateTime<Utc>,
    ) -> Result<Collection, EngineError> {
        let Ok(client) = self.scm.get(profile) else {
            warn!(jira_key = %rec.key, "enrollment {cert_id} for {} waits: profile {profile:?} is no longer configured", rec.key);
            return Ok(Collection::Pending);
        };
        match client.download(cert_id).await {
            Ok(d) => self.issued(rec, profile, cert_id, &d).await,
            Err(ScmError::Pending { .. } | ScmError::Refused { .. }) => {
                let now = self.ledger.now();
                if now - since >= self.tuning.collect_timeout() && rec.stall_reported.is_none() {
                    let status = scm_status(&client, cert_id).await;
                    self.report_stall(&mut rec, profile, cert_id, since, &status, now)
                        .await?;
                }
                Ok(Collection::Pending)
            }
            Err(e @ (ScmError::Permanent { .. } | ScmError::Revoked { .. })) => {
                let why = format!("SCM accepted the enrollment as certificate {cert_id}, but it cannot be collected: {e}");
                error!(jira_key = %rec.key, profile = %profile, cert_id = %cert_id, "{why}");
                Ok(Collection::Failed(why))
            }
            Err(e) => {
                warn!(jira_key = %rec.key, cert_id = %cert_id, "collecting enrollment {cert_id} failed, will retry: {e}");
                Ok(Collection::Pending)
            }
        }
    }

    async fn issued(
        &self,
        mut rec: IssueRecord,
        profile: &ProfileName,
        cert_id: &CertId,
        d: &sectigo_scm::Downloaded,
    ) -> Result<Collection, EngineError> {
        let at = self.ledger.now();
        let existing = self.ledger.get(cert_id).await?;
        let mut cert = existing.unwrap_or_else(|| {
            issued_record(cert_id, profile, &d.info, CertOrigin::Enrolled { at }, None)
        });
        cert.jira_issue = Some(rec.key.clone());
        cert.deploy = deploy::job_for(self.deployer.config_of(profile), None, at);
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
            cert_id: cert_id.clone(),
            at,
        });
        rec.log(at, format!("certificate {cert_id} issued"));
        info!(jira_key = %rec.key, profile = %profile, cert_id = %cert_id, "enrolled {} for {}: certificate {cert_id} valid until {}", cert.subject_cn, rec.key, ts(cert.not_after));
        let news = self.ledger.announce(Event::Enrolled {
            cert: &cert,
            pem: &d.pem,
        });
        self.ledger.commit_all(vec![cert], vec![rec], news).await?;
        if deploys {
            self.deployer.deploy(cert_id, Some(&d.pem)).await?;
        }
        Ok(Collection::Issued)
    }

    async fn report_stall(
        &self,
        rec: &mut IssueRecord,
        profile: &ProfileName,
        cert_id: &CertId,
        since: DateTime<Utc>,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let hours = (now - since).num_hours();
        error!(jira_key = %rec.key, profile = %profile, cert_id = %cert_id,
            "enrollment for {} stalled: SCM accepted it as {cert_id} {hours} h ago and has not issued it (SCM status: {status}); approve it in SCM if the account needs approval. Still collecting it", rec.key);
        rec.stall_reported = Some(now);
        rec.log(
            now,
            format!("stalled: {cert_id} not issued after {hours} h (SCM status: {status})"),
        );
        let why = format!(
            "SCM accepted the enrollment as certificate {cert_id} {hours} hours ago and has not issued it (SCM status: {status}); if the account needs approval, approve it in SCM",
        );
        let news = self.ledger.announce(Event::RequestWaiting {
            issue: &rec.key,
            profile,
            action: "enroll",
            reason: &why,
            until: None,
        });
        self.ledger
            .commit_all(vec![], vec![rec.clone()], news)
            .await?;
        bump(&self.counters.stalled);
        Ok(())
    }

    /// Marks enrollments whose call was journaled but never answered (the daemon stopped).
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let now = self.ledger.now();
        let work = self.ledger.read(|s| s.issues_with_work()).await?;
        let mut n = 0;
        for mut rec in work {
            let Some(EnrollState::Requested {
                profile, request, ..
            }) = rec.enroll.clone()
            else {
                continue;
            };
            error!(jira_key = %rec.key, profile = %profile, "enrollment outcome unknown: the daemon stopped after journaling the enroll call for {} and before recording SCM's answer; SCM may have enrolled (and billed) it. It is not sent again", rec.key);
            rec.enroll = Some(EnrollState::OutcomeUnknown {
                profile: profile.clone(),
                at: now,
                request,
            });
            rec.log(now, "enrollment outcome unknown (daemon stopped mid-call)");
            let news = self.ledger.announce(Event::EnrollOutcomeUnknown {
                issue: &rec.key,
                profile: &profile,
                reason: "the daemon stopped between the enroll call and recording its answer",
            });
            self.ledger.commit_all(vec![], vec![rec], news).await?;
            n += 1;
        }
        Ok(n)
    }
}
