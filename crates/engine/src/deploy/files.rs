//! A certificate's files under its profile's `[deploy] dir`: `NAME/` holding `cert.pem`,
//! `chain.pem`, `fullchain.pem` (and `privkey.pem` when the daemon made the key).
//!
//! The set is switched atomically: the files are written (each fsynced) into a new hidden
//! directory `dir/.NAME.ID.N/`, and `dir/NAME` is a symbolic link renamed onto it, so a reader
//! (or a crash) sees either the old set or the new one, never a mix.
//!
//! Nothing in the directory is trusted (root's `certs export --out DIR` writes here too, and
//! DIR may be one the service user can write): see [`write_set`] and [`crate::safe_fs`].
//!
//! `privkey.pem` is 0600 (the owner only) unless `[deploy] group` is set: then 0640, readable
//! by that group only, whatever `[deploy] mode` says. The service's own group never reads a
//! key by default (`certs export` and `state export` withhold keys from it too).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sectigo_core::config::DeployConfig;
use sectigo_core::names::{CertId, CertName};
use sectigo_core::secret::Secret;
use sectigo_core::x509::pem::{split_bundle, PemError};

use super::DeployError;
use crate::safe_fs::{self, Dir};

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

/// Writes `set` as `cfg.dir/name/` (see the module's comment); returns that path. `stamp`
/// makes the version directory's name unique (the time, in nanoseconds).
///
/// `cfg.dir` (the operator's choice) is opened once; everything below is made relative to it,
/// created new (`O_EXCL|O_NOFOLLOW`, temporary names with a random part) and given its owner
/// and mode through its descriptor, so nothing planted in `cfg.dir` (a link at a temporary
/// name, a directory swapped for a link while the set is written) is followed: root's
/// `certs export --out DIR` and the daemon's deploy share this.
pub fn write_set(
    cfg: &DeployConfig,
    name: &CertName,
    id: &CertId,
    set: &FileSet,
    stamp: i64,
) -> Result<PathBuf, DeployError> {
    let dir = &cfg.dir;
    std::fs::create_dir_all(dir).map_err(io(dir, "cannot create", dir))?;
    // The directory the operator named (a link there is the operator's choice).
    let d = Dir::open_named(dir).map_err(io(dir, "cannot open the directory", dir))?;
    let ids = owner_ids(cfg)?;
    let version = format!(".{name}.{id}.{stamp}");
    let staging = format!("{version}.{}.tmp", safe_fs::random_hex());
    let at = |n: &str| d.show(n);
    d.mkdir(&staging, 0o700)
        .map_err(io(dir, "cannot create", &at(&staging)))?;
    let s = d
        .open_dir(&staging)
        .map_err(io(dir, "cannot open", &at(&staging)))?;
    let made = s.stat().map_err(io(dir, "cannot read", &at(&staging)))?;
    for (file, text, private) in set.files() {
        let mode = if private { key_mode(cfg) } else { cfg.mode };
        write_file(dir, &s, file, &text, mode, ids)?;
    }
    // The directory is as open as the files, plus x.
    let dir_mode = cfg.mode | ((cfg.mode & 0o444) >> 2);
    s.set_owner_and_mode(dir_mode, ids.0, ids.1).map_err(io(
        dir,
        "cannot give the owner, group and mode of [deploy] to",
        &at(&staging),
    ))?;
    s.sync().map_err(io(dir, "cannot sync", &at(&staging)))?;
    d.rename(&staging, &version)
        .map_err(io(dir, "cannot rename", &at(&staging)))?;
    // What now bears the version's name is the directory written above, not something put in
    // its place meanwhile.
    let ours = d
        .lstat(&version)
        .ok()
        .flatten()
        .is_some_and(|v| (v.st_dev, v.st_ino) == (made.st_dev, made.st_ino));
    if !ours {
        return Err(
            io(dir, "was replaced while it was written:", &at(&version))(std::io::Error::other(
                "another process changed the directory",
            )),
        );
    }
    d.sync().map_err(io(dir, "cannot sync", dir))?;
    switch_link(&d, name, &version, stamp)?;
    remove_old_versions(&d, name, &version);
    Ok(dir.join(name))
}

/// One file of the set, created new in the staging directory (never opened through a link or
/// a file that was there), written, then given its owner and mode.
fn write_file(
    dir: &Path,
    s: &Dir,
    file: &str,
    text: &str,
    mode: u32,
    (uid, gid): (Option<u32>, Option<u32>),
) -> Result<(), DeployError> {
    let p = s.show(file);
    let mut f = s
        .create(file, 0o600)
        .map_err(io(dir, "cannot create", &p))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(dir, "cannot write", &p))?;
    safe_fs::set_owner_and_mode(&f, mode, uid, gid).map_err(io(
        dir,
        "cannot give the owner, group and mode of [deploy] to",
        &p,
    ))
}

/// Points `dir/name` at `version`: a new link (at a random temporary name) renamed over the
/// old one. A directory (or file) made by hand under that name is kept aside, once.
fn switch_link(d: &Dir, name: &CertName, version: &str, stamp: i64) -> Result<(), DeployError> {
    let dir = d.path();
    let link = d.show(name);
    if let Some(m) = d.lstat(name).map_err(io(dir, "cannot read", &link))? {
        if safe_fs::file_type(&m) != rustix::fs::FileType::Symlink {
            let aside = format!(".{name}.before-sectigo-connector.{stamp}");
            d.rename(name, &aside)
                .map_err(io(dir, "cannot move aside", &link))?;
            tracing::warn!(
                "{} was not a link made by sectigo-connector: moved to {}",
                link.display(),
                d.show(&aside).display()
            );
        }
    }
    let tmp_link = format!(".{name}.link.{}.tmp", safe_fs::random_hex());
    d.symlink(version, &tmp_link)
        .map_err(io(dir, "cannot create", &d.show(&tmp_link)))?;
    d.rename(&tmp_link, name)
        .map_err(io(dir, "cannot switch", &link))?;
    d.sync().map_err(io(dir, "cannot sync", dir))?;
    Ok(())
}

/// Older versions of `name` go, and temporary entries a crash left (best effort: a reader
/// holding one open keeps its files). Removed through the directory's descriptor, never
/// through a link.
fn remove_old_versions(d: &Dir, name: &CertName, current: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = d.entries() else {
        return;
    };
    for n in entries {
        let Some(n) = n.to_str() else {
            continue;
        };
        let Some(rest) = n.strip_prefix(&prefix) else {
            continue;
        };
        // Exactly `ID.STAMP` (or its staging `ID.STAMP.HEX.tmp`) after the name: another
        // certificate whose name starts with this one's (`api` and `api.2024.example.com`)
        // has more segments, and is never taken for an old version of this one.
        let parts: Vec<&str> = rest.split('.').collect();
        let stamp = |s: &str| {
            let digits = s.strip_prefix('-').unwrap_or(s);
            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
        };
        let hex = |h: &str| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit());
        let versioned = match parts.as_slice() {
            [id, st] => !id.is_empty() && stamp(st),
            [id, st, h, "tmp"] => !id.is_empty() && stamp(st) && hex(h),
            _ => false,
        };
        let old_version = n != current && !n.contains(".before-sectigo-connector.") && versioned;
        let stale_link = matches!(parts.as_slice(), ["link", h, "tmp"] if hex(h));
        if old_version || stale_link {
            let _ = d.remove_tree(n);
        }
    }
}

/// Whether `name`'s files are in place under `dir` (its `cert.pem` exists).
pub fn in_place(dir: &Path, name: &CertName) -> bool {
    dir.join(name).join("cert.pem").exists()
}
