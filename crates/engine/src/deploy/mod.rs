//! Deploying: after a renewal or an enrollment, the profile's `[deploy] dir/NAME/` holds the
//! new files ([`files`]), then the `[deploy] hook` runs ([`hook`]; under the hardened unit,
//! through the root helper: [`helper`]).
//!
//! The job is journaled in the certificate's record ([`DeployJob`]), committed with the record
//! that made it active, so a restart finishes it. The PEM is not kept in the state: a deploy
//! owed after a restart downloads it again (downloads are free). A failing deploy is retried
//! on a backoff and reported; it never causes a renewal.

pub mod files;
pub mod helper;
pub mod hook;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tracing::{error, info};

use sectigo_core::config::{DeployConfig, DEFAULT_DEPLOY_MODE};
use sectigo_core::names::CertId;
use sectigo_core::secret::Secret;
use sectigo_core::text::ts;
use sectigo_model::{CertOrigin, CertRecord, CertState, DeployJob, Event};
use sectigo_state::KeyStore;

use crate::clients::ScmClients;
use crate::error::{DeployError, EngineError};
pub use crate::error::{HelperError, HookError};
use crate::ledger::Ledger;
use crate::settings::Profiles;
use crate::shared::{bump, ClaimKey, Claims, Counters};
pub use files::FileSet;
pub use hook::{HookFacts, HookRun};

/// First retry after a failed deploy; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: i64 = 5 * 60;
const RETRY_MAX: i64 = 6 * 3600;

/// When a deploy that failed `attempts` times is tried again.
pub fn retry_at(attempts: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    let secs = RETRY_FIRST.saturating_mul(1i64 << attempts.saturating_sub(1).min(16));
    now + Duration::seconds(secs.min(RETRY_MAX))
}

/// A new deploy job for a certificate that just became active, when its profile deploys.
pub(crate) fn job_for(
    cfg: Option<&DeployConfig>,
    old_id: Option<&CertId>,
    at: DateTime<Utc>,
) -> Option<DeployJob> {
    cfg.map(|_| DeployJob {
        since: at,
        old_id: old_id.cloned(),
        files_done: false,
        attempts: 0,
        next_attempt: None,
        last_error: None,
    })
}

/// What a deploy attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployed {
    /// Files in place and hook run (or nothing was owed).
    Done,
    /// Still owed: the root helper has the hook, the attempt failed, or another task has it.
    Owed,
}

/// What `certs deploy` came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeployed {
    /// `DIR/NAME`, where the files are.
    pub dir: PathBuf,
    /// The profile has a `[deploy] hook`.
    pub hook: bool,
    pub outcome: Redeploy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Redeploy {
    /// Files in place, hook run (if any).
    Done,
    /// Files in place; the hook was handed to the root helper, whose answer the daemon takes.
    HookWithHelper,
    /// The attempt failed; retried on the deploy backoff, as after a renewal.
    Failed {
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Writes certificates' files and runs their hooks; journals each job in its record.
#[derive(Clone)]
pub struct Deployer {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) claims: Claims,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) profiles: Profiles,
    /// The declared certificates (their own `[deploy]`).
    pub(crate) declared: crate::settings::DeclaredSet,
    /// `run --hooks-via DIR`: hooks go to the root helper.
    pub(crate) hook_helper: Option<PathBuf>,
    pub(crate) counters: Arc<Counters>,
}

impl Deployer {
    /// Where a certificate's files go: a declared certificate's own `[deploy]`, else its
    /// profile's, if it has one.
    pub(crate) fn config_for(&self, rec: &CertRecord) -> Option<&DeployConfig> {
        let profile = self.profiles.get(&rec.profile);
        match rec.name.as_ref().and_then(|n| self.declared.get(n)) {
            Some(d) if d.profile == rec.profile => d.deploy_config(profile),
            _ => profile.and_then(|p| p.deploy.as_ref()),
        }
    }

    /// Deploys `id` now (files, then hook), with `pem` when the caller has it (else it is
    /// downloaded). Failures are recorded on the job and reported; they are not errors of the
    /// caller's operation.
    pub async fn deploy(&self, id: &CertId, pem: Option<&str>) -> Result<Deployed, EngineError> {
        // The cycle and the workflow poll both run owed deploys: one at a time per certificate.
        let Some(_claim) = self.claims.claim(ClaimKey::Deploy(id.clone())) else {
            return Ok(Deployed::Owed);
        };
        self.deploy_claimed(id, pem).await
    }

