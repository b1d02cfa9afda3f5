//! The operator API: what a command asks ([`Request`]) and what it gets back ([`Response`], or
//! an [`ApiError`]). The same types travel through the control socket (one JSON line each way)
//! when the daemon runs, are produced in-process when it does not, and are what every `--json`
//! output serializes. How a reply looks on a terminal is [`render`]'s business; which exit code it
//! gives is `exit`'s. [`service`] carries requests out against the engine.

pub mod client;
pub mod declared;
mod queries;
pub mod service;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sectigo_core::names::{CertId, CertName, CertRef, IssueKey, ProfileName};
use sectigo_engine::deploy::Redeployed;
use sectigo_engine::policy::DueChange;
use sectigo_engine::{ImportLine, ImportSummary, Inventory, Renamed, Resolved, Target, Usage};
use sectigo_model::{CertRecord, CycleSummary, ForceRun, Outage};

/// A command for the state, from the command line or through the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    CertsList {
        profile: Option<ProfileName>,
        due: bool,
        /// Only this state (`active`, `superseded`, `failed`, ...).
        #[serde(default)]
        state: Option<String>,
        /// Superseded and revoked certificates too (hidden by default).
        #[serde(default)]
        all: bool,
    },
    CertsShow {
        id: CertRef,
    },
    CertsImport {
        profile: ProfileName,
        lines: Vec<ImportLine>,
        /// Those SCM's own auto-renewal is on for (`certs discover --import`): imported with
        /// the warning.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scm_auto_renew: Vec<CertId>,
    },
    CertsLink {
        id: CertId,
        key: IssueKey,
    },
    /// Without `yes`, a live certificate (one still renewed) is refused with what forgetting
    /// it means.
    CertsForget {
        id: CertId,
        #[serde(default)]
        yes: bool,
    },
    /// The certificate and its chain, downloaded from SCM, for `certs export`; with the
    /// private key the daemon made, when `key` (the daemon clears it for a caller that is
    /// neither root nor the service user).
    CertsExport {
        id: CertRef,
        #[serde(default)]
        key: bool,
    },
    /// `certs deploy`: the certificate's files written to its profile's `[deploy] dir` again
    /// and its hook run, as after a renewal.
    CertsDeploy {
        id: CertRef,
    },
    /// Settle an unknown outcome: `renewed_as` the certificate SCM issued, or `None`: SCM did
    /// not act on the lost request.
    CertsResolve {
        target: Target,
        renewed_as: Option<CertId>,
    },
    /// Renew now (billable). Without `yes`, refused with what it would bill when that is
    /// more than one certificate or one outside its expiry window.
    Renew {
        ids: Vec<CertRef>,
        #[serde(default)]
        yes: bool,
    },
    /// Force-renew a profile (billable for every certificate). Without `yes`, refused with
    /// how many renewals it would start.
    ForceRenew {
        profile: ProfileName,
        #[serde(default)]
        yes: bool,
    },
    ProfilesList,
    /// The state's side of `profiles rename OLD NEW`, once the command has renamed the file
    /// (it is refused unless profiles.d/OLD.toml is gone and NEW.toml there): OLD's
    /// certificates move to NEW; the daemon then reloads and reports the verdict.
    ProfilesRename {
        old: ProfileName,
        new: ProfileName,
    },
    /// Re-read the configuration (the daemon only) and report the verdict.
    Reload,
    /// `run --once` while the daemon runs: the daemon runs one cycle now (after the one under
    /// way, if any) and answers with what it did.
    RunOnce,
    /// `run --once --dry-run`: what a cycle would do, decided against the state, with each
    /// renewing profile's credentials proved by a (free) token; nothing billable is sent and
    /// nothing written.
    DryRun,
    /// A consistent snapshot of the whole state, streamed after the reply line. With the
    /// private keys the daemon made when `keys` (the daemon clears it for a caller that is
    /// neither root nor the service user; a state holding keys is then refused).
    StateExport {
        #[serde(default)]
        keys: bool,
    },
    /// What the configuration files now say would make due, against the state: compared with
    /// the running configuration when a daemon answers (`check-config`), with nothing when
    /// none runs (what a first start would renew).
    DueChange,
    /// Which of these ids are tracked (`certs discover`, page by page).
    CertsTracked {
        ids: Vec<CertId>,
    },
    /// `certs plan`: what each declared certificate (`certificates.d/`) needs.
    CertsPlan,
    /// `certs apply`: do it. Without `yes`, billable steps are refused with their list.
    CertsApply {
        #[serde(default)]
        yes: bool,
    },
    /// `certs revoke`: SCM's revoke, with an RFC 5280 reason. Without `yes`, refused with what
    /// it does.
    CertsRevoke {
        id: CertRef,
        reason: String,
        #[serde(default)]
        yes: bool,
    },
}

