//! `run-hooks --from DIR`: the root helper's side of the hook protocol (the daemon's side is
//! `sectigo_engine::deploy::helper`). Run as root by `sectigo-connector-hooks.service` when the
//! daemon (sandboxed, unprivileged) has written a request: it runs the profile's hook, as the
//! root-owned profile configures it, and answers. It trusts nothing in DIR but what it checks.

use std::path::{Path, PathBuf};

use sectigo_core::config::Config;
use sectigo_core::names::CertId;
use sectigo_engine::deploy::helper::{self, Answer, MAX_FILE};
use sectigo_engine::deploy::{HookFacts, HookRun};

/// What one run of the helper did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub ran: usize,
    pub failed: usize,
}

fn read_small(p: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut s = String::new();
    f.take(MAX_FILE)
        .read_to_string(&mut s)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(s)
}

/// Writes `text` at `path` through a new temporary file and a rename.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the hook of each request's profile, as configured in `cfg`, and answers.
pub async fn serve(dir: &Path, cfg: &Config) -> Served {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(e) => e
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "request"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut served = Served::default();
    for req_path in files {
        let Some(id) = req_path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| CertId::parse(s).ok())
        else {
            let _ = std::fs::remove_file(&req_path);
            continue;
        };
        let answer = match answer(&req_path, &id, cfg).await {
            Ok(()) => Answer {
                cert_id: id.clone(),
                ok: true,
                message: "ok".into(),
            },
            Err(message) => {
                served.failed += 1;
                Answer {
                    cert_id: id.clone(),
                    ok: false,
                    message,
                }
            }
        };
        served.ran += 1;
        let (_, res_path) = helper::paths(dir, &id);
        let text = serde_json::to_string(&answer).unwrap_or_default();
        if let Err(e) = write_atomic(&res_path, &text, 0o644) {
            tracing::error!("cannot answer {}: {e}", req_path.display());
        }
        let _ = std::fs::remove_file(&req_path);
    }
    served
}

async fn answer(req_path: &Path, id: &CertId, cfg: &Config) -> Result<(), String> {
    let text = read_small(req_path)?;
    let r: HookFacts = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a request of the daemon: {e}", req_path.display()))?;
    if &r.cert_id != id {
        return Err(format!("{}: a malformed request", req_path.display()));
    }
    r.check()
        .map_err(|e| format!("{}: a malformed request: {e}", req_path.display()))?;
    let profile = cfg
        .profiles
        .get(&r.profile)
        .ok_or_else(|| format!("no profile {:?} is configured", r.profile))?;
    let deploy = profile
        .deploy
        .as_ref()
        .ok_or_else(|| format!("profile {:?} has no [deploy]", r.profile))?;
    let Some(argv) = &deploy.hook else {
        return Ok(());
    };
    let run = HookRun::new(argv, &r, &deploy.dir.join(&r.name));
    tracing::info!(profile = %r.profile, cert_id = %r.cert_id, "running the deploy hook {:?}", argv[0]);
    run.run(&r.cert_id).await.map_err(|e| e.to_string())
}
