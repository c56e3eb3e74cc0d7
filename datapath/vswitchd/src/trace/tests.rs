//! `ofproto/trace`'s flow syntax, argument forms, errors and printout.

use super::*;
use rvs_switch::bridge::{Bridge, BridgeConfig, PortConfig, PortVlan};
use rvs_switch::time::Time;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn v(n: u16) -> VlanId {
    VlanId::new(n).unwrap()
}

#[test]
fn flow_syntax() {
    let f = Flow::parse("in_port=p1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=10,dl_type=0x0806").unwrap();
    assert_eq!(f.in_port.as_deref(), Some("p1"));
    assert_eq!(f.vlan_tci, 0x100a);
    assert_eq!(f.dl_type, 0x0806);
    let f = Flow::parse("tcp,in_port=3,nw_src=198.18.0.1,nw_dst=198.18.0.2,tp_src=1000,tp_dst=80,vlan_tci=0x2014").unwrap();
    assert_eq!((f.dl_type, f.nw_proto, f.tp_dst, f.vlan_tci), (0x0800, 6, 80, 0x2014));
    assert_eq!(Flow::parse("eth_type=2048,eth_src=02:00:00:00:00:09").unwrap().dl_type, 0x0800);
    assert_eq!(Flow::parse("dl_vlan=0xffff").unwrap().vlan_tci, 0, "no 802.1Q header");
    assert_eq!(Flow::parse("dl_vlan=5,dl_vlan_pcp=3").unwrap().vlan_tci, 0x7005);
    // errors
    assert_eq!(Flow::parse("in_port=1,bogus=3").unwrap_err(), "in_port=1,bogus=3: unknown field bogus");
    assert_eq!(Flow::parse("dl_src").unwrap_err(), "field dl_src missing value");
    assert_eq!(Flow::parse("dl_src=zz").unwrap_err(), "zz: invalid Ethernet address");
    assert_eq!(Flow::parse("dl_vlan=4096").unwrap_err(), "4096: VLAN ID out of range (0 to 4095)");
    assert_eq!(Flow::parse("nw_src=1.2.3").unwrap_err(), "1.2.3: invalid IP address");
    assert_eq!(Flow::parse("in_port=1,in_port=2").unwrap_err(), "in_port=1,in_port=2: field in_port set multiple times");
    assert_eq!(Flow::parse("tp_src=70000").unwrap_err(), "70000: could not convert to 16-bit integer");
}

#[test]
fn frame_and_flow_round_trip() {
    let f = Flow::parse("udp,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,dl_vlan=20,nw_src=198.18.0.1,nw_dst=198.18.0.2,tp_src=5,tp_dst=6")
        .unwrap();
    let b = f.frame();
    assert_eq!(b.len(), 60);
    assert_eq!(Flow::of_frame(&b, f.in_port.clone()), f);
    let ip = etherparse::SlicedPacket::from_ethernet(&b).expect("a valid frame");
    assert!(matches!(ip.net, Some(etherparse::NetSlice::Ipv4(_))));
    assert_eq!(
        f.display(1),
        "udp,in_port=1,vlan_tci=0x1014,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=198.18.0.1,nw_dst=198.18.0.2,tp_src=5,tp_dst=6"
    );
    assert_eq!(Flow::default().display(2), "in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000");
}

#[test]
fn argument_forms_and_errors() {
    let r = parse_args(&args(&["br0", "in_port=1,dl_dst=02:00:00:00:00:02"])).unwrap();
    assert_eq!(r.bridge, "br0");
    assert_eq!(&r.frame[0..6], &[2, 0, 0, 0, 0, 2]);
    let hex = "ffffffffffff020000000001810000140800";
    let r = parse_args(&args(&["br0", "in_port=p1", hex])).unwrap();
    assert_eq!(r.flow.in_port.as_deref(), Some("p1"));
    assert_eq!(r.flow.vlan_tci, 0x1014);
    assert_eq!(r.frame.len(), 18);
    assert!(parse_args(&args(&["-generate", "br0", "in_port=1"])).is_ok());
    assert_eq!(parse_args(&args(&["br0", "in_port=1", "xyz"])).unwrap_err(), "Trace packet must be in hexadecimal format");
    assert_eq!(parse_args(&args(&["br0", "in_port=1", "ffff"])).unwrap_err(), "Trace packet is too short");
    assert_eq!(parse_args(&args(&["br0", "in_port=1,dl_src=1"])).unwrap_err(), "Bad openflow flow syntax: 1: invalid Ethernet address");
    assert_eq!(parse_args(&args(&["--bogus", "br0", "x"])).unwrap_err(), "--bogus: unknown option");
    assert_eq!(parse_args(&args(&["a", "b", "c", "d"])).unwrap_err(), "too many arguments");
    assert!(parse_args(&args(&["in_port=1"])).unwrap_err().ends_with("(or the bridge name was omitted)"));
}

