//! Where the taps rvs created are, kept across restarts of the daemon.
//!
//! A tap outlives rvs-vswitchd (it is persistent) and may have been moved into a VM's
//! network namespace (and renamed there), where the daemon cannot find it by its
//! name. So the daemon notes each tap's namespace (its identity, [`NetnsId`]) and its
//! name there in `RUNDIR/taps.json` whenever they change (checked at every reconcile
//! and at shutdown) and, when it opens the tap again, looks for that namespace among
//! `/run/netns/*` and the processes' `/proc/PID/ns/net` and attaches there. The run directory is emptied at boot, as
//! are the taps, so nothing stale survives a reboot.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::device::Device;
use super::tap::NetnsId;

/// Taps' namespaces by name, and the file they are kept in.
#[derive(Debug, Default)]
pub struct TapHomes {
    path: Option<PathBuf>,
    homes: BTreeMap<String, (NetnsId, String)>,
    /// The daemon's own namespace: a tap there needs no search.
    own: Option<NetnsId>,
    /// The namespaces found by the last search, by identity (one pass over `/proc`
    /// serves every tap opened until the homes change).
    found: Option<HashMap<NetnsId, PathBuf>>,
}

impl TapHomes {
    /// Homes kept in `path`, loaded from it when it exists (a bad file is logged and
    /// ignored: the taps are then looked for by name here, as on a first start).
    pub fn load(path: &Path) -> TapHomes {
        let homes = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice::<BTreeMap<String, (NetnsId, String)>>(&b).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}; taps moved to other namespaces will not be found", path.display());
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        TapHomes { path: Some(path.into()), homes, own: rvs_sys::tun::own_netns_id().ok(), found: None }
    }

    /// The namespace tap `name` was last seen in, opened, and its name there, when it
    /// was moved or renamed (and the namespace still exists).
    pub fn home_of(&mut self, name: &str) -> Option<(File, String)> {
        let (id, there) = self.homes.get(name)?;
        if Some(*id) == self.own {
            // Here, under its own name: nothing to look for.
            return (there != name).then(|| Some((File::open("/proc/thread-self/ns/net").ok()?, there.clone()))).flatten();
        }
        let found = self.found.get_or_insert_with(namespaces);
        let path = found.get(id)?;
        Some((File::open(path).ok()?, there.clone()))
    }

    /// Notes where the open `devices` (interface name, device) that have a home
    /// ([`Device::home`]: the taps) are now and forgets the others; writes the file
    /// when anything changed.
    pub fn update<'a>(&mut self, devices: impl Iterator<Item = (&'a str, &'a dyn Device)>) {
        self.found = None;
        let now: BTreeMap<String, (NetnsId, String)> = devices.filter_map(|(n, d)| Some((n.to_string(), d.home()?))).collect();
        if now == self.homes {
            return;
        }
        self.homes = now;
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("json.tmp");
        let written =
            serde_json::to_vec(&self.homes).map_err(std::io::Error::other).and_then(|b| std::fs::write(&tmp, b)).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// The network namespaces there are, by identity: the named ones (`ip netns`) and the
/// processes'.
fn namespaces() -> HashMap<NetnsId, PathBuf> {
    let named = std::fs::read_dir("/run/netns").into_iter().flatten().flatten().map(|e| e.path());
    let procs = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .map(|e| e.path().join("ns/net"));
    let mut out = HashMap::new();
    for p in named.chain(procs) {
        if let Ok(m) = std::fs::metadata(&p) {
            out.entry((m.dev(), m.ino())).or_insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespace_is_found_by_its_identity() {
        let own = rvs_sys::tun::own_netns_id().unwrap();
        let all = namespaces();
        let m = std::fs::metadata(all.get(&own).expect("the test's own namespace")).unwrap();
        assert_eq!((m.dev(), m.ino()), own);
        assert!(!all.contains_key(&(0, 1)));
    }

    #[test]
    fn homes_round_trip_through_the_file_and_a_bad_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("rvs-taphome-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("taps.json");
        std::fs::write(&p, br#"{"vm1":[[1,2],"eth0"],"vm2":[[3,4],"vm2"]}"#).unwrap();
        let mut h = TapHomes::load(&p);
        assert_eq!(h.homes.get("vm1"), Some(&((1, 2), "eth0".to_string())));
        assert!(h.home_of("vm1").is_none(), "no namespace has that identity");
        std::fs::write(&p, b"not json").unwrap();
        assert!(TapHomes::load(&p).homes.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
