//! The renewal engine: one cycle collects renewals in flight, decides what is due (through the
//! pure [`policy`]), and renews it through SCM with every billable call journaled in the store
//! before it is sent and after it is answered.

mod admin;
pub mod deploy;
mod enroll;
mod import;
pub mod inventory;
pub mod notify;
pub mod policy;
mod renew;
mod resolve;

pub use admin::Renamed;
pub use enroll::IssueOutcome;
pub use inventory::{Inventory, Problem, ProfileCounts, Visit};
pub use renew::CollectReport;
pub use resolve::{Finding, Resolved};

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use import::{is_issue_key, parse_import_lines, ImportLine, ImportSummary};
use policy::{Decision, Reason, RenewPolicy};

use sectigo_core::config::{Config, Profile, RenewalConfig};
use sectigo_core::text::ts;
use sectigo_jira::events::Event;
use sectigo_scm::{ClientSettings, Limits, ProfileCreds, ScmClient, ScmError};
use sectigo_state::{blocking, CertRecord, CertState, CycleSummary, SharedStore, StoreError};
use sectigo_state::{ForceRun, OutboxItem};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no certificate with id {0:?} is tracked (see `certs list`)")]
    UnknownCert(String),
    #[error("no profile named {0:?} is configured (see `profiles list`)")]
    UnknownProfile(String),
    #[error("{0}")]
    Refused(String),
    /// The request itself is wrong (a usage error): an id, key or name that cannot be.
    #[error("{0}")]
    Invalid(String),
    #[error("SCM client: {0}")]
    Client(#[from] sectigo_scm::ClientError),
    #[error("SCM: {0}")]
    Scm(#[from] ScmError),
    #[error("state export: {0}")]
    Export(#[from] sectigo_state::ExportError),
}

/// A certificate the cycle acted on, or would act on in a dry run.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: String,
    pub profile: String,
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

/// What became of one renewal attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewOutcome {
    Requested {
        new_id: String,
    },
    Skipped(String),
    Failed(String),
    /// Failed for a reason that passes (SCM or its token endpoint unreachable, 5xx, 429):
    /// nothing was billed, and the backoff tries again.
    Unreachable(String),
    Unknown(String),
}

/// What survives a configuration reload: the per-host request limits, and the certificates
/// whose renewal is under way (so that a `renew ID` and a cycle, or two engines across a reload,
/// can never renew the same certificate at once).
#[derive(Clone)]
pub struct Shared {
    pub(crate) limits: Arc<Limits>,
    /// Woken when a Jira update is queued.
    pub outbox: Arc<tokio::sync::Notify>,
    pub counters: Arc<Counters>,
    busy: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Held for a whole Jira workflow poll: a poller started by a reload waits for the old
    /// one's poll to finish, so no two polls ever handle the same request.
    workflow: Arc<tokio::sync::Mutex<()>>,
    /// `run --hooks-via DIR`: deploy hooks are run by the root helper unit through DIR, not
    /// by this (sandboxed) process.
    pub(crate) hook_helper: Option<std::path::PathBuf>,
    /// `[notify] command`, shared across reloads (its commands under way are waited for at
    /// shutdown).
    pub notifier: notify::Notifier,
}

impl Shared {
    /// Hands `[deploy] hook`s to the root helper through `dir` (see [`deploy::helper`]).
    pub fn with_hook_helper(mut self, dir: std::path::PathBuf) -> Self {
        self.hook_helper = Some(dir);
        self
    }

    pub fn new(cfg: &Config) -> Self {
        Shared {
            limits: Arc::new(Limits::new(
                cfg.connector.scm.max_concurrent,
                cfg.connector.scm.max_requests_per_second,
            )),
            busy: Arc::default(),
            outbox: Arc::default(),
            counters: Arc::default(),
            workflow: Arc::default(),
            hook_helper: None,
            notifier: notify::Notifier::new(cfg.connector.notify.clone()),
        }
    }

    /// Held for a whole Jira workflow poll (see the field).
    pub async fn workflow_poll(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.workflow.clone().lock_owned().await
    }

    fn claim(&self, id: &str) -> Option<Claim> {
        let mut b = self.busy.lock().expect("busy lock");
        b.insert(id.to_string()).then(|| Claim {
            busy: self.busy.clone(),
            id: id.to_string(),
        })
    }
}

/// Renewal outcomes since the daemon started (for metrics).
#[derive(Debug, Default)]
pub struct Counters {
    pub requested: std::sync::atomic::AtomicU64,
    pub renewed: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub unknown: std::sync::atomic::AtomicU64,
    /// Refused by SCM for a reason a person must fix there (retried on the backoff).
    pub refused: std::sync::atomic::AtomicU64,
    /// Accepted but not issued within `[renewal] collect_timeout_hours`.
    pub stalled: std::sync::atomic::AtomicU64,
    /// Deploys (files or hook) that failed, each attempt.
    pub deploy_failed: std::sync::atomic::AtomicU64,
}

/// A short id for one billable request, unique per certificate and instant: `r-` and 10 hex
/// digits of SHA-256(id, time). Journaled before the call and sent in its `comments`.
pub fn request_id(subject: &str, at: DateTime<Utc>) -> String {
    let seed = format!(
        "{subject}\n{}",
        at.timestamp_nanos_opt().unwrap_or_default()
    );
    let d = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    let hex: String = d.as_ref()[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("r-{hex}")
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Holds a certificate for one renewal; released on drop.
pub(crate) struct Claim {
    busy: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.busy.lock().expect("busy lock").remove(&self.id);
    }
}

pub struct Engine {
    shared: Shared,
    store: SharedStore,
    profiles: BTreeMap<String, Profile>,
    clients: BTreeMap<String, Arc<ScmClient>>,
    renewal: RenewalConfig,
    concurrency: usize,
    /// Jira is configured: events are queued for delivery.
    jira: bool,
    /// What requests from Jira issues may do (`[jira.workflow]`).
    limits: RequestLimits,
    /// Private keys made for `key_rotation = "new"`.
    keys: Arc<sectigo_state::KeyStore>,
    /// `[state] dir`: where a state export is spooled.
    state_dir: std::path::PathBuf,
}

/// The limits on requests from Jira issues: who may trigger billable calls, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// The profiles issues may use; `None`: all configured.
    pub profiles: Option<Vec<String>>,
    pub max_enrollments_per_day: u32,
    pub min_renewal_interval: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            profiles: None,
            max_enrollments_per_day: 20,
            min_renewal_interval: Duration::hours(24),
        }
    }
}