/// What a request produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "data", rename_all = "kebab-case")]
pub enum Response {
    Status(Box<StatusReport>),
    Certs(CertList),
    Cert(Box<CertDetail>),
    Imported(ImportSummary),
    Linked {
        id: CertId,
        key: IssueKey,
        was: Option<IssueKey>,
    },
    Forgotten {
        id: CertId,
        subject_cn: String,
    },
    /// `certs export`: the files' text; the command writes them where it runs.
    Exported {
        id: CertId,
        /// The directory name (`--name` or the CN).
        name: CertName,
        cert: String,
        chain: String,
        /// The profile's `[deploy] mode`, or the default.
        mode: u32,
        /// The private key (PEM), when the daemon made it and the caller may have it. Never
        /// printed: `certs export` writes it as privkey.pem.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        private_key: Option<String>,
    },
    Resolved(Resolved),
    /// `certs deploy`: where the files went and what became of the hook.
    Deployed {
        id: CertId,
        deployed: Redeployed,
    },
    Renewed {
        id: CertId,
        new_id: CertId,
        /// Issued and recorded at once; otherwise collected by the next cycle.
        issued: bool,
    },
    ForceRenewStarted {
        profile: ProfileName,
        deadline: DateTime<Utc>,
    },
    /// `renew` of several ids: what each became.
    RenewedMany {
        renewed: Vec<(CertId, CertId)>,
        failed: Vec<(CertId, String)>,
    },
    Profiles(Vec<ProfileRow>),
    Renamed(RenameReport),
    Reloaded(ReloadReport),
    DryRun(DryRunReport),
    DueChange(DueChangeReport),
    /// `certs plan`.
    Plan(Vec<sectigo_engine::PlanItem>),
    /// `certs apply`.
    Applied(sectigo_engine::ApplyReport),
    /// `certs revoke`.
    Revoked {
        id: CertId,
        subject_cn: String,
    },
    /// `run --once` through the daemon: the cycle it ran.
    Cycle(CycleRun),
    /// `state export`: what the snapshot holds and its length; through the socket its bytes
    /// follow the reply line, in-process they are in `spool`.
    StateExported {
        counts: sectigo_state::Counts,
        bytes: u64,
        #[serde(skip)]
        spool: Spool,
    },
    /// The ids of a `certs-tracked` request that are tracked.
    Tracked(Vec<CertId>),
}

/// What a dry run found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunReport {
    pub planned: Vec<PlannedRow>,
    pub would_renew: u64,
    pub due_no_auto_renew: u64,
    /// Each profile that would renew: `None` when its token endpoint gave a token, else why not.
    pub credentials: Vec<(ProfileName, Option<String>)>,
}

/// A cycle that ran: what it acted on (in words) and its summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleRun {
    pub planned: Vec<PlannedRow>,
    pub summary: CycleSummary,
}

impl CycleRun {
    pub fn of(r: &sectigo_engine::CycleReport) -> CycleRun {
        CycleRun {
            planned: r.planned.iter().map(PlannedRow::of).collect(),
            summary: r.summary.clone(),
        }
    }
}

impl PlannedRow {
    pub fn of(p: &sectigo_engine::Planned) -> PlannedRow {
        PlannedRow {
            id: p.id.clone(),
            profile: p.profile.clone(),
            subject_cn: p.subject_cn.clone(),
            not_after: p.not_after,
            action: sectigo_engine::explain(&p.decision),
        }
    }
}

/// One certificate a cycle would act on, and what it would do, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRow {
    pub id: CertId,
    pub profile: ProfileName,
    pub subject_cn: String,
    pub not_after: DateTime<Utc>,
    pub action: String,
}

/// The file a state export was spooled to (never serialized: the control socket streams it).
#[derive(Debug, Clone, Default)]
pub struct Spool(pub Option<std::sync::Arc<std::fs::File>>);

impl PartialEq for Spool {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

impl Spool {
    /// The spooled file, when this is its last holder.
    pub fn take(&mut self) -> Option<std::fs::File> {
        self.0
            .take()
            .and_then(|f| std::sync::Arc::try_unwrap(f).ok())
    }
}

/// Why a request failed: what kind of failure (for the exit code), and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The request cannot be: an unknown id or profile, a malformed key or name.
    Usage,
    /// Try again later: the state is locked, SCM is unreachable, the daemon is stopping.
    TempFail,
    /// Billable beyond the ordinary: asked again with `--yes` (or a yes on a terminal).
    Confirm,
    /// The configuration was refused.
    Config,
    /// The work failed.
    Failed,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Self {
        ApiError {
            kind,
            message: message.to_string(),
        }
    }
}

pub type Reply = Result<Response, ApiError>;

/// The daemon's first line on every control connection, before it reads the request: which
/// state it serves. A command whose configuration names another state refuses to go on (two
/// configurations sharing one `[control] socket`), before it has sent anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// `sectigo-connector X.Y.Z`.
    pub hello: String,
    /// `[state] dir`, made absolute and free of links where it could be.
    pub state_dir: PathBuf,
    /// The directory's device and inode: the same directory, whatever the path it is named by.
    pub dev: u64,
    pub ino: u64,
}

