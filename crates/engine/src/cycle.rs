//! One renewal cycle: collect what SCM accepted, decide what is due (the pure [`policy`]),
//! renew it, collect again, and record what was done. Also the recovery a start begins with:
//! renewals journaled and never answered are unknown outcomes.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use sectigo_core::names::{CertId, ProfileName};
use sectigo_core::text::ts;
use sectigo_model::{CertRecord, CertState, CycleSummary, Event};

use crate::collect::Collector;
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::policy::{self, Decision, Reason, RenewPolicy};
use crate::profile_state::{Mode, ProfileBook};
use crate::renew::{RenewFailure, RenewOutcome, Renewer, Skip};
use crate::settings::Tuning;

/// A certificate the cycle acted on, or would act on in a dry run.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: CertId,
    pub profile: ProfileName,
    pub subject_cn: String,
    pub not_after: DateTime<Utc>,
    pub decision: Decision,
}

#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    pub summary: CycleSummary,
    pub planned: Vec<Planned>,
    /// Deploys still owed at the end of the cycle.
    pub deploys_owed: u64,
}

/// At most this many error lines are kept in a cycle's summary.
const ERRORS_KEPT: usize = 20;

#[derive(Clone)]
pub struct Cycle {
    pub(crate) ledger: Ledger,
    pub(crate) renewer: Renewer,
    pub(crate) collector: Collector,
    pub(crate) book: ProfileBook,
    pub(crate) tuning: Tuning,
}

