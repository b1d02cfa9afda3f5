//! `profiles.d/NAME.toml`: one Sectigo profile (the seed's "Sectigo Profile Settings").

use std::collections::BTreeMap;

use crate::names::ProfileName;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::reader::KeyReader;
use super::secret_source::{read_secret_named, SecretFrom, SecretSpec};
use super::url_check::check_url;
use crate::secret::Secret;

pub const DEFAULT_TOKEN_URL: &str =
    "https://auth.sso.sectigo.com/auth/realms/apiclients/protocol/openid-connect/token";
pub const MAX_COMMENTS: usize = 1024;
/// The longest a public TLS certificate can be valid; a wider window would renew constantly.
pub const MAX_WINDOW_DAYS: i64 = 397;

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// The file's stem.
    pub name: ProfileName,
    pub file: PathBuf,
    pub client_id: String,
    pub client_secret: Secret,
    /// Where the secret was read from (a `client_secret_file` is read again when SCM refuses
    /// the secret).
    #[serde(skip)]
    pub client_secret_from: SecretFrom,
    pub scm_url: String,
    pub token_url: String,
    pub ssl_cert_comments: String,
    pub force_renewal: bool,
    pub expiry_window_days: i64,
    pub auto_renew: bool,
    /// Scheduled renewals in a rolling 24 h beyond which the others wait (0: no limit);
    /// `None`: `[renewal] max_per_day`.
    pub max_renewals_per_day: Option<u32>,
    pub scm_profile_id: Option<i64>,
    pub custom_fields: BTreeMap<String, String>,
    /// Names a certificate of this profile may carry when enrolled from Jira; `None`: any.
    pub allowed_domains: Option<Vec<String>>,
    /// Where its certificates are written, and the hook run after (`[deploy]`).
    pub deploy: Option<DeployConfig>,
    /// `key_rotation = "new"`: each renewal sends a CSR for a fresh key of this type;
    /// `None`: `"reuse"` (SCM keeps the certificate's key).
    pub new_key: Option<crate::x509::keygen::KeyType>,
    /// The file holding the client secret, when other users can read it (a warning).
    #[serde(skip)]
    pub secret_readable_by_others: Option<PathBuf>,
    /// SCM's Admin API (`[admin]`): SCM's own records of the certificates. `None`: not used.
    pub admin: Option<AdminConfig>,
}

/// A profile's `[admin]` section: the Admin API (`URL/api/ssl/v1`) and its own account.
#[derive(Debug, Clone, Serialize)]
pub struct AdminConfig {
    /// The base URL, without a trailing `/` (requests go to `url/api/ssl/v1...`).
    pub url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Where the secret was read from (`[admin] client_secret_file` is read again when SCM
    /// refuses the secret).
    #[serde(skip)]
    pub client_secret_from: SecretFrom,
    /// The admin account's token endpoint; default: the profile's `token_url`.
    pub token_url: String,
    /// SCM's organisation id (`orgId` filter); `None`: every organisation the account sees.
    pub org_id: Option<i64>,
    /// SCM's certificate type (profile) id (`sslTypeId` filter); default: `scm_profile_id`.
    pub ssl_type_id: Option<i64>,
    /// The file holding the admin secret, when other users can read it (a warning).
    #[serde(skip)]
    pub secret_readable_by_others: Option<PathBuf>,
}

/// A profile's `[deploy]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployConfig {
    /// Each certificate goes to `dir/NAME/`.
    pub dir: PathBuf,
    /// argv run after the files are in place (no shell).
    pub hook: Option<Vec<String>>,
    /// Owner and group of the files; `None`: the user running the daemon, and its group.
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Permission bits of the certificate files (`privkey.pem` never more than 0640).
    pub mode: u32,
}

/// Default permission bits of deployed files.
pub const DEFAULT_DEPLOY_MODE: u32 = 0o640;

/// A `[deploy] mode`: octal digits, as chmod takes them ("0640", "644").
fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a file mode: use octal digits such as \"0640\"");
    if t.is_empty() || t.len() > 4 || !t.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(bad());
    }
    let m = u32::from_str_radix(t, 8).map_err(|_| bad())?;
    if m & 0o400 == 0 {
        return Err(format!("{text:?} does not let the owner read the files"));
    }
    if m & 0o7000 != 0 {
        return Err(format!("{text:?} sets setuid, setgid or sticky bits"));
    }
    Ok(m)
}

