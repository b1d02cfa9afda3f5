//! The service's lifecycle. [`Daemon`] owns the named tasks (scheduler, renewal passes, Jira
//! delivery, workflow poll, control socket, metrics); its loop waits for the next event (a
//! signal, a scheduler tick, a control request, a pass that finished) and hands each to its own
//! method. Reload swaps the engine and restarts the configuration's tasks through child
//! cancellation tokens; shutdown cancels them all and joins each, in order, within a grace time.

pub mod control;
pub mod metrics;
pub mod notify;
pub mod scheduler;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use sectigo_core::clock::SharedClock;
use sectigo_core::config::Config;
use sectigo_engine::{CollectReport, CycleReport, Engine, EngineError, Mode, Shared};
use sectigo_state::{blocking, SharedStore, StoreError};

use crate::api::{service, DaemonInfo, ReloadReport, Reply, Request, Response};
use crate::lifecycle::Connector;
use crate::logging::Logging;
use scheduler::{Scheduler, SchedulerError, Tick};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("state: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Schedule(#[from] SchedulerError),
    #[error("installing the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// A long-running task with its own cancellation, a child of the daemon's.
struct Task {
    name: &'static str,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl Task {
    /// Cancels the task and waits for it, at most `grace`.
    async fn stop(self, grace: Duration) {
        self.cancel.cancel();
        if tokio::time::timeout(grace, self.handle).await.is_err() {
            warn!(
                "{} still running after {}s; stopping anyway",
                self.name,
                grace.as_secs()
            );
        }
    }
}

/// What a renewal pass did: a whole cycle, or the collection of renewals in flight.
enum Pass {
    Cycle(CycleReport),
    Collect(CollectReport),
}

/// What a control request asks of the daemon after it was carried out.
enum FollowUp {
    /// Run a cycle now (after the one under way), for this reason.
    CycleNow(&'static str),
    /// A command finished: it may have handed a hook to the root helper.
    CheckHooks,
}

/// SIGTERM and SIGINT stop, SIGHUP reloads; created once.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum Sig {
    Stop(&'static str),
    Reload,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> Sig {
        tokio::select! {
            _ = self.term.recv() => Sig::Stop("SIGTERM"),
            _ = self.int.recv() => Sig::Stop("SIGINT"),
            _ = self.hup.recv() => Sig::Reload,
        }
    }
}

pub struct Daemon {
    dir: PathBuf,
    /// The configuration at work (a reload swaps in a new one).
    conn: Connector,
    clock: SharedClock,
    engines: watch::Sender<Arc<Engine>>,
    logging: Logging,
    started: DateTime<Utc>,
    /// Parent of every task's cancellation.
    root: CancellationToken,
    scheduler: Scheduler,
    ticks: mpsc::Receiver<Tick>,
    requests: mpsc::Receiver<control::Incoming>,
    follow_ups: (mpsc::Sender<FollowUp>, mpsc::Receiver<FollowUp>),
    control: Option<Task>,
    metrics: Option<Task>,
    delivery: Option<Task>,
    /// Held by the Jira delivery at work: the one a reload starts waits for the one it
    /// replaces to finish its pass before it retries what waits (one deliverer at a time).
    delivery_turn: Arc<tokio::sync::Mutex<()>>,
    /// Tasks of a configuration replaced by a reload, still finishing; joined at shutdown.
    retired: Vec<Task>,
    /// Control requests being carried out.
    in_progress: JoinSet<()>,
    poll: Option<JoinHandle<()>>,
    pass: Option<JoinHandle<Result<Pass, EngineError>>>,
    /// A cycle tick came while a pass ran: run a cycle when it ends.
    cycle_wanted: bool,
    /// `run --once` requests waiting for the next cycle to start, and those waiting for the
    /// one under way to end (they hear its report).
    once_next: Vec<oneshot::Sender<Reply>>,
    once_current: Vec<oneshot::Sender<Reply>>,
    collect_at: Option<tokio::time::Instant>,
    /// `run --hooks-via DIR`: where hooks go to the root helper, and whether one is handed
    /// and not answered yet (the directory is then looked at every second, so its answer is
    /// taken at once; not at all otherwise).
    hooks_via: Option<PathBuf>,
    hooks_waiting: bool,
    /// Answers a pass was started for: one that pass could not take (its profile gone, say)
    /// starts no other.
    hook_answers_seen: std::collections::BTreeSet<std::ffi::OsString>,
    last_summary: Option<String>,
    last_reload: Option<ReloadReport>,
}

impl Daemon {
    /// Starts the daemon: the connector (the journal recovered, the profiles applied to the
    /// state), then the scheduler, the control socket, metrics, Jira delivery and the workflow
    /// poll. `hooks_via`: hand `[deploy] hook`s to the root helper through this directory
    /// (`run --hooks-via`), instead of running them here.
    pub async fn start(
        dir: PathBuf,
        cfg: Config,
        store: SharedStore,
        logging: Logging,
        hooks_via: Option<PathBuf>,
        clock: SharedClock,
    ) -> Result<Daemon, DaemonError> {
        let shared = match &hooks_via {
            Some(h) => Shared::new(&cfg).with_hook_helper(h.clone()),
            None => Shared::new(&cfg),
        };
        let (conn, _forced) = Connector::start(cfg, store, shared, clock.clone()).await?;
        let (tick_tx, ticks) = mpsc::channel(4);
        let mut scheduler = Scheduler::start(tick_tx.clone()).await?;
        scheduler
            .set_cycle(&conn.config().connector.schedule.cron)
            .await?;
        let (engines, _) = watch::channel(conn.engine().clone());
        let (req_tx, requests) = mpsc::channel(16);
        let mut d = Daemon {
            dir,
            started: clock.now(),
            clock,
            conn,
            engines,
            logging,
            scheduler,
            ticks,
            requests,
            follow_ups: mpsc::channel(4),
            control: None,
            metrics: None,
            delivery: None,
            delivery_turn: Arc::new(tokio::sync::Mutex::new(())),
            retired: Vec::new(),
            in_progress: JoinSet::new(),
            poll: None,
            pass: None,
            cycle_wanted: false,
            once_next: Vec::new(),
            once_current: Vec::new(),
            collect_at: None,
            hooks_waiting: false,
            hook_answers_seen: Default::default(),
            hooks_via,
            last_summary: None,
            last_reload: None,
            root: CancellationToken::new(),
        };
        d.control = d.spawn_control(req_tx);
        d.metrics = d.spawn_metrics().await;
        d.delivery = d.spawn_delivery(false);
        d.set_poll_schedule().await?;
        let schedule = &d.conn.config().connector.schedule;
        if schedule.run_at_start {
            let _ = tick_tx.try_send(Tick::Cycle);
        } else {
            // Without a cycle at start, renewals in flight and deploys owed from before the
            // stop are taken up by a collection pass at once.
            let owed = blocking(d.conn.store(), |s| {
                Ok(!s.in_flight()?.is_empty() || !s.deploys_owed()?.is_empty())
            })
            .await?;
            if owed {
                d.collect_at = Some(tokio::time::Instant::now());
            }
        }
        if d.conn.poller().is_some() {
            let _ = tick_tx.try_send(Tick::Poll);
        }
        match crate::harden::core_dumps_on() {
            Some(false) => debug!("core dumps off: the process is not dumpable"),
            _ => warn!("core dumps are possible: the process could not be made non-dumpable"),
        }
        let c = d.conn.config();
        info!(
            "sectigo-connector {} started: {} profiles, state in {}, schedule {:?}, next cycle {}",
            env!("CARGO_PKG_VERSION"),
            c.profiles.len(),
            c.connector.state.dir.display(),
            c.connector.schedule.cron,
            if c.connector.schedule.run_at_start {
                "now".to_string()
            } else {
                d.next_cycle_text()
            }
        );
        Ok(d)
    }

    /// Runs until SIGTERM or SIGINT, then shuts down.
    pub async fn run(mut self) -> Result<(), DaemonError> {
        let mut signals = Signals::new().map_err(DaemonError::Signals)?;
        let watchdog = notify::watchdog_interval();
        let mut wd = tokio::time::interval(watchdog.map_or(Duration::from_secs(86_400), |d| d / 2));
        let mut hooks = tokio::time::interval(HOOK_ANSWER_POLL);
        hooks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.check_hooks();
        notify::ready(&self.status_line());
        loop {
            tokio::select! {
                sig = signals.recv() => match sig {
                    Sig::Stop(name) => { info!("{name}: stopping"); break; }
                    Sig::Reload => { self.reload("SIGHUP").await; }
                },
                Some(t) = self.ticks.recv() => self.handle_tick(t),
                Some((req, reply)) = self.requests.recv() => self.handle_request(req, reply).await,
                Some(f) = self.follow_ups.1.recv() => self.handle_follow_up(f).await,
                r = async { self.pass.as_mut().expect("guarded").await }, if self.pass.is_some() => self.handle_pass_done(r),
                _ = sleep_until(self.collect_at), if self.collect_at.is_some() && self.pass.is_none() => self.start_pass(false),
                _ = wd.tick(), if watchdog.is_some() => notify::watchdog(),
                _ = hooks.tick(), if self.hooks_waiting => self.take_hook_answers(),
            }
        }
        self.shutdown().await
    }

    fn info(&self) -> DaemonInfo {
        DaemonInfo {
            pid: std::process::id(),
            started: Some(self.started),
            next_cycle: self.scheduler.next_cycle(self.clock.now()),
            last_reload: self.last_reload.clone(),
        }
    }

    fn next_cycle_text(&self) -> String {
        self.scheduler
            .next_cycle(self.clock.now())
            .map(sectigo_core::text::ts)
            .unwrap_or_else(|| "never".into())
    }

    fn status_line(&self) -> String {
        match &self.last_summary {
            Some(l) => format!("last cycle: {l}; next cycle {}", self.next_cycle_text()),
            None => format!("next cycle {}", self.next_cycle_text()),
        }
    }

    fn handle_tick(&mut self, t: Tick) {
        match t {
            Tick::Cycle if self.pass.is_some() => self.cycle_wanted = true,
            Tick::Cycle => self.start_pass(true),
            Tick::Poll => self.start_poll(),
        }
    }

    /// Starts a cycle (`true`) or a collection pass. A cycle that `run --once` waits for
    /// also waits briefly for SCM to issue what it renewed, as `run --once` alone does.
    fn start_pass(&mut self, cycle: bool) {
        self.collect_at = None;
        self.cycle_wanted = false;
        let e = self.conn.engine().clone();
        let cancel = self.root.child_token();
        let settle = if cycle && !self.once_next.is_empty() {
            self.once_current.append(&mut self.once_next);
            Some(self.conn.config().connector.renewal.collect_poll_secs)
        } else {
            None
        };
        self.pass = Some(tokio::spawn(async move {
            if cycle {
                info!("cycle started");
                let mut rep = e.cycle().run(Mode::Live, &cancel).await?;
                if let Some(secs) = settle {
                    crate::lifecycle::settle(&e, &mut rep, secs, &cancel).await?;
                }
                return Ok(Pass::Cycle(rep));
            }
            let mut r = e.collector().collect_pending().await?;
            r.pending = e.in_flight().await?;
            // A deploy owed (its hook failing, say) keeps the collection passes coming; each
            // deploy waits out its own backoff.
            r.pending += r.deploys_owed;
            Ok(Pass::Collect(r))
        }));
    }

    fn handle_pass_done(&mut self, r: Result<Result<Pass, EngineError>, tokio::task::JoinError>) {
        self.pass = None;
        // `run --once` hears the cycle it waited for (a collection pass is not one).
        if !matches!(r, Ok(Ok(Pass::Collect(_)))) {
            let answer: Reply = match &r {
                Ok(Ok(Pass::Cycle(rep))) => Ok(Response::Cycle(crate::api::CycleRun::of(rep))),
                Ok(Err(e)) => Err(crate::api::ApiError::new(
                    crate::api::ErrorKind::Failed,
                    format!("the cycle failed: {e:#}"),
                )),
                _ => Err(crate::api::ApiError::new(
                    crate::api::ErrorKind::Failed,
                    "the cycle ended abnormally (see the log)",
                )),
            };
            for w in self.once_current.drain(..) {
                let _ = w.send(answer.clone());
            }
        }
        let pending = match r {
            Ok(Ok(Pass::Cycle(rep))) => {
                let s = &rep.summary;
                let line = format!(
                    "{} renewed, {} renewal requests, {} failed, {} pending collection, {} due without auto-renew",
                    s.renewed, s.requested, s.failed, s.pending, s.skipped_no_auto_renew
                );
                info!("cycle finished: {line}");
                self.last_summary = Some(line);
                s.pending + rep.deploys_owed
            }
            Ok(Ok(Pass::Collect(c))) => {
                if c.renewed > 0 || c.failed > 0 {
                    info!(
                        "collection pass: {} renewed, {} failed, {} still pending",
                        c.renewed, c.failed, c.pending
                    );
                }
                c.pending
            }
            Ok(Err(e)) => {
                error!("cycle failed: {e:#}");
                0
            }
            Err(e) => {
                error!("cycle task ended abnormally: {e}");
                0
            }
        };
        self.check_hooks();
        if self.cycle_wanted {
            self.start_pass(true);
        } else if pending > 0 {
            let every = Duration::from_secs(self.conn.config().connector.renewal.collect_poll_secs);
            self.collect_at = Some(tokio::time::Instant::now() + every);
        }
        notify::status(&self.status_line());
    }

    /// Starts a workflow poll unless one is under way (the poll's cron may fire faster than a
    /// poll takes).
    fn start_poll(&mut self) {
        let Some(poller) = self.conn.poller().cloned() else {
            return;
        };
        if self.poll.as_ref().is_some_and(|p| !p.is_finished()) {
            return;
        }
        let engine = self.conn.engine().clone();
        self.poll = Some(tokio::spawn(async move {
            let r = poller.poll(&engine).await;
            if r.done + r.rejected + r.unknown + r.collected > 0 {
                info!("Jira workflow poll: {r}");
            }
        }));
    }

    async fn handle_request(&mut self, req: Request, reply: oneshot::Sender<Reply>) {
        if req == Request::Reload {
            let r = self.reload("reload command").await;
            let _ = reply.send(Ok(Response::Reloaded(r)));
            return;
        }
        if req == Request::RunOnce {
            info!("run --once: running a cycle now, as asked");
            self.once_next.push(reply);
            self.handle_tick(Tick::Cycle);
            return;
        }
        if let Request::ProfilesRename { .. } = &req {
            // The command renamed the file; the state moves here, then the configuration is
            // read again, and the command hears both.
            let engine = self.conn.engine().clone();
            let cfg = self.conn.config().clone();
            let mut r = service::execute(req, &engine, &cfg, None).await;
            if let Ok(Response::Renamed(rep)) = &mut r {
                rep.reload = Some(self.reload("a profile rename").await);
            }
            let _ = reply.send(r);
            return;
        }
        let engine = self.conn.engine().clone();
        let cfg = self.conn.config().clone();
        let info = self.info();
        let follow_ups = self.follow_ups.0.clone();
        self.in_progress.spawn(async move {
            let r = service::execute(req, &engine, &cfg, Some(&info)).await;
            let f = match &r {
                Ok(Response::ForceRenewStarted { .. }) => {
                    Some(FollowUp::CycleNow("a force renewal was started"))
                }
                // An imported certificate that is due is renewed now, not at the next tick:
                // `certs show` says "renew now".
                Ok(Response::Imported(s))
                    if service::any_renewed_now(&engine, &s.imported)
                        .await
                        .unwrap_or(false) =>
                {
                    Some(FollowUp::CycleNow("an imported certificate is due"))
                }
                _ => None,
            };
            if let Some(f) = f {
                let _ = follow_ups.send(f).await;
            }
            let _ = reply.send(r);
            // Never waits (a full queue, a stop under way): the next pass looks too.
            let _ = follow_ups.try_send(FollowUp::CheckHooks);
        });
        // Reap the requests already answered.
        while self.in_progress.try_join_next().is_some() {}
    }

    /// Whether a hook handed to the root helper awaits its answer (or an answer awaits the
    /// daemon): then its directory is looked at every second.
    fn check_hooks(&mut self) {
        let Some(dir) = self.hooks_via.as_deref() else {
            return;
        };
        let (asked, answers) = hook_files(dir);
        // An answer taken is gone: the same certificate's next answer is new again.
        self.hook_answers_seen.retain(|a| answers.contains(a));
        self.hooks_waiting = asked || answers.iter().any(|a| !self.hook_answers_seen.contains(a));
    }

    /// The root helper answered: a collection pass takes the answer now (it runs the deploys
    /// owed), rather than at the next poll.
    fn take_hook_answers(&mut self) {
        let Some(dir) = self.hooks_via.as_deref() else {
            self.hooks_waiting = false;
            return;
        };
        let (asked, answers) = hook_files(dir);
        let new = answers.iter().any(|a| !self.hook_answers_seen.contains(a));
        if new && self.pass.is_none() {
            debug!("the hook helper answered: taking its answers now");
            self.hook_answers_seen = answers.into_iter().collect();
            self.start_pass(false);
            self.hooks_waiting = asked;
        } else {
            self.hooks_waiting = asked || new;
        }
    }

    async fn handle_follow_up(&mut self, f: FollowUp) {
        match f {
            FollowUp::CheckHooks => self.check_hooks(),
            FollowUp::CycleNow(why) => {
                info!("{why}: running a cycle now");
                self.handle_tick(Tick::Cycle);
            }
        }
    }

    /// Re-reads the configuration; applies it when it is valid, keeps the running one when
    /// not. The verdict is logged, kept for `status`, and returned (the `reload` command).
    async fn reload(&mut self, cause: &'static str) -> ReloadReport {
        info!(
            "{cause}: reloading the configuration from {}",
            self.dir.display()
        );
        notify::reloading();
        let d = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&d)).await;
        let mut due = BTreeMap::new();
        let errors = match loaded {
            Err(e) => vec![format!("loading the configuration failed: {e}")],
            Ok(Err(errs)) => errs.0.iter().map(|e| e.to_string()).collect(),
            Ok(Ok(new)) => match self.conn.reconfigure(new) {
                Err(e) => vec![e.to_string()],
                Ok(conn) => {
                    // What it will cost, told before it applies (the state as it is now).
                    match self.conn.engine().due_change(conn.config(), true).await {
                        Ok(d) => due = d,
                        Err(e) => warn!("cannot tell what the new configuration makes due: {e}"),
                    }
                    match self.apply(conn).await {
                        Ok(()) => vec![],
                        Err(e) => vec![e.to_string()],
                    }
                }
            },
        };
        let report = ReloadReport {
            at: self.clock.now(),
            cause: cause.to_string(),
            profiles: self.conn.config().profiles.len(),
            config_dir: self.dir.clone(),
            due: if errors.is_empty() {
                due
            } else {
                BTreeMap::new()
            },
            errors,
        };
        if report.applied() {
            info!(
                "configuration reloaded: {} profiles, next cycle {}",
                report.profiles,
                self.next_cycle_text()
            );
            for (profile, d) in &report.due {
                warn!(profile = %profile, "{}", crate::render::due_change_line(profile, d, true));
            }
        } else {
            error!(
                "configuration reload failed, keeping the running configuration: {}",
                report.errors.join("; ")
            );
        }
        self.last_reload = Some(report.clone());
        notify::ready(&self.status_line());
        report
    }

    /// Makes `new` the running configuration.
    async fn apply(&mut self, new: Connector) -> Result<(), DaemonError> {
        let (old, cfg) = (&self.conn.config().connector, &new.config().connector);
        if cfg.state.dir != old.state.dir {
            warn!(
                "[state] dir changed to {}; this takes effect at the next restart",
                cfg.state.dir.display()
            );
        }
        if cfg.control.socket != old.control.socket {
            warn!("[control] socket changed; this takes effect at the next restart");
        }
        if cfg.metrics.listen != old.metrics.listen {
            warn!("[metrics] listen changed; this takes effect at the next restart");
        }
        self.scheduler.set_cycle(&cfg.schedule.cron).await?;
        if let Err(e) = self.logging.set_level(&cfg.log.level) {
            warn!("{e}");
        }
        self.conn = new;
        self.engines.send_replace(self.conn.engine().clone());
        // The old deliverer finishes its pass; the new one starts with the new settings and
        // tries what waits at once: a reload is how a fixed Jira token takes effect.
        self.retired.retain(|t| !t.handle.is_finished());
        if let Some(old) = self.delivery.take() {
            old.cancel.cancel();
            self.retired.push(old);
        }
        self.delivery = self.spawn_delivery(true);
        // A poll under way finishes with the old poller; the next uses the new one (one poll
        // at a time, see `Shared`).
        self.set_poll_schedule().await?;
        match self.conn.apply_profiles().await {
            Ok(true) => self.handle_tick(Tick::Cycle),
            Ok(false) => {}
            Err(e) => error!("applying the new profiles to the state failed: {e}"),
        }
        Ok(())
    }

    /// Fires the workflow poll on its cron, when the configuration has a poller.
    async fn set_poll_schedule(&mut self) -> Result<(), DaemonError> {
        let cron = self.conn.poller().map(|p| p.config().poll_cron.clone());
        if let (Some(c), Some(jc)) = (&cron, &self.conn.config().connector.jira) {
            info!("Jira workflow: polling {} for requests on {c:?}", jc.url);
        }
        self.scheduler.set_poll(cron.as_deref()).await?;
        Ok(())
    }

    /// Starts the Jira delivery of the configuration at work. `retry`: after a reload, the
    /// updates waiting for their retry time (a refused token, say) are tried at once.
    fn spawn_delivery(&self, retry: bool) -> Option<Task> {
        let d = self.conn.deliverer()?;
        if let Some(jc) = &self.conn.config().connector.jira {
            info!("delivering Jira updates to {} ({:?})", jc.url, jc.flavor);
        }
        let cancel = self.root.child_token();
        let wake = self.conn.engine().shared().outbox.clone();
        let turn = self.delivery_turn.clone();
        let c = cancel.clone();
        Some(Task {
            name: "Jira delivery",
            cancel,
            handle: tokio::spawn(async move {
                let _turn = tokio::select! {
                    _ = c.cancelled() => return,
                    t = turn.lock_owned() => t,
                };
                if retry {
                    match d.retry_now().await {
                        Ok(0) => {}
                        Ok(n) => info!("configuration reloaded: the {n} Jira updates waiting for a retry are tried now"),
                        Err(e) => error!("Jira delivery: state error: {e}"),
                    }
                }
                d.run(&wake, &c).await
            }),
        })
    }

    fn spawn_control(&self, tx: mpsc::Sender<control::Incoming>) -> Option<Task> {
        let path = &self.conn.config().connector.control.socket;
        let cancel = self.root.child_token();
        let hello = crate::api::Hello::of(&self.conn.config().connector.state.dir);
        match control::serve(path, hello, tx, cancel.clone()) {
            Ok(handle) => Some(Task {
                name: "control socket",
                cancel,
                handle,
            }),
            Err(e) => {
                warn!("control socket {} unavailable ({e}); commands cannot reach the daemon while it runs", path.display());
                None
            }
        }
    }

    async fn spawn_metrics(&self) -> Option<Task> {
        let addr = self.conn.config().connector.metrics.listen?;
        let cancel = self.root.child_token();
        match metrics::serve(addr, self.engines.subscribe(), cancel.clone()).await {
            Ok((handle, bound)) => {
                info!("metrics on http://{bound}/metrics");
                Some(Task {
                    name: "metrics",
                    cancel,
                    handle,
                })
            }
            Err(e) => {
                warn!("[metrics] listen {addr}: cannot listen ({e}); metrics are off");
                None
            }
        }
    }

    /// What a stop waits for, in words (`None`: nothing): the cycle or collection under way,
    /// the Jira workflow's poll, the commands being carried out, and the SCM calls in flight.
    async fn under_way(
        store: &SharedStore,
        commands: &JoinSet<()>,
        poll: Option<&JoinHandle<()>>,
        pass: bool,
    ) -> Option<String> {
        let mut parts = Vec::new();
        if pass {
            parts.push("the renewal pass under way".to_string());
        }
        if poll.is_some_and(|p| !p.is_finished()) {
            parts.push("the Jira workflow's poll".to_string());
        }
        if !commands.is_empty() {
            parts.push(sectigo_core::text::count(
                commands.len() as u64,
                "command",
                "commands",
            ));
        }
        if parts.is_empty() {
            return None;
        }
        let calls: Vec<String> = blocking(store, |s| s.in_flight())
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| matches!(r.state, sectigo_model::CertState::RenewRequested { .. }))
            .map(|r| {
                format!(
                    "the renewal of {} ({})",
                    sectigo_core::text::Escaped(&r.subject_cn),
                    r.id
                )
            })
            .collect();
        let mut what = parts.join(", ");
        if !calls.is_empty() {
            what.push_str(&format!(": SCM's answer to {}", calls.join(", ")));
        }
        Some(what)
    }

    /// Stops in order: no new work (scheduler, control socket, metrics), then the work under
    /// way finishes its SCM calls (their answers must be recorded), then Jira delivery, then
    /// the connector stops (notify commands finish, the store is flushed).
    async fn shutdown(mut self) -> Result<(), DaemonError> {
        notify::stopping();
        self.root.cancel();
        let grace = Duration::from_secs(self.conn.config().connector.scm.timeout_secs + 5);
        self.scheduler.shutdown().await;
        for t in [self.control.take(), self.metrics.take()]
            .into_iter()
            .flatten()
        {
            t.stop(grace).await;
        }
        // The work under way finishes its SCM calls (their answers must be recorded); none
        // starts. What it waits for is said at once, and again while it lasts.
        let mut commands = std::mem::take(&mut self.in_progress);
        let (poll, pass) = (self.poll.take(), self.pass.take());
        if let Some(what) =
            Self::under_way(self.conn.store(), &commands, poll.as_ref(), pass.is_some()).await
        {
            info!("stopping: waiting up to {}s for {what}", grace.as_secs());
            let all = async {
                while commands.join_next().await.is_some() {}
                if let Some(p) = poll {
                    let _ = p.await;
                }
                if let Some(p) = pass {
                    let _ = p.await;
                }
            };
            if !wait_saying(&what, grace, all).await {
                warn!("{what}: still running after {}s; stopping anyway (a renewal or enrollment in flight will show an unknown outcome)", grace.as_secs());
            }
        }
        for t in self
            .delivery
            .take()
            .into_iter()
            .chain(self.retired.drain(..))
        {
            t.stop(grace).await;
        }
        self.conn.stop().await?;
        info!("stopped");
        notify::flush();
        Ok(())
    }
}

