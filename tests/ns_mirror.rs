//! Port mirroring in namespaces (issue 26 part 2): two VMs on access ports of VLAN 10
//! ping each other while tcpdump, in a third namespace, captures what rvs writes to
//! the mirror port (a trunk tap). Each scenario changes the Mirror row live and checks
//! the copies: select_all (both directions, each frame once, tagged VLAN 10, and a
//! broadcast once although the mirror port carries the VLAN), select_src_port and
//! select_dst_port (one direction each), select_vlan (other VLANs: nothing), RSPAN
//! (output_vlan 99 with flood_vlans: copies tagged 99), the mirror removed (nothing).
//! What the mirror port sends in is dropped and counted (`mirror_port`); the Mirror
//! row's statistics grow. Root required.
//!
//! Addresses: VMs 198.18.207.0/24, the monitor 198.18.207.9.

use std::path::PathBuf;
use std::time::Duration;

use rvs_testkit::pcap::{frames, icmp, vlan_of};
use rvs_testkit::*;

/// Echoes per ping.
const PINGS: usize = 3;

struct Rig {
    n: Node,
    vm1: Netns,
    mon: Netns,
    mp: String,
    t1: String,
    _vm2: Netns,
}

fn rig() -> Rig {
    require_tools(&["tcpdump"]);
    let n = Node::new("mir");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (t1, t2, mp) = (unique("m1"), unique("m2"), unique("mp"));
    let vm1 = n.vm("br0", &t1, &["tag=10"], "198.18.207.1/24");
    let vm2 = n.vm("br0", &t2, &["tag=10"], "198.18.207.2/24");
    let mon = n.vm("br0", &mp, &[], "198.18.207.9/24");
    for (vm, dev) in [(&vm1, &t1), (&vm2, &t2), (&mon, &mp)] {
        vm.sh(&format!("sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1 || true"));
    }
    vm2.sh("sysctl -qw net.ipv4.icmp_echo_ignore_broadcasts=0");
    assert!(vm1.ping_eventually("198.18.207.2", Duration::from_secs(10)), "{}", n.d.log());
    Rig { n, vm1, mon, mp, t1, _vm2: vm2 }
}

impl Rig {
    /// Runs `traffic` while tcpdump captures on the mirror port's far end; the frames.
    fn capture(&self, traffic: impl FnOnce()) -> Vec<Vec<u8>> {
        let file: PathBuf = self.n.d.dir.join(format!("{}.pcap", unique("cap")));
        let f = file.display();
        let pidf = format!("{f}.pid");
        self.mon.sh(&format!("timeout 20 tcpdump -i {} -U -n -w {f} >/dev/null 2>&1 & echo $! > {pidf}", self.mp));
        wait_until("tcpdump to start", Duration::from_secs(10), || file.exists());
        std::thread::sleep(Duration::from_millis(300));
        traffic();
        std::thread::sleep(Duration::from_millis(500));
        let pid = std::fs::read_to_string(&pidf).unwrap_or_default();
        sh(&format!("kill -INT {} 2>/dev/null; true", pid.trim()));
        wait_until("tcpdump to end", Duration::from_secs(10), || !sh_ok(&format!("kill -0 {} 2>/dev/null", pid.trim())));
        frames(&file)
    }

    /// Pings vm2 from vm1: `PINGS` requests one way, replies the other.
    fn ping(&self) {
        assert!(self.vm1.sh_ok(&format!("ping -c {PINGS} -i 0.2 -W 1 198.18.207.2")), "{}", self.n.d.log());
    }

    fn stats(&self) -> (u64, u64) {
        let get = |k: &str| self.n.d.ctl_ok(&["get", "Mirror", "m0", &format!("statistics:{k}")]).trim().parse().unwrap_or(0);
        (get("tx_packets"), get("tx_bytes"))
    }
}

/// (requests, replies) among `frames`, each tagged `vlan`.
fn echoes(frames: &[Vec<u8>], vlan: u16) -> (usize, usize) {
    let (req, rep) = (icmp(frames, 8), icmp(frames, 0));
    for f in req.iter().chain(&rep) {
        assert_eq!(vlan_of(f), Some(vlan), "a copy not tagged {vlan}: {f:02x?}");
    }
    (req.len(), rep.len())
}

