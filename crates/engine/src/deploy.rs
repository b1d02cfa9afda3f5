//! Deploying: after a renewal or an enrollment, the profile's `[deploy] dir/NAME/` holds the
//! new `cert.pem`, `chain.pem` and `fullchain.pem`, then the `[deploy] hook` runs.
//!
//! The set is switched atomically: the files are written (each fsynced) into a new hidden
//! directory `dir/.NAME.ID.N/`, and `dir/NAME` is a symbolic link renamed onto it, so a reader
//! (or a crash) sees either the old set or the new one, never a mix. The job is journaled in
//! the certificate's record ([`DeployJob`]), committed with the record that made it active,
//! so a restart finishes it. The PEM is not kept in the state: a deploy owed after a restart
//! downloads it again (downloads are free). A failing hook is retried on a backoff and
//! reported; it never causes a renewal.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tracing::{error, info, warn};

use sectigo_core::config::DeployConfig;
use sectigo_jira::events::Event;
use sectigo_state::{blocking, CertRecord, CertState, DeployJob};

use crate::{Engine, EngineError};

/// A hook that runs longer is killed and counted as failed.
pub const HOOK_TIMEOUT: StdDuration = StdDuration::from_secs(60);
/// Hook output kept in the journal, per run.
const HOOK_OUTPUT_MAX: usize = 8 * 1024;
/// First retry after a failed deploy; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: i64 = 5 * 60;
const RETRY_MAX: i64 = 6 * 3600;

/// The files of one certificate, as PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSet {
    pub cert: String,
    pub chain: String,
    /// The private key, when the daemon made it (`key_rotation = "new"`).
    pub key: Option<sectigo_core::secret::Secret>,
}

impl FileSet {
    /// Splits SCM's download (the leaf and its chain, in any order) into the leaf and the
    /// rest. The leaf is the first certificate that is not a CA (or the first one).
    pub fn from_bundle(pem: &str) -> Result<FileSet, String> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let mut blocks = Vec::new();
        let mut rest = pem;
        while let Some(start) = rest.find(BEGIN) {
            let Some(len) = rest[start..].find(END) else {
                return Err("a certificate block has no END line".into());
            };
            let end = start + len + END.len();
            blocks.push(format!("{}\n", rest[start..end].replace("\r\n", "\n")));
            rest = &rest[end..];
        }
        if blocks.is_empty() {
            return Err("the download holds no certificate".into());
        }
        let is_ca = |b: &str| sectigo_core::x509::pem::is_ca(b.as_bytes());
        let leaf = blocks.iter().position(|b| !is_ca(b)).unwrap_or(0);
        let cert = blocks.remove(leaf);
        Ok(FileSet {
            cert,
            chain: blocks.concat(),
            key: None,
        })
    }

    /// (file, text, whether it is the private key).
    fn files(&self) -> Vec<(&'static str, String, bool)> {
        let mut f = vec![
            ("cert.pem", self.cert.clone(), false),
            ("chain.pem", self.chain.clone(), false),
            (
                "fullchain.pem",
                format!("{}{}", self.cert, self.chain),
                false,
            ),
        ];
        if let Some(k) = &self.key {
            f.push(("privkey.pem", k.expose().to_string(), true));
        }
        f
    }
}

/// The directory name of a certificate: its `--name`, else its CN made safe for a file name
/// (`*.example.com` → `wildcard.example.com`).
pub fn dir_name(rec: &CertRecord) -> String {
    if let Some(n) = &rec.name {
        return n.clone();
    }
    safe_name(&rec.subject_cn).unwrap_or_else(|| format!("cert-{}", rec.id))
}

/// `name` as a file name: letters, digits, `.`, `-`, `_`; `None` when nothing is left.
pub fn safe_name(name: &str) -> Option<String> {
    let n = name.trim().trim_end_matches('.');
    let n = n
        .strip_prefix("*.")
        .map_or(n.to_string(), |r| format!("wildcard.{r}"));
    let s: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    (!s.is_empty() && s.len() <= 128).then_some(s)
}

