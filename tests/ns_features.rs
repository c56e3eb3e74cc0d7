//! Namespace tests of the columns rvs carries out: interface statistics as libvirt
//! reads them, ingress policing, mtu_request, protected ports, a host IP on an internal
//! port in a VLAN (and on a fake bridge), static MAC entries that survive a restart,
//! transient ports removed after a node reboot. Root required.

use std::time::Duration;

use rvs_testkit::*;

/// A node with bridge br0.
fn node(tag: &str) -> Node {
    let n = Node::new(tag);
    n.d.ctl_ok(&["add-br", "br0"]);
    n
}

#[test]
fn statistics_as_libvirt_reads_them() {
    let n = node("st");
    let (p1, p2) = (unique("s1"), unique("s2"));
    let vm1 = n.vm("br0", &p1, &[], "198.18.10.1/24");
    let _vm2 = n.vm("br0", &p2, &[], "198.18.10.2/24");
    assert!(vm1.ping_eventually("198.18.10.2", Duration::from_secs(10)));
    assert!(vm1.ping("198.18.10.2", 3));
    // libvirt's query, verbatim (virNetDevOpenvswitchInterfaceStats).
    let out = n.d.ctl_ok(&["--timeout=5", "--if-exists", "--format=list", "--data=json", "--no-headings", "--columns=statistics", "list", "Interface", &p1]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v[0], "map");
    let get = |k: &str| v[1].as_array().unwrap().iter().find(|p| p[0] == k).and_then(|p| p[1].as_u64());
    assert!(get("rx_packets").unwrap() >= 4, "{out}");
    assert!(get("tx_packets").unwrap() >= 4, "{out}");
    assert!(get("rx_bytes").unwrap() > 300);
    for k in ["rx_dropped", "rx_errors", "tx_dropped", "tx_errors"] {
        assert!(get(k).is_some(), "{k} in {out}");
    }
    // …and nothing at all for an interface that does not exist.
    assert_eq!(n.d.ctl_ok(&["--if-exists", "--format=list", "--data=json", "--no-headings", "--columns=statistics", "list", "Interface", "nosuch"]), "");
    assert_eq!(n.d.ctl_ok(&["get", "Interface", &p1, "link_state"]).trim(), "[]", "moved into a VM namespace: not visible from the switch");
}

#[test]
fn ingress_policing_limits_received_traffic() {
    let n = node("pol");
    let (p1, p2) = (unique("q1"), unique("q2"));
    let vm1 = n.vm("br0", &p1, &[], "198.18.11.1/24");
    let vm2 = n.vm("br0", &p2, &[], "198.18.11.2/24");
    assert!(vm1.ping_eventually("198.18.11.2", Duration::from_secs(10)));
    // 2 Mbit/s with a 100 kbit burst on what vm1 sends into the switch.
    n.d.ctl_ok(&["set", "Interface", &p1, "ingress_policing_rate=2000", "ingress_policing_burst=100"]);
    let policed = |d: &Daemon| -> u64 {
        let s = d.ctl_ok(&["rvs/drops", "br0"]);
        s.lines().find(|l| l.trim_start().starts_with("policed")).and_then(|l| l.split_whitespace().nth(1)).and_then(|x| x.parse().ok()).unwrap_or(0)
    };
    let before = policed(&n.d);
    // 1 MB through a 2 Mbit/s policer: TCP backs off, the data still arrives intact.
    tcp_transfer(&vm2, &vm1, "198.18.11.2", 5401, 1 << 20).expect("TCP through a policer");
    assert!(policed(&n.d) > before, "frames above the rate were dropped and counted");
    let stats = n.d.ctl_ok(&["get", "Interface", &p1, "statistics:rx_dropped"]);
    assert!(stats.trim().parse::<u64>().unwrap() > 0, "{stats}");
    // Off again: nothing more is policed.
    n.d.ctl_ok(&["set", "Interface", &p1, "ingress_policing_rate=0"]);
    let now = policed(&n.d);
    tcp_transfer(&vm2, &vm1, "198.18.11.2", 5402, 1 << 20).expect("TCP without a policer");
    assert_eq!(policed(&n.d), now);
}

