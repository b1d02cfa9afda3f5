//! The control socket's client: a command's request to the running daemon, and its reply (one
//! JSON line each way; after a `state-exported` reply, the snapshot's bytes).

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{Reply, Request, Response};

/// Sends a request to a running daemon. `Ok(None)` when no daemon listens at `path`.
pub async fn send(path: &Path, req: &Request) -> std::io::Result<Option<Reply>> {
    send_to(path, req, &mut tokio::io::sink()).await
}

/// [`send`], copying what follows a `state-exported` reply into `rest`; fails when the stream
/// ends before the bytes the reply announced.
pub async fn send_to(
    path: &Path,
    req: &Request,
    rest: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> std::io::Result<Option<Reply>> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let (r, mut w) = stream.into_split();
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await?;
    let mut line = String::new();
    let mut r = BufReader::new(r);
    r.read_line(&mut line).await?;
    if line.is_empty() {
        return Err(std::io::Error::other(
            "the daemon closed the connection without answering (it stopped or crashed): the request's outcome is unknown; check `status` and the journal (journalctl -u sectigo-connector)",
        ));
    }
    let reply: Reply = serde_json::from_str(&line)
        .map_err(|e| std::io::Error::other(format!("malformed reply from the daemon: {e}")))?;
    if let Ok(Response::StateExported { bytes, .. }) = &reply {
        let got = tokio::io::copy(&mut r, rest).await?;
        if got != *bytes {
            return Err(std::io::Error::other(format!(
                "the daemon sent {got} of the export's {bytes} bytes (it stopped?): the export is incomplete"
            )));
        }
        rest.flush().await?;
    }
    Ok(Some(reply))
}
