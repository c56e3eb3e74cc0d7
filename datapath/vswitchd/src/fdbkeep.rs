//! The MAC tables across a restart. When the daemon stops on SIGTERM (or `exit`), the
//! learned entries of every bridge go to `RUNDIR/fdb.json` with the time; the next
//! daemon, started within [`MAX_GAP`], puts them back into every worker's tables once
//! its ports are open — each with the age it had plus the time in between — and
//! removes the file. Destinations that were known are then not flooded after the
//! restart. A `kill -9` leaves no file: the tables are learned anew (the first frame
//! to each destination floods). Static entries come from the database, not from here.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::worker::WorkerHandle;
use rvs_switch::types::{MacAddr, VlanId};

/// A file older than this is a leftover, not a restart: it is ignored.
pub const MAX_GAP: Duration = Duration::from_secs(60);
/// How long the stopping daemon waits for a worker's tables.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Saved {
    /// Wall-clock time of the save, in milliseconds since the Unix epoch.
    saved_ms: u64,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    bridge: String,
    port: String,
    vlan: u16,
    mac: String,
    age_secs: u64,
}

fn path(rundir: &Path) -> PathBuf {
    rundir.join("fdb.json")
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Writes the learned entries of the first worker's tables (every worker holds a
/// replica) to `RUNDIR/fdb.json`. Returns how many.
pub async fn save(worker: &WorkerHandle, rundir: &Path) -> usize {
    let rx = worker.query(|w| {
        let now = w.now();
        let mut out = Vec::new();
        for b in &w.bridges {
            for e in b.core.fdb().entries(now) {
                let Some(age_secs) = e.age_secs else { continue };
                let port = b.ports[e.port as usize].name.clone();
                out.push(Entry { bridge: b.name.clone(), port, vlan: e.vlan.get(), mac: e.mac.to_string(), age_secs });
            }
        }
        out
    });
    let Ok(Ok(entries)) = tokio::time::timeout(ASK_TIMEOUT, rx).await else {
        tracing::warn!("the datapath did not hand over its MAC tables: they will be learned anew after a restart");
        return 0;
    };
    let n = entries.len();
    let saved = Saved { saved_ms: unix_ms(), entries };
    let file = path(rundir);
    if let Err(e) = serde_json::to_vec(&saved).map_err(std::io::Error::other).and_then(|b| std::fs::write(&file, b)) {
        tracing::warn!("cannot keep the MAC tables in {}: {e}", file.display());
        return 0;
    }
    n
}

/// Puts back what [`save`] kept, if the file is recent, into every worker's tables
/// (after the ports are open: entries of ports that no longer exist are left out), and
/// removes the file. Returns how many entries were offered.
pub fn restore(worker: &WorkerHandle, rundir: &Path) -> usize {
    let file = path(rundir);
    let Ok(bytes) = std::fs::read(&file) else { return 0 };
    let _ = std::fs::remove_file(&file);
    let saved: Saved = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{}: {e}; the MAC tables are learned anew", file.display());
            return 0;
        }
    };
    let gap_ms = unix_ms().saturating_sub(saved.saved_ms);
    if gap_ms > MAX_GAP.as_millis() as u64 {
        return 0;
    }
    let entries: Vec<(String, String, VlanId, MacAddr, u64)> =
        saved.entries.into_iter().filter_map(|e| Some((e.bridge, e.port, VlanId::new(e.vlan)?, e.mac.parse().ok()?, e.age_secs * 1000 + gap_ms))).collect();
    let n = entries.len();
    for rx in worker.query_all(move |w| {
        let now = w.now();
        for (bridge, port, vlan, mac, age_ms) in &entries {
            let Some(b) = w.bridge_mut(bridge) else { continue };
            let Some(idx) = b.ports.iter().position(|p| p.name == *port) else { continue };
            b.core.fdb_mut().apply_remote(*vlan, *mac, idx as _, now - *age_ms);
        }
    }) {
        drop(rx);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_an_old_or_bad_one_is_dropped() {
        let dir = std::env::temp_dir().join(format!("rvs-fdbkeep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = Entry { bridge: "br0".into(), port: "p1".into(), vlan: 10, mac: "02:00:00:00:00:01".into(), age_secs: 3 };
        let s = Saved { saved_ms: unix_ms(), entries: vec![e] };
        let back: Saved = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let w = WorkerHandle::spawn(rvs_switch::time::Clock::new(), |_| {}).unwrap();
        // Recent: offered (no bridge of that name here, so nothing is put in), file gone.
        std::fs::write(path(&dir), serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(restore(&w, &dir), 1);
        assert!(!path(&dir).exists());
        // Too old: ignored, file gone.
        let old = Saved { saved_ms: unix_ms() - 2 * MAX_GAP.as_millis() as u64, ..s };
        std::fs::write(path(&dir), serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(restore(&w, &dir), 0);
        assert!(!path(&dir).exists());
        // Garbage: ignored, file gone.
        std::fs::write(path(&dir), b"{").unwrap();
        assert_eq!(restore(&w, &dir), 0);
        assert!(!path(&dir).exists());
        w.stop();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
