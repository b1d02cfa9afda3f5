//! The command line: the words ([`args`]), what each command does (here and in the modules by
//! concern: [`check`], [`run`], [`certs`], [`state`]), how a reply is written ([`output`];
//! how it looks on a terminal is `crate::render`'s), and every failure mapped to an exit code (`crate::exit`).
//!
//! A command that reads or changes the state goes through the running daemon's control socket
//! when the daemon runs (it holds the state), and opens the state itself when it does not.

mod args;
mod certs;
mod check;
mod discover;
mod online;
pub mod output;
mod owner;
mod profiles;
mod run;
mod state;

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use sectigo_core::clock::{Clock, SystemClock};
use sectigo_core::config::Config;
use sectigo_engine::{Engine, ImportLine, Shared};

use crate::api::{service, ErrorKind, Reply, Request};
use crate::exit::{CliError, Exit};
pub use args::{CertsCommand, Cli, Command, ProfilesCommand, StateCommand};
use output::{confirmed, emit, emit_check, write_out};

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
    crate::harden::no_core_dumps();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // The error may quote SCM, Jira or a file: no terminal escape gets through.
            let text = format!("{:#}", e.error);
            eprintln!(
                "sectigo-connector: {}",
                sectigo_core::text::EscapedLines(&text)
            );
            e.exit.code()
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sectigo-worker")
        .build()
        .map_err(|e| CliError::new(Exit::Failed, e))
}

/// How a request's reply is shown.
#[derive(Debug, Default)]
struct Show {
    json: bool,
    /// `status --check`: the lines that need a person, and the exit code for monitoring.
    check: bool,
    /// `certs export --out DIR`: where the files the reply carries are written.
    export_to: Option<PathBuf>,
}

fn dispatch(cli: Cli) -> Result<i32, CliError> {
    let dir = cli.config_dir;
    let (request, show) = match cli.command {
        Command::Demo { verbose, keep } => return run::demo(verbose, keep),
        Command::Man { section } => return Ok(man(&section)),
        Command::Completions { shell } => return Ok(completions(&shell)),
        Command::CheckConfig { online, issue } => {
            return check::check_config(&dir, online, issue.as_ref())
        }
        Command::Run {
            once: false,
            hooks_via,
            ..
        } => return run::daemon(&dir, hooks_via),
        Command::Run {
            once: true,
            dry_run: false,
            ..
        } => return run::once(&dir),
        Command::RunHooks { from } => return run::hooks(&dir, &from),
        Command::ServeLocal => return owner::serve(&dir),
        Command::Profiles {
            command: ProfilesCommand::Rename { old, new },
        } => return profiles::rename(&dir, old, new),
        Command::State {
            command: StateCommand::Export { file },
        } => return state::export(&dir, file.as_deref()),
        Command::State {
            command: StateCommand::Import { file },
        } => return state::import(&dir, &file),
        Command::Run {
            once: true,
            dry_run: true,
            ..
        } => (Request::DryRun, Show::default()),
        Command::Status { json, check } => (
            Request::Status,
            Show {
                json,
                check,
                export_to: None,
            },
        ),
        Command::Certs {
            command:
                CertsCommand::Discover {
                    profile,
                    cn,
                    expiring_within,
                    json,
                    import,
                },
        } => {
            let wanted = sectigo_engine::discover::Wanted {
                cn,
                expiring_within_days: expiring_within,
            };
            let args = discover::Args {
                profile,
                wanted,
                json,
                import,
            };
            return discover::discover(&dir, args);
        }
        Command::Certs { command } => certs_request(command)?,
        other => (simple_request(other), Show::default()),
    };
    ask(&dir, request, show)
}

/// The request of a command that needs nothing but its arguments.
fn simple_request(c: Command) -> Request {
    match c {
        Command::Reload => Request::Reload,
        Command::Renew { ids, yes } => Request::Renew { ids, yes },
        Command::ForceRenew { profile, yes } => Request::ForceRenew { profile, yes },
        Command::Profiles {
            command: ProfilesCommand::List,
        } => Request::ProfilesList,
        // The others were dispatched before.
        _ => Request::Status,
    }
}

