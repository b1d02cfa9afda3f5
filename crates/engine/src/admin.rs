//! The operator's changes to the inventory that are not renewals: linking a certificate to an
//! issue, forgetting one, renaming a profile. With `import`, `renew` and `start_force_renewal`
//! these are the only ways the operator API changes the state: one write path, in the engine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use sectigo_core::config::{check_name, Config, PROFILES_DIR};
use sectigo_state::{blocking, CertRecord};

use crate::{is_issue_key, Engine, EngineError};

use sectigo_core::text::{count, ts};

/// A profile renamed: its file and its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renamed {
    pub old: String,
    pub new: String,
    pub from: std::path::PathBuf,
    pub to: std::path::PathBuf,
    pub moved: usize,
}

/// A state export, spooled: its counts and the file holding it (unlinked; read from the start).
#[derive(Debug)]
pub struct Snapshot {
    pub counts: sectigo_state::Counts,
    pub bytes: u64,
    pub file: std::fs::File,
}

impl Engine {
    /// Writes a consistent snapshot of the whole state (the private keys with it when
    /// `with_keys`) into an unlinked file under the state directory. Writers wait only while
    /// the spool is written, not while the caller copies it out.
    pub async fn export_state(
        &self,
        with_keys: bool,
        now: DateTime<Utc>,
    ) -> Result<Snapshot, EngineError> {
        let store = self.store.clone();
        let keys = self.keys.clone();
        let dir = self.state_dir.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::{Seek as _, Write as _};
            let spool = dir.join("export.spool");
            let io = |what: &str| {
                let what = format!("{what} {}", spool.display());
                move |error| sectigo_state::ExportError::Io { what, error }
            };
            let mut file = std::os::unix::fs::OpenOptionsExt::mode(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true),
                0o600,
            )
            .open(&spool)
            .map_err(io("creating"))?;
            // Unlinked at once: a crash leaves nothing behind.
            std::fs::remove_file(&spool).map_err(io("removing"))?;
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
        .expect("export task panicked")
    }

    /// One tracked certificate.
    pub async fn certificate(&self, id: &str) -> Result<CertRecord, EngineError> {
        let i = id.to_string();
        blocking(&self.store, move |s| s.get(&i))
            .await?
            .ok_or_else(|| EngineError::UnknownCert(id.into()))
    }

    /// Every tracked certificate (superseded and revoked ones too), in id order.
    pub async fn certificates(&self) -> Result<Vec<CertRecord>, EngineError> {
        Ok(blocking(&self.store, |s| {
            let mut v = Vec::new();
            s.scan(&mut |r| {
                v.push(r);
                true
            })?;
            Ok(v)
        })
        .await?)
    }

    /// Links a certificate to a Jira issue; returns the issue it was linked to before.
    pub async fn link(
        &self,
        id: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, EngineError> {
        if !is_issue_key(key) {
            return Err(EngineError::Invalid(format!(
                "{key:?} is not a Jira issue key (like CERT-123)"
            )));
        }
        let mut r = self.certificate(id).await?;
        let before = r.jira_issue.replace(key.to_string());
        r.log(now, format!("linked to Jira issue {key}"));
        info!(profile = %r.profile, cert_id = %r.id, jira_key = %key, "linked certificate {} to {key}", r.id);
        blocking(&self.store, move |s| {
            s.put(&[r])?;
            s.flush()
        })
        .await?;
        Ok(before.filter(|b| b != key))
    }

    /// Stops tracking a certificate; its history is written to the log. Returns the record.
    pub async fn forget(&self, id: &str) -> Result<CertRecord, EngineError> {
        let i = id.to_string();
        let Some(r) = blocking(&self.store, move |s| {
            let r = s.remove(&i)?;
            s.flush()?;
            Ok(r)
        })
        .await?
        else {
            return Err(EngineError::UnknownCert(id.into()));
        };
        if let Err(e) = self.keys.remove(id) {
            tracing::warn!(cert_id = %r.id, "the private key the daemon made for {id} stays in the state directory: {e}");
        }
        info!(profile = %r.profile, cert_id = %r.id, "stopped tracking {} ({}, state {}, expires {}); its history follows", r.id, r.subject_cn, r.state.name(), ts(r.not_after));
        for h in &r.history {
            info!(profile = %r.profile, cert_id = %r.id, "history of {}: {} {}", r.id, ts(h.at), h.event);
        }
        Ok(r)
    }

    /// Renames profile `old` to `new`: its file in `profiles.d/`, then its certificates in the
    /// state. The caller reloads the configuration afterwards.
    pub async fn rename_profile(
        &self,
        config: &Config,
        old: &str,
        new: &str,
    ) -> Result<Renamed, EngineError> {
        check_name(new).map_err(|e| EngineError::Invalid(e.to_string()))?;
        let Some(p) = config.profiles.get(old) else {
            return Err(EngineError::UnknownProfile(old.into()));
        };
        let to = config.dir.join(PROFILES_DIR).join(format!("{new}.toml"));
        if to.exists()
            || config
                .profiles
                .keys()
                .any(|n| n.eq_ignore_ascii_case(new) && n != old)
        {
            return Err(EngineError::Invalid(format!(
                "{} already exists",
                to.display()
            )));
        }
        // The file first, then the state: if we stop in between, the next start recognises the
        // rename by client_id and scm_url and moves the state then.
        std::fs::rename(&p.file, &to).map_err(|e| {
            EngineError::Refused(format!(
                "cannot rename {} to {}: {e}",
                p.file.display(),
                to.display()
            ))
        })?;
        let (o, n) = (old.to_string(), new.to_string());
        let moved = blocking(&self.store, move |s| {
            let m = s.rename_profile(&o, &n)?;
            s.flush()?;
            Ok(m)
        })
        .await?;
        info!(profile = %new, "profile {old:?} renamed to {new:?}; {moved} certificates moved");
        Ok(Renamed {
            old: old.into(),
            new: new.into(),
            from: p.file.clone(),
            to,
            moved,
        })
    }
}