#[test]
fn mtu_request_and_mac_are_applied() {
    let n = node("mtu");
    let p = unique("m1");
    n.d.ctl_ok(&["add-port", "br0", &p, "--", "set", "Interface", &p, "type=internal", "mtu_request=1400", "mac=\"02:00:00:00:12:34\""]);
    wait_until("MTU 1400 on the device", Duration::from_secs(10), || n.ns.sh(&format!("cat /sys/class/net/{p}/mtu")).trim() == "1400");
    assert_eq!(n.ns.sh(&format!("cat /sys/class/net/{p}/address")).trim(), "02:00:00:00:12:34");
    assert_eq!(n.d.ctl_ok(&["get", "Interface", &p, "mtu"]).trim(), "1400");
    assert_eq!(n.d.ctl_ok(&["get", "Interface", &p, "mac_in_use"]).trim(), "\"02:00:00:00:12:34\"");
}

#[test]
fn protected_ports_do_not_talk_to_each_other() {
    let n = node("prot");
    let (a, b, c) = (unique("pa"), unique("pb"), unique("pc"));
    let vma = n.vm("br0", &a, &["protected=true"], "198.18.12.1/24");
    let _vmb = n.vm("br0", &b, &["protected=true"], "198.18.12.2/24");
    let _vmc = n.vm("br0", &c, &[], "198.18.12.3/24");
    assert!(vma.ping_eventually("198.18.12.3", Duration::from_secs(10)), "protected to unprotected works");
    assert!(!vma.ping("198.18.12.2", 2), "protected to protected is blocked");
}

#[test]
fn host_ip_on_internal_ports_in_a_vlan_and_on_a_fake_bridge() {
    let n = node("hip");
    // Mission step 6: a host interface inside VLAN 120.
    n.d.ctl_ok(&["add-port", "br0", "vlan120", "tag=120", "--", "set", "interface", "vlan120", "type=internal"]);
    n.ns.sh("ip link set vlan120 up && ip addr add 198.18.120.254/24 dev vlan120");
    let vm = n.vm("br0", &unique("h1"), &["tag=120"], "198.18.120.1/24");
    assert!(vm.ping_eventually("198.18.120.254", Duration::from_secs(10)), "VM reaches the host IP in its VLAN\n{}", n.d.log());
    // Mission step 2: a VLAN fake bridge; its own internal port carries the host IP,
    // VMs added to it land on the parent with its tag.
    n.d.ctl_ok(&["add-br", "brlv140", "br0", "140"]);
    n.ns.sh("ip link set brlv140 up && ip addr add 198.18.140.254/24 dev brlv140");
    let p = unique("h2");
    let vm140 = n.vm("brlv140", &p, &[], "198.18.140.1/24");
    assert_eq!(n.d.ctl_ok(&["get", "Port", &p, "tag"]), "140\n");
    assert!(vm140.ping_eventually("198.18.140.254", Duration::from_secs(10)), "VM on the fake bridge reaches its host IP");
    assert!(!vm140.ping("198.18.120.254", 2), "but not VLAN 120's");
}

#[test]
fn static_macs_are_kept_across_restarts() {
    let n = node("fdb");
    let (p1, p2) = (unique("f1"), unique("f2"));
    let _vm1 = n.vm("br0", &p1, &["tag=5"], "198.18.13.1/24");
    let _vm2 = n.vm("br0", &p2, &["tag=5"], "198.18.13.2/24");
    assert_eq!(n.d.ctl_ok(&["fdb/add", "br0", &p1, "5", "02:00:00:00:aa:01"]), "");
    let has_static = |d: &Daemon| d.ctl_ok(&["fdb/show", "br0"]).lines().any(|l| l.contains("02:00:00:00:aa:01") && l.ends_with("static"));
    assert!(has_static(&n.d), "{}", n.d.ctl_ok(&["fdb/show", "br0"]));
    let stats = n.d.ctl_ok(&["fdb/stats-show", "br0"]);
    assert!(stats.contains("Current static MAC entries in the table : 1\n"), "{stats}");
    n.d.stop();
    assert!(n.d.try_start().status.success());
    wait_until("the static entry to be back", Duration::from_secs(10), || has_static(&n.d));
    assert_eq!(n.d.ctl_ok(&["fdb/del", "br0", "5", "02:00:00:00:aa:01"]), "");
    assert!(!has_static(&n.d));
}

