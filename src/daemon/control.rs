//! The control socket: a Unix socket under /run/sectigo-connector/ through which commands reach
//! the running daemon (which holds the state database). On each connection the daemon first
//! says which state it serves (a [`Hello`] line), then reads one JSON request line and writes
//! one JSON reply; after a `state-exported` reply, the snapshot's bytes (as many as it says)
//! until the end.
//!
//! Access is by file permissions: the socket is 0660, owned by the service user and group.
//! Members of the group are served, but cannot crowd out root and the service user: each
//! other uid holds at most [`PER_UID`] connections, all of them together [`OTHERS`], while root
//! and the service user have [`RESERVED`] slots of their own. A connection that sends no
//! request within [`READ_DEADLINE`], or does not take its reply (each write) within
//! [`WRITE_DEADLINE`], is closed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::api::{ApiError, ErrorKind, Hello, Reply, Request, Response};

/// Largest request accepted (an import list of ~40,000 lines fits).
const MAX_REQUEST: usize = 1024 * 1024;

/// Connections of one uid other than root's and the service user's, at once.
pub const PER_UID: usize = 8;
/// Connections of all those uids together (a local user cannot exhaust the daemon's file
/// handles through the socket). More are closed at once.
pub const OTHERS: usize = 32;
/// Connections of root and the service user, never taken by the others.
pub const RESERVED: usize = 16;
/// A request must arrive within this time of the connection.
pub const READ_DEADLINE: Duration = Duration::from_secs(30);
/// Each write of the reply (and of an export's stream) must be taken within this time.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// A request from the socket, with where to send the reply.
pub type Incoming = (Request, oneshot::Sender<Reply>);

/// Connections held, by uid (root's and the service user's are not counted).
type PerUid = Arc<Mutex<HashMap<u32, usize>>>;

/// Who may hold which connections.
struct Slots {
    reserved: Arc<Semaphore>,
    others: Arc<Semaphore>,
    per_uid: PerUid,
    own_uid: u32,
}

/// A connection's place, given back when it closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    uid: Option<(u32, PerUid)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((uid, counts)) = &self.uid {
            let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = c.get_mut(uid) {
                *n -= 1;
                if *n == 0 {
                    c.remove(uid);
                }
            }
        }
    }
}

impl Slots {
    fn new() -> Slots {
        Slots {
            reserved: Arc::new(Semaphore::new(RESERVED)),
            others: Arc::new(Semaphore::new(OTHERS)),
            per_uid: Arc::default(),
            own_uid: rustix::process::getuid().as_raw(),
        }
    }

    /// Whether `uid` is root or the service user (who may have the private keys too).
    fn privileged(&self, uid: Option<u32>) -> bool {
        uid.is_some_and(|u| u == 0 || u == self.own_uid)
    }

    /// A place for a connection of `uid` (`None`: unknown), or `None` when it has none.
    fn take(&self, uid: Option<u32>) -> Option<Slot> {
        if self.privileged(uid) {
            let permit = self.reserved.clone().try_acquire_owned().ok()?;
            return Some(Slot {
                _permit: permit,
                uid: None,
            });
        }
        let key = uid.unwrap_or(u32::MAX);
        let mut counts = self.per_uid.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= PER_UID {
            return None;
        }
        let permit = self.others.clone().try_acquire_owned().ok()?;
        *n += 1;
        Some(Slot {
            _permit: permit,
            uid: Some((key, self.per_uid.clone())),
        })
    }
}

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
    let slots = Slots::new();
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
            let uid = stream.peer_cred().ok().map(|c| c.uid());
            let Some(slot) = slots.take(uid) else {
                debug!(
                    "control socket: uid {} has all the connections it may hold; closing a new one",
                    uid.map_or("unknown".into(), |u| u.to_string())
                );
                continue;
            };
            let privileged = slots.privileged(uid);
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

/// Writes `bytes` within [`WRITE_DEADLINE`].
async fn write_within(w: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(WRITE_DEADLINE, w.write_all(bytes))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client took nothing for {} s", WRITE_DEADLINE.as_secs()),
            )
        })?
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
    write_within(&mut w, &greeting).await?;
    let mut line = String::new();
    let mut reader = BufReader::new(r).take(MAX_REQUEST as u64);
    // A client that connects and says nothing must not hold a task forever.
    tokio::time::timeout(READ_DEADLINE, reader.read_line(&mut line))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no request within {} s", READ_DEADLINE.as_secs()),
            )
        })??;
    let reply: Reply = match serde_json::from_str::<Request>(&line) {
        Ok(mut req) => {
            // Root and the service user may have the private keys the daemon made; the
            // socket's group may not.
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
    write_within(&mut w, &out).await?;
    if let Some(file) = spool {
        let mut file = tokio::fs::File::from_std(file);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            write_within(&mut w, &buf[..n]).await?;
        }
    }
    tokio::time::timeout(WRITE_DEADLINE, w.shutdown())
        .await
        .unwrap_or(Ok(()))
}

/// Removes the socket file when the daemon stops.
pub struct SocketFile(pub PathBuf);
impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_cannot_take_root_s_or_each_other_s_places() {
        let s = Slots::new();
        let mut held = Vec::new();
        // One uid: PER_UID places, then none.
        for _ in 0..PER_UID {
            held.push(s.take(Some(5000)).expect("a place"));
        }
        assert!(s.take(Some(5000)).is_none(), "past the per-uid cap");
        // Others fill the shared places.
        for u in 5001..5004 {
            for _ in 0..PER_UID {
                held.push(s.take(Some(u)).expect("a place"));
            }
        }
        assert_eq!(held.len(), OTHERS);
        assert!(s.take(Some(6000)).is_none(), "the shared places are full");
        assert!(s.take(None).is_none());
        // Root and the service user still have theirs.
        let root: Vec<_> = (0..RESERVED).map(|_| s.take(Some(0))).collect();
        assert!(root.iter().all(Option::is_some));
        drop(root);
        assert!(s.take(Some(s.own_uid)).is_some());
        // A closed connection gives its place back.
        held.truncate(OTHERS - 1);
        assert!(s.take(Some(6000)).is_some());
    }

    fn hello() -> Hello {
        Hello::of(Path::new("/nonexistent"))
    }

    /// A client that says nothing, or takes no reply, is let go within the deadlines.
    #[tokio::test(start_paused = true)]
    async fn silent_and_slow_clients_are_let_go() {
        let (tx, mut rx) = mpsc::channel::<Incoming>(1);
        tokio::spawn(async move {
            while let Some((_, reply)) = rx.recv().await {
                // A reply far larger than the socket's buffer.
                let _ = reply.send(Err(ApiError::new(ErrorKind::Failed, "x".repeat(8 << 20))));
            }
        });
        // Says nothing.
        let (server, _client) = UnixStream::pair().unwrap();
        let e = handle(server, true, &hello(), tx.clone())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        // Asks, and reads nothing back.
        let (server, mut client) = UnixStream::pair().unwrap();
        client.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
        let t = tokio::time::Instant::now();
        let e = handle(server, true, &hello(), tx).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(t.elapsed() <= WRITE_DEADLINE + Duration::from_secs(1));
    }
}
