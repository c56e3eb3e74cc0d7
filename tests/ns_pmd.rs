//! Polling workers (`Open_vSwitch other_config:pmd-cpu-mask`, as OVS-DPDK's PMD
//! threads): with a mask the workers are pinned to its CPUs and poll without sleeping;
//! they switch the same traffic as sleeping workers — taps, AF_PACKET veths, and VXLAN
//! between two nodes; the mask changes live without losing the configuration or the
//! MAC tables; `pmd-rxq-affinity` pins a queue to a worker, which then polls it alone;
//! a mask naming a CPU the daemon may not use is refused in the log and in
//! `rvs/workers`, and forwarding goes on with sleeping workers. OVS's
//! `dpif-netdev/pmd-stats-show`, `pmd-stats-clear` and `pmd-rxq-show` report them.
//! Latency is measured by `benches/e2e.sh`, not here. Root required.

use std::time::Duration;

use rvs_testkit::overlay::{RvsNode, Underlay};
use rvs_testkit::*;

/// The CPUs this process may run on (from /proc/self/status), in order.
fn cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list").trim().to_string();
    let mut out = Vec::new();
    for r in list.split(',') {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        out.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
    }
    out
}

fn last_cpu() -> usize {
    *cpus().last().expect("a CPU")
}

fn mask_of(cpu: usize) -> String {
    mask_of_all(&[cpu])
}

fn mask_of_all(cpus: &[usize]) -> String {
    let digits = cpus.iter().max().unwrap() / 4 + 1;
    let mut v = vec![0u8; digits];
    for c in cpus {
        v[digits - 1 - c / 4] |= 1 << (c % 4);
    }
    format!("0x{}", v.iter().map(|d| format!("{d:x}")).collect::<String>())
}

fn workers(d: &Daemon) -> String {
    d.ctl_ok(&["rvs/workers"])
}

#[test]
fn mask_digits() {
    assert_eq!(mask_of(0), "0x1");
    assert_eq!(mask_of(1), "0x2");
    assert_eq!(mask_of(3), "0x8");
    assert_eq!(mask_of(5), "0x20");
    assert_eq!(mask_of_all(&[0, 1, 5]), "0x23");
}

