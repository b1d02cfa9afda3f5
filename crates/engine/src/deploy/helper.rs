//! Hooks under the hardened unit: the daemon's side of the root helper's protocol.
//!
//! The service may not run `systemctl reload nginx` (no privileges, no new ones), so
//! `run --hooks-via DIR` hands each hook to a root helper: the daemon writes
//! `DIR/ID.request` (what the hook's environment says: never the command, which the helper
//! reads from the root-owned profile); `sectigo-connector-hooks.path` starts
//! `sectigo-connector-hooks.service` (root), whose `run-hooks --from DIR` runs the profile's
//! hook and writes `DIR/ID.result`, which the daemon reads at its next pass. The helper's side
//! is the binary's (`run-hooks`); it trusts nothing in DIR (see SECURITY.md).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use sectigo_core::names::CertId;

use super::hook::HookFacts;
use crate::error::HelperError;

/// A request the helper has not answered within this time fails (and is retried); the
/// error's message says 10 minutes too.
pub const ANSWER_WITHIN_MINS: i64 = 10;
/// Largest request or result file read.
pub const MAX_FILE: u64 = 64 * 1024;

/// What the helper answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub cert_id: CertId,
    pub ok: bool,
    pub message: String,
}

/// Where a hook handed to the helper stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Done,
    Waiting,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HelperError + '_ {
    move |error| HelperError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// `DIR/ID.request` and `DIR/ID.result`.
pub fn paths(dir: &Path, id: &CertId) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{id}.request")),
        dir.join(format!("{id}.result")),
    )
}

fn read_small(p: &Path) -> Result<Option<String>, HelperError> {
    use std::io::Read as _;
    let f = match std::fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(p)(e)),
    };
    let mut s = String::new();
    f.take(MAX_FILE).read_to_string(&mut s).map_err(io(p))?;
    Ok(Some(s))
}

/// Writes `text` at `path` through a new temporary file and a rename.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), HelperError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The daemon's side: takes the helper's answer if there is one, else asks (once) and waits.
/// `Err`: the hook failed, or the helper did not answer in time.
pub fn exchange(dir: &Path, facts: &HookFacts, now: DateTime<Utc>) -> Result<State, HelperError> {
    let (req_path, res_path) = paths(dir, &facts.cert_id);
    if let Some(text) = read_small(&res_path)? {
        let _ = std::fs::remove_file(&res_path);
        let _ = std::fs::remove_file(&req_path);
        let a: Answer = serde_json::from_str(&text).map_err(|error| HelperError::BadAnswer {
            path: res_path.clone(),
            error,
        })?;
        return if a.ok {
            Ok(State::Done)
        } else {
            Err(HelperError::Failed(sectigo_core::text::bounded(
                &sectigo_core::text::Escaped(&a.message).to_string(),
                2000,
            )))
        };
    }
    if let Some(text) = read_small(&req_path)? {
        let asked: Option<HookFacts> = serde_json::from_str(&text).ok();
        if asked.is_some_and(|r| now - r.at < Duration::minutes(ANSWER_WITHIN_MINS)) {
            return Ok(State::Waiting);
        }
        let _ = std::fs::remove_file(&req_path);
        return Err(HelperError::NoAnswer);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let text = serde_json::to_string(facts).expect("hook facts serialize");
    write_atomic(&req_path, &text, 0o640)?;
    tracing::info!(profile = %facts.profile, cert_id = %facts.cert_id, "deploy hook handed to the root helper ({})", req_path.display());
    Ok(State::Waiting)
}
