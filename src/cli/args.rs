//! The command line's words: every command, argument and its help (clap). Values are parsed
//! into their types here (a certificate id is a `CertId` from the first moment), so a bad one is
//! a usage error that names the argument.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use sectigo_core::config::DEFAULT_CONFIG_DIR;
use sectigo_core::names::{CertId, CertName, CertRef, IssueKey, ProfileName};
use sectigo_engine::Target;

pub const ABOUT: &str =
    "Keeps Sectigo Certificate Manager certificates renewed before they expire.";
pub const LONG_ABOUT: &str = "\
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
        /// Run one cycle, wait briefly for renewals to be issued, then exit (1 if any failed or
        /// anything needs a person). While the daemon runs, the daemon runs the cycle now and
        /// this prints what it did.
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
    /// DIR must be root's or the service user's, not a link, writable by nobody else; only
    /// regular files are read, what cannot be served is renamed *.rejected. Logs to standard
    /// error (the unit's journal), never to [log] file.
    RunHooks {
        /// The directory the daemon writes its requests into (`run --hooks-via DIR`).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Validate connector.toml and every profile; print the profiles (secrets masked). Run as
    /// root, every file the daemon reads is checked as the service user (the owner of [state]
    /// dir) will find it: one it cannot read is an error naming the fix (exit 78).
    CheckConfig {
        /// Also ask each profile's token endpoint for a token (free; its [admin] account's
        /// too), and Jira whose credentials these are. Each answers or is reported within
        /// [scm] timeout_secs and a few seconds: exit 78 when credentials are refused (naming
        /// the file and key), 75 when an endpoint cannot be reached.
        #[arg(long)]
        online: bool,
        /// With --online: check the configured transition names against the transitions
        /// Jira offers on this issue (they depend on its status: give one in the status the
        /// daemon moves issues from, e.g. a certificate's tracking issue).
        #[arg(long, value_name = "KEY", requires = "online")]
        issue: Option<IssueKey>,
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
        /// SCM certificate ids, or names (the CN or `--name` of a live certificate).
        #[arg(required = true, value_name = "ID|NAME")]
        ids: Vec<CertRef>,
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
        profile: ProfileName,
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
    // Only a build from source has it: the packaged binary (no `demo` feature) hides it.
    #[command(hide = !cfg!(feature = "demo"))]
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
    /// Carry out one request read from standard input against the state, its reply on
    /// standard output: what root's commands run as the state's owner when no daemon runs.
    #[command(hide = true)]
    ServeLocal,
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
        profile: Option<ProfileName>,
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
        #[arg(value_name = "ID|NAME")]
        id: CertRef,
        /// The record (history and next action included) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start tracking existing SCM certificates (downloads each to learn subject and notAfter).
    Import {
        /// The profile whose credentials reach the certificates.
        #[arg(long)]
        profile: ProfileName,
        /// One certificate id.
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        cert_id: Option<CertId>,
        /// With --cert-id: the Jira issue tracking it.
        #[arg(long, requires = "cert_id")]
        issue: Option<IssueKey>,
        /// With --cert-id: its directory under the profile's `[deploy] dir` (letters, digits,
        /// `.`, `-`, `_`); without it, the CN (`*.example.com` → `wildcard.example.com`).
        /// Its renewals keep the name.
        #[arg(long, requires = "cert_id", value_name = "NAME")]
        name: Option<CertName>,
        /// A file with one `ID [ISSUE-KEY]` per line (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// SCM's issued certificates that the profile's [admin] account sees (within its org_id
    /// and ssl_type_id) and that are not tracked yet: id, CN, expiry, and whether SCM's own
    /// auto-renewal is on for it (then both would renew, and bill). Free: reads only. With
    /// --import, they are imported (as `certs import --from`).
    Discover {
        /// The profile (it needs an [admin] section).
        #[arg(long)]
        profile: ProfileName,
        /// Only common names matching PATTERN (`*` matches anything; case ignored).
        #[arg(long, value_name = "PATTERN")]
        cn: Option<String>,
        /// Only certificates expiring within DAYS days.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(i64).range(0..=3650))]
        expiring_within: Option<i64>,
        /// The certificates found (and the import summary) as one JSON document.
        #[arg(long)]
        json: bool,
        /// Import what is found (as `certs import --from`).
        #[arg(long)]
        import: bool,
    },
    /// Write a certificate's cert.pem, chain.pem and fullchain.pem into OUT/NAME/ (NAME: its
    /// `--name`, or the CN), downloaded from SCM now, switched in atomically as a deploy is.
    /// The files are written by this command, as the user running it.
    Export {
        /// SCM's certificate id, or the CN or `--name` of a live certificate.
        #[arg(value_name = "ID|NAME")]
        id: CertRef,
        /// The directory to write into (default: the current one).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
    /// Write a certificate's files to its profile's `[deploy] dir` again and run its hook,
    /// as after a renewal (a certificate renewed before `[deploy]` existed; a server rebuilt).
    /// Through the daemon while it runs (its hooks go through the root helper, as a renewal's).
    Deploy {
        /// SCM's certificate id, or the CN or `--name` of a live certificate.
        #[arg(value_name = "ID|NAME")]
        id: CertRef,
    },
    /// Link a certificate to a Jira issue.
    Link {
        /// The SCM certificate id.
        id: CertId,
        /// The Jira issue key (PROJECT-123); its renewals keep the link.
        key: IssueKey,
    },
    /// Stop tracking a certificate (its history is written to the log). A live certificate
    /// (still renewed) needs --yes, or a yes at the prompt on a terminal.
    Forget {
        /// The SCM certificate id.
        id: CertId,
        /// Forget it without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Settle an `outcome-unknown` renewal (ID: the certificate) or enrollment (ID: its Jira
    /// issue key, or with --not-renewed a declared certificate's NAME) after checking SCM:
    /// the request id to search SCM's comments for is in `certs show` (`certs plan`). Goes
    /// through the daemon while it runs.
    Resolve {
        /// The certificate id, or the issue key of an enrollment from Jira.
        id: Target,
        /// SCM did issue this certificate for the lost request: download it, check its
        /// subject and SANs, and track it as the renewal (history and Jira link kept).
        #[arg(
            long,
            value_name = "NEW_ID",
            conflicts_with = "not_renewed",
            required_unless_present = "not_renewed"
        )]
        renewed_as: Option<CertId>,
        /// SCM holds no such request: the certificate is due again (an issue may ask again).
        #[arg(long)]
        not_renewed: bool,
    },
    /// What each certificate declared in certificates.d/NAME.toml needs: ok, enroll
    /// (billable), replace (its names or key type changed: SCM's replace, a new key), renew
    /// (inside its window), waiting (requested, not issued yet), conflict (a name declared in
    /// two files: neither is enrolled), undeclared (its file was removed: no longer renewed,
    /// never revoked, listed until `certs forget`), unknown, failed, revoked.
    Plan {
        /// The plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Do what `certs plan` shows: enroll and replace declared certificates (billable: the
    /// steps are listed with their count and need --yes, or a yes at the prompt on a
    /// terminal), collect and deploy what SCM issued.
    Apply {
        /// Take the billable steps without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Revoke a certificate in SCM: it shows as revoked and is no longer renewed; its Jira
    /// issue, when linked, is told. Needs --yes, or a yes at the prompt on a terminal.
    Revoke {
        /// The SCM certificate id, or the NAME `certs show` takes (its CN or `--name`).
        id: CertRef,
        /// Why (RFC 5280).
        #[arg(long, value_parser = revoke_reason())]
        reason: String,
        /// Revoke it without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// `certs revoke --reason`.
fn revoke_reason() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::api::declared::REVOKE_REASONS)
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Write one consistent snapshot of the state as JSON lines to FILE (0600; written under a
    /// new hidden name beside it, .FILE.RANDOM.partial, and renamed when whole), or to
    /// standard output. Goes through the daemon while it runs (its work pauses only while the
    /// snapshot is spooled); the private keys go only to root and the service user, so run it
    /// as one of them.
    Export {
        /// Where to write (default: standard output, when it is not a terminal).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Restore an export into an empty state, with the daemon stopped. The whole file is
    /// checked before anything is written; a file cut short, edited or from another format
    /// version is refused and nothing is imported. Run as root into the service user's state
    /// directory, it reads FILE as root and then writes as that user (a db/ or keys/ there
    /// that is a link, or another user's, is refused).
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
    /// Rename a profile: renames profiles.d/OLD.toml to NEW.toml (as the user running it: run
    /// it as the configuration's owner, root in the packages), then its certificates move to
    /// NEW (through the running daemon, which reloads, or here when none runs). A NEW that
    /// exists is refused. When OLD.toml was renamed to NEW.toml by hand already, only the
    /// certificates move (what `status` asks for when such a rename could not be told apart).
    Rename {
        /// The profile's current name (profiles.d/OLD.toml).
        old: ProfileName,
        /// Its new name (profiles.d/NEW.toml; letters, digits, `-`, `_`, `.`).
        new: ProfileName,
    },
}
