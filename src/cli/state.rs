//! `state export` and `state import`: backup and restore of the whole state.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt as _;

use sectigo_core::config::Config;
use sectigo_engine::safe_fs::Dir;
use sectigo_engine::{Engine, Shared};
use sectigo_state::ExportError;

use super::{emit, runtime};
use crate::api::{service, Reply, Request, Response};
use crate::exit::{CliError, Exit};
use crate::render;

/// Where an export goes: FILE, or standard output. FILE is written under a new name beside it
/// (`.FILE.RANDOM.partial`, created `O_EXCL|O_NOFOLLOW` and made 0600 through its descriptor:
/// nothing planted in FILE's directory is opened, truncated or left readable), fsynced, then
/// renamed onto FILE, so FILE is a whole export or the one before.
enum Output {
    File {
        dir: Dir,
        partial: String,
        name: String,
        file: PathBuf,
        w: tokio::fs::File,
    },
    Stdout(tokio::io::Stdout),
}

impl Output {
    async fn open(file: Option<&Path>) -> Result<Output, CliError> {
        let Some(file) = file else {
            return Ok(Output::Stdout(tokio::io::stdout()));
        };
        let cannot = |e: &dyn std::fmt::Display| {
            CliError::failed(format!("cannot write {}: {e}", file.display()))
        };
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| cannot(&"not a file name (UTF-8, not a directory)"))?
            .to_string();
        let parent = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = Dir::open_named(parent).map_err(|e| cannot(&e))?;
        let (partial, w) = dir
            .create_temp(&format!(".{name}"), "partial", 0o600)
            .map_err(|e| cannot(&e))?;
        Ok(Output::File {
            dir,
            partial,
            name,
            file: file.to_path_buf(),
            w: tokio::fs::File::from_std(w),
        })
    }

    /// Where it goes, for an error.
    fn name(&self) -> String {
        match self {
            Output::File { dir, partial, .. } => dir.show(partial).display().to_string(),
            Output::Stdout(_) => "standard output".into(),
        }
    }

    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Unpin + Send) {
        match self {
            Output::File { w, .. } => w,
            Output::Stdout(s) => s,
        }
    }

    async fn finish(self) -> Result<Option<PathBuf>, CliError> {
        match self {
            Output::Stdout(mut s) => {
                s.flush()
                    .await
                    .map_err(|e| CliError::failed(format!("standard output: {e}")))?;
                Ok(None)
            }
            Output::File {
                dir,
                partial,
                name,
                file,
                mut w,
            } => {
                let fail = |e: std::io::Error| CliError::failed(format!("{}: {e}", file.display()));
                w.flush().await.map_err(fail)?;
                w.sync_all().await.map_err(fail)?;
                drop(w);
                dir.rename(&partial, &name).map_err(fail)?;
                dir.sync().map_err(fail)?;
                Ok(Some(file))
            }
        }
    }

    fn discard(self) {
        if let Output::File { dir, partial, .. } = self {
            let _ = dir.unlink(&partial);
        }
    }
}

/// `state export [FILE]`.
pub fn export(dir: &Path, file: Option<&Path>) -> Result<i32, CliError> {
    use std::io::IsTerminal as _;
    if file.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::usage(
            "state export writes the whole state (private keys included) as JSON lines: give a FILE, or redirect standard output",
        ));
    }
    runtime()?.block_on(async move {
        let mut out = Output::open(file).await?;
        let r = export_into(dir, &mut out).await;
        match r {
            Ok(Ok(Response::StateExported { counts, bytes, .. })) => {
                let to = out.finish().await?;
                eprintln!(
                    "state exported{}: {}",
                    to.map(|f| format!(" to {}", f.display()))
                        .unwrap_or_default(),
                    render::exported(&counts, bytes)
                );
                Ok(Exit::Ok.code())
            }
            Ok(other) => {
                out.discard();
                Ok(emit(other, false))
            }
            Err(e) => {
                out.discard();
                Err(e)
            }
        }
    })
}