impl Cycle {
    /// Reads the journal left by a previous run: a renew call whose answer was never recorded
    /// has an unknown outcome. Marks those, loudly, before anything new is done.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let now = self.ledger.now();
        let inflight = self.ledger.read(|s| s.in_flight()).await?;
        let mut n = 0;
        for mut rec in inflight {
            let CertState::RenewRequested { due, request, .. } = rec.state.clone() else {
                continue;
            };
            error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                "renewal outcome unknown: the daemon stopped after journaling a renew call for {} (expires {}) and before recording SCM's answer; SCM may have renewed (and billed) it. It will not be renewed again automatically: check SCM, then `sectigo-connector certs resolve {} --renewed-as NEW_ID` if it was renewed, or `--not-renewed` if not",
                rec.subject_cn, ts(rec.not_after), rec.id);
            rec.state = CertState::OutcomeUnknown {
                due,
                at: now,
                request,
            };
            rec.log(now, "renewal outcome unknown (daemon stopped mid-call)");
            let news = self.ledger.announce(Event::OutcomeUnknown {
                cert: &rec,
                reason: "the daemon stopped between a renew call and recording its answer",
            });
            self.ledger.commit(vec![rec], news).await?;
            n += 1;
        }
        Ok(n)
    }

    /// One cycle. In a dry run nothing is written, to SCM or to the state.
    pub async fn run(
        &self,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<CycleReport, EngineError> {
        let now = self.ledger.now();
        let mut report = CycleReport::default();
        report.summary.started = Some(now);
        if mode == Mode::Live {
            let c = self.collector.collect_pending().await?;
            report.summary.renewed += c.renewed;
            report.summary.failed += c.failed;
        }
        let pols = self.book.policies(mode, now).await?;
        let candidates = self.candidates(&pols, now).await?;
        let to_renew = self.plan(&mut report, candidates, &pols, mode, now).await?;
        if mode == Mode::DryRun {
            report.summary.requested = to_renew.len() as u64;
            return Ok(report);
        }
        self.renew_all(&mut report, to_renew, cancel).await;
        if !cancel.is_cancelled() {
            let c = self.collector.collect_pending().await?;
            report.summary.renewed += c.renewed;
            report.summary.failed += c.failed;
            report.deploys_owed = c.deploys_owed;
        }
        self.book.finish_force_runs().await?;
        report.summary.pending = self.ledger.read(|s| s.in_flight()).await?.len() as u64;
        report.summary.finished = Some(self.ledger.now());
        let s = report.summary.clone();
        self.ledger
            .read(move |st| {
                st.put_last_cycle(&s)?;
                st.flush()
            })
            .await?;
        Ok(report)
    }

    /// Certificates inside the widest window, plus every certificate of profiles under force
    /// renewal, earliest expiry first. The index keeps this proportional to what is due.
    async fn candidates(
        &self,
        pols: &std::collections::BTreeMap<ProfileName, RenewPolicy>,
        now: DateTime<Utc>,
    ) -> Result<Vec<CertRecord>, EngineError> {
        let widest = pols
            .values()
            .map(|p| p.expiry_window_days)
            .max()
            .unwrap_or(0);
        let until = now + Duration::days(widest);
        let mut candidates = self
            .ledger
            .read(move |s| s.active_expiring_before(until))
            .await?;
        for (name, p) in pols {
            if p.force.is_some() {
                let n = name.clone();
                let certs = self.ledger.read(move |s| s.by_profile(&n)).await?;
                candidates.extend(certs.into_iter().filter(|c| c.state == CertState::Active));
            }
        }
        candidates.sort_by(|a, b| (a.not_after, &a.id).cmp(&(b.not_after, &b.id)));
        candidates.dedup_by(|a, b| a.id == b.id);
        Ok(candidates)
    }

    /// Decides each candidate; reports those due without auto-renew; returns what to renew.
    async fn plan(
        &self,
        report: &mut CycleReport,
        candidates: Vec<CertRecord>,
        pols: &std::collections::BTreeMap<ProfileName, RenewPolicy>,
        mode: Mode,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CertId, Reason)>, EngineError> {
        let mut to_renew = Vec::new();
        for rec in candidates {
            let Some(p) = pols.get(&rec.profile) else {
                continue; // orphaned
            };
            let d = policy::decide(&rec, p, now);
            match &d {
                Decision::Renew { reason, .. } => to_renew.push((rec.id.clone(), *reason)),
                Decision::ReportNoAutoRenew { .. } => {
                    report.summary.skipped_no_auto_renew += 1;
                    if mode == Mode::Live {
                        self.report_no_auto_renew(rec.clone()).await?;
                    }
                }
                Decision::Backoff { .. } => {}
                _ => continue,
            }
            report.planned.push(Planned {
                id: rec.id.clone(),
                profile: rec.profile.clone(),
                subject_cn: rec.subject_cn.clone(),
                not_after: rec.not_after,
                decision: d,
            });
        }
        Ok(to_renew)
    }

    /// Renews each, within the engine's concurrency (the per-host limits bind below it).
    async fn renew_all(
        &self,
        report: &mut CycleReport,
        to_renew: Vec<(CertId, Reason)>,
        cancel: &CancellationToken,
    ) {
        let outcomes: Vec<(CertId, RenewOutcome)> = futures::stream::iter(to_renew)
            .map(|(id, reason)| async move {
                if cancel.is_cancelled() {
                    return (id, RenewOutcome::Skipped(Skip::ShuttingDown));
                }
                let o = self.renewer.renew(&id, reason).await.unwrap_or_else(|e| {
                    RenewOutcome::Failed(RenewFailure::NotAttempted(e.to_string()))
                });
                (id, o)
            })
            .buffer_unordered(self.tuning.concurrency)
            .collect()
            .await;
        for (id, o) in outcomes {
            match o {
                RenewOutcome::Requested { .. } => report.summary.requested += 1,
                RenewOutcome::Failed(_)
                | RenewOutcome::Unreachable(_)
                | RenewOutcome::Unknown(_) => {
                    report.summary.failed += 1;
                    if report.summary.errors.len() < ERRORS_KEPT {
                        report.summary.errors.push(format!("{id}: {o}"));
                    }
                }
                RenewOutcome::Skipped(_) => {}
            }
        }
    }

    async fn report_no_auto_renew(&self, mut rec: CertRecord) -> Result<(), EngineError> {
        info!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "certificate {} expires {} and is inside the expiry window, but profile {:?} has auto_renew = false: not renewing",
            rec.subject_cn, ts(rec.not_after), rec.profile);
        rec.reported_no_auto_renew = Some(rec.not_after);
        rec.log(self.ledger.now(), "expiring without auto-renew: reported");
        let news = self
            .ledger
            .announce(Event::ExpiringNoAutoRenew { cert: &rec });
        self.ledger.commit(vec![rec], news).await
    }
}
