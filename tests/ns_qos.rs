//! Namespace tests of egress QoS: the rows libvirt writes for `<bandwidth><inbound>`
//! install the kernel's HTB qdisc and classes on an AF_PACKET port's device (read back
//! with `tc`), follow updates, go with the QoS and stay right across a restart and a
//! takeover; the same rows give what Open vSwitch gives; a TCP
//! stream into the limited port is shaped while another port's is not; rvs's own taps
//! are shaped by its egress shaper; a type rvs cannot honour is reported, not applied.
//! Root, `tc` and `iperf3` required. Rates are asserted coarsely (well below the
//! unshaped rate, below 1.5x the limit), never as timings.

use std::time::Duration;

use rvs_testkit::*;

/// A node with bridge br0.
fn node(tag: &str) -> Node {
    require_tools(&["tc", "iperf3"]);
    let n = Node::new(tag);
    n.d.ctl_ok(&["add-br", "br0"]);
    n
}

const VM_UUID: &str = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";

/// libvirt's command for a new `<inbound average=A peak=P burst=B>` on port `p`
/// (virNetDevOpenvswitchInterfaceSetTxQos), rates in bits/s and burst in bits.
fn libvirt_set_qos(n: &Node, p: &str, rate: u64, burst: u64) {
    let vm = format!("external-ids:vm-id=\"{VM_UUID}\"");
    let ifn = format!("external-ids:ifname=\"{p}\"");
    let (min, max, b) = (format!("other_config:min-rate={rate}"), format!("other_config:max-rate={rate}"), format!("other_config:burst={burst}"));
    #[rustfmt::skip]
    let args = [
        "--timeout=5", "set", "port", p, "qos=@qos1", &vm, &ifn,
        "--", "--id=@qos1", "create", "qos", "type=linux-htb", &min, &b, &max, "queues:0=@queue0", &vm, &ifn,
        "--", "--id=@queue0", "create", "queue", &min, &b, &max, &vm, &ifn,
    ];
    n.d.ctl_ok(&args);
}

/// libvirt's removal (virNetDevOpenvswitchInterfaceClearTxQos): the port's QoS
/// cleared, then the rows with its external ids destroyed.
fn libvirt_clear_qos(n: &Node, p: &str) {
    let (vm, ifn) = (format!("external-ids:vm-id=\"{VM_UUID}\""), format!("external-ids:ifname=\"{p}\""));
    let find = |t: &str| n.d.ctl_ok(&["--no-heading", "--columns=_uuid", "find", t, &vm, &ifn]);
    let (qos, queue) = (find("qos"), find("queue"));
    n.d.ctl_ok(&["--timeout=5", "remove", "port", p, "qos", qos.trim()]);
    n.d.ctl_ok(&["--timeout=5", "destroy", "qos", qos.trim()]);
    n.d.ctl_ok(&["--timeout=5", "destroy", "queue", queue.trim()]);
}

/// `tc class show dev DEV` in the node.
fn classes(n: &Node, dev: &str) -> String {
    n.ns.sh(&format!("tc class show dev {dev}"))
}

fn qdisc(n: &Node, dev: &str) -> String {
    n.ns.sh(&format!("tc qdisc show dev {dev}"))
}