/// A `certs import --name`: letters, digits, `.`, `-`, `_`, not starting with `.`, at most
/// 128 characters (a directory name that cannot escape `[deploy] dir`).
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Looks a user or group name up in `/etc/passwd` or `/etc/group` (local accounts).
fn lookup_id(file: &str, name: &str) -> Result<u32, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            (n == name).then_some(id)
        })
        .next()
        .ok_or_else(|| format!("no {name:?} in {file}"))
}

fn owner_ids(cfg: &DeployConfig) -> Result<(Option<u32>, Option<u32>), String> {
    let uid = cfg
        .owner
        .as_deref()
        .map(|o| lookup_id("/etc/passwd", o))
        .transpose()?;
    let gid = cfg
        .group
        .as_deref()
        .map(|g| lookup_id("/etc/group", g))
        .transpose()?;
    Ok((uid, gid))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `set` as `cfg.dir/name/` (see the module's comment); returns that path.
pub fn write_set(
    cfg: &DeployConfig,
    name: &str,
    id: &str,
    set: &FileSet,
) -> Result<PathBuf, String> {
    let dir = &cfg.dir;
    let ctx = |what: &str, p: &Path, e: std::io::Error| {
        // EROFS: the packaged unit's ProtectSystem=strict.
        let hint = if e.raw_os_error() == Some(30) {
            format!(" (under the packaged unit, add ReadWritePaths={} with `systemctl edit sectigo-connector`)", dir.display())
        } else {
            String::new()
        };
        format!("{what} {}: {e}{hint}", p.display())
    };
    std::fs::create_dir_all(dir).map_err(|e| ctx("cannot create", dir, e))?;
    let (uid, gid) = owner_ids(cfg)?;
    let stamp = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let version = format!(".{name}.{id}.{stamp}");
    let staging = dir.join(format!("{version}.tmp"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(|e| ctx("cannot create", &staging, e))?;
    // The directory is as open as the files, plus x.
    let dir_mode = cfg.mode | ((cfg.mode & 0o444) >> 2);
    for (file, text, private) in set.files() {
        // privkey.pem: never more than owner read-write, group read.
        let mode = if private { cfg.mode & 0o640 } else { cfg.mode };
        let p = staging.join(file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| ctx("cannot create", &p, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| ctx("cannot write", &p, e))?;
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&p, uid, gid)
                .map_err(|e| ctx("cannot give the owner and group of [deploy] to", &p, e))?;
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ctx("cannot set the mode of", &p, e))?;
    }
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(&staging, uid, gid).map_err(|e| {
            ctx(
                "cannot give the owner and group of [deploy] to",
                &staging,
                e,
            )
        })?;
    }
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(dir_mode))
        .map_err(|e| ctx("cannot set the mode of", &staging, e))?;
    sync_dir(&staging).map_err(|e| ctx("cannot sync", &staging, e))?;
    let final_dir = dir.join(&version);
    std::fs::rename(&staging, &final_dir).map_err(|e| ctx("cannot rename", &staging, e))?;
    sync_dir(dir).map_err(|e| ctx("cannot sync", dir, e))?;

    // The switch: a new link renamed over the old one.
    let link = dir.join(name);
    if let Ok(m) = std::fs::symlink_metadata(&link) {
        if !m.file_type().is_symlink() {
            // A directory (or file) made by hand: kept aside, once.
            let aside = dir.join(format!(".{name}.before-sectigo-connector.{stamp}"));
            std::fs::rename(&link, &aside).map_err(|e| ctx("cannot move aside", &link, e))?;
            warn!(
                "{} was not a link made by sectigo-connector: moved to {}",
                link.display(),
                aside.display()
            );
        }
    }
    let tmp_link = dir.join(format!(".{name}.link.tmp"));
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&version, &tmp_link)
        .map_err(|e| ctx("cannot create", &tmp_link, e))?;
    std::fs::rename(&tmp_link, &link).map_err(|e| ctx("cannot switch", &link, e))?;
    sync_dir(dir).map_err(|e| ctx("cannot sync", dir, e))?;

    // Older versions of this name go (best effort: a reader holding one open keeps its files).
    let prefix = format!(".{name}.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let old_version = n.starts_with(&prefix)
                && n != version
                && !n.contains(".before-sectigo-connector.")
                && n[prefix.len()..]
                    .split('.')
                    .next()
                    .is_some_and(|i| i.chars().all(|c| c.is_ascii_digit()));
            if old_version {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(link)
}

/// What a hook is told about the certificate it deploys (its environment), and what the
/// daemon hands the root helper (`helper`'s request file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HookFacts {
    pub cert_id: String,
    pub old_cert_id: Option<String>,
    pub profile: String,
    /// The directory name under `[deploy] dir`.
    pub name: String,
    pub not_after: DateTime<Utc>,
    /// When the daemon asked.
    pub at: DateTime<Utc>,
}

impl HookFacts {
    pub fn of(rec: &CertRecord, old_id: Option<&str>, at: DateTime<Utc>) -> HookFacts {
        HookFacts {
            cert_id: rec.id.clone(),
            old_cert_id: old_id.map(str::to_string),
            profile: rec.profile.clone(),
            name: dir_name(rec),
            not_after: rec.not_after,
            at,
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
        HookRun {
            argv: argv.to_vec(),
            env: vec![
                ("SECTIGO_CERT_ID", f.cert_id.clone()),
                (
                    "SECTIGO_OLD_CERT_ID",
                    f.old_cert_id.clone().unwrap_or_default(),
                ),
                ("SECTIGO_CERT_NAME", f.name.clone()),
                ("SECTIGO_CERT_DIR", dir.display().to_string()),
                ("SECTIGO_PROFILE", f.profile.clone()),
                (
                    "SECTIGO_NOT_AFTER",
                    f.not_after
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            ],
        }
    }

    /// Runs the hook (no shell), at most [`HOOK_TIMEOUT`]; its output goes to the log.
    pub async fn run(&self, cert_id: &str) -> Result<(), String> {
        self.run_within(cert_id, HOOK_TIMEOUT).await
    }

    /// [`HookRun::run`] with another time limit.
    pub async fn run_within(&self, cert_id: &str, limit: StdDuration) -> Result<(), String> {
        let Some((prog, args)) = self.argv.split_first() else {
            return Err("the hook is empty".into());
        };
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("the hook {prog:?} cannot start: {e}"))?;
        let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| format!("the hook {prog:?}: {e}"))?,
            Err(_) => {
                return Err(format!(
                    "the hook {prog:?} did not finish within {} s and was killed",
                    limit.as_secs()
                ))
            }
        };
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let text = sectigo_core::text::bounded(&text, HOOK_OUTPUT_MAX);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            info!(cert_id = %cert_id, "hook {prog}: {}", sectigo_core::text::Escaped(line));
        }
        if out.status.success() {
            Ok(())
        } else {
            Err(match out.status.code() {
                Some(c) => format!("the hook {prog:?} exited with {c}"),
                None => format!("the hook {prog:?} was killed by a signal"),
            })
        }
    }
}

