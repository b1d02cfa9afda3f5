//! Where a secret comes from: inline in the file, from `*_file`, or from a systemd credential
//! (`LoadCredential=` puts it in `$CREDENTIALS_DIRECTORY`).

use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// Largest secret file read (a client secret or token is well under 1 KiB).
pub const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// Why a secret could not be had. Never holds the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("set either the secret or its `_file`, not both")]
    Both,
    #[error("must not be empty")]
    Empty,
    #[error("the secret file {0} is empty")]
    FileEmpty(PathBuf),
    #[error("cannot read the secret file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret file {0} is not a regular file")]
    NotRegular(PathBuf),
    #[error("the secret file {0} is larger than 1 MiB")]
    TooLarge(PathBuf),
    #[error("the secret file {0} is not UTF-8 text")]
    NotText(PathBuf),
    #[error("missing; set it inline, set its `_file` key to a file holding it, or provide the systemd credential `{0}` (LoadCredential=)")]
    Missing(String),
}

pub struct SecretSpec {
    pub inline: Option<Secret>,
    pub file: Option<PathBuf>,
    /// The systemd credential name looked up when neither inline nor file is set.
    pub credential: &'static str,
}

/// Resolves a secret. `declared_in` is the file that names it: a relative `*_file` path is
/// looked up in `$CREDENTIALS_DIRECTORY` first, then beside that file.
pub fn read_secret(
    spec: &SecretSpec,
    declared_in: &Path,
    credentials_dir: Option<&Path>,
) -> Result<Secret, SecretError> {
    read_secret_named(spec, spec.credential, declared_in, credentials_dir)
}

pub fn read_secret_named(
    spec: &SecretSpec,
    credential: &str,
    declared_in: &Path,
    credentials_dir: Option<&Path>,
) -> Result<Secret, SecretError> {
    match (&spec.inline, &spec.file) {
        (Some(_), Some(_)) => Err(SecretError::Both),
        (Some(s), None) if s.is_empty() => Err(SecretError::Empty),
        (Some(s), None) => Ok(s.clone()),
        (None, Some(f)) => {
            let path = if f.is_absolute() {
                f.clone()
            } else {
                match credentials_dir.map(|d| d.join(f)).filter(|p| p.exists()) {
                    Some(p) => p,
                    None => declared_in.parent().unwrap_or(Path::new(".")).join(f),
                }
            };
            read_file(&path)
        }
        (None, None) => match credentials_dir
            .map(|d| d.join(credential))
            .filter(|p| p.exists())
        {
            Some(p) => read_file(&p),
            None => Err(SecretError::Missing(credential.to_string())),
        },
    }
}

fn read_file(path: &Path) -> Result<Secret, SecretError> {
    let unreadable = |source| SecretError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(SecretError::NotRegular(path.to_path_buf()));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(SecretError::TooLarge(path.to_path_buf()));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let s = String::from_utf8(bytes).map_err(|_| SecretError::NotText(path.to_path_buf()))?;
    let s = s.trim_end_matches(['\r', '\n']);
    if s.is_empty() {
        Err(SecretError::FileEmpty(path.to_path_buf()))
    } else {
        Ok(Secret::new(s.to_string()))
    }
}

/// The file holding a secret when other users can read it: the declaring file for an inline
/// secret, else its `*_file` (relative to the declaring file). `None`: not readable by others
/// (or from a systemd credential).
pub fn exposed_file(spec: &SecretSpec, declared_in: &Path) -> Option<PathBuf> {
    let file = match (&spec.inline, &spec.file) {
        (Some(_), _) => declared_in.to_path_buf(),
        (None, Some(f)) if f.is_absolute() => f.clone(),
        (None, Some(f)) => declared_in.parent().unwrap_or(Path::new(".")).join(f),
        (None, None) => return None,
    };
    readable_by_others(&file).then_some(file)
}

fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o004 != 0)
        .unwrap_or(false)
}