/// Awaits `fut` for at most `grace` (false when it did not end); while it lasts, from two
/// seconds on, says every five what it waits for.
async fn wait_saying(
    what: &str,
    grace: Duration,
    fut: impl std::future::Future<Output = ()>,
) -> bool {
    let start = tokio::time::Instant::now();
    tokio::pin!(fut);
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    let mut remind =
        tokio::time::interval_at(start + Duration::from_secs(2), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = &mut fut => return true,
            _ = &mut deadline => return false,
            _ = remind.tick() => info!(
                "stopping: still waiting for {what} ({}s of at most {}s)",
                start.elapsed().as_secs(),
                grace.as_secs()
            ),
        }
    }
}

/// How often the hooks directory is looked at while a hook awaits the root helper's answer.
const HOOK_ANSWER_POLL: Duration = Duration::from_secs(1);

/// Whether the hooks directory holds requests (`*.request`: handed, not answered), and its
/// answers (`*.result`: not taken yet).
fn hook_files(dir: &std::path::Path) -> (bool, Vec<std::ffi::OsString>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (false, Vec::new());
    };
    let (mut asked, mut answers) = (false, Vec::new());
    for e in entries.flatten() {
        let p = e.path();
        match p.extension().and_then(|x| x.to_str()) {
            Some("request") => asked = true,
            Some("result") => answers.push(e.file_name()),
            _ => {}
        }
    }
    (asked, answers)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
