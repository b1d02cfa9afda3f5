//! The service's lifecycle: start (config, state, journal recovery), cycles on the schedule,
//! reload on SIGHUP, stop on SIGTERM/SIGINT, systemd notifications and watchdog, and the control
//! socket through which commands reach the running daemon.

pub mod control;
pub mod metrics;
pub mod notify;
pub mod schedule;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::commands::{self, DaemonInfo, Reply};
use crate::config::Config;
use crate::engine::{CycleReport, Engine, EngineError, Shared};
use crate::exit::{CliError, Exit};
use crate::logging::Logging;
use crate::state::{blocking, SharedStore};

/// Logs what was loaded: one line per profile, and the warnings.
pub fn log_config(cfg: &Config) {
    for p in cfg.profiles.values() {
        let mode = if p.force_renewal {
            "force renewal".to_string()
        } else if p.auto_renew {
            format!("renews {} days before expiry", p.expiry_window_days)
        } else {
            format!(
                "reports {} days before expiry, auto renew off",
                p.expiry_window_days
            )
        };
        info!(profile = %p.name, "profile {:?} loaded from {}: SCM {} as client {:?}, {mode}", p.name, p.file.display(), p.scm_url, p.client_id);
    }
    if cfg.profiles.is_empty() {
        warn!(
            "no profiles configured: add one file per profile in {}/profiles.d/",
            cfg.dir.display()
        );
    }
    for w in &cfg.warnings {
        warn!("{w}");
    }
}

fn summary_line(r: &CycleReport) -> String {
    let s = &r.summary;
    format!(
        "{} renewed, {} renewal requests, {} failed, {} pending collection, {} due without auto-renew",
        s.renewed, s.requested, s.failed, s.pending, s.skipped_no_auto_renew
    )
}

