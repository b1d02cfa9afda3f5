//! The control socket: a Unix socket under /run/sectigo-connector/ through which commands reach
//! the running daemon (which holds the state database). On each connection the daemon first
//! says which state it serves (a [`Hello`] line), then reads one JSON request line and writes
//! one JSON reply; after a `state-exported` reply, the snapshot's bytes (as many as it says)
//! until the end.
//!
//! Access is by file permissions: the socket is 0660, owned by the service user and group.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::api::{ApiError, ErrorKind, Hello, Reply, Request, Response};

/// Largest request accepted (an import list of ~40,000 lines fits).
const MAX_REQUEST: usize = 1024 * 1024;

/// Connections handled at once; more are closed at once (a local user cannot exhaust the
/// daemon's file handles through the socket).
const MAX_CONNECTIONS: usize = 32;

/// A request from the socket, with where to send the reply.
pub type Incoming = (Request, oneshot::Sender<Reply>);

/// Listens on `path`; greets each connection with `hello` and forwards each request to `tx`
/// until `cancel`. Returns the listener task. A daemon already answering on `path` (another
/// configuration's, with the same `[control] socket`) keeps it: this is an error.
pub fn serve(
    path: &Path,
    hello: Hello,
    tx: mpsc::Sender<Incoming>,
    cancel: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another daemon answers on it (another configuration with the same [control] socket?); give each configuration its own [control] socket",
            ));
        }
        // A socket left by a daemon that did not stop cleanly (we hold the state lock, so no
        // other daemon of this state is running).
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    }
    // Removed when the task ends, at shutdown.
    let socket = SocketFile(path.to_path_buf());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let own_uid = rustix::process::getuid().as_raw();
    let hello = Arc::new(hello);
    Ok(tokio::spawn(async move {
        let _socket = socket;
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file handles, say: pause rather than spin.
                    warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!("control socket: {MAX_CONNECTIONS} connections open; closing a new one");
                continue;
            };
            // Root and the service user may have the private keys the daemon made; the
            // socket's group may not.
            let privileged = stream
                .peer_cred()
                .is_ok_and(|c| c.uid() == 0 || c.uid() == own_uid);
            let (tx, hello) = (tx.clone(), hello.clone());
            tokio::spawn(async move {
                if let Err(e) = handle(stream, privileged, &hello, tx).await {
                    debug!("control connection: {e}");
                }
                drop(slot);
            });
        }
    }))
}

async fn handle(
    stream: UnixStream,
    privileged: bool,
    hello: &Hello,
    tx: mpsc::Sender<Incoming>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut greeting = serde_json::to_vec(hello)?;
    greeting.push(b'\n');
    w.write_all(&greeting).await?;
    let mut line = String::new();
    let mut reader = BufReader::new(r).take(MAX_REQUEST as u64);
    // A client that connects and says nothing must not hold a task forever.
    tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no request within 30 s")
        })??;
    let reply: Reply = match serde_json::from_str::<Request>(&line) {
        Ok(mut req) => {
            match &mut req {
                Request::CertsExport { key, .. } | Request::StateExport { keys: key } => {
                    *key &= privileged
                }
                _ => {}
            }
            let (rtx, rrx) = oneshot::channel();
            if tx.send((req, rtx)).await.is_err() {
                Err(ApiError::new(
                    ErrorKind::TempFail,
                    "the daemon is shutting down",
                ))
            } else {
                rrx.await.unwrap_or_else(|_| {
                    Err(ApiError::new(
                        ErrorKind::TempFail,
                        "the daemon dropped the request",
                    ))
                })
            }
        }
        Err(e) => {
            warn!("control socket: malformed request: {e}");
            Err(ApiError::new(
                ErrorKind::Usage,
                format!("malformed request: {e}"),
            ))
        }
    };
    let mut reply = reply;
    let spool = match &mut reply {
        Ok(Response::StateExported { spool, .. }) => spool.take(),
        _ => None,
    };
    let mut out = serde_json::to_vec(&reply)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    if let Some(file) = spool {
        tokio::io::copy(&mut tokio::fs::File::from_std(file), &mut w).await?;
    }
    w.shutdown().await
}

/// Removes the socket file when the daemon stops.
pub struct SocketFile(pub PathBuf);
impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
