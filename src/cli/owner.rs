//! Root's commands when no daemon runs.
//!
//! The state directory belongs to the service user, who can plant links and FIFOs in it that
//! the store would follow as root (sled opens `db/conf` for writing before it takes its lock;
//! the key store reads and writes `keys/ID.key`). So root never opens another user's state: the
//! command is carried out by this binary run again as the state's owner (`setpriv`), as the
//! hidden `serve-local`, which answers with one reply line (and an export's bytes) on its
//! standard output. Root reads that exactly as it reads a reply from the control socket
//! (bounded, checked by [`crate::api::client::read_reply`]) and writes what it writes from it
//! itself, as it does for the daemon's replies.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use sectigo_core::config::Config;

use crate::api::client::{read_reply, ReplyError};
use crate::api::{Reply, Request, Response};
use crate::exit::{CliError, Exit};

/// The longest request `serve-local` reads (a request is a command line's worth).
const MAX_REQUEST: u64 = 1 << 20;

/// The user who owns another user's state directory, when this command runs as root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    uid: u32,
    gid: u32,
}

impl Owner {
    /// `Some` when this command runs as root and `[state] dir` belongs to another user (the
    /// service user, in the packaged layout).
    pub(crate) fn of_state(dir: &Path) -> Option<Owner> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let m = std::fs::metadata(Config::state_dir(dir)).ok()?;
        (m.uid() != 0).then(|| Owner {
            uid: m.uid(),
            gid: m.gid(),
        })
    }

    /// This binary, as the owner, on the same configuration directory.
    fn command(&self, dir: &Path, args: &[&str]) -> Result<std::process::Command, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::failed(format!("cannot find this program's path: {e}")))?;
        let dir: PathBuf = std::fs::canonicalize(dir)
            .map_err(|e| CliError::new(Exit::Config, anyhow::anyhow!("{}: {e}", dir.display())))?;
        let mut c = std::process::Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(exe)
            .arg("--config-dir")
            .arg(dir)
            .args(args);
        Ok(c)
    }

    fn failed_to_start(&self, e: std::io::Error) -> CliError {
        CliError::failed(format!(
            "cannot run as uid {} (the owner of the state directory) with setpriv (util-linux): {e}",
            self.uid
        ))
    }

    /// Carries out `request` as the owner; an export's bytes go to `rest`.
    pub(crate) async fn reply(
        &self,
        dir: &Path,
        request: &Request,
        rest: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> Result<Reply, CliError> {
        let mut child = tokio::process::Command::from(self.command(dir, &["serve-local"])?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.failed_to_start(e))?;
        let mut line = serde_json::to_vec(request).map_err(CliError::failed)?;
        line.push(b'\n');
        let mut stdin = child.stdin.take().expect("piped");
        // A child that stops before reading is told by its exit status, below.
        let _ = stdin.write_all(&line).await;
        drop(stdin);
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let read = read_reply(&mut out, rest).await;
        drop(out);
        let status = child.wait().await.map_err(CliError::failed)?;
        match read {
            Ok(reply) => Ok(reply),
            // Its error is on standard error already (inherited): keep its exit code.
            Err(ReplyError::None) => Err(CliError::new(
                exit_of(status.code()),
                anyhow::anyhow!(
                    "carried out as uid {} (the owner of the state directory, as no daemon runs): it failed ({status}), as said above",
                    self.uid
                ),
            )),
            Err(ReplyError::Io(e)) => Err(CliError::failed(format!(
                "reading the answer of the command run as uid {}: {e}",
                self.uid
            ))),
            Err(ReplyError::Malformed(what)) => Err(CliError::failed(format!(
                "the command run as uid {} (the owner of the state directory) sent {what}: refused",
                self.uid
            ))),
        }
    }

    /// Runs the whole command again as the owner, its output passed through; its exit code.
    pub(crate) fn rerun(&self, dir: &Path, args: &[&str]) -> Result<i32, CliError> {
        let status = self
            .command(dir, args)?
            .status()
            .map_err(|e| self.failed_to_start(e))?;
        Ok(status.code().unwrap_or(Exit::Failed.code()))
    }
}

/// The exit a code stands for (anything unknown: failed).
fn exit_of(code: Option<i32>) -> Exit {
    match code {
        Some(75) => Exit::TempFail,
        Some(78) => Exit::Config,
        Some(2) => Exit::Usage,
        _ => Exit::Failed,
    }
}

/// `serve-local`: one request from standard input, carried out against the state here, its
/// reply (and an export's bytes) on standard output. Never prompts: the command that asked
/// does, and asks again.
pub(crate) fn serve(dir: &Path) -> Result<i32, CliError> {
    super::runtime()?.block_on(async {
        let mut line = String::new();
        BufReader::new(tokio::io::stdin().take(MAX_REQUEST))
            .read_line(&mut line)
            .await
            .map_err(CliError::failed)?;
        let request: Request = serde_json::from_str(&line)
            .map_err(|e| CliError::new(Exit::Usage, anyhow::anyhow!("a malformed request: {e}")))?;
        let mut reply = super::execute_here(dir, request).await?;
        let mut stdout = tokio::io::stdout();
        let mut out = serde_json::to_vec(&reply).map_err(CliError::failed)?;
        out.push(b'\n');
        stdout.write_all(&out).await.map_err(CliError::failed)?;
        if let Ok(Response::StateExported { spool, .. }) = &mut reply {
            if let Some(file) = spool.take() {
                tokio::io::copy(&mut tokio::fs::File::from_std(file), &mut stdout)
                    .await
                    .map_err(CliError::failed)?;
            }
        }
        stdout.flush().await.map_err(CliError::failed)?;
        Ok(0)
    })
}