pub(crate) fn read_deploy(r: &mut KeyReader<'_>) -> Option<DeployConfig> {
    let dir: Option<PathBuf> = r.opt("deploy.dir");
    let hook: Option<Vec<String>> = r.opt("deploy.hook");
    let owner: Option<String> = r.opt("deploy.owner");
    let group: Option<String> = r.opt("deploy.group");
    let mode_text: Option<String> = r.opt("deploy.mode");
    let Some(dir) = dir else {
        for key in ["hook", "owner", "group", "mode"] {
            let present = match key {
                "hook" => hook.is_some(),
                "owner" => owner.is_some(),
                "group" => group.is_some(),
                _ => mode_text.is_some(),
            };
            if present {
                r.error(
                    &format!("deploy.{key}"),
                    "needs [deploy] dir (where the files go)",
                );
            }
        }
        return None;
    };
    if !dir.is_absolute() {
        r.error(
            "deploy.dir",
            format!("{} is not an absolute path", dir.display()),
        );
    }
    if let Some(h) = &hook {
        if h.is_empty() || h[0].trim().is_empty() {
            r.error(
                "deploy.hook",
                "is an argv such as [\"systemctl\", \"reload\", \"nginx\"]: its first element names the program",
            );
        }
    }
    for (key, v) in [("deploy.owner", &owner), ("deploy.group", &group)] {
        if let Some(v) = v {
            let ok = !v.is_empty()
                && v.len() <= 32
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                r.error(key, format!("{v:?} is not a user or group name"));
            }
        }
    }
    let mode = match mode_text.as_deref().map(parse_mode) {
        None => DEFAULT_DEPLOY_MODE,
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            r.error("deploy.mode", e);
            DEFAULT_DEPLOY_MODE
        }
    };
    Some(DeployConfig {
        dir,
        hook,
        owner,
        group,
        mode,
    })
}

/// The path the Admin API's operations sit under; `[admin] url` is the part before it.
const ADMIN_API_PATH: &str = "/api/ssl/v1";

/// Reads `[admin]`. Absent, or a table without keys (the shipped example's): `None`.
fn read_admin(
    name: &str,
    r: &mut KeyReader<'_>,
    credentials_dir: Option<&Path>,
    profile_token_url: &str,
    scm_profile_id: Option<i64>,
) -> Option<AdminConfig> {
    let url: Option<String> = r.opt("admin.url");
    let client_id: Option<String> = r.opt("admin.client_id");
    let inline: Option<Secret> = r.opt_secret("admin.client_secret");
    let file: Option<PathBuf> = r.opt("admin.client_secret_file");
    let token_url: Option<String> = r.opt("admin.token_url");
    let org_id: Option<i64> = r.opt("admin.org_id");
    let ssl_type_id: Option<i64> = r.opt("admin.ssl_type_id");
    let Some(url) = url else {
        let present = [
            ("client_id", client_id.is_some()),
            ("client_secret", inline.is_some()),
            ("client_secret_file", file.is_some()),
            ("token_url", token_url.is_some()),
            ("org_id", org_id.is_some()),
            ("ssl_type_id", ssl_type_id.is_some()),
        ];
        for (key, _) in present.iter().filter(|(_, p)| *p) {
            r.error(
                &format!("admin.{key}"),
                "needs [admin] url (the Admin API's base URL, e.g. https://admin.enterprise.sectigo.com)",
            );
        }
        return None;
    };
    match check_url(&url) {
        Err(e) => r.error("admin.url", e),
        Ok(u) if u.path().trim_end_matches('/').ends_with(ADMIN_API_PATH) => r.error(
            "admin.url",
            format!("{url:?} ends with {ADMIN_API_PATH}: give the base URL only (requests go to URL{ADMIN_API_PATH}...)"),
        ),
        Ok(u) if u.query().is_some() || u.fragment().is_some() => r.error(
            "admin.url",
            format!("{url:?} has a query or fragment: give the base URL only"),
        ),
        Ok(_) => {}
    }
    if client_id.is_none() {
        r.error(
            "admin.client_id",
            "missing; this key is required with [admin] url (the admin API account's client ID)",
        );
    }
    if let Some(id) = &client_id {
        if id.trim().is_empty() {
            r.error("admin.client_id", "must not be empty");
        }
    }
    let spec = SecretSpec {
        inline,
        file,
        credential: "",
    };
    let exposed = super::secret_source::exposed_file(&spec, r.file());
    let credential = format!("{name}.admin_client_secret");
    let secret = match read_secret_named(&spec, &credential, r.file(), credentials_dir) {
        Ok(s) => Some(s),
        Err(e) if e.is_about_the_file() => {
            r.error("admin.client_secret_file", e);
            None
        }
        Err(e) => {
            r.error("admin.client_secret", e);
            None
        }
    };
    if let Some(t) = &token_url {
        if let Err(e) = check_url(t) {
            r.error("admin.token_url", e);
        }
    }
    if org_id.is_some_and(|id| id <= 0) {
        r.error("admin.org_id", "must be a positive SCM organisation id");
    }
    if ssl_type_id.is_some_and(|id| id <= 0) {
        r.error(
            "admin.ssl_type_id",
            "must be a positive SCM certificate profile id",
        );
    }
    let (client_secret, client_secret_from) = secret?;
    Some(AdminConfig {
        url: url.trim_end_matches('/').to_string(),
        client_id: client_id?,
        client_secret,
        client_secret_from,
        token_url: token_url.unwrap_or_else(|| profile_token_url.to_string()),
        org_id,
        ssl_type_id: ssl_type_id.or(scm_profile_id),
        secret_readable_by_others: exposed,
    })
}

