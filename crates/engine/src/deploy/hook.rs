//! A profile's `[deploy] hook`: an argv (no shell) run after a certificate's files are in place,
//! told about the certificate through its environment: `SECTIGO_CERT_ID`,
//! `SECTIGO_OLD_CERT_ID`, `SECTIGO_CERT_NAME`, `SECTIGO_CERT_DIR`, `SECTIGO_PROFILE`,
//! `SECTIGO_NOT_AFTER`, and certbot's `RENEWED_LINEAGE` (the directory) and `RENEWED_DOMAINS`
//! (the names, space-separated), so that existing certbot deploy hooks work unchanged.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use sectigo_core::names::{CertId, CertName, ProfileName};
use sectigo_core::text::{bounded, ts, Escaped};
use sectigo_model::CertRecord;

use crate::error::HookError;

/// A hook that runs longer is killed and counted as failed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// Hook output kept in the log, per run.
const HOOK_OUTPUT_MAX: usize = 8 * 1024;
/// At most this many names are handed to a hook (a certificate has a few).
const MAX_NAMES: usize = 100;

/// What a hook is told about the certificate it deploys (its environment), and what the
/// daemon hands the root helper (`helper`'s request file). Every field is checked where it is
/// decoded: ids and names by their types, `names` by [`dns_name`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookFacts {
    pub cert_id: CertId,
    pub old_cert_id: Option<CertId>,
    pub profile: ProfileName,
    /// The directory name under `[deploy] dir`.
    pub name: CertName,
    /// The certificate's DNS names (CN first), each checked by [`dns_name`].
    #[serde(default)]
    pub names: Vec<String>,
    pub not_after: DateTime<Utc>,
    /// When the daemon asked.
    pub at: DateTime<Utc>,
}

/// Whether `n` is a DNS name fit for a hook's environment: labels of letters, digits, `-` and
/// `_` (and one leading `*.`), at most 253 characters. Nothing a shell would read as code.
pub fn dns_name(n: &str) -> bool {
    let host = n.strip_prefix("*.").unwrap_or(n).trim_end_matches('.');
    !host.is_empty()
        && n.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

impl HookFacts {
    pub fn of(rec: &CertRecord, old_id: Option<&CertId>, at: DateTime<Utc>) -> HookFacts {
        let mut names: Vec<String> = Vec::new();
        for n in std::iter::once(&rec.subject_cn).chain(rec.sans.iter()) {
            if dns_name(n) && !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
                names.push(n.clone());
            }
        }
        names.truncate(MAX_NAMES);
        HookFacts {
            cert_id: rec.id.clone(),
            old_cert_id: old_id.cloned(),
            profile: rec.profile.clone(),
            name: rec.dir_name(),
            names,
            not_after: rec.not_after,
            at,
        }
    }

    /// The facts are ones the daemon could have written: every name a DNS name, not too
    /// many. (Ids and names were checked as they were decoded.)
    pub fn check(&self) -> Result<(), String> {
        if self.names.len() > MAX_NAMES {
            return Err(format!("{} names (at most {MAX_NAMES})", self.names.len()));
        }
        match self.names.iter().find(|n| !dns_name(n)) {
            Some(n) => Err(format!(
                "{:?} is not a DNS name",
                bounded(&Escaped(n).to_string(), 64)
            )),
            None => Ok(()),
        }
    }
}

/// What a hook run needs: the argv and its environment.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub argv: Vec<String>,
    pub env: Vec<(&'static str, String)>,
}

impl HookRun {
    /// The hook `argv` for the certificate `f` describes, deployed in `dir`.
    pub fn new(argv: &[String], f: &HookFacts, dir: &Path) -> HookRun {
        let dir = dir.display().to_string();
        HookRun {
            argv: argv.to_vec(),
            env: vec![
                ("SECTIGO_CERT_ID", f.cert_id.to_string()),
                (
                    "SECTIGO_OLD_CERT_ID",
                    f.old_cert_id
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ),
                ("SECTIGO_CERT_NAME", f.name.to_string()),
                ("SECTIGO_CERT_DIR", dir.clone()),
                ("SECTIGO_PROFILE", f.profile.to_string()),
                ("SECTIGO_NOT_AFTER", ts(f.not_after)),
                ("RENEWED_LINEAGE", dir),
                ("RENEWED_DOMAINS", f.names.join(" ")),
            ],
        }
    }

    /// Runs the hook (no shell), at most [`HOOK_TIMEOUT`]; its output goes to the log.
    pub async fn run(&self, cert_id: &CertId) -> Result<(), HookError> {
        self.run_within(cert_id, HOOK_TIMEOUT).await
    }

    /// [`HookRun::run`] with another time limit.
    pub async fn run_within(&self, cert_id: &CertId, limit: Duration) -> Result<(), HookError> {
        let Some((prog, args)) = self.argv.split_first() else {
            return Err(HookError::Empty);
        };
        let prog_name = prog.clone();
        let child = tokio::process::Command::new(prog)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| HookError::Start {
                prog: prog_name.clone(),
                error,
            })?;
        let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(r) => r.map_err(|error| HookError::Wait {
                prog: prog_name.clone(),
                error,
            })?,
            Err(_) => {
                return Err(HookError::Timeout {
                    prog: prog_name,
                    secs: limit.as_secs(),
                })
            }
        };
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let text = bounded(&text, HOOK_OUTPUT_MAX);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            info!(cert_id = %cert_id, "hook {}: {}", Escaped(prog), Escaped(line));
        }
        match out.status.code() {
            _ if out.status.success() => Ok(()),
            Some(code) => Err(HookError::Exit {
                prog: prog_name,
                code,
            }),
            None => Err(HookError::Signal { prog: prog_name }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_names_reach_a_hook() {
        for ok in [
            "a.example.com",
            "*.example.com",
            "x_y.example.com",
            "localhost",
        ] {
            assert!(dns_name(ok), "{ok}");
        }
        for bad in [
            "", "$(id)", "a b", "a;b", "`id`", "a\nb", "..", "*.", "a..b",
        ] {
            assert!(!dns_name(bad), "{bad:?}");
        }
    }
}