    /// [`Deployer::deploy`], the certificate's deploy claim held by the caller.
    async fn deploy_claimed(
        &self,
        id: &CertId,
        pem: Option<&str>,
    ) -> Result<Deployed, EngineError> {
        let Some(mut rec) = self.ledger.get(id).await? else {
            return Ok(Deployed::Done);
        };
        let Some(mut job) = rec.deploy.clone() else {
            return Ok(Deployed::Done);
        };
        let Some(cfg) = self.config_for(&rec).cloned() else {
            // The profile no longer deploys: nothing is owed.
            rec.deploy = None;
            self.ledger.commit(vec![rec], Default::default()).await?;
            return Ok(Deployed::Done);
        };
        match self.attempt(&mut rec, &mut job, &cfg, pem).await {
            Ok(Deployed::Owed) => Ok(Deployed::Owed),
            Ok(Deployed::Done) => {
                if job.attempts > 0 {
                    info!(profile = %rec.profile, cert_id = %rec.id, "deploy of {} done after {} failed attempts", rec.subject_cn, job.attempts);
                }
                rec.deploy = None;
                let at = self.ledger.now();
                rec.log(
                    at,
                    format!("deployed to {}", cfg.dir.join(rec.dir_name()).display()),
                );
                self.ledger.commit(vec![rec], Default::default()).await?;
                Ok(Deployed::Done)
            }
            Err(e) => {
                self.failed(rec, job, e).await?;
                Ok(Deployed::Owed)
            }
        }
    }

    /// The files (unless in place already), then the hook.
    async fn attempt(
        &self,
        rec: &mut CertRecord,
        job: &mut DeployJob,
        cfg: &DeployConfig,
        pem: Option<&str>,
    ) -> Result<Deployed, EngineError> {
        if !job.files_done {
            let pem = match pem {
                Some(p) => p.to_string(),
                None => self.scm.get(&rec.profile)?.download(&rec.id).await?.pem,
            };
            let mut set = FileSet::from_bundle(&pem).map_err(DeployError::from)?;
            set.key = self.key_of(&rec.id).await?;
            let (c, n, i) = (cfg.clone(), rec.dir_name(), rec.id.clone());
            let stamp = self.ledger.now().timestamp_nanos_opt().unwrap_or_default();
            let written =
                tokio::task::spawn_blocking(move || files::write_set(&c, &n, &i, &set, stamp))
                    .await
                    .map_err(|_| DeployError::Task {
                        what: "writing the files",
                    })??;
            info!(profile = %rec.profile, cert_id = %rec.id, "deployed {} to {}", rec.subject_cn, written.display());
            job.files_done = true;
            rec.deploy = Some(job.clone());
            self.ledger
                .commit(vec![rec.clone()], Default::default())
                .await?;
        }
        let Some(argv) = &cfg.hook else {
            return Ok(Deployed::Done);
        };
        let now = self.ledger.now();
        let facts = HookFacts::of(rec, job.old_id.as_ref(), now);
        match &self.hook_helper {
            None => {
                let run = HookRun::new(argv, &facts, &cfg.dir.join(&facts.name));
                run.run(&rec.id).await.map_err(DeployError::from)?;
            }
            Some(hdir) => {
                let h = hdir.clone();
                let state = tokio::task::spawn_blocking(move || helper::exchange(&h, &facts, now))
                    .await
                    .map_err(|_| DeployError::Task {
                        what: "the hook helper",
                    })?
                    .map_err(DeployError::from)?;
                if state == helper::State::Waiting {
                    // The root helper has the hook: its answer is read at a later pass.
                    return Ok(Deployed::Owed);
                }
            }
        }
        info!(profile = %rec.profile, cert_id = %rec.id, "deploy hook {:?} succeeded", argv[0]);
        Ok(Deployed::Done)
    }