impl Profile {
    /// The identity used to recognise a profile whose file was renamed by hand.
    pub fn identity(&self) -> (String, String) {
        (
            self.client_id.clone(),
            self.scm_url.trim_end_matches('/').to_string(),
        )
    }
}

/// An `allowed_domains` entry: `example.com` or `*.example.com`.
fn check_domain_pattern(p: &str) -> Result<(), String> {
    let host = p.strip_prefix("*.").unwrap_or(p).trim_end_matches('.');
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "{p:?} is not a domain: use a name such as \"example.com\" (exactly that name) or \"*.example.com\" (any name below it)"
        ));
    }
    Ok(())
}

/// Whether `name` (a CN or SAN) matches one of `patterns`: `example.com` exactly, or
/// `*.example.com`: any name below it. Case and a trailing dot do not matter. Pure.
pub fn domain_allowed(patterns: &[String], name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim_end_matches('.').to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(parent) => n.len() > parent.len() + 1 && n.ends_with(&format!(".{parent}")),
            None => n == p,
        }
    })
}

impl Profile {
    /// Whether a certificate for these names may be enrolled with this profile from Jira.
    pub fn allows_names<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let Some(patterns) = &self.allowed_domains else {
            return Ok(());
        };
        match names.into_iter().find(|n| !domain_allowed(patterns, n)) {
            None => Ok(()),
            Some(n) => Err(n.to_string()),
        }
    }

    pub fn read(
        name: &ProfileName,
        r: &mut KeyReader<'_>,
        credentials_dir: Option<&Path>,
    ) -> Option<Self> {
        let client_id: Option<String> = r.req("client_id", "the SCM REST account's Client ID");
        let inline: Option<Secret> = r.opt_secret("client_secret");
        let file: Option<PathBuf> = r.opt("client_secret_file");
        let scm_url: Option<String> = r.req(
            "scm_url",
            "e.g. https://CUSTOMER.enroll.enterprise.sectigo.com",
        );
        let token_url: String = r.or("token_url", DEFAULT_TOKEN_URL.to_string());
        let ssl_cert_comments: String = r.or("ssl_cert_comments", String::new());
        let force_renewal: bool = r.or("force_renewal", false);
        let expiry_window_days: i64 = r.or("expiry_window_days", 30i64);
        let auto_renew: bool = r.or("auto_renew", true);
        let max_renewals_per_day: Option<u32> = r.opt("max_renewals_per_day");
        let scm_profile_id: Option<i64> = r.opt("scm_profile_id");
        let custom_fields: BTreeMap<String, String> = r.or("custom_fields", BTreeMap::new());
        let allowed_domains: Option<Vec<String>> = r.opt("allowed_domains");
        let deploy = read_deploy(r);
        let admin = read_admin(
            name,
            r,
            credentials_dir,
            &token_url,
            scm_profile_id.filter(|id| *id > 0),
        );
        let new_key = read_key_rotation(r);
        if new_key.is_some() && deploy.is_none() {
            r.error(
                "key_rotation",
                "\"new\" needs [deploy] dir: the new key exists only here, and reaches the server only as privkey.pem",
            );
        }
        for d in allowed_domains.iter().flatten() {
            if let Err(e) = check_domain_pattern(d) {
                r.error("allowed_domains", e);
            }
        }

        if let Some(id) = &client_id {
            if id.trim().is_empty() {
                r.error("client_id", "must not be empty");
            }
        }
        let credential = format!("{name}.client_secret");
        let spec = SecretSpec {
            inline,
            file,
            credential: "",
        };
        let exposed = super::secret_source::exposed_file(&spec, r.file());
        let secret = match read_secret_named(&spec, &credential, r.file(), credentials_dir) {
            Ok(s) => Some(s),
            // A missing or unreadable file: the key to fix is the one that names it.
            Err(e) if e.is_about_the_file() => {
                r.error("client_secret_file", e);
                None
            }
            Err(e) => {
                r.error("client_secret", e);
                None
            }
        };
        if let Some(u) = &scm_url {
            if let Err(e) = check_url(u) {
                r.error("scm_url", e);
            }
        }
        if let Err(e) = check_url(&token_url) {
            r.error("token_url", e);
        }
        let n = ssl_cert_comments.chars().count();
        if n > MAX_COMMENTS {
            r.error(
                "ssl_cert_comments",
                format!("is {n} characters long; SCM accepts at most {MAX_COMMENTS}"),
            );
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&expiry_window_days) {
            r.error(
                "expiry_window_days",
                format!("is {expiry_window_days}; must be between 1 and {MAX_WINDOW_DAYS} days"),
            );
        }
        if let Some(id) = scm_profile_id {
            if id <= 0 {
                r.error("scm_profile_id", "must be a positive SCM profile id");
            }
        }
        let (client_secret, client_secret_from) = secret?;
        Some(Profile {
            name: name.clone(),
            file: r.file().to_path_buf(),
            client_id: client_id?,
            client_secret,
            client_secret_from,
            scm_url: scm_url?.trim_end_matches('/').to_string(),
            token_url,
            ssl_cert_comments,
            force_renewal,
            expiry_window_days,
            auto_renew,
            max_renewals_per_day,
            scm_profile_id,
            custom_fields,
            allowed_domains: allowed_domains.map(|v| {
                v.iter()
                    .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                    .collect()
            }),
            deploy,
            new_key,
            secret_readable_by_others: exposed,
            admin,
        })
    }
}