#[test]
fn transient_ports_disappear_after_a_node_reboot_not_a_daemon_restart() {
    let n = node("trn");
    n.d.ctl_ok(&["add-port", "br0", "keep", "--", "set", "Interface", "keep", "type=internal"]);
    n.d.ctl_ok(&["add-port", "br0", "vnet7", "--", "set", "Port", "vnet7", "other_config:transient=true", "--", "set", "Interface", "vnet7", "type=internal"]);
    // A daemon restart keeps it.
    n.d.stop();
    assert!(n.d.try_start().status.success());
    assert_eq!(n.d.ctl_ok(&["list-ports", "br0"]), "keep\nvnet7\n");
    // A node reboot (another kernel boot id in the saved file) drops it, as OVS's
    // start script does.
    n.d.stop();
    let db = n.d.dir.join("conf.db");
    let text = std::fs::read_to_string(&db).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
    j["boot_id"] = serde_json::json!("00000000-0000-0000-0000-000000000000");
    std::fs::write(&db, serde_json::to_string(&j).unwrap()).unwrap();
    assert!(n.d.try_start().status.success());
    assert_eq!(n.d.ctl_ok(&["list-ports", "br0"]), "keep\n");
}

#[test]
fn fdb_add_refuses_bad_vlans_and_group_addresses_and_changes_nothing() {
    let n = node("fdbv");
    let p1 = unique("f1");
    n.d.ctl_ok(&["add-port", "br0", &p1, "--", "set", "Interface", &p1, "type=internal"]);
    assert_eq!(n.d.ctl_ok(&["fdb/add", "br0", &p1, "10", "02:00:00:00:bb:01"]), "");
    let before = n.d.ctl_ok(&["fdb/show", "br0"]);
    let refused = [
        ("4096", "02:00:00:00:bb:02", "bad VLAN \"4096\""),
        ("-1", "02:00:00:00:bb:02", "bad VLAN \"-1\""),
        ("abc", "02:00:00:00:bb:02", "bad VLAN \"abc\""),
        ("12abc", "02:00:00:00:bb:02", "bad VLAN \"12abc\""),
        ("10", "ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff is a multicast or broadcast address"),
        ("10", "01:00:5e:00:00:01", "01:00:5e:00:00:01 is a multicast or broadcast address"),
        ("10", "33:33:00:00:00:01", "33:33:00:00:00:01 is a multicast or broadcast address"),
    ];
    for (vlan, mac, why) in refused {
        let out = n.d.ctl(&["fdb/add", "br0", &p1, vlan, mac]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "fdb/add {vlan} {mac} was accepted");
        assert!(err.contains(why) && err.contains("server returned an error"), "{err}");
    }
    assert_eq!(n.d.ctl_ok(&["fdb/show", "br0"]), before, "a refused fdb/add changed the table");
    let out = n.d.ctl(&["fdb/del", "br0", "4096", "02:00:00:00:bb:01"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad VLAN"));
    // Nothing refused was saved either: after a restart the table is the same.
    n.d.stop();
    assert!(n.d.try_start().status.success());
    assert_eq!(n.d.ctl_ok(&["fdb/show", "br0"]).lines().count(), 2, "{}", n.d.ctl_ok(&["fdb/show", "br0"]));
}

#[test]
fn a_port_listed_by_two_bridges_stays_on_the_first_and_is_logged_once() {
    let n = node("shp");
    let xa = unique("xa");
    n.d.ctl_ok(&["add-port", "br0", &xa, "--", "set", "Interface", &xa, "type=internal"]);
    n.d.ctl_ok(&["add-br", "brx"]);
    let uuid = n.d.ctl_ok(&["get", "Port", &xa, "_uuid"]);
    n.d.ctl_ok(&["add", "Bridge", "brx", "ports", uuid.trim()]);
    // More reconfigurations: the shared port must not be opened twice.
    for b in ["bry", "brz"] {
        n.d.ctl_ok(&["add-br", b]);
    }
    let log = n.d.log();
    assert_eq!(log.matches("is listed by bridges br0 and brx").count(), 1, "{log}");
    assert!(!log.contains("File exists") && !log.contains("cannot poll"), "{log}");
    assert_eq!(n.d.ctl_ok(&["get", "Interface", &xa, "error"]).trim(), "[]");
    assert_ne!(n.d.ctl_ok(&["get", "Interface", &xa, "ofport"]).trim(), "-1");
}

/// One MAC on two VMs (what a loop or a cloned VM looks like to a switch): each sends
/// in turn, the address moves between their ports again and again, and rvs reports it
/// as a flap — counted, listed by `fdb/flaps` with both ports and logged once, while
/// `fdb/stats-show` stays OVS's text. A bridge with detection turned off reports nothing.
#[test]
fn a_mac_on_two_ports_is_reported_as_flapping() {
    require_tools(&["arping"]);
    let n = node("fl");
    let (p1, p2) = (unique("f1"), unique("f2"));
    let vm1 = n.vm("br0", &p1, &[], "198.18.13.1/24");
    let vm2 = n.vm("br0", &p2, &[], "198.18.13.2/24");
    let dup = "02:52:56:00:13:99";
    for (vm, p) in [(&vm1, &p1), (&vm2, &p2)] {
        vm.sh(&format!("ip link set {p} address {dup}"));
    }
    let flaps_total = |d: &Daemon| -> u64 {
        let s = d.ctl_ok(&["fdb/flaps", "br0"]);
        s.lines().find(|l| l.starts_with("Flapping MAC entries detected:")).and_then(|l| l.rsplit(':').next()?.trim().parse().ok()).unwrap_or(u64::MAX)
    };
    assert_eq!(flaps_total(&n.d), 0);
    let bounce = |times: usize| {
        for _ in 0..times {
            vm1.sh(&format!("timeout 0.2 arping -U -c 1 -I {p1} 198.18.13.1 >/dev/null 2>&1; true"));
            vm2.sh(&format!("timeout 0.2 arping -U -c 1 -I {p2} 198.18.13.2 >/dev/null 2>&1; true"));
        }
    };
    bounce(4);
    wait_until("the flap counted", Duration::from_secs(10), || flaps_total(&n.d) == 1);
    let list = n.d.ctl_ok(&["fdb/flaps", "br0"]);
    let row = list.lines().find(|l| l.contains(dup)).unwrap_or_else(|| panic!("{dup} listed:\n{list}"));
    assert!(row.trim_start().starts_with("0  "), "VLAN 0: {row}");
    assert!(row.contains(&p1) && row.contains(&p2), "both ports named: {row}");
    let moves: u32 = row.split_whitespace().nth(2).and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(moves >= 5, "{row}");
    assert_eq!(n.d.ctl(&["fdb/flaps", "nobr"]).status.code(), Some(2), "no such bridge");
    bounce(2);
    let log = n.d.log();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains(&format!("MAC {dup} in VLAN 0 is flapping"))).collect();
    assert_eq!(warned.len(), 1, "logged once in the window:\n{log}");
    assert!(warned[0].contains(&p1) && warned[0].contains(&p2), "{}", warned[0]);

    n.d.ctl_ok(&["fdb/stats-clear", "br0"]);
    n.d.ctl_ok(&["set", "Bridge", "br0", "other_config:rvs-mac-flap-moves=0"]);
    // Another shared MAC (the first one was reported in this window already, so only a
    // new address shows whether detection is off).
    for (vm, p) in [(&vm1, &p1), (&vm2, &p2)] {
        vm.sh(&format!("ip link set {p} address 02:52:56:00:13:98"));
    }
    bounce(4);
    let s = n.d.ctl_ok(&["fdb/stats-show", "br0"]);
    assert!(s.contains("Total number of port moved MAC entries  : ") && !s.contains("moved MAC entries  : 0\n"), "it moved:\n{s}");
    assert_eq!(flaps_total(&n.d), 0, "detection off");
}
