//! Private keys the daemon made (`key_rotation = "new"`), as files `keys/NAME.key` beside the
//! sled database: 0600 in a 0700 directory, each written through a temporary file, fsynced,
//! renamed and the directory fsynced. A key is stored under its renew request's id before the
//! billable call, and renamed to the new certificate's id once SCM names it, so a crash at any
//! point never leaves a billed certificate without its key.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sectigo_core::secret::Secret;

pub struct KeyStore {
    dir: PathBuf,
}

/// A key's name (a certificate id or a request id), checked where it is decoded: a state
/// export's key line with a name that is no key name does not decode, so the import refuses
/// the file before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(name: &str) -> std::io::Result<KeyName> {
        valid(name)?;
        Ok(KeyName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<KeyName, D::Error> {
        let s = String::deserialize(d)?;
        KeyName::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn valid(name: &str) -> std::io::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a key name"),
        ))
    }
}

impl KeyStore {
    /// The keys of the state in `state_dir` (nothing is created until a key is stored).
    pub fn new(state_dir: &Path) -> KeyStore {
        KeyStore {
            dir: state_dir.join("keys"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Stores `key` as `name`, durably.
    pub fn put(&self, name: &str, key: &Secret) -> std::io::Result<()> {
        valid(name)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let tmp = self.dir.join(format!("{name}.key.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(key.expose().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(name))?;
        self.sync_dir()
    }

    /// Renames the key `from` (a request id) to `to` (the certificate id), durably. Nothing
    /// to rename is not an error.
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        valid(from)?;
        valid(to)?;
        match std::fs::rename(self.path(from), self.path(to)) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn get(&self, name: &str) -> std::io::Result<Option<Secret>> {
        valid(name)?;
        match std::fs::read_to_string(self.path(name)) {
            Ok(s) => Ok(Some(Secret::new(s))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names of the keys held, sorted.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries {
            let name = e?.file_name();
            if let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".key")) {
                if valid(n).is_ok() {
                    out.push(n.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        valid(name)?;
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keys_are_private_and_renamed() {
        let d = tempfile::tempdir().unwrap();
        let ks = KeyStore::new(d.path());
        assert_eq!(ks.get("r-0123456789").unwrap(), None);
        ks.put("r-0123456789", &Secret::new("KEY")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.path().join("keys")), 0o700);
        assert_eq!(mode(&d.path().join("keys/r-0123456789.key")), 0o600);
        ks.rename("r-0123456789", "1234").unwrap();
        assert_eq!(ks.get("1234").unwrap().unwrap().expose(), "KEY");
        assert_eq!(ks.get("r-0123456789").unwrap(), None);
        ks.rename("r-gone", "1235").unwrap();
        assert!(
            ks.put("../x", &Secret::new("K")).is_err(),
            "names cannot escape"
        );
        ks.put("r-1", &Secret::new("K")).unwrap();
        assert_eq!(ks.names().unwrap(), ["1234", "r-1"]);
        ks.remove("r-1").unwrap();
        ks.remove("1234").unwrap();
        assert_eq!(ks.get("1234").unwrap(), None);
    }
}
