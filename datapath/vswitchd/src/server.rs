//! The control socket: accepts clients, reads framed requests, hands them to the
//! control task, writes the answers.
//!
//! Each connection is its own task, so a slow or silent client holds up nobody. What
//! any client can cost the daemon is bounded:
//! * at most [`MAX_CLIENTS`] connections are held; when one more arrives, the one that
//!   has been quiet the longest and is not waiting for an answer is closed to make room
//!   (a newcomer is refused only when every held client waits for an answer), so idle
//!   or hostile connections never lock out libvirt's or an operator's `rvsctl`;
//! * a request must arrive whole within [`FRAME_DEADLINE`] of its first byte, and a
//!   connection that sends nothing for [`IDLE`] is closed;
//! * a request may be at most [`MAX_REQUEST`] bytes (the largest transaction rvsctl sends
//!   for thousands of ports is a few MiB: README, "Control socket limits"); its body is
//!   read as it arrives, never allocated ahead from the header; requests over 64 KiB
//!   (ordinary commands are far smaller) share a budget of [`READ_BUDGET`] bytes, and
//!   one that does not fit is refused. Memory stays bounded whatever clients send;
//! * when the process runs out of file descriptors, `accept` backs off instead of
//!   spinning: a reserved descriptor is given up to accept and close the waiting
//!   connection, and the condition is logged once per [`WARN_EVERY`].
//!
//! A malformed or oversized frame gets an `Error` response and the connection is
//! closed; the daemon goes on.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use rvs_ovsdb::proto::{self, FrameReader, ProtoError, Request, Response};

/// How long a connection may sit without sending anything.
pub const IDLE: Duration = Duration::from_secs(120);
/// How long a request may take to arrive once its first byte has.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// Connections held at once.
pub const MAX_CLIENTS: usize = 64;
/// Largest request accepted.
pub const MAX_REQUEST: usize = 16 << 20;
/// Bytes of requests being read, all connections together.
pub const READ_BUDGET: usize = 64 << 20;
/// Least time between two warnings about the same condition.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Bytes read from a client at a time.
const CHUNK: usize = 64 << 10;

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

/// One held connection, as the accept loop sees it.
struct Held {
    abort: AbortHandle,
    /// When it last sent a byte (or connected).
    last: Instant,
    /// Waiting for the control task's answer: not to be closed for room.
    busy: bool,
}

/// The connections held and the bytes of requests being read.
#[derive(Default)]
struct Clients {
    held: BTreeMap<u64, Held>,
    next: u64,
    reading: usize,
    warned: Option<Instant>,
}

type Shared = Rc<RefCell<Clients>>;

impl Clients {
    /// Makes room for one more connection, closing the quietest idle one when all
    /// places are taken: `None` when every held one is busy, else what to abort (done
    /// by the caller, once this borrow has ended).
    fn make_room(&mut self) -> Option<Option<AbortHandle>> {
        if self.held.len() < MAX_CLIENTS {
            return Some(None);
        }
        let quietest = self.held.iter().filter(|(_, h)| !h.busy).min_by_key(|(_, h)| h.last).map(|(id, _)| *id)?;
        if warn_due(&mut self.warned) {
            tracing::warn!("control socket: {MAX_CLIENTS} clients held; closing the longest quiet ones to let new clients in");
        }
        Some(self.held.remove(&quietest).map(|h| h.abort))
    }

    fn touch(&mut self, id: u64, busy: bool) {
        if let Some(h) = self.held.get_mut(&id) {
            h.last = Instant::now();
            h.busy = busy;
        }
    }
}

