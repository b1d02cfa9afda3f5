//! Enrolling a new certificate: the billable call, journaled in its record before it is sent
//! and after it is answered (a crash between the two is an unknown outcome, never sent again),
//! and collecting the certificate once SCM issues it (tracked, linked, deployed).
//!
//! The one enrollment path: an enrollment asked for from a Jira issue is journaled in its
//! `IssueRecord`, one declared in `certificates.d/` in its `DeclaredRecord` (which may also
//! ask for SCM's replace of its certificate: the same journal, the same exactly-once rule).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use sectigo_core::config::Profile;
use sectigo_core::names::{CertId, IssueKey, ProfileName};
use sectigo_core::secret::Secret;
use sectigo_core::text::ts;
use sectigo_core::x509::Csr;
use sectigo_model::{CertOrigin, CertState, EnrollState, Event, Notification};
use sectigo_scm::{EnrollRequest, Reserved, ScmClient, ScmError};
use sectigo_state::{KeyStore, StoreError};

use crate::budget::{Budget, Ticket};
use crate::clients::ScmClients;
use crate::collect::{issued_record, scm_status};
use crate::deploy::{self, Deployer};
use crate::error::EngineError;
use crate::journal::Journal;
use crate::ledger::{Announcement, Ledger};
use crate::renew::request_id;
use crate::settings::Tuning;
use crate::shared::{bump, Counters};

/// The billable call an enrollment makes.
pub(crate) enum Call<'a> {
    /// SCM's enroll, its first attempt in the slot reserved.
    Enroll(Reserved),
    /// SCM's replace of this certificate.
    Replace(&'a CertId),
}

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
    pub(crate) keys: Arc<KeyStore>,
}