fn ports() -> Vec<PortInfo> {
    let p =
        |name: &str, ofport, mode, vlan, tunnel: Option<&str>| PortInfo { name: name.into(), ofport, mode, vlan: v(vlan), tunnel: tunnel.map(String::from) };
    vec![
        p("vm1", 1, VlanMode::Access, 10, None),
        p("vm2", 2, VlanMode::Access, 10, None),
        p("up", 3, VlanMode::Trunk, 0, None),
        p("vx", 4, VlanMode::Access, 10, Some("key=42, remote_ip=198.18.0.2")),
    ]
}

fn bridge() -> Bridge {
    Bridge::new(
        BridgeConfig::default(),
        vec![
            PortConfig::access(1, v(10)),
            PortConfig::access(2, v(10)),
            PortConfig { vlan: PortVlan::new(None, &[v(10)], None), ..PortConfig::trunk(3) },
            PortConfig { tunnel: true, ..PortConfig::access(4, v(10)) },
        ],
    )
}

fn trace(b: &Bridge, flow: &str) -> String {
    let r = parse_args(&args(&["br0", flow])).unwrap();
    let port = r.flow.in_port.as_deref().unwrap().parse::<u16>().unwrap() - 1;
    format("br0", &r.flow, port, &ports(), &b.trace(Time::ZERO, port, &r.frame), false, &[])
}

#[test]
fn printout_flood_learn_tunnel() {
    let b = bridge();
    let s = trace(&b, "in_port=1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff");
    let expected = "Flow: in_port=1,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,dl_type=0x0000

bridge(\"br0\")
-------------
 0. priority 0
    NORMAL
     -> untagged frame on port vm1 is in VLAN 10
     -> learned that 02:00:00:00:00:01 is on port vm1 in VLAN 10
     -> multicast or broadcast destination, flooding
     -> output to port vm2 (untagged)
     -> output to port up (tagged VLAN 10)
     -> output to port vx (untagged)
     -> tunnel: VXLAN to key=42, remote_ip=198.18.0.2

Final flow: unchanged
Datapath actions: 2,4,push_vlan(vid=10,pcp=0),3
";
    assert_eq!(s, expected);
}

#[test]
fn printout_drops_and_known() {
    let mut b = bridge();
    let s = trace(&b, "in_port=1,dl_vlan=20,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02");
    assert!(s.contains("-> dropping VLAN 20 tagged packet received on port vm1 configured as VLAN 10 access port\n"), "{s}");
    assert!(s.ends_with("Datapath actions: drop\n"), "{s}");
    let s = trace(&b, "in_port=3,dl_vlan=30,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02");
    assert!(s.contains("-> dropping VLAN 30 packet received on port up not configured for trunking VLAN 30\n"), "{s}");
    let mut a = rvs_switch::bridge::Actions::default();
    let _ = b.process(Time::ZERO, 1, &Flow::parse("dl_src=02:00:00:00:00:02,dl_dst=ff:ff:ff:ff:ff:ff").unwrap().frame(), &mut a);
    let s = trace(&b, "in_port=3,dl_vlan=10,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02");
    assert!(s.contains("-> forwarding to learned port\n     -> output to port vm2 (untagged)\n"), "{s}");
    assert!(s.ends_with("Datapath actions: pop_vlan,2\n"), "{s}");
    let s = trace(&b, "in_port=2,dl_src=02:00:00:00:00:02,dl_dst=02:00:00:00:00:02");
    assert!(s.contains("already learned on port vm2") && s.contains("-> learned port is input port, dropping\n"), "{s}");
    let s = trace(&b, "in_port=4,dl_src=02:00:00:00:00:05,dl_dst=ff:ff:ff:ff:ff:ff");
    assert!(!s.contains("not flooding"), "only the ingress port is left out: {s}");
}