fn warn_due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        return false;
    }
    *last = Some(now);
    true
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
    let clients: Shared = Rc::default();
    // One descriptor kept in reserve for when the process has none left.
    let mut reserve = std::fs::File::open("/dev/null").ok();
    let mut fd_warned = None;
    loop {
        match listener.accept().await {
            Ok((mut s, _)) => {
                let room = clients.borrow_mut().make_room();
                let Some(evict) = room else {
                    tokio::task::spawn_local(async move {
                        let msg = Response::Error { message: format!("too many control clients waiting for answers ({MAX_CLIENTS}); try again") };
                        let _ = tokio::time::timeout(Duration::from_secs(1), write_response(&mut s, &msg)).await;
                    });
                    continue;
                };
                if let Some(a) = evict {
                    a.abort();
                }
                let id = {
                    let mut c = clients.borrow_mut();
                    c.next += 1;
                    c.next
                };
                let task = tokio::task::spawn_local(connection(s, jobs.clone(), clients.clone(), id));
                clients.borrow_mut().held.insert(id, Held { abort: task.abort_handle(), last: Instant::now(), busy: false });
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                if warn_due(&mut fd_warned) {
                    tracing::warn!("control socket: out of file descriptors ({e}); refusing control clients until some are free");
                }
                // Give up the reserve to take the waiting connection off the queue and
                // close it, so that accept does not report the same thing at once again.
                drop(reserve.take());
                if let Ok(Ok((s, _))) = tokio::time::timeout(Duration::from_millis(1), listener.accept()).await {
                    drop(s);
                }
                if reserve.is_none() {
                    reserve = std::fs::File::open("/dev/null").ok();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                if warn_due(&mut fd_warned) {
                    tracing::warn!("control socket accept: {e}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Bytes of the read budget a reader holds, given back when it is dropped.
struct Budget {
    clients: Shared,
    held: usize,
}

impl Budget {
    /// Takes `n` more bytes of the budget, if they are there.
    fn take(&mut self, n: usize) -> bool {
        let mut c = self.clients.borrow_mut();
        if c.reading + n > READ_BUDGET {
            return false;
        }
        c.reading += n;
        self.held += n;
        true
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.clients.borrow_mut().reading -= self.held;
    }
}

/// Why a request was not read.
enum ReadError {
    /// The client left or was quiet too long: close without answering.
    Gone,
    /// Answer with this error, then close.
    Refused(String),
}

impl From<ProtoError> for ReadError {
    fn from(e: ProtoError) -> ReadError {
        match e {
            ProtoError::Closed => ReadError::Gone,
            e => ReadError::Refused(format!("protocol error: {e}")),
        }
    }
}

/// Reads the next request of a connection. `reader` keeps what arrived beyond it (a
/// client may send several requests at once) for the next call.
async fn read_request(s: &mut UnixStream, reader: &mut FrameReader, clients: &Shared, id: u64) -> Result<Request, ReadError> {
    let mut budget = Budget { clients: clients.clone(), held: 0 };
    // The first byte may take up to IDLE; the rest of the frame FRAME_DEADLINE.
    let mut deadline = (reader.buffered() > 0).then(|| tokio::time::Instant::now() + FRAME_DEADLINE);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        match reader.next_frame() {
            Ok(Some(body)) => return Ok(proto::decode(&body)?),
            Ok(None) => {}
            Err(ProtoError::TooLarge(len)) => {
                return Err(ReadError::Refused(format!("protocol error: request of {len} bytes is larger than the {MAX_REQUEST}-byte limit")));
            }
            Err(e) => return Err(e.into()),
        }
        // Small requests (every ordinary command) are read at once; a larger one first
        // takes its size from the shared budget, then grows as its bytes arrive.
        if let Some(len) = reader.pending_len().filter(|&n| n > CHUNK && budget.held == 0)
            && !budget.take(len)
        {
            return Err(ReadError::Refused("control socket busy: too many large requests being read; try again".into()));
        }
        let read = match deadline {
            None => tokio::time::timeout(IDLE, s.read(&mut chunk)).await,
            Some(at) => tokio::time::timeout_at(at, s.read(&mut chunk)).await,
        };
        match read {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadError::Gone),
            Ok(Ok(got)) => reader.push(&chunk[..got]),
        }
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + FRAME_DEADLINE);
        clients.borrow_mut().touch(id, false);
    }
}

async fn write_response(s: &mut UnixStream, r: &Response) -> Result<(), ProtoError> {
    s.write_all(&proto::encode(r)?).await?;
    Ok(())
}

async fn connection(mut s: UnixStream, jobs: mpsc::Sender<Job>, clients: Shared, id: u64) {
    serve_client(&mut s, &jobs, &clients, id).await;
    clients.borrow_mut().held.remove(&id);
}

async fn serve_client(s: &mut UnixStream, jobs: &mpsc::Sender<Job>, clients: &Shared, id: u64) {
    let mut reader = FrameReader::new(MAX_REQUEST);
    loop {
        let req = match read_request(s, &mut reader, clients, id).await {
            Ok(r) => r,
            Err(ReadError::Gone) => return,
            Err(ReadError::Refused(message)) => {
                tracing::debug!("control client refused: {message}");
                let _ = tokio::time::timeout(FRAME_DEADLINE, write_response(s, &Response::Error { message })).await;
                return;
            }
        };
        clients.borrow_mut().touch(id, true);
        let (tx, rx) = oneshot::channel();
        if jobs.send((req, tx)).await.is_err() {
            return;
        }
        let Ok(resp) = rx.await else { return };
        // A client that does not read its answer is not waited for beyond the deadline.
        if !matches!(tokio::time::timeout(FRAME_DEADLINE, write_response(s, &resp)).await, Ok(Ok(()))) {
            return;
        }
        clients.borrow_mut().touch(id, false);
    }
}
