//! The thread that owns a vhost-user port's socket: it listens (`dpdkvhostuser`) or
//! connects (`dpdkvhostuserclient`, again and again with backoff while QEMU is away),
//! serves one frontend at a time, and resets the device when it goes, so the next
//! frontend — QEMU restarted, or reconnecting — starts from nothing. It never touches
//! frames; the workers keep polling the port throughout (a reset device has no live
//! ring, so they find nothing).
//!
//! A message rvs refuses is answered with an error and counted; a message that is
//! not vhost-user at all (bad size, wrong fds) ends the connection. Neither ever
//! reaches the rest of the daemon.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vhost::vhost_user::message::VhostUserVirtioFeatures;
use vhost::vhost_user::{BackendReqHandler, Error};

use super::backend::Handler;
use super::{Mode, Shared};

/// How often a listener looks for a new frontend or the stop flag.
const ACCEPT_TICK: Duration = Duration::from_millis(50);
/// Reconnect backoff of a client port: from this, doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Refused messages logged per connection (all are counted).
const LOGGED_REFUSALS: usize = 5;

/// A running connection thread; dropping it stops the thread (closing a connected
/// frontend's socket) and removes a server's socket file.
pub struct Conn {
    mode: Mode,
    /// A server's socket file as bound (device, inode): removed on drop only if the
    /// path still names it — after a `--takeover` it names the new daemon's.
    bound: Option<(u64, u64)>,
    stop: Arc<AtomicBool>,
    current: Arc<Mutex<Option<UnixStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Conn {
    /// Starts serving `shared` as `mode` says. A server's socket is bound before this
    /// returns (a stale file there is replaced, as OVS does).
    pub fn start(shared: Arc<Shared>, mode: Mode) -> io::Result<Conn> {
        let listener = match &mode {
            Mode::Server(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())) {
                    std::fs::remove_file(path)?;
                }
                let l = UnixListener::bind(path)?;
                l.set_nonblocking(true)?;
                // OVS-DPDK's two lines, so that log watchers and operators see the same.
                tracing::info!("Socket {} created for vhost-user port {}", path.display(), shared.name);
                static DEPRECATED: std::sync::Once = std::sync::Once::new();
                DEPRECATED.call_once(|| tracing::warn!("dpdkvhostuser ports are considered deprecated;  please migrate to dpdkvhostuserclient ports."));
                Some(l)
            }
            Mode::Client(_) => None,
        };
        let bound = match &mode {
            Mode::Server(path) => std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino())),
            Mode::Client(_) => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(Mutex::new(None));
        let (st, cur, m) = (stop.clone(), current.clone(), mode.clone());
        let thread = std::thread::Builder::new().name(format!("vhost:{}", shared.name)).spawn(move || run(&shared, &m, listener.as_ref(), &st, &cur))?;
        Ok(Conn { mode, bound, stop, current, thread: Some(thread) })
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(s) = self.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Mode::Server(path) = &self.mode
            && std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino())) == self.bound
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Waits `d` in steps, returning early when asked to stop; whether to go on.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let mut left = d;
    while !left.is_zero() && !stop.load(Relaxed) {
        let step = left.min(ACCEPT_TICK);
        std::thread::sleep(step);
        left -= step;
    }
    !stop.load(Relaxed)
}

fn run(shared: &Arc<Shared>, mode: &Mode, listener: Option<&UnixListener>, stop: &AtomicBool, current: &Mutex<Option<UnixStream>>) {
    let mut backoff = MIN_BACKOFF;
    let mut said_waiting = false;
    while !stop.load(Relaxed) {
        let stream = match (listener, mode) {
            (Some(l), _) => match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    pause(ACCEPT_TICK, stop);
                    continue;
                }
                Err(e) => {
                    tracing::warn!("vhost-user port {}: accept: {e}", shared.name);
                    pause(MAX_BACKOFF, stop);
                    continue;
                }
            },
            (None, Mode::Client(path) | Mode::Server(path)) => match UnixStream::connect(path) {
                Ok(s) => {
                    backoff = MIN_BACKOFF;
                    s
                }
                Err(e) => {
                    if !said_waiting {
                        tracing::info!("vhost-user port {}: cannot connect to {} ({e}); retrying", shared.name, path.display());
                        said_waiting = true;
                    }
                    pause(backoff, stop);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        said_waiting = false;
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        *current.lock().unwrap_or_else(|p| p.into_inner()) = stream.try_clone().ok();
        if stop.load(Relaxed) {
            break;
        }
        shared.counters.connections.fetch_add(1, Relaxed);
        tracing::info!("vhost-user port {}: frontend connected", shared.name);
        serve(shared, stream, stop);
        *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        shared.reset();
        tracing::info!("vhost-user port {}: frontend disconnected; the device is reset", shared.name);
        if let Mode::Client(_) = mode {
            pause(MIN_BACKOFF, stop);
        }
    }
}

/// Serves one frontend until it goes or sends something that is not vhost-user.
fn serve(shared: &Arc<Shared>, stream: UnixStream, stop: &AtomicBool) {
    let handler = Arc::new(Mutex::new(Handler::new(shared.clone())));
    let mut req = BackendReqHandler::from_stream(stream, handler);
    let mut refused = 0usize;
    while !stop.load(Relaxed) {
        match req.handle_request() {
            Ok(()) => {}
            // QEMU 7.2's SET_VRING_ENABLE before SET_FEATURES (see `virtq::Ring::enabled`):
            // the only request the crate checks against the virtio features.
            Err(Error::InactiveFeature(f)) if f == VhostUserVirtioFeatures::PROTOCOL_FEATURES => {
                tracing::debug!("vhost-user port {}: SET_VRING_ENABLE before SET_FEATURES, taken as enabled", shared.name);
            }
            // Refused by the handler: the frontend was told (when it asked for replies).
            Err(
                e @ (Error::InvalidParam | Error::InvalidOperation(_) | Error::ReqHandlerError(_) | Error::InactiveFeature(_) | Error::InactiveOperation(_)),
            ) => {
                shared.counters.protocol_errors.fetch_add(1, Relaxed);
                refused += 1;
                if refused <= LOGGED_REFUSALS {
                    tracing::warn!("vhost-user port {}: refused a request of the frontend: {e}", shared.name);
                }
            }
            Err(Error::Disconnected | Error::SocketBroken(_) | Error::SocketError(_) | Error::PartialMessage) => return,
            Err(e) => {
                shared.counters.protocol_errors.fetch_add(1, Relaxed);
                tracing::warn!("vhost-user port {}: dropping the frontend: {e}", shared.name);
                return;
            }
        }
    }
}

/// Whether `path` could be a server socket's path for port `name` (no directory in the
/// name).
pub fn server_path(rundir: &Path, name: &str) -> Option<std::path::PathBuf> {
    (!name.is_empty() && !name.contains('/') && name != "." && name != "..").then(|| rundir.join(name))
}