/// The export, through the daemon when it runs (it holds the state), else from the state.
async fn export_into(dir: &Path, out: &mut Output) -> Result<Reply, CliError> {
    let daemon = crate::api::client::Endpoint::of(dir);
    // Asks for the keys; the daemon gives them only to root and its own user.
    let req = Request::StateExport { keys: true };
    match crate::api::client::send_to(&daemon, &req, out.writer()).await {
        Ok(Some(reply)) => return Ok(reply),
        Ok(None) => {}
        Err(e) => {
            let mut e = CliError::from(e);
            e.error = e.error.context(format!("state export into {}", out.name()));
            return Err(e);
        }
    }
    // Root never opens the service user's state: its owner reads it, root writes the file.
    if let Some(owner) = super::owner::Owner::of_state(dir) {
        return owner.reply(dir, &req, out.writer()).await;
    }
    let here = super::Here::open(dir)?;
    // Here the file system decides who reads the keys.
    let mut reply = service::execute(req, &here.engine, &here.cfg, None).await;
    if let Ok(Response::StateExported { spool, bytes, .. }) = &mut reply {
        let file = spool.take().expect("an in-process export holds its spool");
        let copied = tokio::io::copy(&mut tokio::fs::File::from_std(file), out.writer())
            .await
            .map_err(|e| CliError::failed(format!("writing the export to {}: {e}", out.name())))?;
        if copied != *bytes {
            return Err(CliError::failed(format!(
                "the export spool held {copied} of {bytes} bytes"
            )));
        }
    }
    Ok(reply)
}

/// `state import FILE`.
///
/// Run as root into a state directory another user owns (the service user's), the import
/// refuses a `db` or `keys` there that is a link or another user's, and then runs as that
/// user ([`as_owner_of`]): whatever that user planted in its directory, the import writes
/// nowhere that user could not, and what it makes (the database, the keys) is that user's.
pub fn import(dir: &Path, file: &Path) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    // Opened as the caller: root may read a file the service user may not.
    let source = std::fs::File::open(file)
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", file.display())))?;
    let bytes = source
        .metadata()
        .map(|m| m.len())
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", file.display())))?;
    let state_dir = cfg.connector.state.dir.clone();
    let owner = as_owner_of(&state_dir)?;
    let _log = crate::logging::init(&cfg.connector.log)?;
    let store = match sectigo_state::open_for_restore(&cfg.connector.state) {
        Err(e) if e.is_temporary() => {
            return Err(CliError::temp(format!(
                "{e}\nstate import writes the state directly: stop the daemon (systemctl stop sectigo-connector), import, then start it"
            )))
        }
        r => r?,
    };
    let keys = sectigo_state::KeyStore::new(&state_dir);
    // Read twice (checked, then restored): from the start of the file opened above; a pipe
    // (`/dev/stdin`) cannot go back, and is opened again as before.
    let mut again = false;
    let counts = sectigo_state::export::import(&*store, &keys, &mut || {
        use std::io::Seek as _;
        let mut f = source.try_clone()?;
        if std::mem::replace(&mut again, true) {
            match f.rewind() {
                Err(e) if e.raw_os_error() == Some(29) => f = std::fs::File::open(file)?,
                r => {
                    r?;
                }
            }
        }
        Ok(std::io::BufReader::with_capacity(1 << 20, f))
    })
    .map_err(|e| match e {
        ExportError::Store(s) if s.is_temporary() => CliError::from(s),
        e => {
            let outcome = if store.restore_unfinished().unwrap_or(true) {
                "the import did not finish and the state will not open until `state import` is run again (it starts over)"
            } else {
                "nothing was imported"
            };
            CliError::failed(format!("{}: {e}; {outcome}", file.display()))
        }
    })?;
    // Files a restore on another machine lacks: the daemon deploys them when it starts.
    let engine = Engine::new(
        &cfg,
        store,
        Shared::new(&cfg),
        sectigo_core::clock::system(),
    )?;
    let redeploy = runtime()?.block_on(engine.deployer().owe_missing_deploys())?;
    // What the daemon may have renewed after the backup waits for a person (without [admin]).
    // The backup's time, from the file opened above (as the caller); a pipe is read again
    // as the import read it. Unreadable now: the renewals due are held all the same.
    let backup_at = {
        use std::io::Seek as _;
        source
            .try_clone()
            .and_then(|mut f| match f.rewind() {
                Err(e) if e.raw_os_error() == Some(29) => std::fs::File::open(file),
                r => r.map(|()| f),
            })
            .map_err(ExportError::from)
            .and_then(|f| sectigo_state::export::header(std::io::BufReader::new(f)))
            .map(|h| h.exported_at)
            .unwrap_or_else(|_| super::now())
    };
    let held = runtime()?.block_on(engine.hold_after_restore(backup_at))?;
    drop(engine);
    println!(
        "state imported from {} into {}{owner}: {}",
        file.display(),
        state_dir.display(),
        render::exported(&counts, bytes)
    );
    if redeploy > 0 {
        println!(
            "{} not in the deploy directory: the daemon deploys them (files and hook) when it starts",
            render::plural(redeploy, "certificate whose files are", "certificates whose files are")
        );
    }
    if !held.is_empty() {
        println!(
            "{} held: due now, and the backup is from {}, so the daemon may have renewed them after it. Nothing renews them until a person checks SCM and confirms (`renew ID --yes`, or `certs resolve ID --renewed-as NEW_ID` / `--not-renewed`); `status --check` lists them",
            render::plural(held.len() as u64, "renewal", "renewals"),
            sectigo_core::text::ts(backup_at)
        );
    }
    Ok(Exit::Ok.code())
}