/// The request of a `certs` command, and how its reply is shown.
fn certs_request(command: CertsCommand) -> Result<(Request, Show), CliError> {
    let plain = Show::default;
    Ok(match command {
        CertsCommand::List {
            profile,
            due,
            state,
            all,
            json,
        } => (
            Request::CertsList {
                profile,
                due,
                state,
                all,
            },
            Show { json, ..plain() },
        ),
        CertsCommand::Show { id, json } => (Request::CertsShow { id }, Show { json, ..plain() }),
        CertsCommand::Deploy { id } => (Request::CertsDeploy { id }, plain()),
        CertsCommand::Link { id, key } => (Request::CertsLink { id, key }, plain()),
        CertsCommand::Forget { id, yes } => (Request::CertsForget { id, yes }, plain()),
        CertsCommand::Plan { json } => (Request::CertsPlan, Show { json, ..plain() }),
        CertsCommand::Apply { yes } => (Request::CertsApply { yes }, plain()),
        CertsCommand::Revoke { id, reason, yes } => {
            (Request::CertsRevoke { id, reason, yes }, plain())
        }
        CertsCommand::Export { id, out } => (
            Request::CertsExport { id, key: true },
            Show {
                export_to: Some(out),
                ..plain()
            },
        ),
        CertsCommand::Resolve { id, renewed_as, .. } => (
            Request::CertsResolve {
                target: id,
                renewed_as,
            },
            plain(),
        ),
        CertsCommand::Discover { .. } => {
            return Err(CliError::usage(
                "certs discover runs where the command runs",
            ))
        }
        CertsCommand::Import {
            profile,
            cert_id,
            issue,
            name,
            from,
        } => {
            let lines = match (cert_id, from) {
                (Some(cert_id), _) => vec![ImportLine {
                    cert_id,
                    issue,
                    name,
                }],
                (None, Some(f)) => certs::read_import_list(&f)?,
                (None, None) => return Err(CliError::usage("give --cert-id ID or --from FILE")),
            };
            (
                Request::CertsImport {
                    profile,
                    lines,
                    scm_auto_renew: Vec::new(),
                },
                plain(),
            )
        }
    })
}

fn man(section: &str) -> i32 {
    print!(
        "{}",
        if section == "5" {
            crate::manpage::page5()
        } else {
            crate::manpage::page8(Cli::command())
        }
    );
    0
}

fn completions(shell: &str) -> i32 {
    use clap_complete::Shell;
    let shell = match shell {
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        _ => Shell::Bash,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sectigo-connector", &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if shell == Shell::Bash {
        // clap_complete spells a hyphenated binary's states two ways, so nothing past the
        // first word completes (clap-rs/clap#6421): use the loop's spelling.
        script = script.replace("sectigo__subcmd__connector", "sectigo__connector");
    }
    write_out(&script);
    0
}

/// Shows a reply as the command asked.
fn shown(reply: Reply, show: &Show) -> i32 {
    if show.check {
        return emit_check(reply);
    }
    emit(
        certs::write_export(reply, show.export_to.as_deref()),
        show.json,
    )
}

/// Awaits `fut`, the carrying out of `request`; on a terminal, a wait over two seconds says
/// what it waits for (a slow SCM, the daemon's cycle), so that a command never looks hung.
pub(crate) async fn waiting<T>(request: &Request, fut: impl std::future::Future<Output = T>) -> T {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return fut.await;
    }
    tokio::pin!(fut);
    tokio::select! {
        r = &mut fut => return r,
        _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
    }
    eprintln!("sectigo-connector: waiting for {} ...", waits_for(request));
    fut.await
}