/// When a deploy that failed `attempts` times is tried again.
pub fn retry_at(attempts: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    let secs = RETRY_FIRST.saturating_mul(1i64 << attempts.saturating_sub(1).min(16));
    now + Duration::seconds(secs.min(RETRY_MAX))
}

/// A new deploy job for a certificate that just became active, when its profile deploys.
pub(crate) fn job_for(
    cfg: Option<&DeployConfig>,
    old_id: Option<&str>,
    at: DateTime<Utc>,
) -> Option<DeployJob> {
    cfg.map(|_| DeployJob {
        since: at,
        old_id: old_id.map(str::to_string),
        files_done: false,
        attempts: 0,
        next_attempt: None,
        last_error: None,
    })
}

impl Engine {
    /// Deploys `id` now (files, then hook), with `pem` when the caller has it (else it is
    /// downloaded). Failures are recorded on the job and reported; they are not errors of
    /// the caller's operation.
    pub(crate) async fn deploy(
        &self,
        id: &str,
        pem: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        // The cycle and the workflow poll both run owed deploys: one at a time per certificate.
        let Some(_claim) = self.shared.claim(&format!("deploy:{id}")) else {
            return Ok(false);
        };
        let Some(mut rec) = self.get(id).await? else {
            return Ok(false);
        };
        let Some(mut job) = rec.deploy.clone() else {
            return Ok(true);
        };
        let Some(cfg) = self
            .profiles
            .get(&rec.profile)
            .and_then(|p| p.deploy.clone())
        else {
            // The profile no longer deploys: nothing is owed.
            rec.deploy = None;
            self.commit(vec![rec], None).await?;
            return Ok(true);
        };
        let name = dir_name(&rec);
        let result = async {
            if !job.files_done {
                let pem = match pem {
                    Some(p) => p.to_string(),
                    None => self.client(&rec.profile)?.download(&rec.id).await?.pem,
                };
                let mut set = FileSet::from_bundle(&pem).map_err(EngineError::Refused)?;
                set.key = self.key_of(&rec.id).await?;
                let (c, n, i) = (cfg.clone(), name.clone(), rec.id.clone());
                let written = tokio::task::spawn_blocking(move || write_set(&c, &n, &i, &set))
                    .await
                    .map_err(|e| EngineError::Refused(format!("the deploy task failed: {e}")))?
                    .map_err(EngineError::Refused)?;
                info!(profile = %rec.profile, cert_id = %rec.id, "deployed {} to {}", rec.subject_cn, written.display());
                job.files_done = true;
                rec.deploy = Some(job.clone());
                self.commit(vec![rec.clone()], None).await?;
            }
            if let Some(argv) = &cfg.hook {
                match &self.shared.hook_helper {
                    None => {
                        let facts = HookFacts::of(&rec, job.old_id.as_deref(), now);
                        let run = HookRun::new(argv, &facts, &cfg.dir.join(&name));
                        run.run(&rec.id).await.map_err(EngineError::Refused)?;
                    }
                    Some(hdir) => {
                        let (h, f) = (hdir.clone(), HookFacts::of(&rec, job.old_id.as_deref(), now));
                        let state = tokio::task::spawn_blocking(move || helper::exchange(&h, &f, now))
                        .await
                        .map_err(|e| EngineError::Refused(format!("the hook task failed: {e}")))?
                        .map_err(EngineError::Refused)?;
                        if state == helper::State::Waiting {
                            return Ok(false);
                        }
                    }
                }
                info!(profile = %rec.profile, cert_id = %rec.id, "deploy hook {:?} succeeded", argv[0]);
            }
            Ok::<bool, EngineError>(true)
        }
        .await;
        match result {
            Ok(false) => {
                // The root helper has the hook: its answer is read at a later pass.
                Ok(false)
            }
            Ok(true) => {
                if job.attempts > 0 {
                    info!(profile = %rec.profile, cert_id = %rec.id, "deploy of {} done after {} failed attempts", rec.subject_cn, job.attempts);
                }
                rec.deploy = None;
                rec.log(
                    Utc::now(),
                    format!("deployed to {}", cfg.dir.join(&name).display()),
                );
                self.commit(vec![rec], None).await?;
                Ok(true)
            }
            Err(e) => {
                job.attempts += 1;
                let at = retry_at(job.attempts, now);
                let msg = e.to_string();
                error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                    "deploy of {} failed (attempt {}): {msg}; next try at {} (no renewal is made for this)",
                    rec.subject_cn, job.attempts, at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                let first = job.attempts == 1;
                job.last_error = Some(msg.clone());
                job.next_attempt = Some(at);
                rec.deploy = Some(job);
                rec.log(Utc::now(), format!("deploy failed: {msg}"));
                crate::bump(&self.shared.counters.deploy_failed);
                let ev = if first {
                    self.event(
                        Event::DeployFailed {
                            cert: &rec,
                            error: &msg,
                            retry_at: at,
                        },
                        Utc::now(),
                    )
                } else {
                    None
                };
                self.commit(vec![rec], ev).await?;
                Ok(false)
            }
        }
    }

