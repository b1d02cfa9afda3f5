//! The operator's changes to the inventory that are not renewals (linking a certificate to an
//! issue, forgetting one, renaming a profile) and what the operator reads of it (one
//! certificate, all of them, a consistent snapshot of the whole state).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::info;

use sectigo_core::config::{Config, PROFILES_DIR};
use sectigo_core::names::{CertId, IssueKey, ProfileName};
use sectigo_core::text::{count, ts};
use sectigo_model::CertRecord;
use sectigo_state::KeyStore;

use crate::error::EngineError;
use crate::ledger::Ledger;

/// A profile renamed: its file and its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renamed {
    pub old: ProfileName,
    pub new: ProfileName,
    pub from: PathBuf,
    pub to: PathBuf,
    pub moved: usize,
}

/// A state export, spooled: its counts and the file holding it (unlinked; read from the start).
#[derive(Debug)]
pub struct Snapshot {
    pub counts: sectigo_state::Counts,
    pub bytes: u64,
    pub file: std::fs::File,
}

#[derive(Clone)]
pub struct Operator {
    pub(crate) ledger: Ledger,
    pub(crate) keys: Arc<KeyStore>,
    /// `[state] dir`: where a state export is spooled.
    pub(crate) state_dir: PathBuf,
}

/// A new file for the spool, 0600, created (never opened through a link or a file that was
/// there) under a random name in `dir`, and unlinked at once: a crash leaves nothing behind.
fn new_spool(dir: &std::path::Path) -> Result<std::fs::File, sectigo_state::ExportError> {
    use ring::rand::SecureRandom as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut r = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut r);
    let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let spool = dir.join(format!(".export.{name}.spool"));
    let io = |what: &str| {
        let what = format!("{what} {}", spool.display());
        move |error| sectigo_state::ExportError::Io { what, error }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&spool)
        .map_err(io("creating"))?;
    std::fs::remove_file(&spool).map_err(io("removing"))?;
    Ok(file)
}