/// What carrying out `request` may wait for, in words.
fn waits_for(request: &Request) -> String {
    let list = |ids: &[sectigo_core::names::CertRef]| {
        ids.iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match request {
        Request::Renew { ids, .. } => format!(
            "SCM to answer the renewal of {} (a billable call: its answer is recorded, so let it finish)",
            list(ids)
        ),
        Request::RunOnce => {
            "the daemon's cycle (renewals, then a short wait for SCM to issue them)".into()
        }
        Request::DryRun => "the token endpoints (the dry run asks each profile for a token)".into(),
        Request::CertsImport { lines, .. } => format!(
            "SCM: downloading {}",
            sectigo_core::text::count(lines.len() as u64, "certificate", "certificates")
        ),
        Request::CertsExport { id, .. } => format!("SCM: downloading certificate {id}"),
        Request::CertsDeploy { id } => {
            format!("the deploy of {id} (downloaded from SCM, the files written, its hook run)")
        }
        Request::CertsResolve { target, .. } => format!("SCM, to settle {target}"),
        Request::ForceRenew { .. } => "the state".into(),
        Request::Reload => "the daemon to read the configuration again".into(),
        Request::ProfilesRename { .. } => {
            "the daemon to move the certificates and read the configuration again".into()
        }
        Request::StateExport { .. } => "the daemon's snapshot of the state".into(),
        _ => "the daemon's answer (it may be busy with a cycle)".into(),
    }
}

/// Carries out `request`: through the running daemon, or against the state when none runs.
/// A request that needs consent is asked again with `yes` after a yes at a terminal.
fn ask(dir: &Path, request: Request, show: Show) -> Result<i32, CliError> {
    let daemon = crate::api::client::Endpoint::of(dir);
    runtime()?.block_on(async move {
        let mut request = request;
        let mut reply = waiting(&request, crate::api::client::send(&daemon, &request)).await;
        if let Ok(Some(Err(e))) = &reply {
            if e.kind == ErrorKind::Confirm {
                if let Some(yes) = confirmed(&request, &e.message) {
                    request = yes;
                    reply = waiting(&request, crate::api::client::send(&daemon, &request)).await;
                }
            }
        }
        if let Some(reply) = reply? {
            return Ok(shown(reply, &show));
        }
        if request == Request::Reload {
            return Err(CliError::temp(format!(
                "no daemon is running (no control socket at {}): nothing to reload; `check-config` validates the files",
                daemon.socket.display()
            )));
        }
        if let Some(owner) = owner::Owner::of_state(dir) {
            let mut sink = tokio::io::sink();
            let mut reply = waiting(&request, owner.reply(dir, &request, &mut sink)).await?;
            if let Err(e) = &reply {
                if e.kind == ErrorKind::Confirm {
                    if let Some(yes) = confirmed(&request, &e.message) {
                        reply = waiting(&yes, owner.reply(dir, &yes, &mut sink)).await?;
                    }
                }
            }
            return Ok(shown(reply, &show));
        }
        let reply = locally(dir, request).await?;
        Ok(shown(reply, &show))
    })
}

/// The state opened here (no daemon runs), with the configuration and the log it needs.
pub(crate) struct Here {
    pub cfg: Config,
    pub engine: Engine,
    _log: crate::logging::Logging,
}

impl Here {
    pub(crate) fn open(dir: &Path) -> Result<Here, CliError> {
        let cfg = Config::load(dir)?;
        let log = crate::logging::init(&cfg.connector.log)?;
        let store = sectigo_state::open(&cfg.connector.state)?;
        let engine = Engine::new(
            &cfg,
            store,
            Shared::new(&cfg),
            sectigo_core::clock::system(),
        )?;
        Ok(Here {
            cfg,
            engine,
            _log: log,
        })
    }

    async fn execute(&self, request: Request) -> Reply {
        service::execute(request, &self.engine, &self.cfg, None).await
    }

    /// Lets the `[notify]` commands this started finish.
    async fn close(self) {
        self.engine
            .shared()
            .notifier
            .drain(sectigo_engine::notify::TIMEOUT)
            .await;
    }
}

/// Carries out `request` against the state, opened here, without asking anyone anything
/// (`serve-local`: the command run as the state's owner for root).
async fn execute_here(dir: &Path, request: Request) -> Result<Reply, CliError> {
    let here = Here::open(dir)?;
    let reply = here.execute(request).await;
    here.close().await;
    Ok(reply)
}

/// Carries out `request` against the state, opened here (no daemon runs).
async fn locally(dir: &Path, request: Request) -> Result<Reply, CliError> {
    let here = Here::open(dir)?;
    let mut reply = waiting(&request, here.execute(request.clone())).await;
    if let Err(e) = &reply {
        if e.kind == ErrorKind::Confirm {
            if let Some(yes) = confirmed(&request, &e.message) {
                reply = waiting(&yes, here.execute(yes.clone())).await;
            }
        }
    }
    here.close().await;
    Ok(reply)
}

/// The wall clock's time, for what a command prints.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    SystemClock.now()
}
