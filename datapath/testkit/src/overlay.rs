//! Overlay test topologies: an underlay switch (a Linux bridge in its own namespace)
//! and "nodes" attached to it with veths (underlay addresses 198.19.0.N/24), each
//! running its own rvs-vswitchd with bridge br0, VMs on taps.

use crate::*;

/// An underlay switch and nodes hanging off it.
pub struct Underlay {
    pub ns: Netns,
    pub br: String,
    pub mtu: u32,
}

impl Underlay {
    /// An underlay sized for VXLAN: 1600 bytes, so 1500-byte VM frames fit once
    /// encapsulated (see the README on sizing the underlay MTU).
    // No `Default`: this creates a namespace and a bridge, which a default should not.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Underlay {
        Underlay::with_mtu(1600)
    }

    pub fn with_mtu(mtu: u32) -> Underlay {
        require_root();
        let ns = Netns::new("ul");
        let br = unique("ubr");
        ns.sh(&format!("ip link add {br} type bridge && ip link set {br} up"));
        Underlay { ns, br, mtu }
    }

    /// Connects `node` with underlay address 198.19.0.`n`; returns the node-side device.
    pub fn attach(&self, node: &Netns, n: u8) -> String {
        let (a, b) = (unique("ua"), unique("ub"));
        sh(&format!("ip link add {a} netns {} mtu {m} type veth peer name {b} netns {} mtu {m}", node.name, self.ns.name, m = self.mtu));
        self.ns.sh(&format!("ip link set {b} master {} && ip link set {b} up", self.br));
        node.sh(&format!("ip addr add 198.19.0.{n}/24 dev {a} && ip link set {a} up"));
        a
    }
}

/// A node running rvs with bridge br0.
pub struct RvsNode {
    pub ns: Netns,
    pub d: Daemon,
    pub uplink: String,
    pub n: u8,
}

impl RvsNode {
    pub fn new(ul: &Underlay, n: u8) -> RvsNode {
        let ns = Netns::new(&format!("n{n}"));
        let uplink = ul.attach(&ns, n);
        let d = Daemon::start(&format!("n{n}"), Some(&ns.name));
        d.ctl_ok(&["add-br", "br0"]);
        RvsNode { ns, d, uplink, n }
    }

    /// A VXLAN port to node `peer` with VNI `key`.
    pub fn tunnel_to(&self, peer: u8, key: u32) -> String {
        let name = format!("vx{peer}");
        self.d.ctl_ok(&[
            "add-port",
            "br0",
            &name,
            "--",
            "set",
            "Interface",
            &name,
            "type=vxlan",
            &format!("options:remote_ip=198.19.0.{peer}"),
            &format!("options:key={key}"),
        ]);
        name
    }

    /// A VM on a tap with `tag` (None: untagged trunk) and address `addr`.
    pub fn vm(&self, tag: Option<u16>, addr: &str) -> (Netns, String) {
        let port = unique("vm");
        let mut args = vec!["add-port".to_string(), "br0".into(), port.clone()];
        if let Some(t) = tag {
            args.push(format!("tag={t}"));
        }
        args.extend(["--".into(), "set".into(), "Interface".into(), port.clone(), "type=tap".into()]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.d.ctl_ok(&a);
        let vm = Netns::new("vm");
        plug(Some(&self.ns), &port, &vm, addr);
        (vm, port)
    }

    pub fn ofport(&self, iface: &str) -> String {
        self.d.ctl_ok(&["get", "Interface", iface, "ofport"]).trim().to_string()
    }
}

/// Finds the fdb/show row for `mac`: (port, vlan).
pub fn fdb_row(node: &RvsNode, mac: &str) -> Option<(String, String)> {
    let t = node.d.ctl_ok(&["fdb/show", "br0"]);
    t.lines().find(|l| l.contains(mac)).map(|l| {
        let c: Vec<&str> = l.split_whitespace().collect();
        (c[0].to_string(), c[1].to_string())
    })
}
