//! `run` (the daemon), `run --once`, `run-hooks` and `demo`: each starts the same
//! [`Connector`](crate::lifecycle::Connector) and drives it its own way.

use std::path::{Path, PathBuf};

use sectigo_core::config::Config;
use sectigo_engine::Shared;

use super::output::{emit, write_out};
use super::runtime;
use crate::api::{service, CycleRun, Reply, Request, Response};
use crate::exit::{CliError, Exit};
use crate::lifecycle::{Connector, OnceReport};
use crate::render;

/// `run-hooks --from DIR`: exit 1 when any hook failed or a request was refused (the counts
/// in its last line), or DIR itself was refused.
pub fn hooks(dir: &Path, from: &Path) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    // Root's helper logs to its unit's journal (or standard error) only: never into the
    // daemon's `[log] file` directory, which the service user controls.
    let mut log = cfg.connector.log.clone();
    log.file = None;
    let _log = crate::logging::init(&log)?;
    let s = runtime()?
        .block_on(crate::hooks::serve(from, &cfg))
        .map_err(CliError::failed)?;
    if s.ran > 0 || s.rejected > 0 {
        tracing::info!(
            "deploy hooks: {} run, {} failed; {} refused",
            s.ran,
            s.failed,
            sectigo_core::text::count(s.rejected as u64, "request", "requests")
        );
    }
    Ok(if s.failed > 0 || s.rejected > 0 {
        Exit::Failed.code()
    } else {
        0
    })
}

pub fn daemon(dir: &Path, hooks_via: Option<PathBuf>) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    let logging = crate::logging::init(&cfg.connector.log)?;
    let store = sectigo_state::open(&cfg.connector.state)?;
    runtime()?.block_on(async move {
        let clock = sectigo_core::clock::system();
        let daemon =
            crate::daemon::Daemon::start(dir.to_path_buf(), cfg, store, logging, hooks_via, clock)
                .await?;
        daemon.run().await
    })?;
    Ok(0)
}

/// `run --once`: one cycle, one Jira poll and delivery, against the state; while the daemon
/// runs, the daemon runs the cycle now and this prints what it did (the same exit codes).
/// (`--dry-run` is a request: it goes through the daemon when one runs.)
pub fn once(dir: &Path) -> Result<i32, CliError> {
    let daemon = crate::api::client::Endpoint::of(dir);
    let through_daemon = runtime()?.block_on(async {
        let reply = super::waiting(
            &Request::RunOnce,
            crate::api::client::send(&daemon, &Request::RunOnce),
        )
        .await?;
        Ok::<_, CliError>(match reply {
            None => None,
            Some(r) => {
                let status = crate::api::client::send(&daemon, &Request::Status).await;
                Some((r, status.ok().flatten()))
            }
        })
    })?;
    if let Some((reply, status)) = through_daemon {
        return Ok(once_through_daemon(reply, status));
    }
    // Root never opens the service user's state: the cycle runs as its owner.
    if let Some(owner) = super::owner::Owner::of_state(dir) {
        return owner.rerun(dir, &["run", "--once"]);
    }
    let cfg = Config::load(dir)?;
    let _log = crate::logging::init(&cfg.connector.log)?;
    let store = sectigo_state::open(&cfg.connector.state)?;
    runtime()?.block_on(async move {
        let shared = Shared::new(&cfg);
        let clock = sectigo_core::clock::system();
        let (conn, _) = Connector::start(cfg, store, shared, clock).await?;
        let report = conn.once().await?;
        print_once(&report, conn.config().connector.jira.is_some());
        conn.stop().await?;
        let status = service::execute(Request::Status, conn.engine(), conn.config(), None).await;
        Ok(once_exit(report.cycle.summary.failed, status.ok()))
    })
}

/// `run --once`'s exit: 1 when the cycle failed somewhere or anything needs a person (this
/// run's failures, and what earlier runs left: unknown outcomes, failing deploys, stalls), for
/// cron and CI; each such thing on standard error.
fn once_exit(failed: u64, status: Option<Response>) -> i32 {
    let needs: Vec<String> = match status {
        Some(Response::Status(st)) => render::needs_a_person(&st)
            .into_iter()
            .filter(|l| !l.starts_with("daemon:"))
            .collect(),
        _ => Vec::new(),
    };
    for l in &needs {
        eprintln!("needs a person: {l}");
    }
    if failed > 0 || !needs.is_empty() {
        Exit::Failed.code()
    } else {
        0
    }
}

/// `run --once` answered by the running daemon: its cycle, then what the daemon's status
/// says about Jira and about what needs a person.
fn once_through_daemon(reply: Reply, status: Option<Reply>) -> i32 {
    let c = match reply {
        Ok(Response::Cycle(c)) => c,
        other => return emit(other, false),
    };
    let (out, err) = render::cycle_run(&c);
    write_out(&out);
    eprint!("{err}");
    let status = status.and_then(Result::ok);
    if let Some(Response::Status(st)) = &status {
        if st.jira.configured {
            println!(
                "jira: {} updates queued (the daemon delivers them)",
                st.jira.pending
            );
        }
    }
    once_exit(c.summary.failed, status)
}

fn print_once(report: &OnceReport, jira: bool) {
    if let Some(r) = &report.poll {
        println!("jira workflow: {r}");
        for e in &r.errors {
            eprintln!("jira workflow: {e}");
        }
    }
    let (out, err) = render::cycle_run(&CycleRun::of(&report.cycle));
    write_out(&out);
    if jira {
        let (delivered, pending) = report.jira.unwrap_or_default();
        println!("jira: {delivered} updates delivered, {pending} still queued (delivered by the daemon, or the next run)");
    }
    eprint!("{err}");
}

#[cfg(feature = "demo")]
pub fn demo(verbose: bool, keep: bool) -> Result<i32, CliError> {
    runtime()?.block_on(crate::demo::run(verbose, keep))
}

#[cfg(not(feature = "demo"))]
pub fn demo(_verbose: bool, _keep: bool) -> Result<i32, CliError> {
    Err(CliError::usage(
        "this build has no demo (the packages leave the simulators out); run it from a source checkout: cargo run -- demo",
    ))
}
