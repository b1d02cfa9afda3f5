//! Writing and reading in a directory that someone else may control (the deploy directory,
//! `certs export --out`, the root helper's request directory, the folder of a state export).
//!
//! The directory is opened once, never through a symbolic link as its last component, and
//! everything after that is relative to its descriptor (`openat`, `mkdirat`, `renameat`,
//! `symlinkat`): an entry swapped for a link after the directory was opened is never
//! followed. New files are created `O_CREAT|O_EXCL|O_NOFOLLOW` (a file or a link already at the
//! name is an error, never opened or truncated), at names with a random part where the name is
//! temporary, and given their mode and owner through their descriptor (`fchmod`, `fchown`).
//! Files are read `O_NOFOLLOW|O_NONBLOCK` (a FIFO cannot hang the reader), checked with
//! `fstat` for what they are, and read up to a bound.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

pub use rustix::fs::Stat;

/// A directory, opened once; every name below is one entry in it (no `/`, not `.` or `..`).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn entry(name: &str) -> std::io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a name in a directory"),
        ));
    }
    Ok(name)
}

/// The kind of file `st` describes.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The permission bits (and setuid, setgid, sticky) of `st`.
pub fn mode_bits(st: &Stat) -> u32 {
    st.st_mode & 0o7777
}

/// 16 random hexadecimal digits, for a temporary name nobody can guess in advance.
pub fn random_hex() -> String {
    use ring::rand::SecureRandom as _;
    let mut r = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut r).is_err() {
        // No randomness from the system: std's per-process hash keys, which differ between
        // two calls (and O_EXCL still refuses whatever is already there).
        use std::hash::{BuildHasher as _, Hasher as _};
        r = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            .to_le_bytes();
    }
    r.iter().map(|b| format!("{b:02x}")).collect()
}