/// Mbit/s of a 3-second iperf3 TCP stream from `client` to `server` (at `addr`). The
/// server (one test, then it exits) is killed by its pid in any case.
fn iperf(server: &Netns, client: &Netns, addr: &str, port: u16) -> f64 {
    struct Server(std::path::PathBuf);
    impl Drop for Server {
        fn drop(&mut self) {
            if let Ok(pid) = std::fs::read_to_string(&self.0) {
                let _ = sh_ok(&format!("kill {} 2>/dev/null", pid.trim()));
            }
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let pidfile = std::env::temp_dir().join(format!("rvs-qos-iperf-{}-{port}.pid", std::process::id()));
    let _server = Server(pidfile.clone());
    server.sh(&format!("iperf3 -s -D -1 -p {port} -I {} >/dev/null 2>&1", pidfile.display()));
    std::thread::sleep(Duration::from_millis(300));
    let out = client.sh(&format!("timeout 30 iperf3 -c {addr} -p {port} -t 3 -J"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("iperf3 output ({e}): {out}"));
    v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or_else(|| panic!("no rate in {out}")) / 1e6
}

#[test]
fn libvirt_qos_installs_htb_on_a_system_port() {
    let n = node("qos");
    let (pa, pb) = (unique("qsa"), unique("qsb"));
    let vma = n.veth_vm("br0", &pa, "198.18.31.1/24");
    let vmb = n.veth_vm("br0", &pb, "198.18.31.2/24");
    assert!(vma.ping_eventually("198.18.31.2", Duration::from_secs(10)), "{}", n.d.log());

    // 20 Mbit/s with a 128 KiB burst on what pa's VM receives.
    libvirt_set_qos(&n, &pa, 20_000_000, 1_048_576);
    wait_until("the HTB classes", Duration::from_secs(10), || classes(&n, &pa).contains("class htb 1:1 parent 1:fffe"));
    let c = classes(&n, &pa);
    assert!(c.contains("class htb 1:fffe root rate 20Mbit ceil 20Mbit"), "{c}");
    assert!(c.contains("class htb 1:1 parent 1:fffe prio 0 rate 20Mbit ceil 20Mbit burst 128Kb"), "{c}");
    assert!(qdisc(&n, &pa).contains("qdisc htb 1: root"), "{}", qdisc(&n, &pa));
    assert!(!qdisc(&n, &pb).contains("htb"), "the other port has no qdisc of rvs's");
    let show = n.d.ctl_ok(&["qos/show", &pa]);
    assert!(
        show.starts_with(&format!("QoS: {pa} linux-htb\nmax-rate: 20000000\n\nDefault:\n  burst: 1048576\n  min-rate: 20000000\n  tx_packets: ")),
        "{show}"
    );
    assert_eq!(n.d.ctl_ok(&["get", "Port", &pa, "status"]).trim(), "{}", "applied: nothing to say");

    // Shaped: a TCP stream into pa's VM stays near 20 Mbit/s; into pb's it does not.
    let shaped = iperf(&vma, &vmb, "198.18.31.1", 5301);
    let free = iperf(&vmb, &vma, "198.18.31.2", 5302);
    eprintln!("TCP into the 20 Mbit/s port: {shaped:.1} Mbit/s; into the other: {free:.1} Mbit/s (loaded machine)");
    assert!(shaped < 30.0, "{shaped} Mbit/s through a 20 Mbit/s limit");
    assert!(shaped > 2.0, "the shaped port still carries traffic: {shaped}");
    assert!(free > 2.0 * shaped, "the other port is not limited: {free} vs {shaped}");
    let show = n.d.ctl_ok(&["qos/show", &pa]);
    let sent: u64 = show.lines().find_map(|l| l.trim().strip_prefix("tx_bytes: ")).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(sent > 1_000_000, "the default class counted the stream: {show}");

    // libvirt's update: the queue's rates changed in place.
    let queue = n.d.ctl_ok(&["get", "qos", &pa, "queues:0"]);
    n.d.ctl_ok(&["set", "queue", queue.trim(), "other_config:max-rate=10000000", "other_config:min-rate=5000000"]);
    wait_until("the class changed", Duration::from_secs(10), || classes(&n, &pa).contains("rate 5Mbit ceil 10Mbit"));

    // A restart keeps it right (the classes are replaced, not duplicated).
    n.d.stop();
    assert!(n.d.try_start().status.success(), "{}", n.d.log());
    wait_until("the port back", Duration::from_secs(10), || n.d.ctl_ok(&["qos/show", &pa]).starts_with("QoS: "));
    let c = classes(&n, &pa);
    assert_eq!(c.lines().filter(|l| l.starts_with("class htb")).count(), 2, "{c}");
    assert!(c.contains("rate 5Mbit ceil 10Mbit"), "{c}");

    // Removed as libvirt removes it: the qdisc goes.
    libvirt_clear_qos(&n, &pa);
    wait_until("the qdisc gone", Duration::from_secs(10), || !qdisc(&n, &pa).contains("htb"));
    assert_eq!(n.d.ctl_ok(&["qos/show", &pa]), format!("QoS not configured on {pa}\n"));
    // And a QoS removed while no daemon ran is removed at its start (as OVS does).
    libvirt_set_qos(&n, &pa, 20_000_000, 0);
    wait_until("installed again", Duration::from_secs(10), || qdisc(&n, &pa).contains("htb"));
    n.d.stop();
    let db = n.d.dir.join("conf.db");
    assert!(db.exists(), "{}", db.display());
    assert!(n.d.try_start().status.success());
    libvirt_clear_qos(&n, &pa);
    n.d.stop();
    n.ns.sh(&format!("tc qdisc add dev {pa} root handle 1: htb default 1"));
    assert!(n.d.try_start().status.success());
    wait_until("the leftover qdisc removed", Duration::from_secs(10), || !qdisc(&n, &pa).contains("htb"));
}

#[test]
fn types_rvs_cannot_honour_are_reported_not_applied() {
    let n = node("qun");
    let p = unique("qsc");
    let _vm = n.veth_vm("br0", &p, "198.18.32.1/24");
    n.d.ctl_ok(&["set", "port", &p, "qos=@q", "--", "--id=@q", "create", "qos", "type=linux-codel"]);
    wait_until("the status", Duration::from_secs(10), || n.d.ctl_ok(&["get", "Port", &p, "status"]).contains("not applied"));
    let st = n.d.ctl_ok(&["get", "Port", &p, "status:qos"]);
    assert!(st.contains("QoS type linux-codel is not supported on this port"), "{st}");
    assert!(!qdisc(&n, &p).contains("codel"), "{}", qdisc(&n, &p));
    assert_eq!(n.d.ctl_ok(&["qos/show", &p]), format!("QoS not configured on {p}\n"), "OVS's answer when the type is not installed");
    let types = n.d.ctl_ok(&["qos/show-types", &p]);
    assert!(types.contains("QoS type: linux-htb\n") && !types.contains("codel"), "{types}");
    let e = n.d.ctl(&["qos/show", "nosuch"]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("no such interface"), "{e:?}");
}

#[test]
fn rvs_shapes_its_own_taps() {
    let n = node("qtp");
    let (pa, pb) = (unique("qta"), unique("qtb"));
    let vma = n.vm("br0", &pa, &[], "198.18.33.1/24");
    let vmb = n.vm("br0", &pb, &[], "198.18.33.2/24");
    assert!(vma.ping_eventually("198.18.33.2", Duration::from_secs(10)));
    libvirt_set_qos(&n, &pa, 20_000_000, 1_048_576);
    wait_until("the shaper", Duration::from_secs(10), || n.d.ctl_ok(&["qos/show", &pa]).starts_with("QoS: "));
    let show = n.d.ctl_ok(&["qos/show", &pa]);
    assert!(show.starts_with(&format!("QoS: {pa} linux-htb\nmax-rate: 20000000\n\nDefault:\n  max-rate: 20000000\n  burst: 1048576\n")), "{show}");
    let shaped = iperf(&vma, &vmb, "198.18.33.1", 5303);
    let free = iperf(&vmb, &vma, "198.18.33.2", 5304);
    eprintln!("TCP into the 20 Mbit/s tap: {shaped:.1} Mbit/s; into the other: {free:.1} Mbit/s (loaded machine)");
    assert!(shaped < 30.0 && shaped > 1.0, "{shaped} Mbit/s through a 20 Mbit/s limit");
    assert!(free > 2.0 * shaped, "the other tap is not limited: {free} vs {shaped}");
    let show = n.d.ctl_ok(&["qos/show", &pa]);
    let sent: u64 = show.lines().find_map(|l| l.trim().strip_prefix("tx_bytes: ")).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(sent > 1_000_000, "{show}");

    // An egress-policer (OVS-DPDK's type: cir bytes/s, cbs bytes) drops what is above
    // its rate: 100 pings of 1.4 kB in a second through 12.5 kB/s.
    let shaped = |d: &Daemon| -> u64 {
        let s = d.ctl_ok(&["rvs/drops", "br0"]);
        s.lines().find(|l| l.trim_start().starts_with("shaped")).and_then(|l| l.split_whitespace().nth(1)).and_then(|x| x.parse().ok()).unwrap_or(0)
    };
    let before = shaped(&n.d);
    let qos = n.d.ctl_ok(&["get", "port", &pa, "qos"]);
    n.d.ctl_ok(&["set", "qos", qos.trim(), "type=egress-policer", "other_config:cir=12500", "other_config:cbs=1500"]);
    wait_until("the policer", Duration::from_secs(10), || n.d.ctl_ok(&["qos/show", &pa]).contains("egress-policer"));
    assert_eq!(
        n.d.ctl_ok(&["qos/show", &pa]).lines().take(3).collect::<Vec<_>>(),
        [format!("QoS: {pa} egress-policer"), "cir: 12500".into(), "cbs: 1500".into()]
    );
    vmb.sh("ping -c 100 -i 0.01 -s 1400 -W 1 198.18.33.1 >/dev/null 2>&1");
    let dropped = shaped(&n.d) - before;
    assert!(dropped > 10, "{dropped} dropped: {}", n.d.ctl_ok(&["rvs/drops", "br0"]));
    let tx_dropped = n.d.ctl_ok(&["get", "Interface", &pa, "statistics:tx_dropped"]);
    assert!(tx_dropped.trim().parse::<u64>().unwrap_or(0) >= dropped, "{tx_dropped}");
    // Without the QoS, nothing more is shaped.
    libvirt_clear_qos(&n, &pa);
    wait_until("no shaper", Duration::from_secs(10), || n.d.ctl_ok(&["qos/show", &pa]).starts_with("QoS not configured"));
}

/// `tc qdisc show` and `tc class show` of `dev` in `ns`, sorted, the name replaced.
fn tc_state(ns: &Netns, dev: &str) -> Vec<String> {
    let mut v: Vec<String> = ns.sh(&format!("tc qdisc show dev {dev}; tc class show dev {dev}")).lines().map(|l| l.trim_end().replace(dev, "DEV")).collect();
    v.sort();
    v
}

#[test]
fn same_qdisc_classes_and_qos_show_as_open_vswitch() {
    require_tools(&["tc", "ovs-vswitchd"]);
    let o = OvsNode::new("qov");
    o.vsctl("add-br br0 -- set bridge br0 datapath_type=netdev");
    let n = node("qdf");
    let (ov, rv) = (unique("qdo"), unique("qdr"));
    o.ns.sh(&format!("ip link add {ov} type veth peer name {ov}p && ip link set {ov} up"));
    o.vsctl(&format!("add-port br0 {ov}"));
    n.ns.sh(&format!("ip link add {rv} type veth peer name {rv}p && ip link set {rv} up"));
    n.d.ctl_ok(&["add-port", "br0", &rv]);
    // Two queues, one with OVS's defaults for what is missing, one with everything.
    let rows = |p: &str| {
        format!(
            "set port {p} qos=@q -- --id=@q create qos type=linux-htb other_config:max-rate=50000000 queues:0=@a queues:1=@b \
             -- --id=@a create queue other_config:min-rate=20000000 other_config:burst=1048576 \
             -- --id=@b create queue other_config:min-rate=10000000 other_config:max-rate=30000000 other_config:priority=3"
        )
    };
    o.vsctl(&rows(&ov));
    let r = rows(&rv);
    n.d.ctl_ok(&r.split_whitespace().collect::<Vec<_>>());
    let three = |ns: &Netns, dev: &str| ns.sh(&format!("tc class show dev {dev}")).lines().count() == 3;
    wait_until("OVS's classes", Duration::from_secs(20), || three(&o.ns, &ov));
    wait_until("rvs's classes", Duration::from_secs(10), || three(&n.ns, &rv));
    let (theirs, ours) = (tc_state(&o.ns, &ov), tc_state(&n.ns, &rv));
    assert_eq!(ours, theirs, "the same rows, the same qdisc and classes");
    let show_ovs = o.appctl(&format!("qos/show {ov}")).replace(&ov, "DEV");
    let show_rvs = n.d.ctl_ok(&["qos/show", &rv]).replace(&rv, "DEV");
    assert_eq!(show_rvs, show_ovs);
    // linux-noop: the qdisc is left as it is (OVS's own too), and not shown.
    o.vsctl(&format!("set qos {ov} type=linux-noop"));
    n.d.ctl_ok(&["set", "qos", &rv, "type=linux-noop"]);
    let noop = |s: &str, dev: &str| s == format!("QoS not configured on {dev}\n");
    wait_until("OVS's noop", Duration::from_secs(20), || noop(&o.appctl(&format!("qos/show {ov}")), &ov));
    wait_until("rvs's noop", Duration::from_secs(10), || noop(&n.d.ctl_ok(&["qos/show", &rv]), &rv));
    assert_eq!(n.d.ctl_ok(&["qos/show", &rv]).replace(&rv, "DEV"), o.appctl(&format!("qos/show {ov}")).replace(&ov, "DEV"));
    assert_eq!(tc_state(&n.ns, &rv), tc_state(&o.ns, &ov), "the qdisc left in place on both");
}

#[test]
fn hfsc_where_the_kernel_has_it() {
    let n = node("qhf");
    let p = unique("qsh");
    let _vm = n.veth_vm("br0", &p, "198.18.34.1/24");
    // Whether this kernel has HFSC, asked of a scratch device.
    let scratch = unique("qsx");
    assert!(n.ns.sh_ok(&format!("ip link add {scratch} type veth peer name {scratch}p")));
    let has_hfsc = n.ns.sh_ok(&format!("tc qdisc add dev {scratch} root handle 1: hfsc default 1 2>/dev/null"));
    assert!(n.ns.sh_ok(&format!("ip link del {scratch}")));
    n.d.ctl_ok(&[
        "set",
        "port",
        &p,
        "qos=@q",
        "--",
        "--id=@q",
        "create",
        "qos",
        "type=linux-hfsc",
        "other_config:max-rate=50000000",
        "queues:1=@a",
        "--",
        "--id=@a",
        "create",
        "queue",
        "other_config:min-rate=8000000",
    ]);
    if has_hfsc {
        wait_until("the HFSC classes", Duration::from_secs(10), || classes(&n, &p).lines().count() == 3);
        let c = classes(&n, &p);
        assert!(c.contains("class hfsc 1:2 parent 1:fffe"), "{c}");
        assert!(n.d.ctl_ok(&["qos/show", &p]).starts_with(&format!("QoS: {p} linux-hfsc\nmax-rate: 50000000\n")));
    } else {
        // The kernel's refusal, in the Port's status; nothing else changed.
        wait_until("the status", Duration::from_secs(10), || n.d.ctl_ok(&["get", "Port", &p, "status"]).contains("not applied"));
        let st = n.d.ctl_ok(&["get", "Port", &p, "status:qos"]);
        assert!(st.contains(&format!("creating the root HFSC qdisc on {p} failed")), "{st}");
        assert!(!qdisc(&n, &p).contains("hfsc"));
        assert_eq!(n.d.ctl_ok(&["qos/show", &p]), format!("QoS not configured on {p}\n"));
    }
    // Back to HTB: applied, and the note is gone.
    let qos = n.d.ctl_ok(&["get", "port", &p, "qos"]);
    n.d.ctl_ok(&["set", "qos", qos.trim(), "type=linux-htb"]);
    wait_until("HTB", Duration::from_secs(10), || qdisc(&n, &p).contains("htb"));
    wait_until("no note", Duration::from_secs(10), || n.d.ctl_ok(&["get", "Port", &p, "status"]).trim() == "{}");
}

/// The bytes the root qdisc of `dev` has sent (`tc -s qdisc show`).
fn qdisc_sent(n: &Node, dev: &str) -> u64 {
    let s = n.ns.sh(&format!("tc -s qdisc show dev {dev}"));
    s.split_whitespace().skip_while(|w| *w != "Sent").nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no Sent in {s}"))
}

#[test]
fn takeover_keeps_the_qdisc_and_its_frames_still_pass_it() {
    let n = node("qtk");
    let (pa, pb) = (unique("qka"), unique("qkb"));
    let _vma = n.veth_vm("br0", &pa, "198.18.35.1/24");
    let vmb = n.veth_vm("br0", &pb, "198.18.35.2/24");
    assert!(vmb.ping_eventually("198.18.35.1", Duration::from_secs(10)));
    libvirt_set_qos(&n, &pa, 50_000_000, 0);
    wait_until("the qdisc", Duration::from_secs(10), || qdisc(&n, &pa).contains("htb"));
    assert!(vmb.ping("198.18.35.1", 5));
    let before = qdisc_sent(&n, &pa);
    assert!(before > 0, "rvs's frames pass the qdisc");
    let out = n.d.try_start_with(&["--takeover"]);
    assert!(out.status.success(), "takeover: {}\n{}", String::from_utf8_lossy(&out.stderr), n.d.log());
    // The same qdisc (its counters kept: not deleted and made again), the same classes.
    assert!(qdisc_sent(&n, &pa) >= before, "{}", n.ns.sh(&format!("tc -s qdisc show dev {pa}")));
    assert_eq!(classes(&n, &pa).lines().filter(|l| l.starts_with("class htb")).count(), 2);
    // The new daemon's frames pass it too.
    assert!(vmb.ping("198.18.35.1", 5), "{}", n.d.log());
    assert!(qdisc_sent(&n, &pa) > before);
}
