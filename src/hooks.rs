//! `run-hooks --from DIR`: the root helper's side of the hook protocol (the daemon's side is
//! `sectigo_engine::deploy::helper`). Run as root by `sectigo-connector-hooks.service` when the
//! daemon (sandboxed, unprivileged) has written a request: it runs the profile's hook, as the
//! root-owned profile configures it, and answers.
//!
//! DIR is the service user's, so the helper trusts nothing in it but what it checks:
//! - DIR is opened once, not through a link, and must belong to root or the service user (the
//!   owner of `[state] dir`) and be writable by nobody else; everything after is relative to
//!   that descriptor ([`sectigo_engine::safe_fs`]).
//! - a request is read only when it is a regular file (checked before and after opening it,
//!   `O_NOFOLLOW|O_NONBLOCK`: a link, a FIFO or a directory is never opened or read), of one
//!   link, owned by root or the service user, at most [`MAX_FILE`] bytes;
//! - every field is checked as it is decoded (ids and names by their types, `names` by
//!   [`HookFacts::check`]), and the id must be the file's; the command is never in the request
//!   (it is the root-owned profile's);
//! - what cannot be served is set aside (`NAME.RANDOM.rejected`), so the path unit does not
//!   start the helper again for it, and answered as failed when its name is a certificate id;
//! - the answer is written at a new random name (`O_EXCL|O_NOFOLLOW`), then renamed.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use sectigo_core::config::Config;
use sectigo_core::names::CertId;
use sectigo_core::text::{bounded, Escaped};
use sectigo_engine::deploy::helper::{Answer, MAX_FILE};
use sectigo_engine::deploy::{HookFacts, HookRun};
use sectigo_engine::safe_fs::{self, Dir};

/// What one run of the helper did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Hooks run, and of them failed.
    pub ran: usize,
    pub failed: usize,
    /// Entries set aside, unread or unserved.
    pub rejected: usize,
}

/// Who may own DIR and the requests in it: root, and the service user (the owner of
/// `[state] dir`).
struct Owners(Vec<u32>);

impl Owners {
    fn of(cfg: &Config) -> Owners {
        let mut v = vec![0];
        if let Ok(m) = std::fs::metadata(&cfg.connector.state.dir) {
            v.push(m.uid());
        }
        Owners(v)
    }

    fn allow(&self, uid: u32) -> bool {
        self.0.contains(&uid)
    }

    fn names(&self) -> String {
        self.0
            .iter()
            .map(|u| format!("uid {u}"))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// Runs the hook of each request's profile, as configured in `cfg`, and answers. `Err`: DIR
/// itself is refused (nothing in it was read).
pub async fn serve(dir: &Path, cfg: &Config) -> Result<Served, String> {
    let owners = Owners::of(cfg);
    let d = match Dir::open(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Served::default()),
        Err(e) => {
            return Err(format!(
                "{}: {e}: refused (it must be a directory, not a link to one)",
                dir.display()
            ))
        }
    };
    let st = d.stat().map_err(|e| format!("{}: {e}", dir.display()))?;
    if !owners.allow(st.st_uid) || safe_fs::mode_bits(&st) & 0o022 != 0 {
        return Err(format!(
            "{}: owned by uid {} with mode {:o}: refused (it must belong to {} and be writable by nobody else)",
            dir.display(),
            st.st_uid,
            safe_fs::mode_bits(&st),
            owners.names()
        ));
    }
    let mut names: Vec<String> = d
        .entries()
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.ends_with(".request"))
        .collect();
    names.sort();
    let mut served = Served::default();
    for name in names {
        let stem = name.trim_end_matches(".request");
        let Ok(id) = CertId::parse(stem) else {
            set_aside(&d, &name, "its name is not a certificate id");
            served.rejected += 1;
            continue;
        };
        let facts = match read_request(&d, &name, &id, &owners) {
            Ok(f) => f,
            Err(why) => {
                set_aside(&d, &name, &why);
                served.rejected += 1;
                let message = format!("the root helper refused the request: {why}");
                answer(&d, &id, false, message);
                continue;
            }
        };
        served.ran += 1;
        let (ok, message) = match run(&facts, cfg).await {
            Ok(()) => (true, "ok".to_string()),
            Err(message) => {
                served.failed += 1;
                (false, message)
            }
        };
        answer(&d, &id, ok, message);
        if let Err(e) = d.unlink(&name) {
            tracing::error!("cannot remove {}: {e}", d.show(&name).display());
        }
    }
    Ok(served)
}