fn status_text(last: Option<&str>, next: DateTime<Utc>) -> String {
    match last {
        Some(l) => format!(
            "last cycle: {l}; next cycle {}",
            next.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => format!("next cycle {}", next.format("%Y-%m-%d %H:%M:%S UTC")),
    }
}

/// Converts a wall-clock time to a tokio deadline.
fn deadline(at: DateTime<Utc>) -> tokio::time::Instant {
    let d = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + d
}

enum Work {
    Cycle,
    Collect,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(
    dir: PathBuf,
    mut cfg: Config,
    store: SharedStore,
    logging: Logging,
) -> Result<(), CliError> {
    let started = Utc::now();
    let shared = Shared::new(&cfg);
    let mut engine = Arc::new(
        Engine::new(&cfg, store.clone(), shared.clone())
            .map_err(|e| CliError::new(Exit::Config, anyhow::anyhow!(e)))?,
    );
    let unknown = engine
        .recover(Utc::now())
        .await
        .map_err(|e| CliError::new(Exit::Failed, e))?;
    if unknown > 0 {
        error!("{unknown} renewals have an unknown outcome after the last stop; see `sectigo-connector status`");
    }
    engine
        .sync_profiles(Utc::now())
        .await
        .map_err(|e| CliError::new(Exit::Failed, e))?;
    log_config(&cfg);
    let (kick_tx, mut kick_rx) = mpsc::channel::<()>(1);
    let mut delivery_cancel = CancellationToken::new();
    let mut delivery = spawn_delivery(
        &cfg,
        store.clone(),
        shared.outbox.clone(),
        delivery_cancel.clone(),
    );
    let (engine_tx, engine_rx) = tokio::sync::watch::channel(engine.clone());
    let mut workflow_cancel = CancellationToken::new();
    let mut workflow = spawn_workflow(&cfg, engine_rx.clone(), workflow_cancel.clone());
    if let Some(addr) = cfg.connector.metrics.listen {
        match metrics::serve(addr, engine_rx.clone()).await {
            Ok(_) => info!("metrics on http://{addr}/metrics"),
            Err(e) => warn!("[metrics] listen {addr}: cannot listen ({e}); metrics are off"),
        }
    }

    let (ctl_tx, mut ctl_rx) = mpsc::channel::<control::Incoming>(16);
    let socket_path = cfg.connector.control.socket.clone();
    let _socket = match control::serve(&socket_path, ctl_tx) {
        Ok(_) => Some(control::SocketFile(socket_path.clone())),
        Err(e) => {
            warn!("control socket {} unavailable ({e}); commands cannot reach the daemon while it runs", socket_path.display());
            None
        }
    };

    let mut term = signal(SignalKind::terminate()).map_err(|e| CliError::new(Exit::Failed, e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| CliError::new(Exit::Failed, e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| CliError::new(Exit::Failed, e))?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<()>(1);

    let mut cron = schedule::parse(&cfg.connector.schedule.cron)
        .map_err(|e| CliError::new(Exit::Config, anyhow::anyhow!(e)))?;
    let mut next_cycle = if cfg.connector.schedule.run_at_start {
        Utc::now()
    } else {
        schedule::next_after(&cron, Utc::now()).unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    let mut collect_at: Option<DateTime<Utc>> = None;
    let mut running: Option<JoinHandle<Result<CycleReport, EngineError>>> = None;
    let cancel = CancellationToken::new();
    let watchdog = notify::watchdog_interval();
    let mut wd = tokio::time::interval(
        watchdog
            .map(|d| d / 2)
            .unwrap_or(Duration::from_secs(86_400)),
    );
    let mut last_summary: Option<String> = None;

    info!(
        "sectigo-connector {} started: {} profiles, state in {}, schedule {:?}, next cycle {}",
        env!("CARGO_PKG_VERSION"),
        cfg.profiles.len(),
        cfg.connector.state.dir.display(),
        cfg.connector.schedule.cron,
        next_cycle
    );
    notify::ready(&status_text(None, next_cycle));

    loop {
        let wake = collect_at.map_or(next_cycle, |c| c.min(next_cycle));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline(wake)), if running.is_none() => {
                let now = Utc::now();
                let work = if now >= next_cycle { Work::Cycle } else { Work::Collect };
                if let Work::Cycle = work {
                    next_cycle = schedule::next_after(&cron, now).unwrap_or(DateTime::<Utc>::MAX_UTC);
                }
                collect_at = None;
                let e = engine.clone();
                let c = cancel.clone();
                running = Some(tokio::spawn(async move {
                    match work {
                        Work::Cycle => {
                            info!("cycle started");
                            e.run_cycle(now, false, &c).await
                        }
                        Work::Collect => {
                            let r = e.collect_pending(now).await?;
                            let pending = blocking(e.store(), |s| s.in_flight()).await?.len() as u64;
                            let mut rep = CycleReport::default();
                            rep.summary.renewed = r.renewed;
                            rep.summary.failed = r.failed;
                            rep.summary.pending = pending;
                            Ok(rep)
                        }
                    }
                }));
            }
            r = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                running = None;
                match r {
                    Ok(Ok(rep)) => {
                        let line = summary_line(&rep);
                        if rep.summary.started.is_some() {
                            info!("cycle finished: {line}");
                        } else if rep.summary.renewed > 0 || rep.summary.failed > 0 {
                            info!("collection pass: {} renewed, {} failed, {} still pending", rep.summary.renewed, rep.summary.failed, rep.summary.pending);
                        }
                        if rep.summary.pending > 0 {
                            collect_at = Some(Utc::now() + chrono::Duration::seconds(cfg.connector.renewal.collect_poll_secs as i64));
                        }
                        if rep.summary.started.is_some() {
                            last_summary = Some(line);
                        }
                    }
                    Ok(Err(e)) => error!("cycle failed: {e:#}"),
                    Err(e) => error!("cycle task ended abnormally: {e}"),
                }
                notify::status(&status_text(last_summary.as_deref(), next_cycle));
            }
            Some((req, reply_tx)) = ctl_rx.recv() => {
                let e = engine.clone();
                let c = cfg.clone();
                let info = DaemonInfo { pid: std::process::id(), started: Some(started), next_cycle: Some(next_cycle) };
                let reload = reload_tx.clone();
                let kick = kick_tx.clone();
                tokio::spawn(async move {
                    let reply: Reply = commands::execute(req, &e, &c, Some(&info), Utc::now()).await;
                    if reply.reload {
                        let _ = reload.try_send(());
                    }
                    if reply.run_now {
                        let _ = kick.try_send(());
                    }
                    let _ = reply_tx.send(reply);
                });
            }
            Some(()) = kick_rx.recv() => {
                info!("a force renewal was started: running a cycle now");
                next_cycle = Utc::now();
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            r = async {
                tokio::select! {
                    _ = hup.recv() => "SIGHUP",
                    _ = reload_rx.recv() => "a profile rename",
                }
            } => {
                info!("{r}: reloading the configuration from {}", dir.display());
                notify::reloading();
                let d = dir.clone();
                let loaded = tokio::task::spawn_blocking(move || Config::load(&d)).await.expect("config load task");
                match loaded {
                    Err(errs) => error!("configuration reload failed, keeping the running configuration: {errs}"),
                    Ok(new) => match Engine::new(&new, store.clone(), shared.clone()) {
                        Err(e) => error!("configuration reload failed, keeping the running configuration: {e}"),
                        Ok(new_engine) => {
                            if new.connector.state.dir != cfg.connector.state.dir {
                                warn!("[state] dir changed to {}; this takes effect at the next restart", new.connector.state.dir.display());
                            }
                            if new.connector.control.socket != cfg.connector.control.socket {
                                warn!("[control] socket changed; this takes effect at the next restart");
                            }
                            if let Err(e) = logging.set_level(&new.connector.log.level) {
                                warn!("[log] level: {e}");
                            }
                            engine = Arc::new(new_engine);
                            engine_tx.send_replace(engine.clone());
                            delivery_cancel.cancel();
                            delivery_cancel = CancellationToken::new();
                            delivery = spawn_delivery(&new, store.clone(), shared.outbox.clone(), delivery_cancel.clone());
                            // The old poller stops after its current poll; the new one waits for
                            // it (one poll at a time, see `Shared`).
                            workflow_cancel.cancel();
                            workflow_cancel = CancellationToken::new();
                            let old_workflow = workflow.take();
                            workflow = spawn_workflow(&new, engine_rx.clone(), workflow_cancel.clone());
                            drop(old_workflow);
                            match engine.sync_profiles(Utc::now()).await {
                                Ok(true) => next_cycle = Utc::now(),
                                Ok(false) => {}
                                Err(e) => error!("applying the new profiles to the state failed: {e}"),
                            }
                            if new.connector.schedule.cron != cfg.connector.schedule.cron {
                                cron = schedule::parse(&new.connector.schedule.cron).expect("validated by Config::load");
                                next_cycle = schedule::next_after(&cron, Utc::now()).unwrap_or(DateTime::<Utc>::MAX_UTC);
                            }
                            cfg = new;
                            log_config(&cfg);
                            info!("configuration reloaded: {} profiles, next cycle {next_cycle}", cfg.profiles.len());
                        }
                    },
                }
                notify::ready(&status_text(last_summary.as_deref(), next_cycle));
            }
            _ = wd.tick(), if watchdog.is_some() => notify::watchdog(),
        }
    }

    notify::stopping();
    cancel.cancel();
    delivery_cancel.cancel();
    workflow_cancel.cancel();
    let grace = Duration::from_secs(cfg.connector.scm.timeout_secs + 5);
    if let Some(w) = workflow {
        // A poll under way finishes its SCM call (the answer must be recorded); none starts.
        if tokio::time::timeout(grace, w).await.is_err() {
            warn!("the Jira workflow poll is still running after {}s; stopping anyway (an enrollment in flight will show an unknown outcome)", grace.as_secs());
        }
    }
    if let Some(d) = delivery {
        let _ = d.await;
    }
    if let Some(task) = running {
        // Renewal calls already sent finish (their answers must be recorded); no new ones start.
        info!("waiting up to {}s for SCM calls in flight", grace.as_secs());
        if tokio::time::timeout(grace, task).await.is_err() {
            warn!("SCM calls still in flight after {}s; stopping anyway (their certificates will show an unknown outcome)", grace.as_secs());
        }
    }
    blocking(&store, |s| s.flush())
        .await
        .map_err(|e| CliError::new(Exit::Failed, e))?;
    info!("stopped");
    notify::flush();
    Ok(())
}

/// Starts delivering Jira updates, when Jira is configured. The task sleeps until an update
/// is queued or a retry is due: no polling while the outbox is empty.
fn spawn_delivery(
    cfg: &Config,
    store: SharedStore,
    wake: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    let jc = cfg.connector.jira.clone()?;
    let client = match crate::jira::JiraClient::new(&jc) {
        Ok(c) => c,
        Err(e) => {
            error!("Jira client: {e}; Jira updates stay queued");
            return None;
        }
    };
    let d = crate::jira::deliver::Deliverer::for_config(client, &jc, store);
    info!("delivering Jira updates to {} ({:?})", jc.url, jc.flavor);
    Some(tokio::spawn(async move {
        loop {
            let now = Utc::now();
            let wait = match d.pass(now).await {
                Ok(r) => r
                    .next
                    .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)),
                Err(e) => {
                    error!("Jira delivery: state error: {e}");
                    Some(Duration::from_secs(60))
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait.unwrap_or(Duration::ZERO)), if wait.is_some() => {}
            }
        }
    }))
}

/// Starts polling Jira for requests, when `[jira.workflow]` is on: on its own schedule
/// (`poll_cron`), first at once. Each poll uses the engine current at its start.
fn spawn_workflow(
    cfg: &Config,
    engines: tokio::sync::watch::Receiver<Arc<Engine>>,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    let jc = cfg.connector.jira.as_ref()?;
    let poller = match crate::workflow::Poller::new(jc) {
        Ok(p) => p?,
        Err(e) => {
            error!("Jira workflow: {e}; requests from Jira are not handled");
            return None;
        }
    };
    let cron = schedule::parse(&poller.config().poll_cron).expect("validated by Config::load");
    info!(
        "Jira workflow: polling {} for requests on {:?}",
        jc.url,
        poller.config().poll_cron
    );
    Some(tokio::spawn(async move {
        let mut next = Utc::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(deadline(next)) => {}
            }
            let engine = engines.borrow().clone();
            let r = poller.poll(&engine, Utc::now()).await;
            if r.done + r.rejected + r.unknown + r.collected > 0 {
                info!(
                    "Jira workflow poll: {} requests found, {} sent to SCM, {} refused, {} deferred, {} unknown, {} certificates collected",
                    r.found, r.done, r.rejected, r.deferred, r.unknown, r.collected
                );
            }
            next = schedule::next_after(&cron, Utc::now()).unwrap_or(DateTime::<Utc>::MAX_UTC);
        }
    }))
}

/// Delivers queued Jira updates for up to `limit` (for `run --once` and `demo`): returns
/// (delivered, still pending).
pub async fn deliver_for(cfg: &Config, store: SharedStore, limit: Duration) -> (usize, usize) {
    let Some(jc) = cfg.connector.jira.clone() else {
        return (0, 0);
    };
    let Ok(client) = crate::jira::JiraClient::new(&jc) else {
        return (0, 0);
    };
    let d = crate::jira::deliver::Deliverer::for_config(client, &jc, store);
    let end = tokio::time::Instant::now() + limit;
    let mut delivered = 0;
    loop {
        let now = Utc::now();
        match d.pass(now).await {
            Ok(r) => {
                delivered += r.delivered;
                let Some(at) = r.next else {
                    return (delivered, r.pending);
                };
                let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
                if tokio::time::Instant::now() + wait > end {
                    return (delivered, r.pending);
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                error!("Jira delivery: state error: {e}");
                return (delivered, 0);
            }
        }
    }
}
