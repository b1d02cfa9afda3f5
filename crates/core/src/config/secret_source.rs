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
    #[error("cannot read the secret file {path}: {source}{hint}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
        /// Who the process runs as and the fix, when the system refused it (see
        /// [`super::access::denied_hint`]).
        hint: String,
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

/// Where a secret was read from: what to name when it is refused, and the file to read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFrom {
    /// Inline in the file that declares it.
    Inline,
    /// From its `*_file` key: this file (resolved: in `$CREDENTIALS_DIRECTORY`, or beside the
    /// declaring file).
    File(PathBuf),
    /// From the systemd credential at this path (`$CREDENTIALS_DIRECTORY/NAME`).
    Credential(PathBuf),
}

impl SecretFrom {
    /// The file to read again when the secret is refused: a `*_file` only (systemd copies a
    /// credential when the service starts; reading it again gives the same secret).
    pub fn file(&self) -> Option<&Path> {
        match self {
            SecretFrom::File(p) => Some(p),
            _ => None,
        }
    }

    /// What an operator edits to change the secret, for a secret whose inline key is `key`
    /// (`client_secret`, `admin.client_secret`, `jira.token`): `` `client_secret` ``,
    /// `` `client_secret_file` (/etc/...) ``, or the credential's path.
    pub fn describe(&self, key: &str) -> String {
        match self {
            SecretFrom::Inline => format!("`{key}`"),
            SecretFrom::File(p) => format!("`{key}_file` ({})", p.display()),
            SecretFrom::Credential(p) => format!("the systemd credential {}", p.display()),
        }
    }
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
) -> Result<(Secret, SecretFrom), SecretError> {
    read_secret_named(spec, spec.credential, declared_in, credentials_dir)
}

pub fn read_secret_named(
    spec: &SecretSpec,
    credential: &str,
    declared_in: &Path,
    credentials_dir: Option<&Path>,
) -> Result<(Secret, SecretFrom), SecretError> {
    match (&spec.inline, &spec.file) {
        (Some(_), Some(_)) => Err(SecretError::Both),
        (Some(s), None) if s.is_empty() => Err(SecretError::Empty),
        (Some(s), None) => Ok((s.clone(), SecretFrom::Inline)),
        (None, Some(f)) => {
            let path = if f.is_absolute() {
                f.clone()
            } else {
                match credentials_dir.map(|d| d.join(f)).filter(|p| p.exists()) {
                    Some(p) => p,
                    None => declared_in.parent().unwrap_or(Path::new(".")).join(f),
                }
            };
            let s = read_secret_file(&path)?;
            Ok((s, SecretFrom::File(path)))
        }
        (None, None) => match credentials_dir
            .map(|d| d.join(credential))
            .filter(|p| p.exists())
        {
            Some(p) => {
                let s = read_secret_file(&p)?;
                Ok((s, SecretFrom::Credential(p)))
            }
            None => Err(SecretError::Missing(credential.to_string())),
        },
    }
}

impl SecretError {
    /// Whether the error is about the `*_file` (so the error names that key).
    pub fn is_about_the_file(&self) -> bool {
        matches!(
            self,
            SecretError::FileEmpty(_)
                | SecretError::Unreadable { .. }
                | SecretError::NotRegular(_)
                | SecretError::TooLarge(_)
                | SecretError::NotText(_)
        )
    }
}

/// Reads a secret file: a regular file of at most [`MAX_SECRET_FILE`] bytes of UTF-8, its
/// trailing line break dropped. The SCM client reads a `client_secret_file` again with it when
/// the token endpoint refuses the secret.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let unreadable = |source: std::io::Error| SecretError::Unreadable {
        path: path.to_path_buf(),
        hint: super::access::denied_hint(path, &source),
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