impl Engine {
    /// Builds the engine and one SCM client per profile. `limits` is shared per host.
    pub fn new(cfg: &Config, store: SharedStore, shared: Shared) -> Result<Engine, EngineError> {
        let clients = scm_clients(cfg, &shared)?;
        shared.notifier.set(cfg.connector.notify.clone());
        Ok(Engine {
            keys: Arc::new(sectigo_state::KeyStore::new(&cfg.connector.state.dir)),
            state_dir: cfg.connector.state.dir.clone(),
            shared,
            store,
            profiles: cfg.profiles.clone(),
            clients,
            renewal: cfg.connector.renewal.clone(),
            concurrency: cfg.connector.scm.max_concurrent * 2,
            jira: cfg.connector.jira.is_some(),
            limits: cfg
                .connector
                .jira
                .as_ref()
                .and_then(|j| j.workflow.as_ref())
                .map(|w| RequestLimits {
                    profiles: w.profiles.clone(),
                    max_enrollments_per_day: w.max_enrollments_per_day,
                    min_renewal_interval: Duration::hours(w.min_renewal_interval_hours as i64),
                })
                .unwrap_or_default(),
        })
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn profiles(&self) -> &BTreeMap<String, Profile> {
        &self.profiles
    }

    /// Asks the profile's token endpoint for a token (free): what a dry run can prove about
    /// the credentials without a billable call.
    pub async fn check_token(&self, profile: &str) -> Result<(), EngineError> {
        self.client(profile)?.reserve().await?;
        Ok(())
    }

    /// The profile's `[deploy]`, if it has one.
    fn deploy_config(&self, profile: &str) -> Option<&sectigo_core::config::DeployConfig> {
        self.profiles.get(profile).and_then(|p| p.deploy.as_ref())
    }

    fn client(&self, profile: &str) -> Result<&Arc<ScmClient>, EngineError> {
        self.clients
            .get(profile)
            .ok_or_else(|| EngineError::UnknownProfile(profile.into()))
    }

    /// Reads the journal left by a previous run: a renew call whose answer was never recorded
    /// has an unknown outcome. Marks those, loudly, before anything new is done.
    pub async fn recover(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let inflight = blocking(&self.store, |s| s.in_flight()).await?;
        let mut n = 0;
        for mut rec in inflight {
            if let CertState::RenewRequested { due, request, .. } = rec.state.clone() {
                error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                    "renewal outcome unknown: the daemon stopped after journaling a renew call for {} (expires {}) and before recording SCM's answer; SCM may have renewed (and billed) it. It will not be renewed again automatically: check SCM, then run `sectigo-connector renew {}` if it was not renewed, or `certs import` the new certificate if it was",
                    rec.subject_cn, ts(rec.not_after), rec.id);
                rec.state = CertState::OutcomeUnknown {
                    due,
                    at: now,
                    request,
                };
                rec.log(now, "renewal outcome unknown (daemon stopped mid-call)");
                let ev = self.event(
                    Event::OutcomeUnknown {
                        cert: &rec,
                        reason: "the daemon stopped between a renew call and recording its answer",
                    },
                    now,
                );
                self.commit(vec![rec], ev).await?;
                n += 1;
            }
        }
        n += self.recover_enrollments(now).await?;
        if n > 0 {
            self.flush().await?;
        }
        Ok(n)
    }