    /// A failed attempt: journaled on the job, retried on its backoff, reported (the first
    /// failure in a row to Jira and `[notify]`).
    async fn failed(
        &self,
        mut rec: CertRecord,
        mut job: DeployJob,
        e: EngineError,
    ) -> Result<(), EngineError> {
        let now = self.ledger.now();
        job.attempts += 1;
        let at = retry_at(job.attempts, now);
        let msg = e.to_string();
        error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "deploy of {} failed (attempt {}): {msg}; next try at {} (no renewal is made for this)",
            rec.subject_cn, job.attempts, ts(at));
        let first = job.attempts == 1;
        job.last_error = Some(msg.clone());
        job.next_attempt = Some(at);
        rec.deploy = Some(job);
        rec.log(now, format!("deploy failed: {msg}"));
        bump(&self.counters.deploy_failed);
        let news = if first {
            self.ledger.announce(Event::DeployFailed {
                cert: &rec,
                error: &msg,
                retry_at: at,
            })
        } else {
            Default::default()
        };
        self.ledger.commit(vec![rec], news).await
    }

    /// The private key the daemon made for certificate `id`, if any.
    pub(crate) async fn key_of(&self, id: &CertId) -> Result<Option<Secret>, EngineError> {
        let (ks, i) = (self.keys.clone(), id.clone());
        tokio::task::spawn_blocking(move || ks.get(&i))
            .await
            .map_err(|error| EngineError::Task {
                what: "reading a key",
                error,
            })?
            .map_err(|error| EngineError::Key {
                id: id.to_string(),
                error,
            })
    }

    /// `certs deploy`: the certificate's files written to its profile's `[deploy] dir` again
    /// and its hook run, as after a renewal (a certificate renewed before `[deploy]` existed;
    /// a server rebuilt). A new job replaces one still owed (its backoff too), so it runs now;
    /// a failure is journaled and retried like any deploy's.
    pub async fn redeploy(&self, id: &CertId) -> Result<Redeployed, EngineError> {
        let Some(_claim) = self.claims.claim(ClaimKey::Deploy(id.clone())) else {
            return Err(EngineError::Busy(id.clone()));
        };
        let mut rec = self.ledger.cert(id).await?;
        if !rec.state.is_live() {
            return Err(EngineError::Invalid(format!(
                "certificate {id} is {}: only a live certificate is deployed (see `certs list`)",
                rec.state.name()
            )));
        }
        let Some(profile) = self.profiles.get(&rec.profile) else {
            return Err(EngineError::Invalid(format!(
                "certificate {id} belongs to profile {:?}, which is not configured: nothing says where to deploy it",
                rec.profile
            )));
        };
        let Some(cfg) = profile.deploy.clone() else {
            return Err(EngineError::Invalid(format!(
                "profile {:?} has no [deploy] section: add one to {} (`dir`, and a `hook` if a server must reload), then `reload`",
                rec.profile,
                profile.file.display()
            )));
        };
        let now = self.ledger.now();
        rec.deploy = job_for(Some(&cfg), None, now);
        rec.log(now, "deploy asked for by the operator");
        info!(profile = %rec.profile, cert_id = %rec.id, "deploying {} again, as asked", rec.subject_cn);
        let dir = cfg.dir.join(rec.dir_name());
        self.ledger.commit(vec![rec], Default::default()).await?;
        let done = self.deploy_claimed(id, None).await?;
        let job = self.ledger.cert(id).await?.deploy;
        let outcome = match (done, job) {
            (Deployed::Done, _) | (Deployed::Owed, None) => Redeploy::Done,
            (Deployed::Owed, Some(j)) => match j.last_error {
                Some(e) if j.attempts > 0 => Redeploy::Failed {
                    error: e,
                    retry_at: j.next_attempt,
                },
                _ => Redeploy::HookWithHelper,
            },
        };
        Ok(Redeployed {
            dir,
            hook: cfg.hook.is_some(),
            outcome,
        })
    }

    /// A tracked certificate's files, downloaded from SCM now, with the profile's file mode.
    pub async fn export(&self, id: &CertId) -> Result<(CertRecord, FileSet, u32), EngineError> {
        let rec = self.ledger.cert(id).await?;
        let pem = self.scm.get(&rec.profile)?.download(&rec.id).await?.pem;
        let mut set = FileSet::from_bundle(&pem).map_err(DeployError::from)?;
        set.key = self.key_of(&rec.id).await?;
        let mode = self
            .config_for(&rec)
            .map_or(DEFAULT_DEPLOY_MODE, |d| d.mode);
        Ok((rec, set, mode))
    }

    /// After a restore on another machine (or a lost deploy directory): every active
    /// certificate the daemon made (a renewal or an enrollment, which it deploys) of a profile
    /// that deploys, whose files are not in place, owes its files again (the daemon downloads
    /// it, free, writes the files and runs the hook). Imported certificates are the operator's
    /// until their first renewal, as before. Returns how many.
    pub async fn owe_missing_deploys(&self) -> Result<u64, EngineError> {
        let now = self.ledger.now();
        let mut owed = Vec::new();
        for (name, profile) in self.profiles.iter() {
            let Some(cfg) = profile.deploy.clone() else {
                continue;
            };
            let n = name.clone();
            // A file check per certificate: on the blocking pool, with the profile's records.
            let found = self
                .ledger
                .read(move |s| {
                    let mut found = Vec::new();
                    for mut rec in s.by_profile(&n)? {
                        let made = !matches!(rec.origin, CertOrigin::Imported { .. });
                        let missing = !files::in_place(&cfg.dir, &rec.dir_name());
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
            self.ledger.put(owed).await?;
            self.ledger.flush().await?;
        }
        Ok(n)
    }

    /// Runs every deploy that is owed and due; returns how many are still owed.
    pub async fn deploy_owed(&self) -> Result<u64, EngineError> {
        let now = self.ledger.now();
        let owed = self.ledger.read(|s| s.deploys_owed()).await?;
        let mut left = 0;
        for rec in owed {
            let due = rec
                .deploy
                .as_ref()
                .and_then(|j| j.next_attempt)
                .is_none_or(|t| t <= now);
            if !due || !self.scm.has(&rec.profile) {
                left += 1;
                continue;
            }
            if self.deploy(&rec.id, None).await? == Deployed::Owed {
                left += 1;
            }
        }
        Ok(left)
    }
}