impl Hello {
    /// What a daemon serving the state in `state_dir` says.
    pub fn of(state_dir: &std::path::Path) -> Hello {
        use std::os::unix::fs::MetadataExt as _;
        let (dev, ino) = std::fs::metadata(state_dir).map_or((0, 0), |m| (m.dev(), m.ino()));
        Hello {
            hello: concat!("sectigo-connector ", env!("CARGO_PKG_VERSION")).into(),
            state_dir: std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.into()),
            dev,
            ino,
        }
    }

    /// Whether this daemon serves the state in `state_dir` (as this process sees it): the
    /// same directory (device and inode), or the same path.
    pub fn serves(&self, state_dir: &std::path::Path) -> bool {
        let mine = Hello::of(state_dir);
        (mine.ino != 0 && (mine.dev, mine.ino) == (self.dev, self.ino))
            || mine.state_dir == self.state_dir
    }
}

/// What the daemon knows that the state does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub started: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub next_cycle: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub last_reload: Option<ReloadReport>,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub daemon: Option<DaemonInfo>,
    pub last_cycle: Option<CycleSummary>,
    pub next_cycle: Option<DateTime<Utc>>,
    /// The inventory summary (the same pass `/metrics` and `profiles list` read).
    #[serde(flatten)]
    pub inventory: Inventory,
    /// Orphaned profiles whose file went away while others with their client_id and scm_url
    /// appeared, which could not be told apart: the candidates for `profiles rename OLD NEW`.
    #[serde(default)]
    pub unsettled_renames: BTreeMap<ProfileName, Vec<ProfileName>>,
    pub force_renewals: BTreeMap<ProfileName, ForceRun>,
    /// Each configured profile's daily budget: renewals in the last 24 hours, and its limit.
    #[serde(default)]
    pub budgets: BTreeMap<ProfileName, Usage>,
    /// What stops renewals SCM-side now: hosts that cannot be reached, credentials refused.
    #[serde(default)]
    pub outages: Vec<Outage>,
    pub jira: JiraStatus,
    pub workflow: WorkflowStatus,
    #[serde(default)]
    pub last_reload: Option<ReloadReport>,
    /// The declared certificates that need a person (`certs apply`, a conflict, an unknown
    /// outcome).
    #[serde(default)]
    pub declared: Vec<sectigo_engine::PlanItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraStatus {
    pub configured: bool,
    pub pending: usize,
    pub oldest: Option<DateTime<Utc>>,
    pub undeliverable: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowStatus {
    pub enabled: bool,
    pub issues: usize,
    pub enrollments: BTreeMap<String, u64>,
    pub revocations_pending: u64,
    pub enrollment_outcome_unknown: Vec<IssueKey>,
}

/// `certs list`: the records, and which profiles are configured (the others are orphaned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertList {
    pub records: Vec<CertRecord>,
    pub configured: Vec<ProfileName>,
}

/// `certs show`: the record and what the daemon will do next, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertDetail {
    #[serde(flatten)]
    pub record: CertRecord,
    pub next_action: String,
}

/// One line of `profiles list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRow {
    pub name: ProfileName,
    /// `None`: the profile is not configured (its certificates are orphaned).
    pub settings: Option<ProfileSettings>,
    pub live: u64,
    pub past: u64,
    /// Its daily budget (configured profiles).
    #[serde(default)]
    pub budget: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSettings {
    pub force_renewal: bool,
    pub expiry_window_days: i64,
    pub auto_renew: bool,
    pub scm_url: String,
}

/// `profiles rename`: what moved, and the reload that followed (through the daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameReport {
    #[serde(flatten)]
    pub renamed: Renamed,
    /// The daemon's reload after the move; `None` when no daemon runs (the next start reads
    /// the configuration).
    #[serde(default)]
    pub reload: Option<ReloadReport>,
}

/// The verdict of a configuration reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub at: DateTime<Utc>,
    /// What asked for it: `SIGHUP`, `reload command`, `profile rename`.
    pub cause: String,
    /// Empty when applied; otherwise the errors, each naming its file and key.
    pub errors: Vec<String>,
    pub profiles: usize,
    pub config_dir: PathBuf,
    /// Per profile, the certificates the new configuration made due that the old one did
    /// not, and how many of them the daily budget lets through today.
    #[serde(default)]
    pub due: BTreeMap<ProfileName, DueChange>,
}

/// What a configuration makes due, against the state (`check-config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueChangeReport {
    /// Compared with the running daemon's configuration; else with nothing.
    pub against_running: bool,
    pub due: BTreeMap<ProfileName, DueChange>,
}

impl ReloadReport {
    pub fn applied(&self) -> bool {
        self.errors.is_empty()
    }
}
