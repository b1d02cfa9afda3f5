//! The control socket's client: a command's request to the running daemon, and its reply (one
//! JSON line each way; after a `state-exported` reply, the snapshot's bytes).
//!
//! A command (root's, often) trusts the socket no more than what it can check: who serves it
//! (SO_PEERCRED: root, the service user that owns `[state] dir`, or the command's own user),
//! then the daemon's greeting ([`Hello`]: the state it serves must be the one the command's
//! configuration names). Only then is the request sent. What comes back is checked again:
//! names and ids are typed (a reply holding a bad one does not decode), an export's file mode
//! is at most 0644, and a state export is as many bytes as announced, no more.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use sectigo_core::config::Config;

use super::{Hello, Reply, Request, Response};

/// The daemon greets within this time (it does so before it reads anything).
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// The longest greeting read.
const MAX_HELLO: u64 = 64 * 1024;
/// The most an export's files may be opened up: read and write for the owner, read for the
/// others; never executable, setuid, setgid or sticky, never writable by others.
pub const MAX_EXPORT_MODE: u32 = 0o644;

/// Where a command finds its daemon, and what it expects of it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub socket: PathBuf,
    /// `[state] dir` of the command's configuration: the daemon must serve this state, and
    /// its owner (the service user) may serve the socket.
    pub state_dir: PathBuf,
    pub config_dir: PathBuf,
}

impl Endpoint {
    /// The endpoint the configuration in `config_dir` names (connector.toml alone is read).
    pub fn of(config_dir: &Path) -> Endpoint {
        Endpoint {
            socket: Config::control_socket(config_dir),
            state_dir: Config::state_dir(config_dir),
            config_dir: config_dir.to_path_buf(),
        }
    }
}

/// Why a command did not get a reply it can use.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot talk to the daemon through {}: {error}", socket.display())]
    Io {
        socket: PathBuf,
        error: std::io::Error,
    },
    /// The socket is served by someone who is not the daemon this configuration runs.
    #[error("{} is served by uid {uid} (pid {pid}), which is neither root nor the service user ({owner}, the owner of {}): refused, nothing was sent; find out who runs it (`ps -p {pid} -o user,cmd`)", socket.display(), state_dir.display())]
    Untrusted {
        socket: PathBuf,
        uid: u32,
        pid: i32,
        owner: String,
        state_dir: PathBuf,
    },
    /// The daemon on the socket serves another configuration's state.
    #[error("the daemon on {} serves the state in {}, but the configuration in {} names {}: refused, nothing was sent. Two configurations share one control socket: give each its own `[control] socket` in connector.toml", socket.display(), theirs.display(), config_dir.display(), ours.display())]
    OtherState {
        socket: PathBuf,
        theirs: PathBuf,
        ours: PathBuf,
        config_dir: PathBuf,
    },
    /// The daemon said something it never says.
    #[error("the daemon on {} sent {what}: refused", socket.display())]
    Malformed { socket: PathBuf, what: String },
}

/// Sends a request to a running daemon. `Ok(None)` when no daemon listens at the socket.
pub async fn send(to: &Endpoint, req: &Request) -> Result<Option<Reply>, ClientError> {
    send_to(to, req, &mut tokio::io::sink()).await
}