impl Operator {
    /// Writes a consistent snapshot of the whole state (the private keys with it when
    /// `with_keys`) into an unlinked file under the state directory. Writers wait only while
    /// the spool is written, not while the caller copies it out.
    pub async fn export_state(&self, with_keys: bool) -> Result<Snapshot, EngineError> {
        let store = self.ledger.store().clone();
        let keys = self.keys.clone();
        let dir = self.state_dir.clone();
        let now = self.ledger.now();
        tokio::task::spawn_blocking(move || {
            use std::io::{Seek as _, Write as _};
            let mut file = new_spool(&dir)?;
            let io = |what: &'static str| {
                move |error| sectigo_state::ExportError::Io {
                    what: format!("{what} the export spool"),
                    error,
                }
            };
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut file);
            let by = concat!("sectigo-connector ", env!("CARGO_PKG_VERSION"));
            let counts =
                sectigo_state::export::export(&*store, &keys, with_keys, by, now, &mut out)?;
            out.flush().map_err(io("writing"))?;
            drop(out);
            let bytes = file.stream_position().map_err(io("writing"))?;
            // Read back, decoded as an import would (writers run again meanwhile).
            file.rewind().map_err(io("reading"))?;
            let read = sectigo_state::export::verify(std::io::BufReader::new(&mut file))
                .map_err(|e| {
                    sectigo_state::ExportError::Refused(format!(
                        "the export would not restore, so none is given: {e} (a record in the state that this version cannot read)"
                    ))
                })?;
            if read != counts {
                return Err(sectigo_state::ExportError::Refused(
                    "the export read back differs from what was written".into(),
                )
                .into());
            }
            file.rewind().map_err(io("reading"))?;
            info!(
                "state exported: {}, {}, {}, {} ({bytes} bytes)",
                count(counts.certificates, "certificate", "certificates"),
                count(counts.issues, "issue record", "issue records"),
                count(counts.outbox, "queued Jira update", "queued Jira updates"),
                count(counts.keys, "private key", "private keys"),
            );
            Ok(Snapshot {
                counts,
                bytes,
                file,
            })
        })
        .await
        .map_err(|error| EngineError::Task {
            what: "the state export",
            error,
        })?
    }

    /// One tracked certificate.
    pub async fn certificate(&self, id: &CertId) -> Result<CertRecord, EngineError> {
        self.ledger.cert(id).await
    }

    /// Every tracked certificate (superseded and revoked ones too), in id order.
    pub async fn certificates(&self) -> Result<Vec<CertRecord>, EngineError> {
        self.ledger
            .read(|s| {
                let mut v = Vec::new();
                s.scan(&mut |r| {
                    v.push(r);
                    true
                })?;
                Ok(v)
            })
            .await
    }

    /// The live certificates whose CN or `--name` is `name` (case aside).
    pub async fn by_name(&self, name: &str) -> Result<Vec<CertRecord>, EngineError> {
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        Ok(self
            .certificates()
            .await?
            .into_iter()
            .filter(|r| {
                r.state.is_live()
                    && (r.subject_cn.eq_ignore_ascii_case(&want)
                        || r.name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&want)))
            })
            .collect())
    }

    /// Links a certificate to a Jira issue; returns the issue it was linked to before.
    pub async fn link(&self, id: &CertId, key: &IssueKey) -> Result<Option<IssueKey>, EngineError> {
        let mut r = self.ledger.cert(id).await?;
        let before = r.jira_issue.replace(key.clone());
        r.log(self.ledger.now(), format!("linked to Jira issue {key}"));
        info!(profile = %r.profile, cert_id = %r.id, jira_key = %key, "linked certificate {} to {key}", r.id);
        self.ledger.commit(vec![r], Default::default()).await?;
        Ok(before.filter(|b| b != key))
    }

    /// Stops tracking a certificate; its history is written to the log. Returns the record.
    pub async fn forget(&self, id: &CertId) -> Result<CertRecord, EngineError> {
        let i = id.clone();
        let Some(r) = self
            .ledger
            .read(move |s| {
                let r = s.remove(&i)?;
                s.flush()?;
                Ok(r)
            })
            .await?
        else {
            return Err(EngineError::UnknownCert(id.clone()));
        };
        if let Err(e) = self.keys.remove(id) {
            tracing::warn!(cert_id = %r.id, "the private key the daemon made for {id} stays in the state directory: {e}");
        }
        info!(profile = %r.profile, cert_id = %r.id, "stopped tracking {} ({}, state {}, expires {}); its history follows", r.id, r.subject_cn, r.state.name(), ts(r.not_after));
        for h in &r.history {
            info!(profile = %r.profile, cert_id = %r.id, "history of {}: {} {}", r.id, ts(h.at), sectigo_core::text::Escaped(&h.event));
        }
        Ok(r)
    }

    /// The state's side of a profile rename (`profiles rename OLD NEW`): the command, as the
    /// configuration's owner (root in the packaged layout, where the daemon cannot write to
    /// `/etc`), has renamed `profiles.d/OLD.toml` to `NEW.toml`; this moves OLD's
    /// certificates to NEW. It is refused unless the files say so (OLD.toml gone, NEW.toml
    /// there), so the state never moves apart from the files. NEW may be known to the state
    /// already (a file renamed by hand that was taken for a new profile): the certificates
    /// join it. The caller reloads the configuration afterwards.
    pub async fn rename_profile(
        &self,
        config: &Config,
        old: &ProfileName,
        new: &ProfileName,
    ) -> Result<Renamed, EngineError> {
        let dir = config.dir.join(PROFILES_DIR);
        let (from, to) = (
            dir.join(format!("{old}.toml")),
            dir.join(format!("{new}.toml")),
        );
        if old == new {
            return Err(EngineError::Invalid(format!(
                "profiles rename {old} {new}: the names are the same"
            )));
        }
        if from.exists() {
            return Err(EngineError::Invalid(format!(
                "{} is still there: rename the file first (`sectigo-connector profiles rename {old} {new}`, run as the owner of {}, does both)",
                from.display(),
                dir.display()
            )));
        }
        if !to.exists() {
            return Err(EngineError::Invalid(format!(
                "{} does not exist: `profiles rename {old} {new}` renames profiles.d/{old}.toml to it",
                to.display()
            )));
        }
        let (o, n) = (old.clone(), new.clone());
        let moved = self
            .ledger
            .read(move |s| {
                let m = s.merge_profile(&o, &n)?;
                s.flush()?;
                Ok(m)
            })
            .await?;
        info!(profile = %new, "profile {old:?} renamed to {new:?}; {moved} certificates moved");
        Ok(Renamed {
            old: old.clone(),
            new: new.clone(),
            from,
            to,
            moved,
        })
    }
}
