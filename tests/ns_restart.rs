//! Restarts that VMs do not notice, as far as rvs carries them today: the taps rvs
//! creates are persistent, so across a stop (SIGTERM) or a crash (kill -9) of the daemon
//! a VM keeps its device, its addresses and its routes — also when the tap was moved
//! into the VM's namespace and renamed there — and the next daemon attaches to the same
//! devices (same ifindex) and forwards again; after a SIGTERM the MAC tables come back
//! too. A tap is deleted when its port is deleted.
//! The forwarding gap is measured by `benches/restart.sh`, not here. Root required.

use std::time::Duration;

use rvs_testkit::*;

fn ifindex(ns: &Netns, dev: &str) -> String {
    ns.sh(&format!("cat /sys/class/net/{dev}/ifindex")).trim().to_string()
}

#[test]
fn taps_and_their_vms_survive_restarts_and_go_with_their_port() {
    let n = Node::new("rst");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (t1, t2) = (unique("r1"), unique("r2"));
    let vm1 = n.vm("br0", &t1, &[], "198.18.201.1/24");
    let vm2 = n.vm("br0", &t2, &[], "198.18.201.2/24");
    // vm2's tap gets the name a guest would give it.
    vm2.sh(&format!("ip link set {t2} down && ip link set {t2} name eth0 && ip link set eth0 up && ip addr add 198.18.201.2/24 dev eth0 2>/dev/null; true"));
    assert!(vm1.ping_eventually("198.18.201.2", Duration::from_secs(10)), "{}", n.d.log());
    let (i1, i2, ib) = (ifindex(&vm1, &t1), ifindex(&vm2, "eth0"), ifindex(&n.ns, "br0"));
    let mac1 = mac_of(&vm1, &t1);
    // Quiet VMs, so that nothing relearns the MAC between the restart and fdb/show.
    for (vm, dev) in [(&vm1, t1.as_str()), (&vm2, "eth0")] {
        vm.sh(&format!("sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1 || true"));
    }

    for how in ["TERM", "KILL"] {
        let pid = n.d.pid().expect("pid");
        sh(&format!("kill -{how} {pid}"));
        wait_until("the daemon to exit", Duration::from_secs(10), || !std::path::Path::new(&format!("/proc/{pid}")).exists());
        // Stopped: the VMs still have their devices and addresses, without carrier.
        assert!(vm1.sh(&format!("ip -o addr show dev {t1}")).contains("198.18.201.1/24"), "vm1 lost its address on SIG{how}");
        assert!(vm2.sh("ip -o link show dev eth0").contains("NO-CARRIER"), "no one holds the tap, yet it has carrier");
        let out = n.d.try_start();
        assert!(out.status.success(), "restart after SIG{how}: {}", String::from_utf8_lossy(&out.stderr));
        // After SIGTERM the MAC tables come back before any traffic (after kill -9 they
        // are learned anew).
        if how == "TERM" {
            let fdb = n.d.ctl_ok(&["fdb/show", "br0"]);
            assert!(fdb.contains(&mac1), "the MAC table was not kept across SIGTERM: {fdb}\n{}", n.d.log());
        }
        assert!(vm1.ping_eventually("198.18.201.2", Duration::from_secs(10)), "no traffic after SIG{how}\n{}", n.d.log());
        assert!(!vm2.sh("ip -o link show dev eth0").contains("NO-CARRIER"));
        assert_eq!(
            (ifindex(&vm1, &t1), ifindex(&vm2, "eth0"), ifindex(&n.ns, "br0")),
            (i1.clone(), i2.clone(), ib.clone()),
            "devices were re-created, not reattached"
        );
        assert_eq!(n.d.ctl_ok(&["get", "Interface", &t2, "error"]).trim(), "[]");
        assert!(!n.ns.sh_ok(&format!("ip link show {t2}")), "a second tap {t2} was created in the node");
    }

    // Deleting the port deletes its tap, wherever it is.
    n.d.ctl_ok(&["del-port", "br0", &t2]);
    wait_until("vm2's tap to go", Duration::from_secs(10), || !vm2.sh_ok("ip link show eth0"));
    assert!(vm1.sh_ok(&format!("ip link show {t1}")));
}