/// `key_rotation` and `key_type`: the type of a fresh key for each renewal, or none (reuse).
fn read_key_rotation(r: &mut KeyReader<'_>) -> Option<crate::x509::keygen::KeyType> {
    let rotation: String = r.or("key_rotation", "reuse".to_string());
    let key_type: Option<String> = r.opt("key_type");
    match rotation.as_str() {
        "reuse" => {
            if key_type.is_some() {
                r.error("key_type", "applies only with key_rotation = \"new\"");
            }
            None
        }
        "new" => {
            let t = key_type.as_deref().unwrap_or("ec-p256");
            match crate::x509::keygen::KeyType::parse(t) {
                Some(k) => Some(k),
                None => {
                    r.error(
                        "key_type",
                        format!(
                            "{t:?} is not a key type: use {}",
                            crate::x509::keygen::KeyType::NAMES.join(", ")
                        ),
                    );
                    None
                }
            }
        }
        other => {
            r.error(
                "key_rotation",
                format!(
                    "{other:?}: use \"reuse\" (keep the key) or \"new\" (a fresh key each renewal)"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_patterns() {
        let p = vec!["example.com".to_string(), "*.corp.example.org".to_string()];
        for (name, want) in [
            ("example.com", true),
            ("EXAMPLE.com.", true),
            ("www.example.com", false),
            ("corp.example.org", false),
            ("a.corp.example.org", true),
            ("a.b.corp.example.org", true),
            ("*.corp.example.org", true),
            ("evilcorp.example.org", false),
            ("www.google.com", false),
            ("", false),
        ] {
            assert_eq!(domain_allowed(&p, name), want, "{name:?}");
        }
        assert!(check_domain_pattern("*.example.com").is_ok());
        assert!(check_domain_pattern("example.com").is_ok());
        for bad in [
            "",
            "*",
            "*.",
            "exa mple.com",
            "-a.com",
            "a..b",
            "**.a.com",
            "a.*.com",
        ] {
            assert!(check_domain_pattern(bad).is_err(), "{bad:?}");
        }
    }
}
