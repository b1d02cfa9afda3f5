//! Collecting renewals SCM accepted: once issued, the new certificate is tracked (history and
//! Jira link carried over), the old one is superseded, and the new one is deployed. A renewal
//! not issued after `[renewal] collect_timeout_hours` is reported as stalled (still
//! collected); one SCM declined ends as failed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{error, info, warn};

use sectigo_core::names::CertId;
use sectigo_core::text::{bounded, ts, Escaped};
use sectigo_model::{CertOrigin, CertRecord, CertState, Event};
use sectigo_scm::{CertInfo, ScmError};

use crate::clients::ScmClients;
use crate::deploy::{self, Deployer};
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::policy;
use crate::settings::Tuning;
use crate::shared::{bump, ClaimKey, Claims, Counters};

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

/// A newly tracked, active certificate, from what its download says.
pub(crate) fn issued_record(
    id: &CertId,
    profile: &sectigo_core::names::ProfileName,
    info: &CertInfo,
    origin: CertOrigin,
    jira_issue: Option<sectigo_core::names::IssueKey>,
) -> CertRecord {
    CertRecord {
        id: id.clone(),
        profile: profile.clone(),
        subject_cn: info.subject_cn.clone(),
        sans: info.sans.clone(),
        serial: info.serial.clone(),
        not_before: info.not_before,
        not_after: info.not_after,
        state: CertState::Active,
        jira_issue,
        origin,
        failures: 0,
        next_attempt: None,
        last_error: None,
        reported_no_auto_renew: None,
        stall_reported: None,
        history: Vec::new(),
        name: None,
        deploy: None,
        scm_auto_renew: false,
    }
}

/// SCM's status of a request, made safe to show (`unknown`, or why it is not known).
pub(crate) async fn scm_status(client: &sectigo_scm::ScmClient, id: &CertId) -> String {
    match client.status(id).await {
        Ok(s) if s.is_empty() => "unknown".to_string(),
        Ok(s) => bounded(&Escaped(&s).to_string(), 40),
        Err(e) => format!("not known: {e}"),
    }
}

#[derive(Clone)]
pub struct Collector {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) claims: Claims,
    pub(crate) deployer: Deployer,
    pub(crate) tuning: Tuning,
    pub(crate) counters: Arc<Counters>,
}

impl Collector {
    /// Tries to collect every renewal SCM accepted and has not been collected yet, then runs
    /// the deploys that are owed.
    pub async fn collect_pending(&self) -> Result<CollectReport, EngineError> {
        let inflight = self.ledger.read(|s| s.in_flight()).await?;
        let todo: Vec<(CertRecord, CertId)> = inflight
            .into_iter()
            .filter_map(|rec| match &rec.state {
                CertState::Collecting { new_id, .. } if self.scm.has(&rec.profile) => {
                    let id = new_id.clone();
                    Some((rec, id))
                }
                _ => None,
            })
            .collect();
        let results: Vec<Result<Collected, EngineError>> = futures::stream::iter(todo)
            .map(|(rec, new_id)| self.collect_one(rec, new_id))
            .buffer_unordered(self.tuning.concurrency)
            .collect()
            .await;
        let mut report = CollectReport::default();
        for r in results {
            match r? {
                Collected::Done => report.renewed += 1,
                Collected::Pending => report.pending += 1,
                Collected::Failed => report.failed += 1,
            }
        }
        report.deploys_owed = self.deployer.deploy_owed().await?;
        Ok(report)
    }

