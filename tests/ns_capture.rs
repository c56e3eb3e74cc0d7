//! Capture on any port (`rvs/capture PORT FILE [COUNT|SECONDSs]`, issue 26 part 4): a
//! tap moved into a VM's namespace, where no tcpdump of the node reaches, and a VXLAN
//! tunnel port, whose inner frames no tcpdump on the underlay shows. The pcap files
//! are read back (by a small parser here, and by tcpdump) and hold the frames the
//! switch received and sent on that port. Bad input changes nothing. Root required.

use std::path::Path;
use std::time::Duration;

use rvs_testkit::overlay::{RvsNode, Underlay};
use rvs_testkit::pcap::{frames as pcap_frames, icmp};
use rvs_testkit::*;

fn mac_bytes(mac: &str) -> Vec<u8> {
    mac.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

fn wait_finished(d: &Daemon, port: &str) {
    wait_until("the capture to finish", Duration::from_secs(30), || d.log().contains(&format!("capture of port {port} finished")));
}

#[test]
fn capture_on_a_tap_in_a_vm_namespace() {
    require_tools(&["tcpdump"]);
    let n = Node::new("cap");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (t1, t2) = (unique("c1"), unique("c2"));
    let vm1 = n.vm("br0", &t1, &["tag=7"], "198.18.205.1/24");
    let _vm2 = n.vm("br0", &t2, &["tag=7"], "198.18.205.2/24");
    // Quiet VMs (no IPv6 chatter), so that the capture holds the pings.
    for (vm, dev) in [(&vm1, &t1), (&_vm2, &t2)] {
        vm.sh(&format!("sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1 || true"));
    }
    assert!(vm1.ping_eventually("198.18.205.2", Duration::from_secs(10)), "{}", n.d.log());
    let file = n.d.dir.join("t1.pcap");
    let f = file.to_str().unwrap();

    // Bad input first: nothing starts.
    let out = n.d.ctl(&["rvs/capture", "nosuchport", f]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("no such port nosuchport"), "{out:?}");
    let out = n.d.ctl(&["rvs/capture", &t1, f, "5m"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("a number of frames (COUNT) or of seconds"), "{out:?}");
    let out = n.d.ctl(&["rvs/capture", &t1, "/proc/rvs-nope/x.pcap"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("cannot write /proc/rvs-nope/x.pcap"), "{out:?}");
    assert!(!file.exists());
    assert!(n.d.ctl(&["rvs/capture-stop", &t1]).status.code() == Some(2), "a stop without a capture");

    // 4 echo requests and their replies: 8 frames, the capture ends at its count.
    let said = n.d.ctl_ok(&["rvs/capture", &t1, f, "8"]);
    assert!(said.starts_with(&format!("capturing port {t1} to {f}")), "{said}");
    let again = n.d.ctl(&["rvs/capture", &t1, &format!("{f}.2")]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("a capture already runs on port"), "{again:?}");
    assert!(vm1.ping("198.18.205.2", 4));
    wait_finished(&n.d, &t1);
    let frames = pcap_frames(&file);
    assert_eq!(frames.len(), 8, "8 frames expected, {} written", frames.len());
    let m1 = mac_bytes(&mac_of(&vm1, &t1));
    let (req, rep) = (icmp(&frames, 8), icmp(&frames, 0));
    // (An ARP exchange may take the place of a ping or two.)
    assert!(req.len() >= 3 && rep.len() >= 3, "requests received and replies sent on the port: {} and {}", req.len(), rep.len());
    assert!(req.iter().all(|f| f[6..12] == m1[..]) && rep.iter().all(|f| f[0..6] == m1[..]), "the frames are vm1's");
    assert!(frames.iter().all(|f| f[12..14] != [0x81, 0x00]), "an access port's frames carry no tag");
    let read = sh(&format!("tcpdump -nn -r {f} 2>/dev/null | grep -c 'ICMP echo'; true"));
    assert_eq!(read.trim(), (req.len() + rep.len()).to_string(), "tcpdump reads the file");

    // A capture for some seconds, stopped by hand before.
    let g = format!("{f}.timed");
    n.d.ctl_ok(&["rvs/capture", &t1, &g, "600s"]);
    assert!(vm1.ping("198.18.205.2", 2));
    n.d.ctl_ok(&["rvs/capture-stop", &t1]);
    wait_finished(&n.d, &t1);
    assert!(icmp(&pcap_frames(Path::new(&g)), 8).len() >= 2);
}

#[test]
fn capture_on_a_vxlan_port_shows_inner_frames() {
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    let vx = n1.tunnel_to(2, 7100);
    n2.tunnel_to(1, 7100);
    let (a, pa) = n1.vm(Some(30), "198.18.206.1/24");
    let (b, pb) = n2.vm(Some(30), "198.18.206.2/24");
    for (vm, dev) in [(&a, &pa), (&b, &pb)] {
        vm.sh(&format!("sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1 || true"));
    }
    assert!(a.ping_eventually("198.18.206.2", Duration::from_secs(15)), "{}", n1.d.log());
    let file = n1.d.dir.join("vx.pcap");
    let f = file.to_str().unwrap();
    n1.d.ctl_ok(&["rvs/capture", &vx, f, "6"]);
    assert!(a.ping("198.18.206.2", 3));
    wait_finished(&n1.d, &vx);
    let frames = pcap_frames(&file);
    assert_eq!(frames.len(), 6);
    // Inner frames, tagged with VLAN 30 (a tunnel port is a trunk), not UDP to 4789.
    assert!(frames.iter().all(|f| f[12..16] == [0x81, 0x00, 0x00, 30]), "inner frames with their tag expected");
    let kinds: Vec<String> = frames.iter().map(|f| format!("{:02x?}", &f[12..f.len().min(24)])).collect();
    assert!(icmp(&frames, 8).len() >= 2 && icmp(&frames, 0).len() >= 2, "the pings, inside: {kinds:?}");
}