#[test]
fn polling_workers_switch_taps_and_veths_and_follow_the_mask() {
    let n = Node::new("pmd");
    n.d.ctl_ok(&["add-br", "br0"]);
    let t1 = unique("p1");
    let vm1 = n.vm("br0", &t1, &[], "198.18.203.1/24");
    let _vm2 = n.vm("br0", &unique("p2"), &[], "198.18.203.2/24");
    let (e3, e4) = (unique("p3"), unique("p4"));
    let vm3 = n.veth_vm("br0", &e3, "198.18.203.3/24");
    let _vm4 = n.veth_vm("br0", &e4, "198.18.203.4/24");
    assert!(vm1.ping_eventually("198.18.203.2", Duration::from_secs(10)), "{}", n.d.log());
    assert!(vm3.ping_eventually("198.18.203.4", Duration::from_secs(10)), "{}", n.d.log());
    assert!(workers(&n.d).contains("mode: sleeps when idle"), "{}", workers(&n.d));
    let mac1 = mac_of(&vm1, &t1);

    // Polling on the last CPU, changed live: the tables stay.
    let cpu = last_cpu();
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", &format!("other_config:pmd-cpu-mask={}", mask_of(cpu))]);
    wait_until("a polling worker", Duration::from_secs(10), || workers(&n.d).contains(&format!("polling on CPU {cpu}")));
    assert!(n.d.ctl_ok(&["fdb/show", "br0"]).contains(&mac1), "the MAC table was lost when polling began");
    assert!(vm1.ping_eventually("198.18.203.2", Duration::from_secs(10)), "taps, polling\n{}", n.d.log());
    assert!(vm3.ping_eventually("198.18.203.4", Duration::from_secs(10)), "veths, polling\n{}", n.d.log());
    let pid = n.d.pid().unwrap();
    let affinity = sh(&format!("for t in /proc/{pid}/task/*; do grep -q rvs-datapath $t/comm && grep Cpus_allowed_list $t/status; done; true"));
    assert!(affinity.lines().any(|l| l.split_whitespace().last() == Some(cpu.to_string().as_str())), "no worker pinned to CPU {cpu}: {affinity}");

    // OVS's reports.
    let stats = n.d.ctl_ok(&["dpif-netdev/pmd-stats-show"]);
    let head = format!("core_id {cpu}:");
    assert!(stats.starts_with("pmd thread numa_id ") && stats.lines().next().unwrap().ends_with(&head), "{stats}");
    assert!(stats.contains("\nmain thread:\n"), "{stats}");
    let received: u64 = stats.lines().find_map(|l| l.trim().strip_prefix("packets received: ")).and_then(|v| v.parse().ok()).unwrap();
    assert!(received > 0, "the polling worker received nothing: {stats}");
    assert!(stats.contains("  idle cycles: ") && stats.contains("  avg processing cycles per packet: "), "{stats}");
    assert!(!n.d.ctl_ok(&["dpif-netdev/pmd-stats-show", "-pmd", &cpu.to_string()]).contains("main thread"));
    n.d.ctl_ok(&["dpif-netdev/pmd-stats-clear"]);
    let cleared = n.d.ctl_ok(&["dpif-netdev/pmd-stats-show"]);
    let after: u64 = cleared.lines().find_map(|l| l.trim().strip_prefix("packets received: ")).and_then(|v| v.parse().ok()).unwrap();
    assert!(after < received, "pmd-stats-clear did not clear: {cleared}");
    let rxq = n.d.ctl_ok(&["dpif-netdev/pmd-rxq-show"]);
    assert!(rxq.starts_with("Displaying last 60 seconds pmd usage %\npmd thread numa_id "), "{rxq}");
    assert!(rxq.contains(&format!("  port: {e3:<16}  queue-id:  0 (enabled)   pmd usage: ")), "{rxq}");

    // Two polling workers, e3's first queue pinned to the first one's CPU: that
    // worker polls it alone (isolated), the other everything else.
    let all = cpus();
    assert!(all.len() >= 2, "this test needs 2 CPUs (has {all:?})");
    let (a, b) = (all[0], *all.last().unwrap());
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", &format!("other_config:pmd-cpu-mask={}", mask_of_all(&[a, b]))]);
    n.d.ctl_ok(&["set", "Interface", &e3, &format!("other_config:pmd-rxq-affinity=0:{a}")]);
    let block = |cpu: usize| {
        let rxq = n.d.ctl_ok(&["dpif-netdev/pmd-rxq-show", "-pmd", &cpu.to_string()]);
        rxq.lines().skip(2).filter(|l| l.trim_start().starts_with("port:") || l.contains("isolated")).map(|l| l.trim().to_string()).collect::<Vec<_>>()
    };
    wait_until("the pinned queue", Duration::from_secs(10), || block(a).first().is_some_and(|l| l == "isolated : true"));
    let pinned = block(a);
    assert_eq!(pinned.len(), 2, "CPU {a}'s worker polls more than the pinned queue: {pinned:?}");
    assert!(pinned[1].starts_with(&format!("port: {e3:<16}  queue-id:  0 (enabled)")), "{pinned:?}");
    let rest = block(b);
    assert!(
        rest[0] == "isolated : false" && rest.iter().any(|l| l.contains(&t1)) && rest.iter().any(|l| l.starts_with(&format!("port: {e3:<16}  queue-id:  1"))),
        "{rest:?}"
    );
    assert!(vm3.ping_eventually("198.18.203.4", Duration::from_secs(10)), "with a pinned queue\n{}", n.d.log());
    n.d.ctl_ok(&["set", "Interface", &e3, "other_config:pmd-rxq-affinity=0:x"]);
    wait_until("the bad affinity logged", Duration::from_secs(10), || n.d.log().contains(&format!("invalid pmd-rxq-affinity format for port {e3}: 0:x")));
    n.d.ctl_ok(&["remove", "Interface", &e3, "other_config", "pmd-rxq-affinity"]);

    // A CPU the daemon may not use: refused, said so, forwarding goes on sleeping.
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x8000000000000000"]);
    wait_until("the refusal", Duration::from_secs(10), || workers(&n.d).contains("refused"));
    let w = workers(&n.d);
    assert!(w.starts_with("pmd-cpu-mask=0x8000000000000000 refused: CPU 63 is not one rvs-vswitchd may run on"), "{w}");
    assert!(w.contains("mode: sleeps when idle") && !w.contains("polling on"), "{w}");
    assert!(n.d.log().contains("pmd-cpu-mask=0x8000000000000000 refused"), "{}", n.d.log());
    assert!(vm1.ping_eventually("198.18.203.2", Duration::from_secs(10)));
    assert!(vm3.ping_eventually("198.18.203.4", Duration::from_secs(10)));

    // Without the key: sleeping workers again, the threads unpinned.
    n.d.ctl_ok(&["remove", "Open_vSwitch", ".", "other_config", "pmd-cpu-mask"]);
    wait_until("sleeping workers", Duration::from_secs(10), || !workers(&n.d).contains("refused"));
    assert!(n.d.ctl_ok(&["dpif-netdev/pmd-stats-show"]).starts_with("main thread:\n"));
    assert_eq!(n.d.ctl_ok(&["dpif-netdev/pmd-rxq-show"]), "Displaying last 60 seconds pmd usage %\n");
    assert!(vm3.ping_eventually("198.18.203.4", Duration::from_secs(10)));
}

#[test]
fn polling_workers_carry_vxlan() {
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    n1.tunnel_to(2, 6000);
    n2.tunnel_to(1, 6000);
    let cpu = last_cpu();
    for n in [&n1, &n2] {
        n.d.ctl_ok(&["set", "Open_vSwitch", ".", &format!("other_config:pmd-cpu-mask={}", mask_of(cpu))]);
        wait_until("a polling worker", Duration::from_secs(10), || workers(&n.d).contains(&format!("polling on CPU {cpu}")));
    }
    let (a, _) = n1.vm(Some(10), "198.18.204.1/24");
    let (b, _) = n2.vm(Some(10), "198.18.204.2/24");
    assert!(a.ping_eventually("198.18.204.2", Duration::from_secs(15)), "VXLAN between polling nodes\n{}\n{}", n1.d.log(), n2.d.log());
    let rxq = n1.d.ctl_ok(&["dpif-netdev/pmd-rxq-show"]);
    assert!(rxq.contains("  port: vxlan:4789"), "the tunnel endpoint is not polled: {rxq}");
    assert!(b.ping_eventually("198.18.204.1", Duration::from_secs(10)));
}
