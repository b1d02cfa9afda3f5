//! Where a secret comes from: inline in the file, from `*_file`, or from a systemd credential
//! (`LoadCredential=` puts it in `$CREDENTIALS_DIRECTORY`).

use std::path::{Path, PathBuf};

use crate::secret::Secret;

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
) -> Result<Secret, String> {
    read_secret_named(spec, spec.credential, declared_in, credentials_dir)
}

pub fn read_secret_named(
    spec: &SecretSpec,
    credential: &str,
    declared_in: &Path,
    credentials_dir: Option<&Path>,
) -> Result<Secret, String> {
    match (&spec.inline, &spec.file) {
        (Some(_), Some(_)) => Err("set either the secret or its `_file`, not both".into()),
        (Some(s), None) if s.is_empty() => Err("must not be empty".into()),
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
        (None, None) => match credentials_dir.map(|d| d.join(credential)).filter(|p| p.exists()) {
            Some(p) => read_file(&p),
            None => Err(format!(
                "missing; set it inline, set its `_file` key to a file holding it, or provide the systemd credential `{credential}` (LoadCredential=)"
            )),
        },
    }
}

fn read_file(path: &Path) -> Result<Secret, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim_end_matches(['\r', '\n']).to_string();
            if s.is_empty() {
                Err(format!("the secret file {} is empty", path.display()))
            } else {
                Ok(Secret::new(s))
            }
        }
        Err(e) => Err(format!(
            "cannot read the secret file {}: {e}",
            path.display()
        )),
    }
}
