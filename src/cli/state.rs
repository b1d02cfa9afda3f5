//! `state export` and `state import`: backup and restore of the whole state.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt as _;

use sectigo_core::config::Config;
use sectigo_engine::{Engine, Shared};
use sectigo_state::ExportError;

use super::{emit, runtime};
use crate::api::{service, Reply, Request, Response};
use crate::exit::{CliError, Exit};
use crate::render;

/// Where an export goes: FILE (written as `FILE.partial`, 0600, fsynced, then renamed, so FILE
/// is a whole export or the one before), or standard output.
enum Output {
    File {
        partial: PathBuf,
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
        let mut partial = file.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let w = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", partial.display())))?;
        Ok(Output::File {
            partial,
            file: file.to_path_buf(),
            w,
        })
    }

    /// Where it goes, for an error.
    fn name(&self) -> String {
        match self {
            Output::File { partial, .. } => partial.display().to_string(),
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
                partial,
                file,
                mut w,
            } => {
                let fail = |e: std::io::Error| CliError::failed(format!("{}: {e}", file.display()));
                w.flush().await.map_err(fail)?;
                w.sync_all().await.map_err(fail)?;
                drop(w);
                tokio::fs::rename(&partial, &file).await.map_err(fail)?;
                if let Some(d) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::File::open(d)
                        .and_then(|d| d.sync_all())
                        .map_err(fail)?;
                }
                Ok(Some(file))
            }
        }
    }

    fn discard(self) {
        if let Output::File { partial, .. } = self {
            let _ = std::fs::remove_file(partial);
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
    let socket = Config::control_socket(dir);
    // Asks for the keys; the daemon gives them only to root and its own user.
    let req = Request::StateExport { keys: true };
    match crate::api::client::send_to(&socket, &req, out.writer()).await {
        Ok(Some(reply)) => return Ok(reply),
        Ok(None) => {}
        Err(e) => {
            return Err(CliError::temp(format!(
                "state export through the daemon ({}) into {}: {e}",
                socket.display(),
                out.name()
            )))
        }
    }
    let cfg = Config::load(dir)?;
    let _log = crate::logging::init(&cfg.connector.log)?;
    let store = sectigo_state::open(&cfg.connector.state)?;
    let engine = Engine::new(
        &cfg,
        store,
        Shared::new(&cfg),
        sectigo_core::clock::system(),
    )?;
    // Here the file system decides who reads the keys.
    let mut reply = service::execute(req, &engine, &cfg, None).await;
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
pub fn import(dir: &Path, file: &Path) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    let _log = crate::logging::init(&cfg.connector.log)?;
    let store = match sectigo_state::open_for_restore(&cfg.connector.state) {
        Err(e) if e.is_temporary() => {
            return Err(CliError::temp(format!(
                "{e}\nstate import writes the state directly: stop the daemon (systemctl stop sectigo-connector), import, then start it"
            )))
        }
        r => r?,
    };
    let keys = sectigo_state::KeyStore::new(&cfg.connector.state.dir);
    let bytes = std::fs::metadata(file)
        .map(|m| m.len())
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", file.display())))?;
    let counts = sectigo_state::export::import(&*store, &keys, &mut || {
        std::fs::File::open(file).map(|f| std::io::BufReader::with_capacity(1 << 20, f))
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
    let backup = std::fs::File::open(file)
        .map_err(ExportError::from)
        .and_then(|f| sectigo_state::export::header(std::io::BufReader::new(f)))
        .map_err(|e| CliError::failed(format!("{}: {e}", file.display())))?;
    let held = runtime()?.block_on(engine.hold_after_restore(backup.exported_at))?;
    drop(engine);
    let owner = give_to_owner(&cfg.connector.state.dir)
        .map_err(|e| CliError::failed(format!("{}: {e}", cfg.connector.state.dir.display())))?;
    println!(
        "state imported from {} into {}{owner}: {}",
        file.display(),
        cfg.connector.state.dir.display(),
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
            sectigo_core::text::ts(backup.exported_at)
        );
    }
    Ok(Exit::Ok.code())
}

/// Run as root into a state directory another user owns (the service user's), what the import
/// created (the database and the keys) is given to that user: the daemon must be able to open
/// it. Nothing else in the directory (deployed files, say) is touched.
fn give_to_owner(dir: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(dir)?;
    if !rustix::process::geteuid().is_root() || meta.uid() == 0 {
        return Ok(String::new());
    }
    fn walk(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
        if std::fs::symlink_metadata(p)?.is_dir() {
            for e in std::fs::read_dir(p)? {
                walk(&e?.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    for made in ["db", "keys"] {
        let p = dir.join(made);
        if p.exists() {
            walk(&p, meta.uid(), meta.gid())?;
        }
    }
    Ok(format!(" (owned by uid {}, as the directory)", meta.uid()))
}
