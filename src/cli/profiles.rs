//! `profiles rename OLD NEW`, split between the one who may change each half: the file is
//! renamed here, by the command, as the user running it (root in the packaged layout, where
//! `/etc/sectigo-connector` is root's and the daemon, as the service user, may not write to it);
//! the state is moved by whoever holds it: the running daemon (which then reloads), or this
//! command when none runs.

use std::path::Path;

use sectigo_core::config::PROFILES_DIR;
use sectigo_core::names::ProfileName;

use super::{ask, Show};
use crate::api::Request;
use crate::exit::{CliError, Exit};

/// A profile file other than `except` whose name is `name` (case aside): two profiles whose
/// names differ only in case would be one on a case-insensitive file system.
fn taken(dir: &Path, name: &ProfileName, except: &Path) -> Option<std::path::PathBuf> {
    let want = format!("{name}.toml");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p != except
                && p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.eq_ignore_ascii_case(&want))
        })
}

pub fn rename(dir: &Path, old: ProfileName, new: ProfileName) -> Result<i32, CliError> {
    let pdir = dir.join(PROFILES_DIR);
    let from = pdir.join(format!("{old}.toml"));
    let to = pdir.join(format!("{new}.toml"));
    if old == new {
        return Err(CliError::usage(format!(
            "profiles rename {old} {new}: the names are the same"
        )));
    }
    let exists = |p: &Path| p.symlink_metadata().is_ok();
    let mut renamed_file = false;
    if exists(&from) {
        if let Some(t) = exists(&to)
            .then(|| to.clone())
            .or_else(|| taken(&pdir, &new, &from))
        {
            return Err(CliError::usage(format!(
                "{} already exists: profiles rename does not replace a profile (remove or rename it first)",
                t.display()
            )));
        }
        std::fs::rename(&from, &to).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    " ({} belongs to another user: run it as root, or as the owner of the configuration)",
                    pdir.display()
                )
            } else {
                String::new()
            };
            CliError::new(
                Exit::Failed,
                anyhow::anyhow!(
                    "cannot rename {} to {}: {e}{hint}; nothing was changed",
                    from.display(),
                    to.display()
                ),
            )
        })?;
        renamed_file = true;
    } else if !exists(&to) {
        return Err(CliError::usage(format!(
            "no profile {old:?}: neither {} nor {} exists",
            from.display(),
            to.display()
        )));
    }
    // Else OLD.toml is gone and NEW.toml is there: the file was renamed by hand, and only the
    // state moves (what `status` asks for when such a rename could not be told apart).
    let unfinished = || {
        if renamed_file {
            eprintln!(
                "sectigo-connector: {} was renamed to {}, but its certificates were not moved: run `sectigo-connector profiles rename {old} {new}` again to move them",
                from.display(),
                to.display()
            );
        }
    };
    match ask(
        dir,
        Request::ProfilesRename {
            old: old.clone(),
            new: new.clone(),
        },
        Show::default(),
    ) {
        Ok(code) => {
            if code != 0 && code != Exit::Config.code() {
                unfinished();
            }
            Ok(code)
        }
        Err(e) => {
            unfinished();
            Err(e)
        }
    }
}
