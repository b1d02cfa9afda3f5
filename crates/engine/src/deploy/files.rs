//! A certificate's files under its profile's `[deploy] dir`: `NAME/` holding `cert.pem`,
//! `chain.pem`, `fullchain.pem` (and `privkey.pem` when the daemon made the key).
//!
//! The set is switched atomically: the files are written (each fsynced) into a new hidden
//! directory `dir/.NAME.ID.N/`, and `dir/NAME` is a symbolic link renamed onto it, so a reader
//! (or a crash) sees either the old set or the new one, never a mix.
//!
//! `privkey.pem` is 0600 (the owner only) unless `[deploy] group` is set: then 0640, readable
//! by that group only, whatever `[deploy] mode` says. The service's own group never reads a
//! key by default (`certs export` and `state export` withhold keys from it too).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sectigo_core::config::DeployConfig;
use sectigo_core::names::{CertId, CertName};
use sectigo_core::secret::Secret;
use sectigo_core::x509::pem::{split_bundle, PemError};

use super::DeployError;

/// The files of one certificate, as PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSet {
    pub cert: String,
    pub chain: String,
    /// The private key, when the daemon made it (`key_rotation = "new"`).
    pub key: Option<Secret>,
}

impl FileSet {
    /// SCM's download (the leaf and its chain, in any order), split.
    pub fn from_bundle(pem: &str) -> Result<FileSet, PemError> {
        let s = split_bundle(pem.as_bytes())?;
        Ok(FileSet {
            cert: s.leaf,
            chain: s.chain,
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

/// The mode of `privkey.pem` under `cfg` (see the module's comment).
pub fn key_mode(cfg: &DeployConfig) -> u32 {
    if cfg.group.is_some() {
        0o640
    } else {
        0o600
    }
}

/// Looks a user or group name up in `/etc/passwd` or `/etc/group` (local accounts).
fn lookup_id(file: &'static str, name: &str) -> Result<u32, DeployError> {
    let text = std::fs::read_to_string(file).map_err(|error| DeployError::Io {
        what: "cannot read",
        path: file.into(),
        error,
        hint: String::new(),
    })?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            (n == name).then_some(id)
        })
        .next()
        .ok_or_else(|| DeployError::NoAccount {
            name: name.to_string(),
            file,
        })
}

fn owner_ids(cfg: &DeployConfig) -> Result<(Option<u32>, Option<u32>), DeployError> {
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

/// An IO error on `path`, with the packaged unit's fix when the file system is read-only.
fn io(dir: &Path, what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DeployError {
    let (dir, path) = (dir.to_path_buf(), path.to_path_buf());
    move |error| {
        // EROFS: the packaged unit's ProtectSystem=strict.
        let hint = if error.raw_os_error() == Some(30) {
            format!(" (under the packaged unit, add ReadWritePaths={} with `systemctl edit sectigo-connector`)", dir.display())
        } else {
            String::new()
        };
        DeployError::Io {
            what,
            path,
            error,
            hint,
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `set` as `cfg.dir/name/` (see the module's comment); returns that path. `stamp`
/// makes the version directory's name unique (the time, in nanoseconds).
pub fn write_set(
    cfg: &DeployConfig,
    name: &CertName,
    id: &CertId,
    set: &FileSet,
    stamp: i64,
) -> Result<PathBuf, DeployError> {
    let dir = &cfg.dir;
    std::fs::create_dir_all(dir).map_err(io(dir, "cannot create", dir))?;
    let ids = owner_ids(cfg)?;
    let version = format!(".{name}.{id}.{stamp}");
    let staging = dir.join(format!("{version}.tmp"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(io(dir, "cannot create", &staging))?;
    for (file, text, private) in set.files() {
        let mode = if private { key_mode(cfg) } else { cfg.mode };
        write_file(dir, &staging.join(file), &text, mode, ids)?;
    }
    // The directory is as open as the files, plus x.
    let dir_mode = cfg.mode | ((cfg.mode & 0o444) >> 2);
    set_owner_and_mode(dir, &staging, dir_mode, ids)?;
    sync_dir(&staging).map_err(io(dir, "cannot sync", &staging))?;
    let final_dir = dir.join(&version);
    std::fs::rename(&staging, &final_dir).map_err(io(dir, "cannot rename", &staging))?;
    sync_dir(dir).map_err(io(dir, "cannot sync", dir))?;
    let link = switch_link(dir, name, &version, stamp)?;
    remove_old_versions(dir, name, &version);
    Ok(link)
}

/// One file of the set, created (never opened through a link) with 0600, then given its
/// owner and mode.
fn write_file(
    dir: &Path,
    p: &Path,
    text: &str,
    mode: u32,
    ids: (Option<u32>, Option<u32>),
) -> Result<(), DeployError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .map_err(io(dir, "cannot create", p))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(dir, "cannot write", p))?;
    set_owner_and_mode(dir, p, mode, ids)
}

fn set_owner_and_mode(
    dir: &Path,
    p: &Path,
    mode: u32,
    (uid, gid): (Option<u32>, Option<u32>),
) -> Result<(), DeployError> {
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::lchown(p, uid, gid).map_err(io(
            dir,
            "cannot give the owner and group of [deploy] to",
            p,
        ))?;
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(io(
        dir,
        "cannot set the mode of",
        p,
    ))
}

/// Points `dir/name` at `version`: a new link renamed over the old one. A directory (or file)
/// made by hand under that name is kept aside, once.
fn switch_link(
    dir: &Path,
    name: &CertName,
    version: &str,
    stamp: i64,
) -> Result<PathBuf, DeployError> {
    let link = dir.join(name);
    if let Ok(m) = std::fs::symlink_metadata(&link) {
        if !m.file_type().is_symlink() {
            let aside = dir.join(format!(".{name}.before-sectigo-connector.{stamp}"));
            std::fs::rename(&link, &aside).map_err(io(dir, "cannot move aside", &link))?;
            tracing::warn!(
                "{} was not a link made by sectigo-connector: moved to {}",
                link.display(),
                aside.display()
            );
        }
    }
    let tmp_link = dir.join(format!(".{name}.link.tmp"));
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(version, &tmp_link).map_err(io(dir, "cannot create", &tmp_link))?;
    std::fs::rename(&tmp_link, &link).map_err(io(dir, "cannot switch", &link))?;
    sync_dir(dir).map_err(io(dir, "cannot sync", dir))?;
    Ok(link)
}

/// Older versions of `name` go (best effort: a reader holding one open keeps its files).
fn remove_old_versions(dir: &Path, name: &CertName, current: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let old_version = n.starts_with(&prefix)
            && n != current
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

/// Whether `name`'s files are in place under `dir` (its `cert.pem` exists).
pub fn in_place(dir: &Path, name: &CertName) -> bool {
    dir.join(name).join("cert.pem").exists()
}
