//! The command line. `main` parses, dispatches, prints, and maps every failure to an exit code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use clap::{CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use sectigo_core::config::{Config, DEFAULT_CONFIG_DIR};
use sectigo_engine::{explain, parse_import_lines, Engine, ImportLine, Shared};

use crate::api::{render, service, Reply, Request};
use crate::exit::{self, CliError, Exit};

mod state;

const ABOUT: &str = "Keeps Sectigo Certificate Manager certificates renewed before they expire.";
const LONG_ABOUT: &str = "\
Keeps Sectigo Certificate Manager (SCM) certificates renewed before they expire, through SCM's \
REST Enrollment API, and keeps the Jira issues that track them in step.

Configuration: DIR/connector.toml (global settings) and DIR/profiles.d/NAME.toml (one file per \
Sectigo profile: client_id, client_secret, scm_url, expiry_window_days, auto_renew, \
force_renewal, ...). State (the certificate inventory): [state] dir, by default \
/var/lib/sectigo-connector. While the daemon runs, the other commands reach it through its \
control socket ([control] socket).

Exit codes: 0 success, 1 the work failed, 2 usage error, 75 temporary failure (state locked, \
SCM unreachable), 78 configuration error.";

#[derive(Debug, Parser)]
#[command(name = "sectigo-connector", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Configuration directory (connector.toml and profiles.d/).
    #[arg(long, global = true, env = "SECTIGO_CONNECTOR_CONFIG_DIR", default_value = DEFAULT_CONFIG_DIR, value_name = "DIR")]
    pub config_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (foreground; systemd Type=notify): renewal cycles on [schedule] cron,
    /// SIGHUP reloads the configuration, SIGTERM stops.
    Run {
        /// Run one cycle, wait briefly for renewals to be issued, then exit (1 if any failed).
        #[arg(long)]
        once: bool,
        /// With --once: decide and report what would be renewed, writing nothing to SCM, Jira
        /// or the state.
        #[arg(long, requires = "once")]
        dry_run: bool,
        /// Hand `[deploy] hook`s to the root helper (sectigo-connector-hooks.path) through
        /// this directory rather than running them: the packaged unit's sandbox cannot reload
        /// a web server. Without it, hooks run directly, as the user running the daemon.
        #[arg(long, value_name = "DIR", conflicts_with = "once")]
        hooks_via: Option<PathBuf>,
    },
    /// Run the deploy hooks the daemon asked for through DIR (`run --hooks-via DIR`), each as
    /// its profile configures it, and answer. Run as root by sectigo-connector-hooks.service.
    RunHooks {
        /// The directory the daemon writes its requests into (`run --hooks-via DIR`).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Validate connector.toml and every profile; print the profiles (secrets masked).
    CheckConfig {
        /// Also ask each profile's token endpoint for a token (free), and Jira whose
        /// credentials these are; report what is refused (exit 1).
        #[arg(long)]
        online: bool,
        /// With --online: check the configured transition names against the transitions
        /// Jira offers on this issue (they depend on its status: give one in the status the
        /// daemon moves issues from, e.g. a certificate's tracking issue).
        #[arg(long, value_name = "KEY", requires = "online")]
        issue: Option<String>,
    },
    /// The certificate inventory.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Renew certificates now, bypassing the backoff (also after a failed or unknown outcome:
    /// check SCM first). Billable: one certificate inside its expiry window goes ahead;
    /// several, or one not due, are listed with what they would bill and need --yes (or a yes
    /// at the prompt on a terminal).
    Renew {
        /// SCM certificate ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Bill without asking.
        #[arg(long)]
        yes: bool,
    },
    /// The profiles and their certificate counts.
    Profiles {
        #[command(subcommand)]
        command: ProfilesCommand,
    },
    /// Start a force renewal of a whole profile: every certificate renewed within 24 hours.
    /// Billable for each: says how many and needs --yes (or a yes at the prompt on a
    /// terminal).
    ForceRenew {
        /// The profile's name (its file is profiles.d/PROFILE.toml).
        profile: String,
        /// Bill without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Last and next cycle, counts by state, failures, orphaned certificates.
    Status {
        /// The report as JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// For monitoring: one line per thing that needs a person (a failed or unknown
        /// renewal, a failing deploy, a stall, a refused reload, orphaned certificates, Jira
        /// updates Jira refuses, the daemon not running); exit 1 if there is any, 0 if not.
        #[arg(long, conflicts_with = "json")]
        check: bool,
    },
    /// Re-read the configuration through the running daemon and wait for its verdict: exit 0
    /// when applied, 78 when refused (the running configuration stays; the errors name file and
    /// key). The unit's ExecReload= runs this, so `systemctl reload` fails on a bad configuration.
    Reload,
    /// Run the daemon's engine against the built-in SCM and Jira simulators on loopback, with
    /// sample profiles, certificates and issues, and show the renewals and Jira updates happen.
    /// Touches nothing outside a temporary directory, which is deleted at the end unless
    /// --keep. The daemon's log goes to a file in it (named at the start) unless --verbose.
    Demo {
        /// Show the daemon's log lines on standard error as well.
        #[arg(long)]
        verbose: bool,
        /// Keep the directory (configuration, state, log) and print commands to try on it.
        #[arg(long)]
        keep: bool,
    },
    /// Back up and restore the whole state: certificates with their history, retry state and
    /// journaled renewals, Jira issue records, queued Jira updates, profiles, and the private
    /// keys the daemon made.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Print a manual page (8: the command, 5: the configuration files), for packaging.
    #[command(hide = true)]
    Man {
        #[arg(value_parser = ["5", "8"])]
        section: String,
    },
    /// Print the shell completion script for SHELL (the packages install them).
    #[command(hide = true)]
    Completions {
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// The tracked certificates, earliest expiry first, with the days each has left.
    /// Superseded and revoked ones are kept for their history and listed with --all.
    List {
        /// Only this profile's.
        #[arg(long, value_name = "PROFILE")]
        profile: Option<String>,
        /// Only certificates inside their expiry window (or under force renewal), including
        /// those waiting out a retry.
        #[arg(long)]
        due: bool,
        /// Only this state: active, renew-requested, collecting, outcome-unknown, failed,
        /// superseded, revoked.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// Superseded and revoked certificates too.
        #[arg(long)]
        all: bool,
        /// The records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One certificate: subject, SANs, validity, state, history, linked issue, next action.
    /// ID is SCM's certificate id, or a name: the CN or `--name` of a live certificate.
    Show {
        /// SCM's certificate id, or the CN or `--name` of a live certificate.
        id: String,
        /// The record (history and next action included) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start tracking existing SCM certificates (downloads each to learn subject and notAfter).
    Import {
        /// The profile whose credentials reach the certificates.
        #[arg(long)]
        profile: String,
        /// One certificate id.
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        cert_id: Option<String>,
        /// With --cert-id: the Jira issue tracking it.
        #[arg(long, requires = "cert_id")]
        issue: Option<String>,
        /// With --cert-id: its directory under the profile's `[deploy] dir` (letters, digits,
        /// `.`, `-`, `_`); without it, the CN (`*.example.com` → `wildcard.example.com`).
        /// Its renewals keep the name.
        #[arg(long, requires = "cert_id", value_name = "NAME")]
        name: Option<String>,
        /// A file with one `ID [ISSUE-KEY]` per line (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Write a certificate's cert.pem, chain.pem and fullchain.pem into OUT/NAME/ (NAME: its
    /// `--name`, or the CN), downloaded from SCM now, switched in atomically as a deploy is.
    /// The files are written by this command, as the user running it.
    Export {
        /// The SCM certificate id.
        id: String,
        /// The directory to write into (default: the current one).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
    /// Link a certificate to a Jira issue.
    Link {
        /// The SCM certificate id.
        id: String,
        /// The Jira issue key (PROJECT-123); its renewals keep the link.
        key: String,
    },
    /// Stop tracking a certificate (its history is written to the log). A live certificate
    /// (still renewed) needs --yes, or a yes at the prompt on a terminal.
    Forget {
        /// The SCM certificate id.
        id: String,
        /// Forget it without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Settle an `outcome-unknown` renewal (ID: the certificate) or enrollment (ID: its Jira
    /// issue key) after checking SCM: the request id to search SCM's comments for is in `certs
    /// show`. Goes through the daemon while it runs.
    Resolve {
        /// The certificate id, or the issue key of an enrollment from Jira.
        id: String,
        /// SCM did issue this certificate for the lost request: download it, check its
        /// subject and SANs, and track it as the renewal (history and Jira link kept).
        #[arg(
            long,
            value_name = "NEW_ID",
            conflicts_with = "not_renewed",
            required_unless_present = "not_renewed"
        )]
        renewed_as: Option<String>,
        /// SCM holds no such request: the certificate is due again (an issue may ask again).
        #[arg(long)]
        not_renewed: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Write one consistent snapshot of the state as JSON lines to FILE (0600; written as
    /// FILE.partial and renamed when whole), or to standard output. Goes through the daemon
    /// while it runs (its work pauses only while the snapshot is spooled); the private keys go
    /// only to root and the service user, so run it as one of them.
    Export {
        /// Where to write (default: standard output, when it is not a terminal).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Restore an export into an empty state, with the daemon stopped. The whole file is
    /// checked before anything is written; a file cut short, edited or from another format
    /// version is refused and nothing is imported.
    Import {
        /// A file written by `state export`.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// The configured profiles, their settings and certificate counts (orphans too). LIVE:
    /// certificates tracked and renewed; PAST: superseded and revoked ones, kept for their
    /// history; WINDOW: the expiry window (or "force" during a force renewal); AUTO: auto_renew.
    List,
    /// Rename a profile: renames profiles.d/OLD.toml and moves its certificates, in one step.
    Rename {
        /// The profile's current name (profiles.d/OLD.toml).
        old: String,
        /// Its new name (profiles.d/NEW.toml; letters, digits, `-`, `_`).
        new: String,
    },
}

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
            eprintln!("sectigo-connector: {:#}", e.error);
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

/// Writes to standard output. A reader that went away (`| head -1`) ends the command quietly,
/// as it does for cat or grep, instead of a panic.
fn write_out(s: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("sectigo-connector: writing the output: {e}");
    }
}

/// Prints a reply, as text or as JSON, and returns its exit code.
pub(crate) fn emit(reply: Reply, json: bool) -> i32 {
    match reply {
        Ok(r) => {
            if json {
                write_out(&render::json(&r));
            } else {
                let (out, err) = render::text(&r, Utc::now());
                write_out(&out);
                eprint!("{err}");
            }
            exit::for_response(&r).code()
        }
        Err(e) => {
            eprintln!("error: {}", e.message);
            Exit::from(e.kind).code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32, CliError> {
    let dir = cli.config_dir;
    let mut export_to: Option<PathBuf> = None;
    let mut status_check = false;
    let (request, json) = match cli.command {
        Command::Demo { verbose, keep } => return demo(verbose, keep),
        Command::Man { section } => {
            print!(
                "{}",
                if section == "5" {
                    crate::manpage::page5()
                } else {
                    crate::manpage::page8(Cli::command())
                }
            );
            return Ok(0);
        }
        Command::Completions { shell } => {
            use clap_complete::Shell;
            let shell = match shell.as_str() {
                "zsh" => Shell::Zsh,
                "fish" => Shell::Fish,
                _ => Shell::Bash,
            };
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "sectigo-connector", &mut script);
            let mut script = String::from_utf8_lossy(&script).into_owned();
            if shell == Shell::Bash {
                // clap_complete spells a hyphenated binary's states two ways, so nothing past
                // the first word completes (clap-rs/clap#6421): use the loop's spelling.
                script = script.replace("sectigo__subcmd__connector", "sectigo__connector");
            }
            write_out(&script);
            return Ok(0);
        }
        Command::CheckConfig { online, issue } => {
            return check_config(&dir, online, issue.as_deref())
        }
        Command::Run {
            once: false,
            hooks_via,
            ..
        } => return run_daemon(&dir, hooks_via),
        Command::Run {
            once: true,
            dry_run: true,
            ..
        } => (Request::DryRun, false),
        Command::Run {
            once: true,
            dry_run: false,
            ..
        } => return run_once(&dir),
        Command::RunHooks { from } => return run_hooks(&dir, &from),
        Command::State {
            command: StateCommand::Export { file },
        } => return state::export(&dir, file.as_deref()),
        Command::State {
            command: StateCommand::Import { file },
        } => return state::import(&dir, &file),
        Command::Status { json, check } => {
            status_check = check;
            (Request::Status, json)
        }
        Command::Reload => (Request::Reload, false),
        Command::Renew { ids, yes } => (Request::Renew { ids, yes }, false),
        Command::ForceRenew { profile, yes } => (Request::ForceRenew { profile, yes }, false),
        Command::Profiles {
            command: ProfilesCommand::List,
        } => (Request::ProfilesList, false),
        Command::Profiles {
            command: ProfilesCommand::Rename { old, new },
        } => (Request::ProfilesRename { old, new }, false),
        Command::Certs { command } => match command {
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
                json,
            ),
            CertsCommand::Show { id, json } => (Request::CertsShow { id }, json),
            CertsCommand::Link { id, key } => (Request::CertsLink { id, key }, false),
            CertsCommand::Forget { id, yes } => (Request::CertsForget { id, yes }, false),
            CertsCommand::Export { id, out } => {
                export_to = Some(out);
                (Request::CertsExport { id, key: true }, false)
            }
            CertsCommand::Resolve { id, renewed_as, .. } => (
                Request::CertsResolve {
                    target: id,
                    renewed_as,
                },
                false,
            ),
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
                    (None, Some(f)) => read_import_list(&f)?,
                    (None, None) => {
                        return Err(CliError::usage("give --cert-id ID or --from FILE"))
                    }
                };
                (Request::CertsImport { profile, lines }, false)
            }
        },
    };
    let socket = Config::control_socket(&dir);
    let rt = runtime()?;
    rt.block_on(async move {
        // The daemon holds the state: go through it when it runs.
        let mut request = request;
        let mut reply = crate::daemon::control::send(&socket, &request).await;
        if let Ok(Some(Err(e))) = &reply {
            if e.kind == crate::api::ErrorKind::Confirm {
                if let Some(yes) = confirmed(&request, &e.message) {
                    request = yes;
                    reply = crate::daemon::control::send(&socket, &request).await;
                }
            }
        }
        match reply {
            Ok(Some(reply)) if status_check => return Ok(emit_check(reply)),
            Ok(Some(reply)) => return Ok(emit(write_export(reply, export_to.as_deref()), json)),
            Ok(None) => {}
            Err(e) => {
                return Err(CliError::temp(format!(
                    "cannot talk to the daemon through {}: {e}",
                    socket.display()
                )))
            }
        }
        if request == Request::Reload {
            return Err(CliError::temp(format!(
                "no daemon is running (no control socket at {}): nothing to reload; `check-config` validates the files",
                socket.display()
            )));
        }
        let cfg = Config::load(&dir)?;
        let _log = crate::logging::init(&cfg.connector.log)?;
        let store = sectigo_state::open(&cfg.connector.state)?;
        let engine = Engine::new(&cfg, store, Shared::new(&cfg))?;
        let mut reply = service::execute(request.clone(), &engine, &cfg, None, Utc::now()).await;
        if let Err(e) = &reply {
            if e.kind == crate::api::ErrorKind::Confirm {
                if let Some(yes) = confirmed(&request, &e.message) {
                    reply = service::execute(yes, &engine, &cfg, None, Utc::now()).await;
                }
            }
        }
        if status_check {
            return Ok(emit_check(reply));
        }
        Ok(emit(write_export(reply, export_to.as_deref()), json))
    })
}

/// A billable request the service wants confirmed: on a terminal, shows what it bills and
/// asks; `Some(the request with yes)` when the person says yes. Elsewhere `None` (the error,
/// which says to add --yes, is the answer).
fn confirmed(request: &Request, what: &str) -> Option<Request> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let text = what.trim_end_matches("run it again with --yes").trim_end();
    eprint!("{text}\nProceed? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return None;
    }
    match request.clone() {
        Request::Renew { ids, .. } => Some(Request::Renew { ids, yes: true }),
        Request::ForceRenew { profile, .. } => Some(Request::ForceRenew { profile, yes: true }),
        Request::CertsForget { id, .. } => Some(Request::CertsForget { id, yes: true }),
        _ => None,
    }
}

/// `status --check`: the lines that need a person, and 1 if there are any.
fn emit_check(reply: Reply) -> i32 {
    match reply {
        Ok(crate::api::Response::Status(s)) => {
            let lines = render::needs_a_person(&s);
            if lines.is_empty() {
                write_out("OK: nothing needs a person\n");
                Exit::Ok.code()
            } else {
                write_out(&lines.iter().map(|l| format!("{l}\n")).collect::<String>());
                Exit::Failed.code()
            }
        }
        other => emit(other, false),
    }
}

/// `certs export`: writes the files the reply carries into `out`, here, as this user.
fn write_export(reply: Reply, out: Option<&Path>) -> Reply {
    let (
        Some(out),
        Ok(crate::api::Response::Exported {
            id,
            name,
            cert,
            chain,
            mode,
            private_key,
        }),
    ) = (out, &reply)
    else {
        return reply;
    };
    let cfg = sectigo_core::config::DeployConfig {
        dir: out.to_path_buf(),
        hook: None,
        owner: None,
        group: None,
        mode: *mode,
    };
    let set = sectigo_engine::deploy::FileSet {
        cert: cert.clone(),
        chain: chain.clone(),
        key: private_key.clone().map(sectigo_core::secret::Secret::new),
    };
    match sectigo_engine::deploy::write_set(&cfg, name, id, &set) {
        Ok(_) => reply,
        Err(e) => Err(crate::api::ApiError::new(
            crate::api::ErrorKind::Failed,
            format!("certs export {id}: {e}"),
        )),
    }
}

fn read_import_list(f: &Path) -> Result<Vec<ImportLine>, CliError> {
    // A line is an id, an issue key, perhaps a comment: 64 KiB is no line of a real list.
    let read = |r: &mut dyn std::io::BufRead| match sectigo_core::lines::read_to_string(r, 64 << 10)
    {
        Err(e @ sectigo_core::lines::LineError::Io { .. }) => Err(CliError::new(Exit::Failed, e)),
        r => r.map_err(|e| CliError::usage(format!("{}: {e}, nothing imported", f.display()))),
    };
    let text = if f == Path::new("-") {
        read(&mut std::io::stdin().lock())?
    } else {
        let file = std::fs::File::open(f)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", f.display())))?;
        read(&mut std::io::BufReader::new(file))?
    };
    parse_import_lines(&text).map_err(|errs| {
        CliError::usage(format!(
            "{}: {}, nothing imported:\n  {}",
            f.display(),
            if errs.len() == 1 {
                "1 bad line".to_string()
            } else {
                format!("{} bad lines", errs.len())
            },
            errs.join("\n  ")
        ))
    })
}

fn check_config(dir: &Path, online: bool, issue: Option<&str>) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    let mut o = String::new();
    macro_rules! say {
        ($($t:tt)*) => {{
            let _ = writeln!(o, $($t)*);
        }};
    }
    let c = &cfg.connector;
    say!("configuration in {}: OK", dir.display());
    say!(
        "  state:     {} (cache {} MiB)",
        c.state.dir.display(),
        c.state.cache_mb
    );
    say!(
        "  schedule:  {:?}{}",
        c.schedule.cron,
        if c.schedule.run_at_start {
            ", and at start"
        } else {
            ""
        }
    );
    say!(
        "  log:       level {:?}, format {}{}",
        c.log.level,
        format!("{:?}", c.log.format).to_lowercase(),
        c.log
            .file
            .as_ref()
            .map(|f| format!(", files in {}", f.display()))
            .unwrap_or_default()
    );
    say!(
        "  scm:       timeout {}s, at most {} concurrent and {}/s per host, retries for up to {}s",
        c.scm.timeout_secs,
        c.scm.max_concurrent,
        c.scm.max_requests_per_second,
        c.scm.retry_max_secs
    );
    match &c.jira {
        Some(j) => say!(
            "  jira:      {} at {} (token {})",
            format!("{:?}", j.flavor).to_lowercase(),
            j.url,
            j.token
        ),
        None => say!("  jira:      off (no [jira] section)"),
    }
    match c.jira.as_ref().and_then(|j| j.workflow.as_ref()) {
        Some(w) => {
            say!(
                "  workflow:  requests from Jira polled on {:?}",
                w.poll_cron
            );
            say!("    enroll:  {}", w.enroll_jql);
            say!("    renew:   {}", w.renew_jql);
            say!("    revoke:  {}", w.revoke_jql);
            say!(
                "    fields:  CSR {:?}, profile {:?}, certificate id {:?}, revocation reason {}",
                w.csr_field,
                w.profile_field,
                w.cert_id_field,
                w.revoke_reason_field
                    .as_deref()
                    .map(|f| format!("{f:?}"))
                    .unwrap_or_else(|| format!("- (code {})", w.revoke_reason_code))
            );
            say!(
                "    then:    {:?} / {:?} / on failure {:?}",
                w.enrolled_transition,
                w.revoked_transition,
                w.failed_transition
            );
            say!(
                "    limits:  profiles {}; at most {} enrollments in 24 h; a renewal at most every {} h",
                match &w.profiles {
                    Some(p) => p.join(", "),
                    None => "all".into(),
                },
                w.max_enrollments_per_day,
                w.min_renewal_interval_hours
            );
        }
        None if c.jira.is_some() => say!("  workflow:  off ([jira.workflow] enabled = false)"),
        None => {}
    }
    say!("  control:   {}", c.control.socket.display());
    say!("profiles ({}):", cfg.profiles.len());
    for p in cfg.profiles.values() {
        say!("  {}  ({})", p.name, p.file.display());
        say!("    client_id:          {}", p.client_id);
        say!("    client_secret:      {}", p.client_secret);
        say!("    scm_url:            {}", p.scm_url);
        say!("    token_url:          {}", p.token_url);
        say!(
            "    expiry_window_days: {}{}",
            p.expiry_window_days,
            if p.force_renewal {
                " (irrelevant: force_renewal)"
            } else {
                ""
            }
        );
        say!(
            "    auto_renew:         {}{}",
            p.auto_renew,
            if p.force_renewal {
                " (irrelevant: force_renewal)"
            } else {
                ""
            }
        );
        say!("    force_renewal:      {}", p.force_renewal);
        say!("    ssl_cert_comments:  {:?}", p.ssl_cert_comments);
        say!(
            "    scm_profile_id:     {}",
            p.scm_profile_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into())
        );
        if !p.custom_fields.is_empty() {
            say!("    custom_fields:      {:?}", p.custom_fields);
        }
        if let Some(d) = &p.allowed_domains {
            say!(
                "    allowed_domains:    {} (enrollments from Jira)",
                d.join(", ")
            );
        }
        if let Some(d) = &p.deploy {
            say!(
                "    deploy:             {}/NAME/, mode {:04o}{}{}",
                d.dir.display(),
                d.mode,
                d.hook
                    .as_ref()
                    .map(|h| format!(", then {h:?}"))
                    .unwrap_or_default(),
                match (&d.owner, &d.group) {
                    (None, None) => String::new(),
                    (o, g) => format!(
                        ", owned by {}:{}",
                        o.as_deref().unwrap_or("-"),
                        g.as_deref().unwrap_or("-")
                    ),
                }
            );
        }
    }
    for w in &cfg.warnings {
        say!("warning: {w}");
    }
    for w in deploy_sandbox_warnings(&cfg, &unit_writable_paths()) {
        say!("warning: {w}");
    }
    write_out(&o);
    if online {
        return check_online(&cfg, issue);
    }
    Ok(0)
}

/// `check-config --online`: each profile's token endpoint, and Jira's authentication.
fn check_online(cfg: &Config, issue: Option<&str>) -> Result<i32, CliError> {
    let mut refused = 0;
    let mut lines = String::new();
    runtime()?.block_on(async {
        // SCM clients alone: the state (which a running daemon holds) is not opened.
        let clients = sectigo_engine::scm_clients(cfg, &Shared::new(cfg))?;
        for p in cfg.profiles.values() {
            match clients[&p.name].reserve().await {
                Ok(_) => {
                    let _ = writeln!(
                        lines,
                        "online: profile {}: the token endpoint {} gave a token",
                        p.name, p.token_url
                    );
                }
                Err(e) => {
                    refused += 1;
                    let _ = writeln!(
                        lines,
                        "online: profile {}: REFUSED by {}: {e}",
                        p.name, p.token_url
                    );
                }
            }
        }
        if let Some(jc) = &cfg.connector.jira {
            let client = sectigo_jira::JiraClient::new(jc)
                .map_err(|e| CliError::new(Exit::Config, anyhow::anyhow!("[jira]: {e}")))?;
            match client.myself().await {
                Ok((name, account)) => {
                    let _ = writeln!(
                        lines,
                        "online: jira {}: credentials taken, for {name} ({account})",
                        jc.url
                    );
                }
                Err(e) => {
                    refused += 1;
                    let _ = writeln!(lines, "online: jira {}: REFUSED: {e}", jc.url);
                }
            }
            let mut configured: Vec<(String, String)> = jc
                .transitions
                .iter()
                .map(|(ev, name)| (format!("[jira.transitions] {ev}"), name.clone()))
                .collect();
            if let Some(w) = &jc.workflow {
                configured.extend(w.transitions().iter().map(|(ev, name)| {
                    (format!("[jira.workflow] {ev}"), name.to_string())
                }));
            }
            match issue {
                _ if configured.is_empty() => {}
                None => {
                    let _ = writeln!(
                        lines,
                        "online: jira: the {} configured transitions are not checked: which Jira offers depends on an issue's status; `--issue KEY` checks them against one issue",
                        configured.len()
                    );
                }
                Some(key) => match client.transitions(key).await {
                    Ok(offered) => {
                        let names: Vec<String> = offered
                            .iter()
                            .map(|t| format!("{:?} (to {:?})", t.name, t.to))
                            .collect();
                        let _ = writeln!(
                            lines,
                            "online: jira: {key} offers {}",
                            if names.is_empty() { "no transition".to_string() } else { names.join(", ") }
                        );
                        for (what, name) in &configured {
                            let ok = offered.iter().any(|t| t.answers_to(name));
                            let _ = writeln!(
                                lines,
                                "online: jira: {what} = {name:?}: {}",
                                if ok { format!("offered on {key}") } else { format!("NOT offered on {key} in its status (a typo, or offered only from another status)") }
                            );
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        let _ = writeln!(lines, "online: jira: {key}: REFUSED: {e}");
                    }
                },
            }
        }
        Ok::<(), CliError>(())
    })?;
    write_out(&lines);
    Ok(if refused > 0 { Exit::Failed.code() } else { 0 })
}

/// The paths the installed unit's sandbox may write: its `ReadWritePaths=` and its state
/// directory. `None` when no sectigo-connector unit is loaded (not under systemd).
fn unit_writable_paths() -> Option<Vec<PathBuf>> {
    let out = std::process::Command::new("systemctl")
        .args([
            "show",
            "-p",
            "LoadState",
            "-p",
            "ReadWritePaths",
            "-p",
            "StateDirectory",
            "sectigo-connector.service",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    };
    if value("LoadState") != "loaded" {
        return None;
    }
    let mut paths: Vec<PathBuf> = value("ReadWritePaths")
        .split_whitespace()
        .map(|p| PathBuf::from(p.trim_start_matches(['-', '+'])))
        .collect();
    paths.extend(
        value("StateDirectory")
            .split_whitespace()
            .map(|d| Path::new("/var/lib").join(d)),
    );
    Some(paths)
}

/// A `[deploy] dir` the installed unit may not write: with the drop-in that fixes it.
fn deploy_sandbox_warnings(cfg: &Config, writable: &Option<Vec<PathBuf>>) -> Vec<String> {
    let Some(writable) = writable else {
        return Vec::new();
    };
    cfg.profiles
        .values()
        .filter_map(|p| {
            let d = p.deploy.as_ref()?;
            (!writable.iter().any(|w| d.dir.starts_with(w))).then(|| {
                format!(
                    "{}: [deploy] dir {} is read-only in the service's sandbox (ProtectSystem=strict): run `systemctl edit sectigo-connector` and add\n  [Service]\n  ReadWritePaths={}\n  or use a dir under /var/lib/sectigo-connector/",
                    p.file.display(),
                    d.dir.display(),
                    d.dir.display()
                )
            })
        })
        .collect()
}

fn run_hooks(dir: &Path, from: &Path) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    let _log = crate::logging::init(&cfg.connector.log)?;
    let (ran, failed) = runtime()?.block_on(sectigo_engine::deploy::helper::serve(from, &cfg));
    if ran > 0 {
        tracing::info!("deploy hooks: {ran} run, {failed} failed");
    }
    Ok(0)
}

fn run_daemon(dir: &Path, hooks_via: Option<PathBuf>) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    let logging = crate::logging::init(&cfg.connector.log)?;
    let store = sectigo_state::open(&cfg.connector.state)?;
    runtime()?.block_on(async move {
        let daemon =
            crate::daemon::Daemon::start(dir.to_path_buf(), cfg, store, logging, hooks_via).await?;
        daemon.run().await
    })?;
    Ok(0)
}

/// `run --once`: one cycle, one Jira poll and delivery, against the state (the daemon must
/// not run). (`--dry-run` is a request: it goes through the daemon when one runs.)
fn run_once(dir: &Path) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    let _log = crate::logging::init(&cfg.connector.log)?;
    let store = sectigo_state::open(&cfg.connector.state)?;
    runtime()?.block_on(async move {
        crate::daemon::log_config(&cfg);
        let shared = Shared::new(&cfg);
        let shared_notify = shared.notifier.clone();
        let engine = Arc::new(Engine::new(&cfg, store, shared)?);
        engine.recover(Utc::now()).await?;
        engine.sync_profiles(Utc::now()).await?;
        let report = engine
            .run_cycle(Utc::now(), false, &CancellationToken::new())
            .await?;
        let mut s = report.summary.clone();
        // Wait a little for renewals the CA has not issued yet; the daemon would poll them.
        let poll = std::time::Duration::from_secs(cfg.connector.renewal.collect_poll_secs.min(10));
        let until = tokio::time::Instant::now()
            + std::time::Duration::from_secs(cfg.connector.renewal.collect_poll_secs * 2);
        while s.pending > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(poll).await;
            let c = engine.collect_pending(Utc::now()).await?;
            s.renewed += c.renewed;
            s.failed += c.failed;
            s.pending = c.pending;
        }
        // Requests from Jira issues, when [jira.workflow] is on.
        let poller = match &cfg.connector.jira {
            Some(jc) => sectigo_workflow::Poller::new(jc)?,
            _ => None,
        };
        if let Some(p) = &poller {
            let r = p.poll(&engine, Utc::now()).await;
            println!("jira workflow: {r}");
            for e in &r.errors {
                eprintln!("jira workflow: {e}");
            }
            s.failed += r.unknown as u64;
        }
        let (jira_delivered, jira_pending) = match crate::daemon::deliverer(&cfg, engine.store().clone()) {
            Some(d) => d.drain(std::time::Duration::from_secs(30)).await,
            _ => (0, 0),
        };
        for p in &report.planned {
            println!(
                "{:<12} {:<16} {:<30} expires {}  {}",
                p.id,
                p.profile,
                p.subject_cn,
                render::ts(p.not_after),
                explain(&p.decision)
            );
        }
        println!("cycle: {} renewed, {} renewal requests, {} failed, {} still pending collection, {} due without auto-renew", s.renewed, s.requested, s.failed, s.pending, s.skipped_no_auto_renew);
        if cfg.connector.jira.is_some() {
            println!("jira: {jira_delivered} updates delivered, {jira_pending} still queued (delivered by the daemon, or the next run)");
        }
        for e in &s.errors {
            eprintln!("failed: {e}");
        }
        shared_notify.drain(sectigo_engine::notify::TIMEOUT).await;
        // Anything that needs a person (this run's failures, and what earlier runs left:
        // unknown outcomes, failing deploys, stalls) makes the exit 1, for cron and CI.
        let needs = match service::execute(Request::Status, &engine, &cfg, None, Utc::now()).await {
            Ok(crate::api::Response::Status(st)) => render::needs_a_person(&st)
                .into_iter()
                .filter(|l| !l.starts_with("daemon:"))
                .collect(),
            _ => Vec::new(),
        };
        for l in &needs {
            eprintln!("needs a person: {l}");
        }
        Ok(if s.failed > 0 || !needs.is_empty() {
            Exit::Failed.code()
        } else {
            0
        })
    })
}

#[cfg(feature = "demo")]
fn demo(verbose: bool, keep: bool) -> Result<i32, CliError> {
    runtime()?.block_on(crate::demo::run(verbose, keep))
}

#[cfg(not(feature = "demo"))]
fn demo(_verbose: bool, _keep: bool) -> Result<i32, CliError> {
    Err(CliError::usage(
        "this build has no demo (the packages leave the simulators out); run it from a source checkout: cargo run -- demo",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_dir_outside_the_sandbox_gets_the_drop_in() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("profiles.d")).unwrap();
        std::fs::write(
            d.path().join("profiles.d/web.toml"),
            "client_id = \"c\"\nclient_secret = \"s\"\nscm_url = \"https://x.enroll.enterprise.sectigo.com\"\n[deploy]\ndir = \"/etc/ssl/web\"\n",
        )
        .unwrap();
        let cfg = Config::load(d.path()).unwrap();
        let state = PathBuf::from("/var/lib/sectigo-connector");
        let w = deploy_sandbox_warnings(&cfg, &Some(vec![state.clone()]));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("ReadWritePaths=/etc/ssl/web"), "{}", w[0]);
        assert!(w[0].contains("web.toml"));
        let covered = deploy_sandbox_warnings(&cfg, &Some(vec![state, "/etc/ssl".into()]));
        assert!(covered.is_empty(), "{covered:?}");
        assert!(
            deploy_sandbox_warnings(&cfg, &None).is_empty(),
            "not under systemd: nothing to say"
        );
    }
}
