//! Configuration: `connector.toml` and `profiles.d/*.toml` under the configuration directory.
//!
//! Loading reads every file key by key and reports every problem at once (file, key, what would
//! be valid). Semantic checks run after parsing; nothing here touches the network or the state.

pub mod access;
mod connector;
mod declared;
mod error;
mod log_level;
mod profile;
mod reader;
mod secret_source;
mod url_check;

use std::collections::BTreeMap;

use crate::names::{CertName, ProfileName};
use std::path::{Path, PathBuf};

pub use connector::{
    ConnectorConfig, ControlConfig, JiraConfig, JiraFlavor, LogConfig, LogFormat, MetricsConfig,
    RenewalConfig, ScheduleConfig, ScmConfig, StateConfig, WorkflowConfig, DEFAULT_POLL_CRON,
    JIRA_EVENTS,
};
pub use declared::{conflicts, Declared, EnrollMode, DECLARED_DIR};
pub use error::{ConfigError, ConfigErrors, Origin};
pub use log_level::{log_directive, LevelError};
pub use profile::{
    domain_allowed, AdminConfig, DeployConfig, Profile, DEFAULT_DEPLOY_MODE, DEFAULT_TOKEN_URL,
    MAX_COMMENTS,
};
pub use reader::ENV_PREFIX;
pub use secret_source::{read_secret_file, SecretError, SecretFrom};
pub use url_check::{check_url, is_loopback, UrlError};

use reader::KeyReader;

pub const DEFAULT_CONFIG_DIR: &str = "/etc/sectigo-connector";
pub const CONNECTOR_FILE: &str = "connector.toml";
pub const PROFILES_DIR: &str = "profiles.d";

/// The whole configuration, as loaded from one directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub connector: ConnectorConfig,
    /// Profiles by name (the file stem).
    pub profiles: BTreeMap<ProfileName, Profile>,
    /// Certificates declared in `certificates.d/NAME.toml`, by NAME.
    pub declared: BTreeMap<CertName, Declared>,
    /// Things worth an operator's attention that do not stop the daemon.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads and checks `dir/connector.toml` and `dir/profiles.d/*.toml`.
    /// `connector.toml` may be absent (all defaults); `profiles.d` may be absent or empty.
    pub fn load(dir: &Path) -> Result<Config, ConfigErrors> {
        let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let creds = credentials_dir.as_deref();
        let mut errors = Vec::new();
        if !dir.is_dir() {
            return Err(ConfigErrors(vec![ConfigError::file(
                dir,
                "is not a directory; pass --config-dir or set SECTIGO_CONNECTOR_CONFIG_DIR",
            )]));
        }
        let connector_path = dir.join(CONNECTOR_FILE);
        let connector = match KeyReader::open(&connector_path, true, true, &mut errors) {
            Some(mut r) => {
                let c = ConnectorConfig::read(&mut r, creds);
                r.finish();
                Some(c)
            }
            None => None,
        };

        let mut skipped = Vec::new();
        let profiles = read_profiles(dir, creds, &mut skipped, &mut errors);

        let mut skipped_declared = Vec::new();
        let declared_files =
            profile_files(&dir.join(DECLARED_DIR), &mut skipped_declared, &mut errors);
        let declared = declared::load(dir, &profiles, declared_files, &mut errors);

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let connector = connector.expect("no errors means connector.toml was read");
        // A file a profile names (its secret files) is that profile's, not a stray file.
        let named = named_files(&profiles, connector.jira.as_ref());
        skipped.retain(|p| !named.iter().any(|n| same_file(n, p)));
        let mut warnings = warnings(&connector, &profiles, &skipped);
        check_workflow_profiles(dir, &connector, &profiles)?;
        warnings.extend(declared_warnings(&declared, skipped_declared));
        if let Some(j) = connector.jira.as_ref().filter(|j| j.workflow.is_some()) {
            if !j.transitions.contains_key("renewal_started") {
                warnings.push(format!(
                    "{}: [jira.workflow] is on but [jira.transitions] renewal_started is not set: an issue whose renewal was requested stays in the renew status (it is not renewed twice); set it, e.g. renewal_started = \"Start Renewal\"",
                    dir.join(CONNECTOR_FILE).display()
                ));
            }
        }
        Ok(Config {
            dir: dir.to_path_buf(),
            connector,
            profiles,
            declared,
            warnings,
        })
    }
}