impl Enroller {
    /// Sends the enrollment of `csr` under `profile` for `rec` (SCM's enroll, or its replace):
    /// the new `key` (when the daemon made it) is stored first, then the intent is committed
    /// (durably, with what the caller already set on `rec`), then the call. SCM's answer is
    /// recorded on `rec`, which the caller commits with the update it announces. The
    /// profile's daily budget `ticket` is spent when the call may have been billed (accepted,
    /// or its answer lost).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn enroll<J: Journal>(
        &self,
        rec: &mut J,
        profile: &Profile,
        csr: &Csr,
        client: &ScmClient,
        call: Call<'_>,
        key: Option<&Secret>,
        ticket: Ticket,
    ) -> Result<Enrolled, EngineError> {
        let now = self.ledger.now();
        let request = request_id(&format!("{}\n{}", rec.who(), csr.sha256), now);
        if let Some(k) = key {
            // The key is on disk (0600) before anything is billed for it.
            let (ks, r, k) = (self.keys.clone(), request.clone(), k.clone());
            tokio::task::spawn_blocking(move || ks.put(&r, &k))
                .await
                .map_err(|e| EngineError::Invalid(format!("storing the new key: {e}")))?
                .map_err(|error| EngineError::Key {
                    id: request.clone(),
                    error,
                })?;
        }
        rec.set_enroll(Some(EnrollState::Requested {
            profile: profile.name.clone(),
            at: now,
            request: Some(request.clone()),
        }));
        rec.set_csr(&csr.sha256);
        let what = match &call {
            Call::Enroll(_) => "enrollment",
            Call::Replace(_) => "replacement",
        };
        rec.log(
            now,
            format!(
                "{what} of {} started (profile {}, request {request})",
                csr.domain(),
                profile.name
            ),
        );
        match self
            .ledger
            .commit_journal(vec![], rec.clone(), Default::default())
            .await
        {
            // Another issue took the same CSR meanwhile: nothing was sent.
            Err(EngineError::Store(StoreError::Conflict(why))) => {
                rec.set_enroll(None);
                return Ok(Enrolled::Refused(why));
            }
            other => other?,
        }
        let who = rec.who();
        let comments = sectigo_scm::comments_with_request(&profile.ssl_cert_comments, &request);
        let result = match call {
            Call::Enroll(reserved) => {
                info!(profile = %profile.name, "enrolling {} for {who}", csr.domain());
                let req = EnrollRequest {
                    csr: csr.base64.clone(),
                    subj_alt_names: Vec::new(),
                    comments,
                    custom_fields: profile
                        .custom_fields
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect(),
                };
                client.enroll_reserved(Some(reserved), &req).await
            }
            Call::Replace(old) => {
                info!(profile = %profile.name, cert_id = %old, "replacing {old} for {who}: {}", csr.domain());
                client.replace(old, &csr.base64, &comments).await
            }
        };
        let at = self.ledger.now();
        if result
            .as_ref()
            .map_or_else(ScmError::maybe_billed, |_| true)
        {
            let entry = sectigo_model::BillingEntry {
                profile: profile.name.clone(),
                at,
                what: who.replace("declared ", ""),
                request: request.clone(),
                reason: match rec.issue() {
                    Some(_) => "enroll".into(),
                    None => format!(
                        "declared-{}",
                        if what == "enrollment" {
                            "enroll"
                        } else {
                            "replace"
                        }
                    ),
                },
            };
            self.budget.spend(ticket, entry).await?;
        }
        if let (Some(_), Ok(cert_id)) = (key, &result) {
            // The key follows the certificate SCM named, before that is recorded.
            let (ks, r, n) = (self.keys.clone(), request.clone(), cert_id.clone());
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || ks.rename(&r, &n)).await {
                error!(profile = %profile.name, cert_id = %cert_id, "the new key of {cert_id} stays under request {request}: {e}");
            }
        }
        Ok(self.answered(rec, &profile.name, csr.domain(), request, result, at))
    }

    /// Records SCM's answer on the issue record (the caller commits it).
    fn answered<J: Journal>(
        &self,
        rec: &mut J,
        profile: &ProfileName,
        domain: &str,
        request: String,
        result: Result<CertId, ScmError>,
        at: DateTime<Utc>,
    ) -> Enrolled {
        let key = rec.who();
        match result {
            Ok(cert_id) => {
                rec.set_enroll(Some(EnrollState::Collecting {
                    profile: profile.clone(),
                    cert_id: cert_id.clone(),
                    at,
                }));
                rec.log(
                    at,
                    format!("enrollment accepted: SCM certificate {cert_id}"),
                );
                info!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, cert_id = %cert_id, "enrollment for {key} accepted by SCM as certificate {cert_id} ({domain})");
                Enrolled::Accepted(cert_id)
            }
            Err(e) if e.maybe_billed() => {
                rec.set_enroll(Some(EnrollState::OutcomeUnknown {
                    profile: profile.clone(),
                    at,
                    request: Some(request),
                }));
                rec.log(at, format!("enrollment outcome unknown: {e}"));
                error!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, "enrollment outcome unknown for {key}: {e}; SCM may have enrolled (and billed) it, so it is not sent again");
                bump(&self.counters.unknown);
                Enrolled::Unknown(e)
            }
            Err(e @ (ScmError::Permanent { .. } | ScmError::Refused { .. })) => {
                let why = format!("SCM refused the enrollment: {e}");
                rec.set_enroll(Some(EnrollState::Rejected {
                    reason: why.clone(),
                    at,
                }));
                Enrolled::Refused(why)
            }
            Err(e) => {
                // Nothing reached SCM: forget the attempt; the next poll tries again.
                rec.set_enroll(None);
                rec.not_sent();
                rec.log(at, format!("enrollment attempt failed, will retry: {e}"));
                if matches!(e, ScmError::Auth(_)) {
                    // The operator's to fix (profile credentials), not the requester's.
                    error!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, "enrollment for {key} waits: SCM refused profile {profile:?}'s credentials ({e}); fix client_id / client_secret in its profile file");
                } else {
                    warn!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, "enrollment for {key} failed, will retry at the next poll: {e}");
                }
                Enrolled::NotSent(e)
            }
        }
    }

    /// Collects an accepted enrollment: issued, it becomes a tracked certificate linked to the
    /// issue (and deployed); pending past `[renewal] collect_timeout_hours`, it is reported as
    /// stalled, once.
    pub(crate) async fn collect<J: Journal>(
        &self,
        mut rec: J,
        profile: &ProfileName,
        cert_id: &CertId,
        since: DateTime<Utc>,
    ) -> Result<Collection, EngineError> {
        let Ok(client) = self.scm.get(profile) else {
            warn!(
                jira_key = rec.issue().map(IssueKey::as_str),
                "enrollment {cert_id} for {} waits: profile {profile:?} is no longer configured",
                rec.who()
            );
            return Ok(Collection::Pending);
        };
        match client.download(cert_id).await {
            Ok(d) => self.issued(rec, profile, cert_id, &d).await,
            Err(ScmError::Pending { .. } | ScmError::Refused { .. }) => {
                let now = self.ledger.now();
                if now - since >= self.tuning.collect_timeout() && rec.stall_reported().is_none() {
                    let status = scm_status(&client, cert_id).await;
                    self.report_stall(&mut rec, profile, cert_id, since, &status, now)
                        .await?;
                }
                Ok(Collection::Pending)
            }
            Err(e @ (ScmError::Permanent { .. } | ScmError::Revoked { .. })) => {
                let why = format!("SCM accepted the enrollment as certificate {cert_id}, but it cannot be collected: {e}");
                error!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, cert_id = %cert_id, "{why}");
                Ok(Collection::Failed(why))
            }
            Err(e) => {
                warn!(jira_key = rec.issue().map(IssueKey::as_str), cert_id = %cert_id, "collecting enrollment {cert_id} failed, will retry: {e}");
                Ok(Collection::Pending)
            }
        }
    }

    async fn issued<J: Journal>(
        &self,
        mut rec: J,
        profile: &ProfileName,
        cert_id: &CertId,
        d: &sectigo_scm::Downloaded,
    ) -> Result<Collection, EngineError> {
        let at = self.ledger.now();
        let existing = self.ledger.get(cert_id).await?;
        // A replacement supersedes the certificate it replaces, in the same commit.
        let mut old = match rec.replaces() {
            Some(old) => self.ledger.get(old).await?,
            None => None,
        };
        let origin = match &old {
            Some(o) => CertOrigin::Renewed {
                from: o.id.clone(),
                at,
            },
            None => CertOrigin::Enrolled { at },
        };
        let mut cert = existing.unwrap_or_else(|| {
            issued_record(
                cert_id,
                profile,
                &d.info,
                origin,
                old.as_ref().and_then(|o| o.jira_issue.clone()),
            )
        });
        rec.adopt(&mut cert);
        cert.deploy = deploy::job_for(
            self.deployer.config_for(&cert),
            old.as_ref().map(|o| &o.id),
            at,
        );
        let deploys = cert.deploy.is_some();
        cert.log(
            at,
            format!(
                "issued: {} for {} ({} until {})",
                if old.is_some() {
                    "replaced"
                } else {
                    "enrolled"
                },
                rec.who(),
                cert.subject_cn,
                ts(cert.not_after)
            ),
        );
        if let Some(o) = old.as_mut() {
            o.state = CertState::Superseded {
                by: cert_id.clone(),
                at,
            };
            o.next_attempt = None;
            o.log(at, format!("replaced: superseded by {cert_id}"));
        }
        rec.set_enroll(Some(EnrollState::Issued {
            cert_id: cert_id.clone(),
            at,
        }));
        rec.log(at, format!("certificate {cert_id} issued"));
        info!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, cert_id = %cert_id, "enrolled {} for {}: certificate {cert_id} valid until {}", cert.subject_cn, rec.who(), ts(cert.not_after));
        let news = self.ledger.announce(Event::Enrolled {
            cert: &cert,
            pem: &d.pem,
        });
        let mut certs = vec![cert];
        certs.extend(old);
        self.ledger.commit_journal(certs, rec, news).await?;
        if deploys {
            self.deployer.deploy(cert_id, Some(&d.pem)).await?;
        }
        Ok(Collection::Issued)
    }

    async fn report_stall<J: Journal>(
        &self,
        rec: &mut J,
        profile: &ProfileName,
        cert_id: &CertId,
        since: DateTime<Utc>,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let hours = (now - since).num_hours();
        error!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, cert_id = %cert_id,
            "enrollment for {} stalled: SCM accepted it as {cert_id} {hours} h ago and has not issued it (SCM status: {status}); approve it in SCM if the account needs approval. Still collecting it", rec.who());
        rec.set_stall_reported(now);
        rec.log(
            now,
            format!("stalled: {cert_id} not issued after {hours} h (SCM status: {status})"),
        );
        let why = format!(
            "SCM accepted the enrollment as certificate {cert_id} {hours} hours ago and has not issued it (SCM status: {status}); if the account needs approval, approve it in SCM",
        );
        let news = match rec.issue() {
            Some(issue) => self.ledger.announce(Event::RequestWaiting {
                issue,
                profile,
                action: "enroll",
                reason: &why,
                until: None,
            }),
            None => {
                self.ledger.tell(Notification {
                    event: "enroll_stalled",
                    cert_id: cert_id.to_string(),
                    profile: profile.to_string(),
                    message: format!(
                        "Needs a human: the enrollment for {} is stalled: {why}.",
                        rec.who()
                    ),
                });
                Announcement::default()
            }
        };
        self.ledger
            .commit_journal(vec![], rec.clone(), news)
            .await?;
        bump(&self.counters.stalled);
        Ok(())
    }

    /// Marks enrollments whose call was journaled but never answered (the daemon stopped):
    /// those of Jira issues and those of declared certificates.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let issues = self.ledger.read(|s| s.issues_with_work()).await?;
        let declared = self.ledger.read(|s| s.declared_records()).await?;
        let mut n = 0;
        for rec in issues {
            n += usize::from(self.recover_one(rec).await?);
        }
        for rec in declared {
            n += usize::from(self.recover_one(rec).await?);
        }
        Ok(n)
    }

    async fn recover_one<J: Journal>(&self, mut rec: J) -> Result<bool, EngineError> {
        let now = self.ledger.now();
        let Some(EnrollState::Requested {
            profile, request, ..
        }) = rec.enroll_state().cloned()
        else {
            return Ok(false);
        };
        let who = rec.who();
        error!(jira_key = rec.issue().map(IssueKey::as_str), profile = %profile, "enrollment outcome unknown: the daemon stopped after journaling the enroll call for {who} and before recording SCM's answer; SCM may have enrolled (and billed) it. It is not sent again");
        rec.set_enroll(Some(EnrollState::OutcomeUnknown {
            profile: profile.clone(),
            at: now,
            request: request.clone(),
        }));
        rec.log(
            now,
            "enrollment outcome unknown (daemon stopped mid-call)".into(),
        );
        // It may have been billed: the budget counts it.
        if let (None, Some(r)) = (rec.issue(), &request) {
            let entry = sectigo_model::BillingEntry {
                profile: profile.clone(),
                at: now,
                what: who.replace("declared ", ""),
                request: r.clone(),
                reason: "unknown".into(),
            };
            self.budget.record(entry).await?;
        }
        let reason = "the daemon stopped between the enroll call and recording its answer";
        let news = match rec.issue() {
            Some(issue) => self.ledger.announce(Event::EnrollOutcomeUnknown {
                issue,
                profile: &profile,
                reason,
            }),
            None => {
                self.ledger.tell(Notification {
                    event: "enroll_outcome_unknown",
                    cert_id: String::new(),
                    profile: profile.to_string(),
                    message: format!(
                        "Needs a human: the outcome of the enrollment for {who} is unknown ({reason}). SCM may have enrolled, and billed, it; it is not sent again. Check SCM for request {}: adopt its certificate with `sectigo-connector certs import --profile {profile} --cert-id ID --name {name}`, or, if SCM holds none, `sectigo-connector certs resolve {name} --not-renewed`.",
                        request.as_deref().unwrap_or("?"),
                        name = who.trim_start_matches("declared ")
                    ),
                });
                Announcement::default()
            }
        };
        self.ledger.commit_journal(vec![], rec, news).await?;
        Ok(true)
    }
}
