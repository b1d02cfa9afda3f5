//! One renewal cycle: collect what SCM accepted, decide what is due (the pure [`policy`]),
//! renew it, collect again, and record what was done. Also the recovery a start begins with:
//! renewals journaled and never answered are unknown outcomes.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use sectigo_core::names::{CertId, ProfileName};
use sectigo_core::text::ts;
use sectigo_model::{CertRecord, CertState, CycleSummary, Event, Outage, OutageKind};

use crate::budget::{Budget, Ticket};
use crate::collect::Collector;
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::policy::{self, Decision, Reason, RenewPolicy};
use crate::profile_state::{Mode, ProfileBook};
use crate::renew::{RenewFailure, RenewOutcome, Renewer, Skip};
use crate::settings::Tuning;
use crate::shared::Shared;

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
    /// What the declared certificates (`certificates.d/`) needed and got.
    pub declared: Box<crate::declared::ApplyReport>,
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
    pub(crate) budget: Budget,
    pub(crate) shared: Shared,
    /// Unknown outcomes settled from SCM's records (profiles with `[admin]`).
    pub(crate) settle: crate::settle_auto::AutoSettle,
    pub(crate) declared: crate::declared::DeclaredBook,
}

/// One renewal to send: the certificate, why, and its budget's ticket (taken in expiry
/// order: the most urgent first).
type ToRenew = (CertId, ProfileName, Reason, Option<Ticket>);

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
                request: request.clone(),
            };
            rec.log(now, "renewal outcome unknown (daemon stopped mid-call)");
            rec.last_error = Some(crate::settle_auto::unknown_note(
                request.as_deref(),
                self.settle.admin(&rec.profile),
                self.tuning.renewal.settle_after_minutes,
            ));
            // It may have been billed: the budget counts it.
            if let Some(r) = &request {
                let entry = sectigo_model::BillingEntry {
                    profile: rec.profile.clone(),
                    at: now,
                    what: rec.id.to_string(),
                    request: r.clone(),
                    reason: "unknown".into(),
                };
                self.budget.record(entry).await?;
            }
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
            // Unknown outcomes SCM's records settle (with `[admin]`), before anything is due.
            let settled = self.settle.run().await?;
            if settled != Default::default() {
                info!(
                    "unknown outcomes from SCM's records: {} adopted, {} declared not renewed, {} still waiting",
                    settled.adopted, settled.declared, settled.waiting
                );
            }
            let c = self.collector.collect_pending().await?;
            report.summary.renewed += c.renewed;
            report.summary.failed += c.failed;
        }
        // Declared certificates: enrolled, replaced (as consented); those whose file was
        // removed are not renewed.
        let undeclared = match mode {
            Mode::Live => {
                let (r, held) = self.declared.run(crate::declared::Consent::Daemon).await?;
                // `enroll = "auto"` declarations the budget holds wait as renewals do: told
                // in `status` and once to `[notify]` (budget_reached).
                for name in &r.held {
                    if let Some(d) = self.declared.declarations().get(name) {
                        *report.summary.held.entry(d.profile.clone()).or_default() += 1;
                    }
                }
                report.declared = Box::new(r);
                held
            }
            Mode::DryRun => self.declared.not_renewed().await?,
        };
        let pols = self.book.policies(mode, now).await?;
        let mut candidates = candidates(&self.ledger, &[&pols], now).await?;
        candidates.retain(|c| !undeclared.contains(&c.id));
        let to_renew = self.plan(&mut report, candidates, &pols, mode, now).await?;
        let to_renew = self.tickets(&mut report, to_renew, mode).await?;
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
        self.budget.prune().await?;
        report.summary.outages = outages(&self.shared, &self.book, &report.summary);
        report.summary.pending = self.ledger.read(|s| s.in_flight()).await?.len() as u64;
        report.summary.finished = Some(self.ledger.now());
        self.tell_held(&report.summary).await?;
        let s = report.summary.clone();
        self.ledger
            .read(move |st| {
                st.put_last_cycle(&s)?;
                st.flush()
            })
            .await?;
        Ok(report)
    }

    /// Takes the budget's tickets for the scheduled renewals, in expiry order: those past
    /// the budget wait (counted in `held`). Other renewals are consented (their tickets are
    /// taken when they go). A dry run takes none, and counts what would wait.
    async fn tickets(
        &self,
        report: &mut CycleReport,
        planned: Vec<(CertId, ProfileName, Reason)>,
        mode: Mode,
    ) -> Result<Vec<ToRenew>, EngineError> {
        let mut out = Vec::new();
        let mut dry: BTreeMap<ProfileName, u32> = BTreeMap::new();
        for (id, profile, reason) in planned {
            if reason != Reason::Window {
                out.push((id, profile, reason, None));
                continue;
            }
            let ticket = match mode {
                Mode::Live => self.budget.try_take(&profile).await?,
                Mode::DryRun => None,
            };
            let room = match (&ticket, mode) {
                (Some(_), _) => true,
                (None, Mode::Live) => false,
                (None, Mode::DryRun) => {
                    let u = self.budget.usage(&profile).await?;
                    let n = dry.entry(profile.clone()).or_default();
                    *n += 1;
                    u.limit.is_none_or(|l| u.used + *n <= l)
                }
            };
            if room {
                out.push((id, profile, reason, ticket));
            } else {
                *report.summary.held.entry(profile).or_default() += 1;
            }
        }
        Ok(out)
    }

    /// A profile whose scheduled renewals began waiting for the budget: logged, and told to
    /// `[notify]`, once (the previous cycle held none of its renewals).
    async fn tell_held(&self, s: &CycleSummary) -> Result<(), EngineError> {
        let before = self.ledger.read(|st| st.last_cycle()).await?;
        for (profile, n) in &s.held {
            let was = before
                .as_ref()
                .and_then(|b| b.held.get(profile))
                .copied()
                .unwrap_or(0);
            if was > 0 {
                continue;
            }
            let u = self.budget.usage(profile).await?;
            let msg = format!(
                "Needs a human: {n} scheduled renewals (or enrollments of declared certificates) of profile {profile} wait: its daily budget is spent ({} renewals in the last 24 hours, limit {}). They go, most urgent first, as the budget allows; if this many are expected, raise {}.",
                u.used,
                u.limit.unwrap_or_default(),
                self.budget.key_of(profile)
            );
            warn!(profile = %profile, "{msg}");
            self.shared.notifier.send(sectigo_model::Notification {
                event: "budget_reached",
                cert_id: String::new(),
                profile: profile.to_string(),
                message: msg,
            });
        }
        Ok(())
    }

    /// Decides each candidate; reports those due without auto-renew; returns what to renew.
    async fn plan(
        &self,
        report: &mut CycleReport,
        candidates: Vec<CertRecord>,
        pols: &BTreeMap<ProfileName, RenewPolicy>,
        mode: Mode,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CertId, ProfileName, Reason)>, EngineError> {
        let mut to_renew = Vec::new();
        for rec in candidates {
            let Some(p) = pols.get(&rec.profile) else {
                continue; // orphaned
            };
            let d = policy::decide(&rec, p, now);
            match &d {
                Decision::Renew { reason, .. } => {
                    to_renew.push((rec.id.clone(), rec.profile.clone(), *reason))
                }
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
        to_renew: Vec<ToRenew>,
        cancel: &CancellationToken,
    ) {
        let outcomes: Vec<(CertId, ProfileName, RenewOutcome)> = futures::stream::iter(to_renew)
            .map(|(id, profile, reason, ticket)| async move {
                if cancel.is_cancelled() {
                    return (id, profile, RenewOutcome::Skipped(Skip::ShuttingDown));
                }
                let o = self
                    .renewer
                    .renew_with(&id, reason, ticket)
                    .await
                    .unwrap_or_else(|e| {
                        RenewOutcome::Failed(RenewFailure::NotAttempted(e.to_string()))
                    });
                (id, profile, o)
            })
            .buffer_unordered(self.tuning.concurrency)
            .collect()
            .await;
        let s = &mut report.summary;
        for (id, profile, o) in outcomes {
            match o {
                RenewOutcome::Requested { .. } => s.requested += 1,
                RenewOutcome::Failed(_) | RenewOutcome::Unknown(_) => {
                    s.failed += 1;
                    if s.errors.len() < ERRORS_KEPT {
                        s.errors.push(format!("{id}: {o}"));
                    }
                }
                RenewOutcome::Deferred(_) => *s.deferred.entry(profile).or_default() += 1,
                RenewOutcome::Held(_) => *s.held.entry(profile).or_default() += 1,
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

/// Certificates inside the widest window of any of `pols`, plus every certificate of the
/// profiles under force renewal, earliest expiry first. The index keeps this proportional to
/// what is due.
pub(crate) async fn candidates(
    ledger: &Ledger,
    pols: &[&BTreeMap<ProfileName, RenewPolicy>],
    now: DateTime<Utc>,
) -> Result<Vec<CertRecord>, EngineError> {
    let widest = pols
        .iter()
        .flat_map(|p| p.values().map(|p| p.expiry_window_days))
        .max()
        .unwrap_or(0);
    let until = now + Duration::days(widest);
    let mut candidates = ledger
        .read(move |s| s.active_expiring_before(until))
        .await?;
    let forced: std::collections::BTreeSet<&ProfileName> = pols
        .iter()
        .flat_map(|p| p.iter().filter(|(_, p)| p.force.is_some()).map(|(n, _)| n))
        .collect();
    for name in forced {
        let n = name.clone();
        let certs = ledger.read(move |s| s.by_profile(&n)).await?;
        candidates.extend(certs.into_iter().filter(|c| c.state == CertState::Active));
    }
    candidates.sort_by(|a, b| (a.not_after, &a.id).cmp(&(b.not_after, &b.id)));
    candidates.dedup_by(|a, b| a.id == b.id);
    Ok(candidates)
}

/// What stops renewals now: each SCM host that cannot be reached, and each profile whose
/// credentials are refused, with the renewals of this cycle it held up.
pub fn outages(shared: &Shared, book: &ProfileBook, s: &CycleSummary) -> Vec<Outage> {
    let mut out = Vec::new();
    for h in shared.hosts() {
        let (Some(since), Some(error)) = (h.down_since, h.error) else {
            continue;
        };
        // The renewals waiting on it: those of the profiles whose SCM or token endpoint it is.
        let waiting = book
            .profiles()
            .values()
            .filter(|p| {
                host_of(&p.scm_url) == h.host
                    || host_of(&p.token_url) == h.host
                    // `[admin]`: its renewals wait for SCM's records too.
                    || p.admin.as_ref().is_some_and(|a| {
                        host_of(&a.url) == h.host || host_of(&a.token_url) == h.host
                    })
            })
            .map(|p| s.deferred.get(&p.name).copied().unwrap_or(0))
            .sum();
        out.push(Outage {
            kind: OutageKind::Unreachable,
            what: h.host,
            since,
            error,
            waiting,
        });
    }
    for (profile, (since, error)) in shared.refused_credentials() {
        out.push(Outage {
            kind: OutageKind::CredentialsRefused,
            waiting: s.deferred.get(&profile).copied().unwrap_or(0),
            what: profile.to_string(),
            since,
            error,
        });
    }
    out
}

/// `host:port` of a URL, as the request limits name hosts.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_default()
}