impl Dir {
    /// Opens the directory at `path`; a symbolic link there is refused (`ELOOP`), so is
    /// anything that is not a directory (`ENOTDIR`).
    pub fn open(path: &Path) -> std::io::Result<Dir> {
        let fd = rfs::openat(
            rfs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory an operator named (a link in its path is followed: the operator
    /// chose it); what is made in it after that is as safe as in [`Dir::open`]'s.
    pub fn open_named(path: &Path) -> std::io::Result<Dir> {
        let fd = rfs::openat(
            rfs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path it was opened at (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/name`, for messages.
    pub fn show(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory's own status.
    pub fn stat(&self) -> std::io::Result<Stat> {
        Ok(rfs::fstat(&self.fd)?)
    }

    /// The status of the entry `name` itself (a link's own, not its target's); `None` when
    /// there is none.
    pub fn lstat(&self, name: &str) -> std::io::Result<Option<Stat>> {
        match rfs::statat(&self.fd, entry(name)?, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the directory `name` in this one (a link there is refused).
    pub fn open_dir(&self, name: &str) -> std::io::Result<Dir> {
        let fd = rfs::openat(
            &self.fd,
            entry(name)?,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Makes the directory `name` (an entry already there is an error), mode `mode` (less the
    /// umask; [`Dir::set_mode`] sets it exactly).
    pub fn mkdir(&self, name: &str, mode: u32) -> std::io::Result<()> {
        Ok(rfs::mkdirat(
            &self.fd,
            entry(name)?,
            Mode::from_raw_mode(mode),
        )?)
    }

    /// Creates the file `name`, which must not exist (not even as a dangling link), open for
    /// writing, mode `mode` exactly (set through the descriptor, whatever the umask).
    pub fn create(&self, name: &str, mode: u32) -> std::io::Result<File> {
        let fd = rfs::openat(
            &self.fd,
            entry(name)?,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// [`Dir::create`] under a new name `PREFIX.RANDOM.SUFFIX`; returns the name and the file.
    pub fn create_temp(
        &self,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> std::io::Result<(String, File)> {
        let mut tries = 0;
        loop {
            let name = format!("{prefix}.{}.{suffix}", random_hex());
            match self.create(&name, mode) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                r => return r.map(|f| (name, f)),
            }
        }
    }

    /// Opens the entry `name` for reading without following a link (`ELOOP`) and without
    /// blocking on a FIFO; the caller checks what it is ([`File::metadata`] is `fstat`).
    pub fn open_file(&self, name: &str) -> std::io::Result<File> {
        let fd = rfs::openat(
            &self.fd,
            entry(name)?,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Renames the entry `from` to `to`, both in this directory (neither is followed).
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        Ok(rfs::renameat(&self.fd, entry(from)?, &self.fd, entry(to)?)?)
    }

    /// Makes `name` a symbolic link to `target` (an entry already there is an error).
    pub fn symlink(&self, target: &str, name: &str) -> std::io::Result<()> {
        Ok(rfs::symlinkat(target, &self.fd, entry(name)?)?)
    }

    /// Removes the entry `name` (a link itself, never its target); not a directory.
    pub fn unlink(&self, name: &str) -> std::io::Result<()> {
        Ok(rfs::unlinkat(&self.fd, entry(name)?, AtFlags::empty())?)
    }

    /// Removes `name` and, when it is a directory (not a link to one), what it holds, never
    /// leaving this directory through a link.
    pub fn remove_tree(&self, name: &str) -> std::io::Result<()> {
        let Some(st) = self.lstat(name)? else {
            return Ok(());
        };
        if file_type(&st) != FileType::Directory {
            return self.unlink(name);
        }
        let sub = self.open_dir(name)?;
        for e in sub.entries()? {
            if let Some(n) = e.to_str() {
                sub.remove_tree(n)?;
            }
        }
        Ok(rfs::unlinkat(&self.fd, entry(name)?, AtFlags::REMOVEDIR)?)
    }

    /// The names in the directory (without `.` and `..`).
    pub fn entries(&self) -> std::io::Result<Vec<OsString>> {
        let mut out = Vec::new();
        for e in rfs::Dir::read_from(&self.fd)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(std::ffi::OsStr::from_bytes(n).to_os_string());
            }
        }
        Ok(out)
    }

    /// Sets the directory's own mode (exactly) and, when given, its owner and group.
    pub fn set_owner_and_mode(
        &self,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> std::io::Result<()> {
        set_owner_and_mode(&self.fd, mode, uid, gid)
    }

    /// fsync(2) of the directory: the entries made or renamed in it are durable.
    pub fn sync(&self) -> std::io::Result<()> {
        Ok(rfs::fsync(&self.fd)?)
    }
}

/// Gives an open file (or directory) its owner and group when given, then `mode` exactly.
pub fn set_owner_and_mode(
    fd: impl AsFd,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> std::io::Result<()> {
    if uid.is_some() || gid.is_some() {
        rfs::fchown(
            &fd,
            uid.map(rustix::fs::Uid::from_raw),
            gid.map(rustix::fs::Gid::from_raw),
        )?;
    }
    Ok(rfs::fchmod(&fd, Mode::from_raw_mode(mode))?)
}

/// Reads `f` (a regular file, checked by the caller) to its end, when it holds at most `max`
/// bytes; `None` when it holds more (only `max + 1` bytes are read).
pub fn read_bounded(f: &mut File, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= max).then_some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_at_a_name_is_followed_or_truncated() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let d = t.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::symlink(&victim, d.join("link")).unwrap();
        let dir = Dir::open(&d).unwrap();
        assert!(dir.create("link", 0o644).is_err(), "a link is not opened");
        assert!(dir.open_file("link").is_err(), "nor read through");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(dir.open_dir("link").is_err());
        // The directory itself, as a link, is refused.
        std::os::unix::fs::symlink(&d, t.path().join("dlink")).unwrap();
        assert!(Dir::open(&t.path().join("dlink")).is_err());
        // A temporary name is new each time, and the mode is exact whatever the umask.
        let (a, _) = dir.create_temp(".x", "tmp", 0o640).unwrap();
        let (b, _) = dir.create_temp(".x", "tmp", 0o640).unwrap();
        assert_ne!(a, b);
        assert_eq!(mode_bits(&dir.lstat(&a).unwrap().unwrap()), 0o640);
        assert!(dir.create("../escape", 0o600).is_err());
        // A tree below is removed without leaving through a link.
        dir.mkdir("tree", 0o700).unwrap();
        let sub = dir.open_dir("tree").unwrap();
        sub.create("f", 0o600).unwrap();
        sub.symlink(t.path().to_str().unwrap(), "out").unwrap();
        dir.remove_tree("tree").unwrap();
        assert!(dir.lstat("tree").unwrap().is_none());
        assert!(victim.exists());
    }
}