/// Root importing into `dir`, a state directory another user owns: refuses a `db` or `keys`
/// entry there that is a link, not a directory, or not that user's; then this thread (the
/// only one yet: every thread the import starts is started by it) takes that user's uid and
/// gid, for good. Returns what to say about it. Nothing to do for another caller, or for a
/// directory of root's.
fn as_owner_of(dir: &Path) -> Result<String, CliError> {
    use std::os::unix::fs::MetadataExt as _;
    if !rustix::process::geteuid().is_root() {
        return Ok(String::new());
    }
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(CliError::failed(format!("{}: {e}", dir.display()))),
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    for entry in ["db", "keys"] {
        let p = dir.join(entry);
        let why = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => "a symbolic link".to_string(),
            Ok(m) if !m.is_dir() => "not a directory".to_string(),
            Ok(m) if m.uid() != uid => {
                format!(
                    "owned by uid {}, not by the directory's owner (uid {uid})",
                    m.uid()
                )
            }
            _ => continue,
        };
        return Err(CliError::failed(format!(
            "{}: {why}: refused, nothing was imported (move it away: an import goes into an empty state)",
            p.display()
        )));
    }
    if uid == 0 {
        return Ok(String::new());
    }
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_string()))
        });
    if threads.as_deref() != Some("1") {
        return Err(CliError::failed(format!(
            "state import as root: cannot take uid {uid} (the owner of {}) with {} threads running; nothing was imported",
            dir.display(),
            threads.unwrap_or_else(|| "several".into())
        )));
    }
    use rustix::fs::{Gid, Uid};
    let become_owner = || -> std::io::Result<()> {
        rustix::thread::set_thread_groups(&[Gid::from_raw(gid)])?;
        rustix::thread::set_thread_res_gid(
            Gid::from_raw(gid),
            Gid::from_raw(gid),
            Gid::from_raw(gid),
        )?;
        rustix::thread::set_thread_res_uid(
            Uid::from_raw(uid),
            Uid::from_raw(uid),
            Uid::from_raw(uid),
        )?;
        Ok(())
    };
    become_owner().map_err(|e| {
        CliError::failed(format!(
            "state import as root: cannot take uid {uid} (the owner of {}): {e}; nothing was imported",
            dir.display()
        ))
    })?;
    Ok(format!(" (as uid {uid}, the directory's owner)"))
}
