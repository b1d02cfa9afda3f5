//! Renewing one certificate (the billable call, journaled before and after) and collecting
//! renewals SCM accepted once they are issued.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use sectigo_core::text::ts;
use tracing::{error, info, warn};

use super::policy::{self, Reason};
use super::{bump, Engine, EngineError, RenewOutcome};
use sectigo_jira::events::Event;
use sectigo_scm::{RenewRequest, ScmError};
use sectigo_state::{blocking, CertOrigin, CertRecord, CertState};

impl Engine {
    /// Renews one certificate, journaling the billable call. `reason: None` is the operator's
    /// `renew ID`: it bypasses the backoff, the window, and a failed or unknown outcome.
    pub async fn renew(
        &self,
        id: &str,
        reason: Option<Reason>,
    ) -> Result<RenewOutcome, EngineError> {
        let Some(_claim) = self.shared.claim(id) else {
            return Ok(RenewOutcome::Skipped(
                "a renewal of it is already under way".into(),
            ));
        };
        let Some(mut rec) = self.get(id).await? else {
            return Err(EngineError::UnknownCert(id.into()));
        };
        let client = self.client(&rec.profile)?.clone();
        let profile = self.profiles[&rec.profile].clone();
        match (&rec.state, reason) {
            (CertState::Active, Some(_)) => {}
            (
                CertState::Active | CertState::Failed { .. } | CertState::OutcomeUnknown { .. },
                None,
            ) => {}
            (s, _) => return Ok(RenewOutcome::Skipped(format!("state is {}", s.name()))),
        }
        let forced = reason == Some(Reason::Forced);
        let due = rec.not_after;
        let request = crate::request_id(&rec.id, Utc::now());
        // key_rotation = "new": the key and its CSR, made before anything is reserved or sent.
        let fresh = match profile.new_key {
            None => None,
            Some(kind) => {
                let (cn, sans) = (rec.subject_cn.clone(), rec.sans.clone());
                match tokio::task::spawn_blocking(move || {
                    sectigo_core::x509::keygen::key_and_csr(kind, &cn, &sans)
                })
                .await
                {
                    Ok(Ok(k)) => Some(k),
                    Ok(Err(e)) => return Ok(RenewOutcome::Failed(format!("no new key: {e}"))),
                    Err(e) => return Ok(RenewOutcome::Failed(format!("no new key: {e}"))),
                }
            }
        };
        let req = RenewRequest {
            csr: fresh.as_ref().map(|(_, csr)| csr.clone()),
            profile_id: profile.scm_profile_id,
            custom_fields: profile
                .custom_fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
            comments: sectigo_scm::comments_with_request(&profile.ssl_cert_comments, &request),
        };
        // Wait for the rate limit and the token before journaling: a crash while waiting then
        // leaves nothing unknown behind. Failing to get them is a failed attempt, with nothing
        // sent and nothing journaled.
        let result = match client.reserve().await {
            Err(e) => Err(e),
            Ok(reserved) => {
                // The new key, durably, before the billable call: a certificate SCM issues
                // for it is never without it.
                if let Some((key, _)) = &fresh {
                    let (ks, r, k) = (self.keys.clone(), request.clone(), key.clone());
                    let stored = tokio::task::spawn_blocking(move || ks.put(&r, &k))
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))
                        .and_then(|r| r);
                    if let Err(e) = stored {
                        return Ok(RenewOutcome::Failed(format!(
                            "cannot store the new key in the state directory: {e}"
                        )));
                    }
                }
                // Journal the intent, durably, before the billable call.
                rec.state = CertState::RenewRequested {
                    due,
                    at: Utc::now(),
                    forced,
                    request: Some(request.clone()),
                };
                rec.log(
                    Utc::now(),
                    match reason {
                        Some(Reason::Window) => "renewal started (inside the expiry window)",
                        Some(Reason::Forced) => "renewal started (force renewal)",
                        Some(Reason::Requested) => {
                            "renewal started (asked for from its Jira issue)"
                        }
                        None => "renewal started (by operator)",
                    },
                );
                let ev = self.event(Event::RenewalStarted { cert: &rec, forced }, Utc::now());
                self.commit(vec![rec.clone()], ev).await?;
                self.flush().await?;
                info!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                    "renewing {} (expires {}{}), request {request}", rec.subject_cn, ts(rec.not_after), if forced { ", force renewal" } else { "" });
                client.renew_reserved(Some(reserved), &rec.id, &req).await
            }
        };
        let at = Utc::now();
        // SCM says the certificate is not Issued: if it was revoked there, stop renewing it.
        let revoked = matches!(&result, Err(ScmError::Refused { code: -130, .. }))
            && matches!(client.status(&rec.id).await, Ok(s) if s.eq_ignore_ascii_case("revoked"));
        let mut ev = None;
        let outcome = match result {
            Ok(new_id) => {
                if fresh.is_some() {
                    // The key follows the certificate SCM named, before that is recorded.
                    let (ks, r, n) = (self.keys.clone(), request.clone(), new_id.clone());
                    let renamed = tokio::task::spawn_blocking(move || ks.rename(&r, &n))
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))
                        .and_then(|r| r);
                    if let Err(e) = renamed {
                        error!(profile = %rec.profile, cert_id = %rec.id, "the new key of renewal {new_id} stays under request {request}: {e}");
                    }
                }
                rec.state = CertState::Collecting {
                    new_id: new_id.clone(),
                    at,
                };
                rec.failures = 0;
                rec.next_attempt = None;
                rec.last_error = None;
                rec.stall_reported = None;
                rec.log(at, format!("renewal requested: SCM certificate {new_id}"));
                info!(profile = %rec.profile, cert_id = %rec.id, new_cert_id = %new_id, "renewal of {} accepted by SCM as certificate {new_id}", rec.subject_cn);
                bump(&self.shared.counters.requested);
                RenewOutcome::Requested { new_id }
            }
            Err(e) if e.maybe_billed() => {
                rec.state = CertState::OutcomeUnknown {
                    due,
                    at,
                    request: Some(request.clone()),
                };
                rec.last_error = Some(e.to_string());
                rec.log(at, format!("renewal outcome unknown: {e}"));
                ev = self.event(
                    Event::OutcomeUnknown {
                        cert: &rec,
                        reason: &e.to_string(),
                    },
                    at,
                );
                error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                    "renewal outcome unknown for {}: {e}; SCM may have renewed (and billed) it, so it will not be retried automatically: check SCM, then `renew {}` or `certs import` the new certificate", rec.subject_cn, rec.id);
                bump(&self.shared.counters.unknown);
                RenewOutcome::Unknown(format!("{}: {e}", rec.id))
            }
            Err(e) if revoked => {
                rec.state = CertState::Revoked { at };
                rec.next_attempt = None;
                rec.last_error = Some(e.to_string());
                rec.log(at, "found revoked in SCM: no longer renewed");
                ev = self.event(
                    Event::RevokedInScm {
                        cert: &rec,
                        detail: "its renewal was refused: state not Issued; SCM's status: Revoked",
                    },
                    at,
                );
                error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                    "{} ({}) was revoked in SCM, not by the connector: it is no longer renewed", rec.id, rec.subject_cn);
                bump(&self.shared.counters.failed);
                RenewOutcome::Failed(format!("{}: revoked in SCM", rec.id))
            }
            Err(e @ ScmError::Refused { .. }) => {
                // A person must fix something in SCM; the persisted backoff picks the fix up.
                let next;
                (next, ev) = self.retry_later(&mut rec, at, &e);
                error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                    "renewal of {} refused by SCM (attempt {}): {e}; next attempt at {next}", rec.subject_cn, rec.failures, next = ts(next));
                bump(&self.shared.counters.refused);
                RenewOutcome::Failed(format!("{}: {e}", rec.id))
            }
            Err(e @ ScmError::Permanent { .. }) => {
                rec.state = CertState::Failed {
                    reason: e.to_string(),
                    at,
                };
                rec.last_error = Some(e.to_string());
                rec.log(at, format!("renewal refused: {e}"));
                ev = self.event(
                    Event::RenewalFailed {
                        cert: &rec,
                        reason: &e.to_string(),
                        will_retry: None,
                    },
                    at,
                );
                error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                    "renewal of {} refused by SCM, not retrying automatically: {e}", rec.subject_cn);
                bump(&self.shared.counters.failed);
                RenewOutcome::Failed(format!("{}: {e}", rec.id))
            }
            Err(e) => {
                let next;
                (next, ev) = self.retry_later(&mut rec, at, &e);
                // Once is a blip (WARN); a failure that repeats needs a person (ERROR).
                if rec.failures >= 2 {
                    error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                        "renewal of {} failed again (attempt {}): {e}; next attempt at {next}", rec.subject_cn, rec.failures, next = ts(next));
                } else {
                    warn!(profile = %rec.profile, cert_id = %rec.id, "renewal of {} failed (attempt {}): {e}; next attempt at {next}", rec.subject_cn, rec.failures, next = ts(next));
                }
                bump(&self.shared.counters.failed);
                if e.is_transient() {
                    RenewOutcome::Unreachable(format!("{}: {e}", rec.id))
                } else {
                    RenewOutcome::Failed(format!("{}: {e}", rec.id))
                }
            }
        };
        self.commit(vec![rec], ev).await?;
        self.flush().await?;
        Ok(outcome)
    }

    /// A failed attempt with nothing billed: back to active, the next attempt on the persisted
    /// backoff. Returns when that is, and the Jira update (the first failure in a row only).
    fn retry_later(
        &self,
        rec: &mut CertRecord,
        at: DateTime<Utc>,
        e: &ScmError,
    ) -> (DateTime<Utc>, Option<sectigo_state::OutboxItem>) {
        rec.state = CertState::Active;
        rec.failures += 1;
        let next = policy::next_attempt(
            rec.failures,
            at,
            rec.not_after,
            Duration::minutes(self.renewal.retry_initial_mins as i64),
            Duration::hours(self.renewal.retry_max_hours as i64),
        );
        rec.next_attempt = Some(next);
        rec.last_error = Some(e.to_string());
        rec.log(
            at,
            format!(
                "renewal attempt {} failed: {e}; next attempt {next}",
                rec.failures,
                next = ts(next)
            ),
        );
        let ev = (rec.failures == 1)
            .then(|| {
                self.event(
                    Event::RenewalFailed {
                        cert: rec,
                        reason: &e.to_string(),
                        will_retry: Some(next),
                    },
                    at,
                )
            })
            .flatten();
        (next, ev)
    }

    /// Tries to collect every renewal SCM accepted and has not been collected yet.
    pub async fn collect_pending(&self, now: DateTime<Utc>) -> Result<CollectReport, EngineError> {
        let inflight = blocking(&self.store, |s| s.in_flight()).await?;
        let mut report = CollectReport::default();
        let todo: Vec<(CertRecord, String)> = inflight
            .into_iter()
            .filter_map(|rec| match &rec.state {
                CertState::Collecting { new_id, .. } if self.clients.contains_key(&rec.profile) => {
                    let id = new_id.clone();
                    Some((rec, id))
                }
                _ => None,
            })
            .collect();
        let results: Vec<Result<Collected, EngineError>> = futures::stream::iter(todo)
            .map(|(rec, new_id)| self.collect_one(rec, new_id, now))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for r in results {
            match r? {
                Collected::Done => report.renewed += 1,
                Collected::Pending => report.pending += 1,
                Collected::Failed => report.failed += 1,
            }
        }
        report.deploys_owed = self.deploy_owed(now).await?;
        Ok(report)
    }

    async fn collect_one(
        &self,
        mut old: CertRecord,
        new_id: String,
        now: DateTime<Utc>,
    ) -> Result<Collected, EngineError> {
        // The cycle and the Jira workflow poll both collect: one at a time per certificate.
        let Some(_claim) = self.shared.claim(&old.id) else {
            return Ok(Collected::Pending);
        };
        let client = self.client(&old.profile)?.clone();
        match client.download(&new_id).await {
            Ok(d) => {
                let at = Utc::now();
                let renewed_at = match old.state {
                    CertState::Collecting { at, .. } => at,
                    _ => at,
                };
                let mut new = super::issued_record(
                    &new_id,
                    &old.profile,
                    &d.info,
                    CertOrigin::Renewed {
                        from: old.id.clone(),
                        at: renewed_at,
                    },
                    old.jira_issue.clone(),
                );
                // The replacement keeps the directory name, and owes a deploy when the
                // profile deploys: in the same commit as the renewal's record.
                new.name = old.name.clone();
                new.deploy =
                    super::deploy::job_for(self.deploy_config(&old.profile), Some(&old.id), at);
                let deploys = new.deploy.is_some();
                new.log(
                    at,
                    format!(
                        "issued as the renewal of {} ({} until {})",
                        old.id,
                        new.subject_cn,
                        ts(new.not_after)
                    ),
                );
                old.state = CertState::Superseded {
                    by: new_id.clone(),
                    at,
                };
                old.log(at, format!("renewed: superseded by {new_id}"));
                info!(profile = %old.profile, cert_id = %old.id, new_cert_id = %new_id, jira_key = old.jira_issue.as_deref(),
                    "renewed {}: new certificate {new_id} valid until {}", new.subject_cn, ts(new.not_after));
                let ev = self.event(
                    Event::Renewed {
                        old: &old,
                        new: &new,
                        pem: &d.pem,
                    },
                    at,
                );
                self.commit(vec![old, new], ev).await?;
                self.flush().await?;
                bump(&self.shared.counters.renewed);
                if deploys {
                    self.deploy(&new_id, Some(&d.pem), now).await?;
                }
                Ok(Collected::Done)
            }
            Err(ScmError::Pending { .. } | ScmError::Refused { .. }) => {
                self.check_stalled(old, &new_id, now).await
            }
            Err(e @ (ScmError::Permanent { .. } | ScmError::Revoked { .. })) => {
                let msg = format!("renewal {new_id} was accepted but cannot be collected: {e}");
                self.collection_failed(old, msg).await
            }
            Err(e) => {
                warn!(profile = %old.profile, cert_id = %old.id, "collecting renewal {new_id} failed, will retry: {e}");
                Ok(Collected::Pending)
            }
        }
    }
}

