//! The control socket: accepts clients, reads framed requests, hands them to the
//! control task, writes the answers.
//!
//! Each connection is its own task, so a slow or silent client holds up nobody; a
//! connection idle for [`IDLE`] is closed. A malformed or oversized frame gets an
//! `Error` response and the connection is closed; the daemon goes on.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use rvs_ovsdb::proto::{self, ProtoError, Request, Response};

/// How long a connection may sit without sending a request.
const IDLE: Duration = Duration::from_secs(120);

/// A request on its way to the control task, with where to send the answer.
pub type Job = (Request, oneshot::Sender<Response>);

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another rvs-vswitchd is already running: {0} accepts connections")]
    InUse(String),
    #[error("cannot listen on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Binds the socket (mode 0600), replacing a stale file left by a daemon that died.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, BindError> {
    let p = path.display().to_string();
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse(p));
        }
        let _ = std::fs::remove_file(path);
    }
    let io = |source| BindError::Io { path: p.clone(), source };
    // umask 077 while binding, so the socket is never reachable by others, not even
    // between bind() and the chmod below.
    let old = rvs_sys::process::umask(0o077);
    let l = std::os::unix::net::UnixListener::bind(path);
    rvs_sys::process::umask(old);
    let l = l.map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    l.set_nonblocking(true).map_err(io)?;
    Ok(l)
}

/// Accepts connections forever, spawning a task per client.
pub async fn serve(listener: std::os::unix::net::UnixListener, jobs: mpsc::Sender<Job>) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("control socket: {e}");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::task::spawn_local(connection(s, jobs.clone()));
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn read_request(s: &mut UnixStream) -> Result<Request, ProtoError> {
    let mut hdr = [0u8; 4];
    match tokio::time::timeout(IDLE, s.read_exact(&mut hdr)).await {
        Err(_) => return Err(ProtoError::Closed),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(ProtoError::Closed),
        Ok(r) => r?,
    };
    let mut body = vec![0u8; proto::frame_len(hdr)?];
    tokio::time::timeout(IDLE, s.read_exact(&mut body)).await.map_err(|_| ProtoError::Closed)??;
    proto::decode(&body)
}

async fn write_response(s: &mut UnixStream, r: &Response) -> Result<(), ProtoError> {
    s.write_all(&proto::encode(r)?).await?;
    Ok(())
}

async fn connection(mut s: UnixStream, jobs: mpsc::Sender<Job>) {
    loop {
        let req = match read_request(&mut s).await {
            Ok(r) => r,
            Err(ProtoError::Closed) => return,
            Err(e) => {
                tracing::debug!("control client sent garbage: {e}");
                let _ = write_response(&mut s, &Response::Error { message: format!("protocol error: {e}") }).await;
                return;
            }
        };
        let (tx, rx) = oneshot::channel();
        if jobs.send((req, tx)).await.is_err() {
            return;
        }
        let Ok(resp) = rx.await else { return };
        if write_response(&mut s, &resp).await.is_err() {
            return;
        }
    }
}