    /// Brings the remembered profiles in line with the configured ones: renames recognised
    /// by client_id and scm_url, orphans reported, force renewals started on off → on.
    /// Returns true when a force renewal started (the daemon then runs a cycle at once).
    pub async fn sync_profiles(&self, now: DateTime<Utc>) -> Result<bool, EngineError> {
        let mut force_started = false;
        let remembered = blocking(&self.store, |s| s.profile_states()).await?;
        let configured = self
            .profiles
            .iter()
            .map(|(n, p)| (n.clone(), p.identity()))
            .collect();
        let ch = policy::profile_changes(&configured, &remembered);
        for (old, new) in &ch.renamed {
            let (o, n) = (old.clone(), new.clone());
            let moved = blocking(&self.store, move |s| s.rename_profile(&o, &n)).await?;
            info!(profile = %new, "profile file renamed by hand: {old:?} is now {new:?} (same client_id and scm_url); moved its {moved} certificates");
        }
        for old in &ch.vanished {
            let o = old.clone();
            let n = blocking(&self.store, move |s| s.by_profile(&o))
                .await?
                .iter()
                .filter(|c| c.state.is_live())
                .count();
            if n > 0 {
                warn!(profile = %old, "profile {old:?} is no longer configured: its {n} certificates are orphaned and will not be renewed; restore its file, or `certs forget` them");
            }
        }
        let mut states = blocking(&self.store, |s| s.profile_states()).await?;
        for p in self.profiles.values() {
            let mut st = states.remove(&p.name).unwrap_or_default();
            let before = st.clone();
            st.client_id = p.client_id.clone();
            st.scm_url = p.identity().1;
            if let Some(run) = policy::force_run_to_start(p.force_renewal, &st, now) {
                info!(profile = %p.name, "force renewal started: every certificate of profile {:?} will be renewed by {}", p.name, run.deadline);
                st.force = Some(run);
                force_started = true;
            }
            st.force_setting_seen = p.force_renewal;
            if st != before {
                let (name, st) = (p.name.clone(), st);
                blocking(&self.store, move |s| s.put_profile_state(&name, &st)).await?;
            }
        }
        self.flush().await?;
        Ok(force_started)
    }