    /// The private key the daemon made for certificate `id`, if any.
    async fn key_of(&self, id: &str) -> Result<Option<sectigo_core::secret::Secret>, EngineError> {
        let (ks, i) = (self.keys.clone(), id.to_string());
        tokio::task::spawn_blocking(move || ks.get(&i))
            .await
            .map_err(|e| EngineError::Refused(format!("reading the key: {e}")))?
            .map_err(|e| EngineError::Refused(format!("reading the key of {id}: {e}")))
    }

    /// A tracked certificate's files, downloaded from SCM now, with the profile's file mode.
    pub async fn export(&self, id: &str) -> Result<(CertRecord, FileSet, u32), EngineError> {
        let rec = self
            .get(id)
            .await?
            .ok_or_else(|| EngineError::UnknownCert(id.to_string()))?;
        let pem = self.client(&rec.profile)?.download(&rec.id).await?.pem;
        let mut set = FileSet::from_bundle(&pem).map_err(EngineError::Refused)?;
        set.key = self.key_of(&rec.id).await?;
        let mode = self
            .deploy_config(&rec.profile)
            .map_or(sectigo_core::config::DEFAULT_DEPLOY_MODE, |d| d.mode);
        Ok((rec, set, mode))
    }

    /// After a restore on another machine (or a lost deploy directory): every active
    /// certificate the daemon made (a renewal or an enrollment, which it deploys) of a profile
    /// that deploys, whose files are not in place, owes its files again (the daemon downloads
    /// it, free, writes the files and runs the hook). Imported certificates are the operator's
    /// until their first renewal, as before. Returns how many.
    pub async fn owe_missing_deploys(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let mut owed = Vec::new();
        for (name, profile) in &self.profiles {
            let Some(cfg) = profile.deploy.clone() else {
                continue;
            };
            let n = name.clone();
            // A file check per certificate: on the blocking pool, with the profile's records.
            let found = blocking(&self.store, move |s| {
                let mut found = Vec::new();
                for mut rec in s.by_profile(&n)? {
                    let made = !matches!(rec.origin, sectigo_state::CertOrigin::Imported { .. });
                    let missing = !cfg.dir.join(dir_name(&rec)).join("cert.pem").exists();
                    if rec.state != CertState::Active || !made || !missing {
                        continue;
                    }
                    match &mut rec.deploy {
                        None => rec.deploy = job_for(Some(&cfg), None, now),
                        Some(job) if job.files_done => job.files_done = false,
                        Some(_) => continue,
                    }
                    rec.log(now, "files missing from the deploy directory: deploy owed");
                    found.push(rec);
                }
                Ok(found)
            })
            .await?;
            owed.extend(found);
        }
        let n = owed.len() as u64;
        if n > 0 {
            blocking(&self.store, move |s| {
                s.put(&owed)?;
                s.flush()
            })
            .await?;
        }
        Ok(n)
    }