#[test]
fn mirrors_select_and_send_as_ovs() {
    let r = rig();
    let d = &r.n.d;
    d.ctl_ok(&[
        "--",
        "set",
        "Bridge",
        "br0",
        "mirrors=@m",
        "--",
        "--id=@p",
        "get",
        "Port",
        &r.mp,
        "--",
        "--id=@m",
        "create",
        "Mirror",
        "name=m0",
        "select-all=true",
        "output-port=@p",
    ]);

    // select_all: both directions, each echo once, tagged with its VLAN.
    let got = r.capture(|| r.ping());
    assert_eq!(echoes(&got, 10), (PINGS, PINGS), "{} frames", got.len());
    let s1 = r.stats();
    assert!(s1.0 >= 2 * PINGS as u64 && s1.1 >= 2 * PINGS as u64 * 98, "statistics {s1:?}");

    // A broadcast: flooding leaves the mirror port out, so it comes once (the copy).
    let got = r.capture(|| {
        r.vm1.sh(&format!("ping -b -c {PINGS} -i 0.2 -W 1 198.18.207.255 >/dev/null 2>&1; true"));
    });
    let bcast = icmp(&got, 8).into_iter().filter(|f| f[..6] == [0xff; 6]).count();
    assert_eq!(bcast, PINGS, "broadcast echo requests on the mirror port");
    assert!(r.stats().0 > s1.0, "statistics grow");

    // What the mirror port sends in goes nowhere and is counted.
    let before = mirror_drops(d);
    r.mon.sh("ping -c 2 -i 0.2 -W 1 198.18.207.1 >/dev/null 2>&1; true");
    assert!(mirror_drops(d) >= before + 2, "{}", d.ctl_ok(&["rvs/drops", "br0"]));
    assert!(!r.mon.sh_ok("ping -c 1 -W 1 198.18.207.1"), "the mirror port forwarded");

    // select_src_port: what vm1 sends (requests); select_dst_port: what goes to it.
    d.ctl_ok(&["--", "--id=@s", "get", "Port", &r.t1, "--", "set", "Mirror", "m0", "select_all=false", "select_src_port=@s"]);
    assert_eq!(echoes(&r.capture(|| r.ping()), 10), (PINGS, 0));
    d.ctl_ok(&["--", "--id=@s", "get", "Port", &r.t1, "--", "clear", "Mirror", "m0", "select_src_port", "--", "set", "Mirror", "m0", "select_dst_port=@s"]);
    assert_eq!(echoes(&r.capture(|| r.ping()), 10), (0, PINGS));

    // select_vlan: VLAN 20 only selects nothing of VLAN 10; 10 selects again.
    d.ctl_ok(&["set", "Mirror", "m0", "select_all=true", "select_vlan=20"]);
    assert_eq!(echoes(&r.capture(|| r.ping()), 10), (0, 0));
    d.ctl_ok(&["set", "Mirror", "m0", "select_vlan=10"]);
    assert_eq!(echoes(&r.capture(|| r.ping()), 10), (PINGS, PINGS));

    // RSPAN: copies flooded in VLAN 99 (a flood VLAN); the trunk tap carries it.
    d.ctl_ok(&[
        "set",
        "Bridge",
        "br0",
        "flood_vlans=99",
        "--",
        "clear",
        "Mirror",
        "m0",
        "output_port",
        "select_vlan",
        "--",
        "set",
        "Mirror",
        "m0",
        "output_vlan=99",
    ]);
    assert_eq!(echoes(&r.capture(|| r.ping()), 99), (PINGS, PINGS));

    // Removed: nothing, and the VMs still talk (MAC table kept, no flooding needed).
    d.ctl_ok(&["clear", "Bridge", "br0", "mirrors"]);
    let got = r.capture(|| r.ping());
    assert_eq!((icmp(&got, 8).len(), icmp(&got, 0).len()), (0, 0));
}

/// The `mirror_port` drop counter of br0.
fn mirror_drops(d: &Daemon) -> u64 {
    let out = d.ctl_ok(&["rvs/drops", "br0"]);
    out.lines().find_map(|l| l.trim().strip_prefix("mirror_port")).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("{out}"))
}
