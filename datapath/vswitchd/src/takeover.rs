//! Taking over from a running daemon without a forwarding gap (`rvs-vswitchd
//! --takeover`): an upgrade to a new binary, or a restart, that VMs do not notice.
//!
//! Nothing is handed across as a file descriptor: every device rvs uses can be shared
//! by two processes for the moment both run, so the new daemon opens its own and the
//! two forward side by side until the old one exits.
//! * a tap rvs created is multi-queue: the new daemon attaches queues of its own next
//!   to the old one's, so the device never loses its last queue (no carrier change in
//!   the VM) and the kernel spreads the VM's frames over both sets;
//! * an AF_PACKET port joins the old daemon's `PACKET_FANOUT` group (the old daemon
//!   makes one, when it has a single socket, on request), so each received frame goes
//!   to one daemon, not to both;
//! * VXLAN sockets are in one `SO_REUSEPORT` group per address and port already.
//!
//! The sequence, driven by the new daemon:
//! 1. it loads the database (the old daemon holds its lock) and asks the old one
//!    `rvs/takeover PID` on its control socket. The old daemon writes its MAC tables
//!    for the new one (as on SIGTERM, `RUNDIR/fdb.json`), names the fanout group of
//!    each AF_PACKET port, and from then on refuses commits and saves nothing, for as
//!    long as the new daemon lives (should it die first, the old one carries on);
//! 2. it binds its control socket beside the old one's, opens every port (joining the
//!    groups), puts the MAC tables into its workers: now both daemons forward;
//! 3. it moves its socket over the old one's path (a rename: a client finds one or
//!    the other, never none), writes the pidfile and tells the old daemon `exit`; the
//!    old daemon stops without removing what is now the new one's (socket, pidfile,
//!    MAC tables file) and without telling systemd it stops;
//! 4. once the old process is gone it takes the database lock, saves, and serves.
//!
//! A tap that is not multi-queue (made by an older rvs, or a kernel without
//! multi-queue taps) cannot be shared: it fails to open in step 2 and is opened again
//! right after step 4 (a gap as long as a restart's, for that port only).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use rvs_ovsdb::proto::{Client, ProtoError, Request, Response};

/// The appctl command the new daemon sends the old one.
pub const COMMAND: &str = "rvs/takeover";
/// How long a request to the old daemon may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the old daemon may take to exit once told.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the old daemon answers to [`COMMAND`] (as JSON in the appctl output).
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Offer {
    /// The old daemon's pid.
    pub pid: u32,
    /// AF_PACKET ports' fanout groups, by interface name.
    pub fanout: HashMap<String, u16>,
    /// Learned MAC entries written to `RUNDIR/fdb.json` for the new daemon.
    pub fdb_entries: usize,
    /// Each LACP bond's members' last LACPDUs from the partner (bond name → member
    /// name → PDU), so the new daemon's bonds are negotiated from the start.
    #[serde(default)]
    pub lacp: HashMap<String, HashMap<String, Vec<u8>>>,
}

/// Why a takeover could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error("cannot reach the running daemon at {path}: {source}")]
    Connect { path: String, source: io::Error },
    #[error("the running daemon at {path} did not agree to a takeover: {why}")]
    Refused { path: String, why: String },
    #[error("cannot bind the control socket {path}: {source}")]
    Bind { path: String, source: io::Error },
}

/// The old daemon, agreed to hand over.
pub struct Predecessor {
    client: Client,
    path: PathBuf,
    pub offer: Offer,
}

/// Asks the daemon listening on `sock` to hand over. `Ok(None)`: no daemon listens
/// there (a plain start follows).
pub fn contact(sock: &Path) -> Result<Option<Predecessor>, TakeoverError> {
    let path = sock.display().to_string();
    let mut client = match Client::connect(sock, CALL_TIMEOUT) {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => return Ok(None),
        Err(source) => return Err(TakeoverError::Connect { path, source }),
    };
    let req = Request::Appctl { command: COMMAND.into(), args: vec![std::process::id().to_string()] };
    let refused = |why: String| TakeoverError::Refused { path: path.clone(), why };
    let offer = match client.call(&req) {
        Ok(Response::Appctl { ok: true, output }) => serde_json::from_str::<Offer>(&output).map_err(|e| refused(format!("unreadable answer ({e})")))?,
        Ok(Response::Appctl { ok: false, output }) => return Err(refused(output.trim_end().to_string())),
        Ok(other) => return Err(refused(format!("unexpected answer {other:?}"))),
        Err(e) => return Err(refused(e.to_string())),
    };
    Ok(Some(Predecessor { client, path: sock.to_path_buf(), offer }))
}