    /// Runs every deploy that is owed and due; returns how many are still owed.
    pub async fn deploy_owed(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let owed = blocking(&self.store, |s| s.deploys_owed()).await?;
        let mut left = 0;
        for rec in owed {
            let due = rec
                .deploy
                .as_ref()
                .and_then(|j| j.next_attempt)
                .is_none_or(|t| t <= now);
            if !due || !self.clients.contains_key(&rec.profile) {
                left += 1;
                continue;
            }
            if !self.deploy(&rec.id, None, now).await? {
                left += 1;
            }
        }
        Ok(left)
    }
}

/// Hooks under the hardened unit. The service may not run `systemctl reload nginx` (no
/// privileges, no new ones), so `run --hooks-via DIR` hands each hook to a root helper: the
/// daemon writes `DIR/ID.request` (what the hook's environment says: never the command, which
/// the helper reads from the root-owned profile), `sectigo-connector-hooks.path` starts
/// `sectigo-connector-hooks.service` (root), whose `run-hooks --from DIR` runs the profile's
/// hook and writes `DIR/ID.result`, which the daemon reads at its next pass.
pub mod helper {
    use std::io::Write as _;
    use std::path::{Path, PathBuf};

    use chrono::{DateTime, Duration, Utc};
    use serde::{Deserialize, Serialize};

    use sectigo_core::config::Config;

    use super::{valid_name, HookFacts, HookRun};

    /// A request the helper has not answered within this time fails (and is retried).
    pub const ANSWER_WITHIN_MINS: i64 = 10;
    /// Largest request or result file read.
    const MAX_FILE: u64 = 64 * 1024;

    /// What the helper answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Answer {
        pub cert_id: String,
        pub ok: bool,
        pub message: String,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum State {
        Done,
        Waiting,
    }