    /// Starts a force renewal of one profile now (the `force-renew` command).
    pub async fn start_force_renewal(
        &self,
        profile: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, EngineError> {
        if !self.profiles.contains_key(profile) {
            return Err(EngineError::UnknownProfile(profile.into()));
        }
        let name = profile.to_string();
        let mut st = blocking(&self.store, {
            let n = name.clone();
            move |s| s.profile_state(&n)
        })
        .await?
        .unwrap_or_default();
        let p = &self.profiles[profile];
        st.client_id = p.client_id.clone();
        st.scm_url = p.identity().1;
        st.force_setting_seen = p.force_renewal;
        let run = policy::new_force_run(now, "command");
        let deadline = run.deadline;
        st.force = Some(run);
        blocking(&self.store, move |s| s.put_profile_state(&name, &st)).await?;
        self.flush().await?;
        info!(profile = %profile, "force renewal started by command: every certificate will be renewed by {deadline}", deadline = ts(deadline));
        Ok(deadline)
    }

    /// Every configured profile's renewal policy, with its force run if one is under way.
    pub async fn policies(
        &self,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, RenewPolicy>, EngineError> {
        let states = blocking(&self.store, |s| s.profile_states()).await?;
        Ok(self
            .profiles
            .values()
            .map(|p| {
                let st = states.get(&p.name).cloned().unwrap_or_default();
                let mut force = st.force.clone().filter(|r| r.completed.is_none());
                if dry_run && force.is_none() {
                    force = policy::force_run_to_start(p.force_renewal, &st, now);
                }
                let pol = RenewPolicy {
                    expiry_window_days: p.expiry_window_days,
                    auto_renew: p.auto_renew,
                    force,
                };
                (p.name.clone(), pol)
            })
            .collect())
    }

    /// The decision for one certificate under the current configuration (for `certs show`).
    pub async fn explain(
        &self,
        rec: &CertRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Decision>, EngineError> {
        let pols = self.policies(false, now).await?;
        Ok(pols.get(&rec.profile).map(|p| policy::decide(rec, p, now)))
    }

    /// One cycle. In a dry run nothing is written, to SCM or to the state.
    pub async fn run_cycle(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
        cancel: &CancellationToken,
    ) -> Result<CycleReport, EngineError> {
        let mut report = CycleReport::default();
        report.summary.started = Some(now);
        if !dry_run {
            let c = self.collect_pending(now).await?;
            report.summary.renewed += c.renewed;
            report.summary.failed += c.failed;
        }

        // Select: certificates inside the widest window, plus every certificate of profiles
        // under force renewal. The index keeps this proportional to what is due.
        let pols = self.policies(dry_run, now).await?;
        let widest = pols
            .values()
            .map(|p| p.expiry_window_days)
            .max()
            .unwrap_or(0);
        let until = now + Duration::days(widest);
        let mut candidates =
            blocking(&self.store, move |s| s.active_expiring_before(until)).await?;
        for (name, p) in &pols {
            if p.force.is_some() {
                let n = name.clone();
                let certs = blocking(&self.store, move |s| s.by_profile(&n)).await?;
                candidates.extend(certs.into_iter().filter(|c| c.state == CertState::Active));
            }
        }
        candidates.sort_by(|a, b| (a.not_after, &a.id).cmp(&(b.not_after, &b.id)));
        candidates.dedup_by(|a, b| a.id == b.id);

        let mut to_renew = Vec::new();
        for rec in candidates {
            let Some(p) = pols.get(&rec.profile) else {
                continue;
            }; // orphaned
            let d = policy::decide(&rec, p, now);
            match &d {
                Decision::Renew { reason, .. } => to_renew.push((rec.id.clone(), *reason)),
                Decision::ReportNoAutoRenew { .. } => {
                    report.summary.skipped_no_auto_renew += 1;
                    if !dry_run {
                        self.report_no_auto_renew(rec.clone(), now).await?;
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
        if dry_run {
            report.summary.requested = to_renew.len() as u64;
            return Ok(report);
        }

        let outcomes: Vec<RenewOutcome> = futures::stream::iter(to_renew)
            .map(|(id, reason)| async move {
                if cancel.is_cancelled() {
                    return RenewOutcome::Skipped("shutting down".into());
                }
                self.renew(&id, Some(reason))
                    .await
                    .unwrap_or_else(|e| RenewOutcome::Failed(e.to_string()))
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for o in &outcomes {
            match o {
                RenewOutcome::Requested { .. } => report.summary.requested += 1,
                RenewOutcome::Failed(e)
                | RenewOutcome::Unreachable(e)
                | RenewOutcome::Unknown(e) => {
                    report.summary.failed += 1;
                    if report.summary.errors.len() < 20 {
                        report.summary.errors.push(e.clone());
                    }
                }
                RenewOutcome::Skipped(_) => {}
            }
        }
        if !cancel.is_cancelled() {
            let c = self.collect_pending(now).await?;
            report.summary.renewed += c.renewed;
            report.summary.failed += c.failed;
            report.deploys_owed = c.deploys_owed;
        }
        self.finish_force_runs(Utc::now()).await?;
        report.summary.pending = blocking(&self.store, |s| s.in_flight()).await?.len() as u64;
        report.summary.finished = Some(Utc::now());
        let s = report.summary.clone();
        blocking(&self.store, move |st| st.put_last_cycle(&s)).await?;
        self.flush().await?;
        Ok(report)
    }

    async fn report_no_auto_renew(
        &self,
        mut rec: CertRecord,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        info!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "certificate {} expires {} and is inside the expiry window, but profile {:?} has auto_renew = false: not renewing",
            rec.subject_cn, ts(rec.not_after), rec.profile);
        rec.reported_no_auto_renew = Some(rec.not_after);
        rec.log(now, "expiring without auto-renew: reported");
        let ev = self.event(Event::ExpiringNoAutoRenew { cert: &rec }, now);
        self.commit(vec![rec], ev).await
    }

    async fn finish_force_runs(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let states = blocking(&self.store, |s| s.profile_states()).await?;
        for (name, mut st) in states {
            let Some(run) = st.force.clone().filter(|r| r.completed.is_none()) else {
                continue;
            };
            if !self.profiles.contains_key(&name) {
                continue;
            }
            let n = name.clone();
            let certs = blocking(&self.store, move |s| s.by_profile(&n)).await?;
            if policy::force_complete(&certs, &run) {
                let renewed = certs
                    .iter()
                    .filter(|c| c.renewed_at().is_some_and(|a| a >= run.started))
                    .count();
                info!(profile = %name, "force renewal of profile {name:?} complete: {renewed} certificates renewed since {}", run.started);
                st.force = Some(ForceRun {
                    completed: Some(now),
                    ..run
                });
                blocking(&self.store, move |s| s.put_profile_state(&name, &st)).await?;
            } else if now > run.deadline {
                warn!(profile = %name, "force renewal of profile {name:?} is past its deadline {} and not complete", run.deadline);
            }
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<CertRecord>, EngineError> {
        let id = id.to_string();
        Ok(blocking(&self.store, move |s| s.get(&id)).await?)
    }

    /// The Jira update for an event, when Jira is configured and the certificate is linked.
    fn event(&self, ev: Event<'_>, now: DateTime<Utc>) -> Option<OutboxItem> {
        if let Some(n) = ev.notification() {
            self.shared.notifier.send(n);
        }
        if self.jira {
            ev.outbox_item(now)
        } else {
            None
        }
    }

    /// Records and the Jira update they announce, in one transaction; wakes the delivery.
    async fn commit(
        &self,
        recs: Vec<CertRecord>,
        ev: Option<OutboxItem>,
    ) -> Result<(), EngineError> {
        let items: Vec<OutboxItem> = ev.into_iter().collect();
        let wake = !items.is_empty();
        blocking(&self.store, move |s| s.commit(&recs, &items)).await?;
        if wake {
            self.shared.outbox.notify_one();
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), EngineError> {
        Ok(blocking(&self.store, |s| s.flush()).await?)
    }
}

/// One SCM client per profile, sharing one HTTP client and the per-host request limits.
pub fn scm_clients(
    cfg: &Config,
    shared: &Shared,
) -> Result<BTreeMap<String, Arc<ScmClient>>, EngineError> {
    let settings = ClientSettings {
        timeout: std::time::Duration::from_secs(cfg.connector.scm.timeout_secs),
        retry_max: std::time::Duration::from_secs(cfg.connector.scm.retry_max_secs),
        ca_bundle: cfg.connector.scm.ca_bundle.clone(),
    };
    let http = sectigo_scm::http_client(&settings)?;
    Ok(cfg
        .profiles
        .values()
        .map(|p| {
            let creds = ProfileCreds {
                profile: p.name.clone(),
                scm_url: p.scm_url.clone(),
                token_url: p.token_url.clone(),
                client_id: p.client_id.clone(),
                client_secret: p.client_secret.clone(),
            };
            let c = ScmClient::new(http.clone(), creds, settings.clone(), shared.limits.clone());
            (p.name.clone(), Arc::new(c))
        })
        .collect())
}

/// A newly tracked, active certificate, from what its download says.
pub(crate) fn issued_record(
    id: &str,
    profile: &str,
    info: &sectigo_scm::CertInfo,
    origin: sectigo_state::CertOrigin,
    jira_issue: Option<String>,
) -> CertRecord {
    CertRecord {
        id: id.to_string(),
        profile: profile.to_string(),
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
    }
}

/// Explains a decision to an operator.
pub fn explain(d: &Decision) -> String {
    match d {
        Decision::Renew {
            reason: Reason::Window,
            ..
        } => "renew now: inside the expiry window".into(),
        Decision::Renew {
            reason: Reason::Forced,
            ..
        } => "renew now: the profile's force renewal covers it".into(),
        Decision::Renew {
            reason: Reason::Requested,
            ..
        } => "renew now: asked for from its Jira issue".into(),
        Decision::Backoff { until } => format!(
            "renew at {until}: waiting after a failed attempt",
            until = ts(*until)
        ),
        Decision::NotDue { at } => {
            format!("renew at {at}: when the expiry window opens", at = ts(*at))
        }
        Decision::ReportNoAutoRenew { .. } => {
            "report: due, but the profile has auto_renew = false".into()
        }
        Decision::Reported => "none: due, but the profile has auto_renew = false (reported)".into(),
        Decision::Idle { why } => format!("none: {why}"),
    }
}