/// [`send`], copying what follows a `state-exported` reply into `rest`; fails when the stream
/// ends before the bytes the reply announced, or goes on past them.
pub async fn send_to(
    to: &Endpoint,
    req: &Request,
    rest: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> Result<Option<Reply>, ClientError> {
    let io = |error| ClientError::Io {
        socket: to.socket.clone(),
        error,
    };
    let malformed = |what: String| ClientError::Malformed {
        socket: to.socket.clone(),
        what,
    };
    let stream = match UnixStream::connect(&to.socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(io(e)),
    };
    check_peer(to, &stream)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let hello = read_hello(&mut r).await.map_err(|e| match e {
        Err(e) => io(e),
        Ok(what) => malformed(what),
    })?;
    if !hello.serves(&to.state_dir) {
        return Err(ClientError::OtherState {
            socket: to.socket.clone(),
            theirs: hello.state_dir,
            ours: to.state_dir.clone(),
            config_dir: to.config_dir.clone(),
        });
    }
    let mut out = serde_json::to_vec(req).map_err(|e| io(e.into()))?;
    out.push(b'\n');
    w.write_all(&out).await.map_err(io)?;
    w.shutdown().await.map_err(io)?;
    match read_reply(&mut r, rest).await {
        Ok(reply) => Ok(Some(reply)),
        Err(ReplyError::Io(e)) => Err(io(e)),
        Err(ReplyError::Malformed(what)) => Err(malformed(what)),
        Err(ReplyError::None) => Err(io(std::io::Error::other(
            "the daemon closed the connection without answering (it stopped or crashed): the request's outcome is unknown; check `status` and the journal (journalctl -u sectigo-connector)",
        ))),
    }
}

/// The longest reply line taken: a million certificates listed is a few hundred MB; anything
/// longer is no reply this daemon sends, and is not read into memory.
pub const MAX_REPLY: u64 = 1 << 30;

/// Why no usable reply was read.
#[derive(Debug)]
pub enum ReplyError {
    /// Nothing came: the other side stopped.
    None,
    Io(std::io::Error),
    /// Something came that no daemon sends.
    Malformed(String),
}

/// Reads a reply line (bounded by [`MAX_REPLY`]), checks what it may not say, and for a
/// `state-exported` reply copies the bytes it announces into `rest`: exactly those, no more.
/// The socket's replies and those of the command run as the state's owner are read alike.
pub async fn read_reply(
    r: &mut (dyn tokio::io::AsyncBufRead + Unpin + Send),
    rest: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> Result<Reply, ReplyError> {
    read_reply_within(r, rest, MAX_REPLY).await
}

async fn read_reply_within(
    r: &mut (dyn tokio::io::AsyncBufRead + Unpin + Send),
    rest: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    max: u64,
) -> Result<Reply, ReplyError> {
    let mut line = String::new();
    (&mut *r)
        .take(max)
        .read_line(&mut line)
        .await
        .map_err(ReplyError::Io)?;
    if line.is_empty() {
        return Err(ReplyError::None);
    }
    if !line.ends_with('\n') && line.len() as u64 >= max {
        return Err(ReplyError::Malformed(format!(
            "a reply longer than {max} bytes"
        )));
    }
    let reply: Reply = serde_json::from_str(&line)
        .map_err(|e| ReplyError::Malformed(format!("a malformed reply ({e})")))?;
    check_reply(&reply).map_err(ReplyError::Malformed)?;
    if let Ok(Response::StateExported { bytes, .. }) = &reply {
        let got = tokio::io::copy(&mut (&mut *r).take(*bytes), rest)
            .await
            .map_err(ReplyError::Io)?;
        if got != *bytes {
            return Err(ReplyError::Io(std::io::Error::other(format!(
                "the daemon sent {got} of the export's {bytes} bytes (it stopped?): the export is incomplete"
            ))));
        }
        if r.read(&mut [0u8; 1]).await.map_err(ReplyError::Io)? != 0 {
            return Err(ReplyError::Malformed(format!(
                "more than the {bytes} bytes of the export it announced"
            )));
        }
        rest.flush().await.map_err(ReplyError::Io)?;
    }
    Ok(reply)
}

/// The socket is served by root, by the service user (the owner of `[state] dir`), or by
/// this command's own user.
fn check_peer(to: &Endpoint, stream: &UnixStream) -> Result<(), ClientError> {
    use std::os::unix::fs::MetadataExt as _;
    let cred = stream.peer_cred().map_err(|error| ClientError::Io {
        socket: to.socket.clone(),
        error,
    })?;
    let uid = cred.uid();
    let owner = std::fs::metadata(&to.state_dir).ok().map(|m| m.uid());
    if uid == 0 || uid == rustix::process::geteuid().as_raw() || Some(uid) == owner {
        return Ok(());
    }
    Err(ClientError::Untrusted {
        socket: to.socket.clone(),
        uid,
        pid: cred.pid().unwrap_or(0),
        owner: owner.map_or("unknown: the directory cannot be read".into(), |o| {
            format!("uid {o}")
        }),
        state_dir: to.state_dir.clone(),
    })
}

/// The daemon's greeting. `Err(Ok(what))`: it said something else; `Err(Err(e))`: an I/O
/// error, or no greeting in time.
async fn read_hello(
    r: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<Hello, Result<String, std::io::Error>> {
    let mut line = String::new();
    let mut bounded = (&mut *r).take(MAX_HELLO);
    match tokio::time::timeout(HELLO_WITHIN, bounded.read_line(&mut line)).await {
        Err(_) => {
            return Err(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no greeting within {} s (a daemon older than this command? restart it)",
                    HELLO_WITHIN.as_secs()
                ),
            )))
        }
        Ok(Err(e)) => return Err(Err(e)),
        Ok(Ok(_)) => {}
    }
    if line.is_empty() {
        return Err(Err(std::io::Error::other(
            "the daemon closed the connection at once (too many connections? it is stopping?)",
        )));
    }
    serde_json::from_str(&line).map_err(|e| Ok(format!("a malformed greeting ({e})")))
}

/// What a reply may not say, whoever sent it.
pub fn check_reply(reply: &Reply) -> Result<(), String> {
    if let Ok(Response::Exported { mode, .. }) = reply {
        if mode & !MAX_EXPORT_MODE != 0 {
            return Err(format!(
                "file mode {mode:#o} for an export, more than {MAX_EXPORT_MODE:#o} (setuid, setgid, sticky, executable or writable by others)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply line longer than the cap is refused after reading the cap, never whole; one
    /// within it is read; an export's bytes past what it announced are refused.
    #[tokio::test]
    async fn replies_are_bounded() {
        let forgotten = Response::Forgotten {
            id: "1".parse().unwrap(),
            subject_cn: "x.example.com".into(),
        };
        let ok = serde_json::to_string(&Ok::<_, crate::api::ApiError>(forgotten)).unwrap();
        let line = format!("{ok}\n");
        let mut r = BufReader::new(line.as_bytes());
        let got = read_reply_within(&mut r, &mut tokio::io::sink(), 1024).await;
        assert!(matches!(got, Ok(Ok(Response::Forgotten { .. }))), "{got:?}");

        let endless = format!("{}{}", &ok[..ok.len() - 1], " ".repeat(4096));
        let mut r = BufReader::new(endless.as_bytes());
        let got = read_reply_within(&mut r, &mut tokio::io::sink(), 1024).await;
        assert!(
            matches!(&got, Err(ReplyError::Malformed(m)) if m.contains("longer than 1024")),
            "{got:?}"
        );
    }
}