    fn read_small(p: &Path) -> Result<Option<String>, String> {
        use std::io::Read as _;
        let f = match std::fs::File::open(p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        };
        let mut s = String::new();
        f.take(MAX_FILE)
            .read_to_string(&mut s)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Some(s))
    }

    /// Writes `text` at `path` through a temporary file and a rename.
    fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn paths(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{id}.request")),
            dir.join(format!("{id}.result")),
        )
    }

    /// The daemon's side: takes the helper's answer if there is one, else asks (once) and
    /// waits. `Err`: the hook failed, or the helper did not answer in time.
    pub fn exchange(dir: &Path, facts: &HookFacts, now: DateTime<Utc>) -> Result<State, String> {
        let (req_path, res_path) = paths(dir, &facts.cert_id);
        if let Some(text) = read_small(&res_path)? {
            let _ = std::fs::remove_file(&res_path);
            let _ = std::fs::remove_file(&req_path);
            let a: Answer = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}: not an answer of the hook helper: {e}",
                    res_path.display()
                )
            })?;
            return if a.ok {
                Ok(State::Done)
            } else {
                Err(a.message)
            };
        }
        if let Some(text) = read_small(&req_path)? {
            let asked: Option<HookFacts> = serde_json::from_str(&text).ok();
            match asked {
                Some(r) if now - r.at < Duration::minutes(ANSWER_WITHIN_MINS) => {
                    return Ok(State::Waiting)
                }
                _ => {
                    let _ = std::fs::remove_file(&req_path);
                    return Err(format!(
                        "the hook helper did not answer within {ANSWER_WITHIN_MINS} min: is sectigo-connector-hooks.path enabled (`systemctl enable --now sectigo-connector-hooks.path`)?"
                    ));
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = serde_json::to_string(facts).map_err(|e| e.to_string())?;
        write_atomic(&req_path, &text, 0o640)?;
        tracing::info!(profile = %facts.profile, cert_id = %facts.cert_id, "deploy hook handed to the root helper ({})", req_path.display());
        Ok(State::Waiting)
    }

    /// The helper's side (`run-hooks --from DIR`, as root): runs the hook of each request's
    /// profile, as configured in `cfg`, and answers. Returns (hooks run, failed).
    pub async fn serve(dir: &Path, cfg: &Config) -> (usize, usize) {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(e) => e
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "request"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        let (mut ran, mut failed) = (0, 0);
        for req_path in files {
            let id = req_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                let _ = std::fs::remove_file(&req_path);
                continue;
            }
            let answer = match answer(&req_path, &id, cfg).await {
                Ok(()) => Answer {
                    cert_id: id.clone(),
                    ok: true,
                    message: "ok".into(),
                },
                Err(message) => {
                    failed += 1;
                    Answer {
                        cert_id: id.clone(),
                        ok: false,
                        message,
                    }
                }
            };
            ran += 1;
            let (_, res_path) = paths(dir, &id);
            let text = serde_json::to_string(&answer).unwrap_or_default();
            if let Err(e) = write_atomic(&res_path, &text, 0o644) {
                tracing::error!("cannot answer {}: {e}", req_path.display());
            }
            let _ = std::fs::remove_file(&req_path);
        }
        (ran, failed)
    }

    async fn answer(req_path: &Path, id: &str, cfg: &Config) -> Result<(), String> {
        let text = read_small(req_path)?.unwrap_or_default();
        let r: HookFacts = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a request of the daemon: {e}", req_path.display()))?;
        if r.cert_id != id || !valid_name(&r.name) {
            return Err(format!("{}: a malformed request", req_path.display()));
        }
        let profile = cfg
            .profiles
            .get(&r.profile)
            .ok_or_else(|| format!("no profile {:?} is configured", r.profile))?;
        let deploy = profile
            .deploy
            .as_ref()
            .ok_or_else(|| format!("profile {:?} has no [deploy]", r.profile))?;
        let Some(argv) = &deploy.hook else {
            return Ok(());
        };
        let run = HookRun::new(argv, &r, &deploy.dir.join(&r.name));
        tracing::info!(profile = %r.profile, cert_id = %r.cert_id, "running the deploy hook {:?}", argv[0]);
        run.run(&r.cert_id).await
    }
}