    async fn collect_one(&self, old: CertRecord, new_id: CertId) -> Result<Collected, EngineError> {
        // The cycle and the Jira workflow poll both collect: one at a time per certificate.
        let Some(_claim) = self.claims.claim(ClaimKey::Cert(old.id.clone())) else {
            return Ok(Collected::Pending);
        };
        let client = self.scm.get(&old.profile)?;
        match client.download(&new_id).await {
            Ok(d) => self.issued(old, &new_id, &d).await,
            Err(ScmError::Pending { .. } | ScmError::Refused { .. }) => {
                self.check_stalled(old, &new_id).await
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

    /// The renewal is issued: tracked, the old certificate superseded, in one commit with the
    /// Jira update and the deploy it owes.
    async fn issued(
        &self,
        mut old: CertRecord,
        new_id: &CertId,
        d: &sectigo_scm::Downloaded,
    ) -> Result<Collected, EngineError> {
        let at = self.ledger.now();
        let renewed_at = match old.state {
            CertState::Collecting { at, .. } => at,
            _ => at,
        };
        let mut new = issued_record(
            new_id,
            &old.profile,
            &d.info,
            CertOrigin::Renewed {
                from: old.id.clone(),
                at: renewed_at,
            },
            old.jira_issue.clone(),
        );
        // The replacement keeps the directory name, and owes a deploy when the profile
        // deploys: in the same commit as the renewal's record.
        new.name = old.name.clone();
        new.deploy = deploy::job_for(self.deployer.config_for(&new), Some(&old.id), at);
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
        let news = self.ledger.announce(Event::Renewed {
            old: &old,
            new: &new,
            pem: &d.pem,
        });
        self.ledger.commit(vec![old, new], news).await?;
        bump(&self.counters.renewed);
        if deploys {
            self.deployer.deploy(new_id, Some(&d.pem)).await?;
        }
        Ok(Collected::Done)
    }

    /// A renewal SCM accepted that will never be collected: the certificate is failed (a
    /// person decides), reported once.
    async fn collection_failed(
        &self,
        mut old: CertRecord,
        msg: String,
    ) -> Result<Collected, EngineError> {
        let at = self.ledger.now();
        error!(profile = %old.profile, cert_id = %old.id, jira_key = old.jira_issue.as_deref(), "{msg}");
        old.state = CertState::Failed {
            reason: msg.clone(),
            at,
        };
        old.last_error = Some(msg.clone());
        old.log(at, msg.clone());
        let news = self.ledger.announce(Event::RenewalFailed {
            cert: &old,
            reason: &msg,
            will_retry: None,
        });
        self.ledger.commit(vec![old], news).await?;
        bump(&self.counters.failed);
        Ok(Collected::Failed)
    }

    /// A renewal not issued yet: past `[renewal] collect_timeout_hours`, asks SCM why. Declined
    /// or rejected ends it as failed; anything else is reported as stalled, once, and still
    /// collected.
    async fn check_stalled(
        &self,
        mut old: CertRecord,
        new_id: &CertId,
    ) -> Result<Collected, EngineError> {
        let CertState::Collecting { at: since, .. } = old.state else {
            return Ok(Collected::Pending);
        };
        let now = self.ledger.now();
        if now - since < self.tuning.collect_timeout() {
            return Ok(Collected::Pending);
        }
        let client = self.scm.get(&old.profile)?;
        let status = scm_status(&client, new_id).await;
        if policy::is_refusal_status(&status) {
            let msg = format!(
                "renewal {new_id} was {} in SCM (accepted at {}, not issued)",
                status.to_ascii_lowercase(),
                ts(since)
            );
            return self.collection_failed(old, msg).await;
        }
        if old.stall_reported.is_none() {
            self.report_stall(&mut old, new_id, since, &status, now)
                .await?;
        }
        Ok(Collected::Pending)
    }

    async fn report_stall(
        &self,
        old: &mut CertRecord,
        new_id: &CertId,
        since: DateTime<Utc>,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let hours = (now - since).num_hours();
        error!(profile = %old.profile, cert_id = %old.id, jira_key = old.jira_issue.as_deref(),
            "renewal of {} stalled: SCM accepted it as {new_id} {hours} h ago and has not issued it (SCM status: {status}); approve it in SCM if the account needs approval. Still collecting it",
            old.subject_cn);
        old.stall_reported = Some(now);
        old.last_error = Some(format!(
            "renewal {new_id} not issued after {hours} h (SCM status: {status})"
        ));
        old.log(
            now,
            format!("stalled: {new_id} not issued after {hours} h (SCM status: {status})"),
        );
        let news = self.ledger.announce(Event::Stalled {
            cert: old,
            new_id,
            since,
            scm_status: status,
        });
        self.ledger.commit(vec![old.clone()], news).await?;
        bump(&self.counters.stalled);
        Ok(())
    }
}
