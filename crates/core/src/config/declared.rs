//! Certificates declared in files: `certificates.d/NAME.toml`, one certificate per file, NAME
//! (the file's stem) its name and its deploy directory's name. The daemon enrolls what is
//! declared and missing, replaces what changed and renews it for ever (the engine's
//! `declared` module); here the files are read and checked against the profiles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::profile::{read_deploy, DeployConfig, Profile};
use super::reader::KeyReader;
use crate::names::{CertName, ProfileName};
use crate::x509::keygen::KeyType;

pub const DECLARED_DIR: &str = "certificates.d";

/// Most names one declaration may carry (SCM's own limit on SANs is of this order).
pub const MAX_NAMES: usize = 100;

/// `enroll`: who consents to the billable enrollment of a missing certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EnrollMode {
    /// `certs apply` after a yes.
    #[default]
    Confirm,
    /// The daemon, on its own, within the profile's daily budget.
    Auto,
}

impl EnrollMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollMode::Confirm => "confirm",
            EnrollMode::Auto => "auto",
        }
    }
}

/// One declared certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub name: CertName,
    pub file: PathBuf,
    pub profile: ProfileName,
    /// DNS names, lower case; the first is the CN, all are SANs.
    pub names: Vec<String>,
    pub key_type: KeyType,
    pub enroll: EnrollMode,
    /// Its own `[deploy]`, else the profile's.
    pub deploy: Option<DeployConfig>,
}

impl Declared {
    /// Where its files go: its own `[deploy]`, else its profile's.
    pub fn deploy_config<'a>(&'a self, profile: Option<&'a Profile>) -> Option<&'a DeployConfig> {
        self.deploy
            .as_ref()
            .or_else(|| profile.and_then(|p| p.deploy.as_ref()))
    }
}

/// A DNS name as a declaration may carry it: labels of letters, digits and `-`, a leading
/// `*.` for a wildcard; at most 253 characters.
fn dns_name_ok(n: &str) -> bool {
    let body = n.strip_prefix("*.").unwrap_or(n);
    !body.is_empty()
        && n.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Reads `dir/certificates.d/*.toml` (absent or empty: none). Every problem is recorded in
/// `errors`, naming the file and the key.
pub(crate) fn load(
    dir: &Path,
    profiles: &BTreeMap<ProfileName, Profile>,
    files: Vec<PathBuf>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<CertName, Declared> {
    let _ = dir;
    let mut out = BTreeMap::new();
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let name = match CertName::parse(stem) {
            Ok(n) => n,
            Err(e) => {
                errors.push(ConfigError::file(
                    &path,
                    format!(
                        "the file's stem {} is not a certificate name ({})",
                        e.value, e.rule
                    ),
                ));
                continue;
            }
        };
        let Some(mut r) = KeyReader::open(&path, false, false, errors) else {
            continue;
        };
        let d = read_one(&name, &mut r, profiles);
        r.finish();
        if let Some(d) = d {
            out.insert(name, d);
        }
    }
    out
}

fn read_one(
    name: &CertName,
    r: &mut KeyReader<'_>,
    profiles: &BTreeMap<ProfileName, Profile>,
) -> Option<Declared> {
    let profile: Option<String> = r.req("profile", "the profile that enrolls and renews it");
    let names: Option<Vec<String>> = r.req("names", "its DNS names; the first is the CN");
    let key_type: String = r.or("key_type", "ec-p256".to_string());
    let enroll: String = r.or("enroll", "confirm".to_string());
    let deploy = read_deploy(r);
    let key_type = match KeyType::parse(&key_type) {
        Some(k) => Some(k),
        None => {
            r.error(
                "key_type",
                format!(
                    "{key_type:?} is not a key type; valid: {}",
                    KeyType::NAMES.join(", ")
                ),
            );
            None
        }
    };
    let enroll = match enroll.as_str() {
        "confirm" => Some(EnrollMode::Confirm),
        "auto" => Some(EnrollMode::Auto),
        other => {
            r.error(
                "enroll",
                format!("{other:?} is not valid; valid: \"confirm\" (certs apply enrolls it after a yes), \"auto\" (the daemon enrolls it within the daily budget)"),
            );
            None
        }
    };
    let profile = match profile {
        None => None,
        Some(p) => match profiles.get(p.as_str()) {
            Some(p) => Some(p),
            None => {
                let known: Vec<&str> = profiles.keys().map(|k| k.as_str()).collect();
                r.error(
                    "profile",
                    format!(
                        "no profile named {p:?} is configured (profiles are the files in profiles.d/: {})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                );
                None
            }
        },
    };
    let names = names.and_then(|names| check_names(r, names, profile));
    Some(Declared {
        name: name.clone(),
        file: r.file().to_path_buf(),
        profile: profile?.name.clone(),
        names: names?,
        key_type: key_type?,
        enroll: enroll?,
        deploy,
    })
}

/// The names, lower case and without a trailing dot: not empty, DNS names, no duplicates, each
/// within the profile's `allowed_domains`.
fn check_names(
    r: &mut KeyReader<'_>,
    names: Vec<String>,
    profile: Option<&Profile>,
) -> Option<Vec<String>> {
    if names.is_empty() {
        r.error(
            "names",
            "is empty; give at least one DNS name (the first is the CN)",
        );
        return None;
    }
    if names.len() > MAX_NAMES {
        r.error(
            "names",
            format!("holds {} names; at most {MAX_NAMES}", names.len()),
        );
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for n in &names {
        let low = n.trim_end_matches('.').to_ascii_lowercase();
        if !dns_name_ok(&low) {
            r.error(
                "names",
                format!(
                    "{:?} is not a DNS name (labels of letters, digits and '-', a leading \"*.\" for a wildcard)",
                    crate::text::bounded(&crate::text::Escaped(n).to_string(), 80)
                ),
            );
            return None;
        }
        if out.contains(&low) {
            r.error("names", format!("{low:?} is listed twice"));
            return None;
        }
        out.push(low);
    }
    if let Some(p) = profile {
        if let Err(bad) = p.allows_names(out.iter().map(String::as_str)) {
            r.error(
                "names",
                format!(
                    "{bad:?} is outside profile {:?}'s allowed_domains ({}); the profile may not enroll it",
                    p.name,
                    p.allowed_domains.as_deref().unwrap_or_default().join(", ")
                ),
            );
            return None;
        }
    }
    Some(out)
}

/// Which names are declared by more than one file: each such name, with the declarations that
/// carry it (sorted). Pure.
pub fn conflicts<'a>(
    decls: impl IntoIterator<Item = &'a Declared>,
) -> BTreeMap<String, Vec<CertName>> {
    let mut by_name: BTreeMap<String, Vec<CertName>> = BTreeMap::new();
    for d in decls {
        for n in &d.names {
            by_name.entry(n.clone()).or_default().push(d.name.clone());
        }
    }
    by_name.retain(|_, v| v.len() > 1);
    by_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["a.example.com", "*.example.com", "x-1.y", "localhost"] {
            assert!(dns_name_ok(ok), "{ok}");
        }
        for bad in [
            "", "*.", "a..b", "-a.b", "a b", "a/b", "*.*.b", "a.*.b", "é.com",
        ] {
            assert!(!dns_name_ok(bad), "{bad}");
        }
    }
}