/// Reads the request `name` (see the module's comment for what is checked). `Err`: why it
/// cannot be served, in words that quote nothing of what was read.
fn read_request(d: &Dir, name: &str, id: &CertId, owners: &Owners) -> Result<HookFacts, String> {
    use rustix::fs::FileType;
    let before = d
        .lstat(name)
        .map_err(|e| e.to_string())?
        .ok_or("it is gone")?;
    match safe_fs::file_type(&before) {
        FileType::RegularFile => {}
        FileType::Symlink => return Err("a symbolic link, not a file".into()),
        FileType::Directory => return Err("a directory, not a file".into()),
        FileType::Fifo => return Err("a FIFO, not a file".into()),
        _ => return Err("not a regular file".into()),
    }
    let mut f = d.open_file(name).map_err(|e| e.to_string())?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    if !m.file_type().is_file() || (m.dev(), m.ino()) != (before.st_dev, before.st_ino) {
        return Err("it changed while it was opened".into());
    }
    if m.nlink() != 1 {
        return Err(format!("a file with {} links", m.nlink()));
    }
    if !owners.allow(m.uid()) {
        return Err(format!("owned by uid {}, not {}", m.uid(), owners.names()));
    }
    let bytes = safe_fs::read_bounded(&mut f, MAX_FILE)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("larger than {MAX_FILE} bytes"))?;
    let r: HookFacts = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "not a request of the daemon: {}",
            bounded(&Escaped(&e.to_string()).to_string(), 300)
        )
    })?;
    r.check().map_err(|e| format!("a malformed request: {e}"))?;
    if &r.cert_id != id {
        return Err(format!(
            "it names certificate {} in the file of {id}",
            r.cert_id
        ));
    }
    Ok(r)
}

/// Renames `name` to `name.RANDOM.rejected` (it no longer matches the path unit's glob).
fn set_aside(d: &Dir, name: &str, why: &str) {
    let aside = format!("{name}.{}.rejected", safe_fs::random_hex());
    match d.rename(name, &aside) {
        Ok(()) => tracing::warn!(
            "{}: {why}: not served; set aside as {}",
            d.show(name).display(),
            d.show(&aside).display()
        ),
        Err(e) => tracing::error!(
            "{}: {why}: not served, and cannot be set aside: {e}",
            d.show(name).display()
        ),
    }
}

/// Writes `ID.result` through a new file at a random name and a rename.
fn answer(d: &Dir, id: &CertId, ok: bool, message: String) {
    use std::io::Write as _;
    let a = Answer {
        cert_id: id.clone(),
        ok,
        message,
    };
    let text = serde_json::to_string(&a).unwrap_or_default();
    let result = format!("{id}.result");
    let r = d
        .create_temp(&format!(".{result}"), "tmp", 0o644)
        .and_then(|(tmp, mut f)| {
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .and_then(|()| d.rename(&tmp, &result))
                .inspect_err(|_| {
                    let _ = d.unlink(&tmp);
                })
        });
    if let Err(e) = r {
        tracing::error!("cannot answer in {}: {e}", d.show(&result).display());
    }
}

/// Runs the hook the root-owned profile names for the request.
async fn run(r: &HookFacts, cfg: &Config) -> Result<(), String> {
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
    let run = HookRun::new(argv, r, &deploy.dir.join(&r.name));
    tracing::info!(profile = %r.profile, cert_id = %r.cert_id, "running the deploy hook {:?}", argv[0]);
    run.run(&r.cert_id).await.map_err(|e| e.to_string())
}