impl Engine {
    /// A renewal SCM accepted that will never be collected: the certificate is failed (a
    /// person decides), reported once.
    async fn collection_failed(
        &self,
        mut old: CertRecord,
        msg: String,
    ) -> Result<Collected, EngineError> {
        let at = Utc::now();
        error!(profile = %old.profile, cert_id = %old.id, jira_key = old.jira_issue.as_deref(), "{msg}");
        old.state = CertState::Failed {
            reason: msg.clone(),
            at,
        };
        old.last_error = Some(msg.clone());
        old.log(at, msg.clone());
        let ev = self.event(
            Event::RenewalFailed {
                cert: &old,
                reason: &msg,
                will_retry: None,
            },
            at,
        );
        self.commit(vec![old], ev).await?;
        self.flush().await?;
        bump(&self.shared.counters.failed);
        Ok(Collected::Failed)
    }

    /// A renewal not issued yet: past `[renewal] collect_timeout_hours`, asks SCM why. Declined
    /// or rejected ends it as failed; anything else is reported as stalled, once, and still
    /// collected.
    async fn check_stalled(
        &self,
        mut old: CertRecord,
        new_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Collected, EngineError> {
        let CertState::Collecting { at: since, .. } = old.state else {
            return Ok(Collected::Pending);
        };
        let timeout = Duration::hours(self.renewal.collect_timeout_hours as i64);
        if now - since < timeout {
            return Ok(Collected::Pending);
        }
        let client = self.client(&old.profile)?.clone();
        let scm_status = match client.status(new_id).await {
            Ok(s) if s.is_empty() => "unknown".to_string(),
            Ok(s) => sectigo_core::text::bounded(&sectigo_core::text::Escaped(&s).to_string(), 40),
            Err(e) => format!("not known: {e}"),
        };
        let at = Utc::now();
        if policy::is_refusal_status(&scm_status) {
            let msg = format!(
                "renewal {new_id} was {} in SCM (accepted at {since}, not issued)",
                scm_status.to_ascii_lowercase(),
                since = ts(since)
            );
            return self.collection_failed(old, msg).await;
        }
        if old.stall_reported.is_none() {
            let hours = (now - since).num_hours();
            error!(profile = %old.profile, cert_id = %old.id, jira_key = old.jira_issue.as_deref(),
                "renewal of {} stalled: SCM accepted it as {new_id} {hours} h ago and has not issued it (SCM status: {scm_status}); approve it in SCM if the account needs approval. Still collecting it",
                old.subject_cn);
            old.stall_reported = Some(at);
            old.last_error = Some(format!(
                "renewal {new_id} not issued after {hours} h (SCM status: {scm_status})"
            ));
            old.log(
                at,
                format!("stalled: {new_id} not issued after {hours} h (SCM status: {scm_status})"),
            );
            let ev = self.event(
                Event::Stalled {
                    cert: &old,
                    new_id,
                    since,
                    scm_status: &scm_status,
                },
                at,
            );
            self.commit(vec![old], ev).await?;
            self.flush().await?;
            bump(&self.shared.counters.stalled);
        }
        Ok(Collected::Pending)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CollectReport {
    pub renewed: u64,
    pub pending: u64,
    pub failed: u64,
    /// Deploys still owed after the pass (files or hook failed, waiting for their retry).
    pub deploys_owed: u64,
}

enum Collected {
    Done,
    Pending,
    Failed,
}