/// Each `profiles.d/NAME.toml`; what is not a profile file goes to `skipped`.
fn read_profiles(
    dir: &Path,
    creds: Option<&Path>,
    skipped: &mut Vec<PathBuf>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<ProfileName, Profile> {
    let mut profiles = BTreeMap::new();
    let mut lower_names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in profile_files(&dir.join(PROFILES_DIR), skipped, errors) {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let name = match ProfileName::parse(stem) {
            Ok(n) => n,
            Err(e) => {
                errors.push(ConfigError::file(
                    &path,
                    format!(
                        "the file's stem {} is not a profile name ({})",
                        e.value, e.rule
                    ),
                ));
                continue;
            }
        };
        if let Some(other) = lower_names.insert(name.to_lowercase(), path.clone()) {
            errors.push(ConfigError::file(
                &path,
                format!(
                    "two profiles with one name: {} and {} differ only in case; rename one",
                    other.display(),
                    path.display()
                ),
            ));
        }
        let Some(mut r) = KeyReader::open(&path, false, false, errors) else {
            continue;
        };
        let p = Profile::read(&name, &mut r, creds);
        r.finish();
        if let Some(p) = p.filter(|_| errors.is_empty()) {
            profiles.insert(name, p);
        }
    }
    profiles
}

/// What is valid but likely wrong: skipped files, secrets others can read, placeholders.
fn warnings(
    connector: &ConnectorConfig,
    profiles: &BTreeMap<ProfileName, Profile>,
    skipped: &[PathBuf],
) -> Vec<String> {
    let service = access::service_user(&connector.state.dir).map(|s| s.account);
    let private_fix = |f: &Path| match &service {
        Some(a) => a.private_fix(f),
        None => format!("chmod o-r {}", f.display()),
    };
    let mut warnings: Vec<String> = skipped
        .iter()
        .map(|p| {
            format!(
                "{}: skipped: only regular files named NAME.toml in {PROFILES_DIR}/ are profiles",
                p.display()
            )
        })
        .collect();
    for p in profiles.values() {
        if let Some(f) = &p.secret_readable_by_others {
            warnings.push(format!(
                "{}: holds profile {:?}'s client_secret and is readable by other users; run `{}` or use a systemd credential",
                f.display(),
                p.name,
                private_fix(f)
            ));
        }
        if let Some(w) = token_url_warning(p) {
            warnings.push(w);
        }
        for w in placeholder_warnings(p) {
            warnings.push(w);
        }
        warnings.extend(admin_warnings(p, &private_fix));
    }
    if let Some(f) = connector
        .jira
        .as_ref()
        .and_then(|j| j.token_readable_by_others.as_ref())
    {
        warnings.push(format!(
            "{}: holds the Jira token and is readable by other users; run `{}` or use a systemd credential (jira.token)",
            f.display(),
            private_fix(f)
        ));
    }
    let mut by_identity: BTreeMap<(String, String), &str> = BTreeMap::new();
    for p in profiles.values() {
        if let Some(other) = by_identity.insert(p.identity(), &p.name) {
            warnings.push(format!(
                "profiles {other:?} and {:?} use the same client_id and scm_url; a renamed profile file cannot be told apart from them",
                p.name
            ));
        }
    }
    warnings
}

/// `[jira.workflow] profiles` names configured profiles only.
fn check_workflow_profiles(
    dir: &Path,
    connector: &ConnectorConfig,
    profiles: &BTreeMap<ProfileName, Profile>,
) -> Result<(), ConfigErrors> {
    if let Some(w) = connector.jira.as_ref().and_then(|j| j.workflow.as_ref()) {
        let unknown: Vec<&String> = w
            .profiles
            .iter()
            .flatten()
            .filter(|p| !profiles.contains_key(p.as_str()))
            .collect();
        if !unknown.is_empty() {
            return Err(ConfigErrors(vec![ConfigError::key(
                Origin::File(dir.join(CONNECTOR_FILE)),
                "jira.workflow.profiles",
                format!(
                    "no profile named {} is configured (profiles are the files in profiles.d/)",
                    unknown
                        .iter()
                        .map(|p| format!("{p:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )]));
        }
    }
    Ok(())
}

/// Stray files in certificates.d/ (but the shipped `*.example`, which is documentation) and
/// names declared in two files.
fn declared_warnings(
    declared: &BTreeMap<CertName, Declared>,
    mut skipped: Vec<PathBuf>,
) -> Vec<String> {
    skipped.retain(|p| p.extension().is_none_or(|e| e != "example"));
    let mut out: Vec<String> = skipped
        .iter()
        .map(|p| {
            format!(
                "{}: skipped: only regular files named NAME.toml in {DECLARED_DIR}/ declare certificates",
                p.display()
            )
        })
        .collect();
    for (name, holders) in conflicts(declared.values()) {
        let files: Vec<String> = holders
            .iter()
            .map(|h| format!("{DECLARED_DIR}/{h}.toml"))
            .collect();
        out.push(format!(
            "{name:?} is declared in {}: neither is enrolled until one file drops it",
            files.join(" and ")
        ));
    }
    out
}

/// The values the shipped example profile carries: a profile that still holds one was
/// copied and not edited, and SCM will refuse it.
const PLACEHOLDERS: [(&str, &str); 3] = [
    ("client_id", "your-client-id"),
    (
        "client_secret",
        "replace-with-the-application-client-secret",
    ),
    ("scm_url", "https://customer.enroll.enterprise.sectigo.com"),
];

fn placeholder_warnings(p: &Profile) -> Vec<String> {
    let values = [
        p.client_id.as_str(),
        p.client_secret.expose().trim(),
        p.scm_url.as_str(),
    ];
    PLACEHOLDERS
        .iter()
        .zip(values)
        .filter(|((_, placeholder), v)| v == placeholder)
        .map(|((key, _), _)| {
            let what = match *key {
                "client_id" => {
                    "the Client ID of the SCM REST account (SCM: Enrollment > REST > Accounts)"
                }
                "client_secret" => "the account's Client Secret",
                _ => "your SCM address, e.g. https://ACME.enroll.enterprise.sectigo.com",
            };
            format!(
                "{}: {key} still holds the example's placeholder: set it to {what}",
                p.file.display()
            )
        })
        .collect()
}

/// A token URL on a host that is neither Sectigo's nor the profile's SCM host: the client
/// secret would be sent there.
fn token_url_warning(p: &Profile) -> Option<String> {
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()?
            .host_str()
            .map(str::to_ascii_lowercase)
    };
    let token = host(&p.token_url)?;
    let sectigo = token == "sectigo.com" || token.ends_with(".sectigo.com");
    let loopback = url::Url::parse(&p.token_url).is_ok_and(|u| is_loopback(&u));
    if sectigo || loopback || Some(&token) == host(&p.scm_url).as_ref() {
        return None;
    }
    Some(format!(
        "{}: token_url {:?} is on {token}, neither Sectigo's nor the scm_url's host: the client secret is sent there; check it",
        p.file.display(),
        p.token_url
    ))
}

/// `[admin]`: its secret readable by other users; its token URL on a host that is neither
/// Sectigo's nor the profile's SCM hosts (the admin secret would be sent there).
fn admin_warnings(p: &Profile, private_fix: &dyn Fn(&Path) -> String) -> Vec<String> {
    let Some(a) = &p.admin else {
        return Vec::new();
    };
    let mut w = Vec::new();
    if let Some(f) = &a.secret_readable_by_others {
        w.push(format!(
            "{}: holds profile {:?}'s [admin] client_secret and is readable by other users; run `{}` or use a systemd credential ({}.admin_client_secret)",
            f.display(),
            p.name,
            private_fix(f),
            p.name
        ));
    }
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()?
            .host_str()
            .map(str::to_ascii_lowercase)
    };
    if let Some(token) = host(&a.token_url) {
        let sectigo = token == "sectigo.com" || token.ends_with(".sectigo.com");
        let loopback = url::Url::parse(&a.token_url).is_ok_and(|u| is_loopback(&u));
        let own = [&a.url, &p.scm_url]
            .iter()
            .any(|u| host(u).as_ref() == Some(&token));
        if !sectigo && !loopback && !own {
            w.push(format!(
                "{}: [admin] token_url {:?} is on {token}, neither Sectigo's nor the [admin] url's or scm_url's host: the admin client secret is sent there; check it",
                p.file.display(),
                a.token_url
            ));
        }
    }
    w
}

impl Config {
    /// The control socket's path, read from connector.toml (and the environment) alone, so that
    /// commands reach a running daemon even while some other file is broken.
    pub fn control_socket(dir: &Path) -> PathBuf {
        let mut errors = Vec::new();
        KeyReader::open(&dir.join(CONNECTOR_FILE), true, true, &mut errors)
            .and_then(|mut r| r.opt::<PathBuf>("control.socket"))
            .unwrap_or_else(|| PathBuf::from(connector::DEFAULT_CONTROL_SOCKET))
    }

    /// `[state] dir`, read as [`Config::control_socket`] is: a command checks that the daemon
    /// answering on the socket serves this state, even while some other file is broken.
    pub fn state_dir(dir: &Path) -> PathBuf {
        let mut errors = Vec::new();
        KeyReader::open(&dir.join(CONNECTOR_FILE), true, true, &mut errors)
            .and_then(|mut r| r.opt::<PathBuf>("state.dir"))
            .unwrap_or_else(|| PathBuf::from(connector::DEFAULT_STATE_DIR))
    }
}

/// The secret files the profiles (and `[jira]`) name: `client_secret_file`, `[admin]
/// client_secret_file`, `token_file`.
fn named_files(
    profiles: &BTreeMap<ProfileName, Profile>,
    jira: Option<&JiraConfig>,
) -> Vec<PathBuf> {
    profiles
        .values()
        .flat_map(|p| {
            [
                p.client_secret_from.file(),
                p.admin.as_ref().and_then(|a| a.client_secret_from.file()),
            ]
        })
        .chain([jira.and_then(|j| j.token_from.file())])
        .flatten()
        .map(Path::to_path_buf)
        .collect()
}

/// Whether two paths name one file (the same path, or the same file through another path).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The profile files in `dir`, sorted: names ending in `.toml`, not hidden. Other entries
/// (`web.toml.bak`, `web.toml.dpkg-dist`, a directory), but for hidden ones, go to `skipped`.
fn profile_files(
    dir: &Path,
    skipped: &mut Vec<PathBuf>,
    errors: &mut Vec<ConfigError>,
) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(ConfigError::file(
                dir,
                format!("cannot read the directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for p in entries.filter_map(Result::ok).map(|e| e.path()) {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if name.ends_with(".toml") && p.is_file() {
            files.push(p);
        } else {
            skipped.push(p);
        }
    }
    files.sort();
    skipped.sort();
    files
}