impl Predecessor {
    /// Moves `ours` (the new daemon's bound socket) over the old daemon's path, then
    /// tells the old daemon to exit and waits (bounded) until its process is gone;
    /// one that does not answer or does not end gets SIGTERM, then SIGKILL.
    pub fn finish(mut self, ours: &Path) -> Result<(), TakeoverError> {
        std::fs::rename(ours, &self.path).map_err(|source| TakeoverError::Bind { path: self.path.display().to_string(), source })?;
        let pid = self.offer.pid;
        match self.client.call(&Request::Appctl { command: "exit".into(), args: vec![] }) {
            Ok(_) | Err(ProtoError::Closed) => {}
            Err(e) => {
                tracing::warn!("takeover: pid {pid} did not answer exit ({e}); sending SIGTERM");
                let _ = rvs_sys::process::signal(pid as i32, libc::SIGTERM);
            }
        }
        drop(self.client);
        if !wait_gone(pid, EXIT_TIMEOUT) {
            tracing::warn!("takeover: pid {pid} still runs {} s after exit; killing it", EXIT_TIMEOUT.as_secs());
            let _ = rvs_sys::process::signal(pid as i32, libc::SIGKILL);
            wait_gone(pid, EXIT_TIMEOUT);
        }
        Ok(())
    }
}

/// Whether process `pid` exists (a zombie whose threads have all ended counts as
/// gone: its files are closed, the database lock with them).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z' | 'X'))
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while alive(pid) {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// The old daemon's side: who it hands over to. While that process lives the old
/// daemon refuses commits and saves nothing; if it dies before telling the old one
/// to exit, the old one carries on as before.
#[derive(Debug, Clone, Copy)]
pub struct Successor {
    pub pid: u32,
}

impl Successor {
    /// Whether the handover is still under way.
    pub fn active(&self) -> bool {
        alive(self.pid)
    }
}

/// A path beside `sock` for the new daemon's socket until it moves into place.
pub fn staging_path(sock: &Path) -> PathBuf {
    let mut name = sock.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".takeover.{}", std::process::id()));
    sock.with_file_name(name)
}

/// The (device, inode) of the file at `path`, to tell later whether it is still the
/// one this daemon made.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Removes `path` only if it is still the file `id` names (a successor may have put
/// its own there).
pub fn remove_if_ours(path: &Path, id: Option<(u64, u64)>) {
    if id.is_some() && file_id(path) == id {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_round_trips_as_json() {
        let o = Offer {
            pid: 7,
            fanout: HashMap::from([("eth1".to_string(), 12u16)]),
            fdb_entries: 3,
            lacp: HashMap::from([("bond0".to_string(), HashMap::from([("eth1".to_string(), vec![1u8, 1, 20])]))]),
        };
        assert_eq!(serde_json::from_str::<Offer>(&serde_json::to_string(&o).unwrap()).unwrap(), o);
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(alive(std::process::id()));
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        assert!(!alive(pid));
    }

    #[test]
    fn removes_only_its_own_file() {
        let d = std::env::temp_dir().join(format!("rvs-takeover-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("f");
        std::fs::write(&p, "a").unwrap();
        let id = file_id(&p);
        let staged = d.join("g");
        std::fs::write(&staged, "b").unwrap();
        std::fs::rename(&staged, &p).unwrap();
        remove_if_ours(&p, id);
        assert!(p.exists(), "a file put in its place was removed");
        let id = file_id(&p);
        remove_if_ours(&p, id);
        assert!(!p.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn staging_path_is_beside_the_socket() {
        let p = staging_path(Path::new("/run/rvs/rvs.sock"));
        assert_eq!(p.parent(), Some(Path::new("/run/rvs")));
        assert!(p.file_name().unwrap().to_str().unwrap().starts_with("rvs.sock.takeover."));
    }
}
