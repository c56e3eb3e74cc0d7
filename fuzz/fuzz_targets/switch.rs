//! Frame parsing and the switch decision with invariant checks: arbitrary bytes into a
//! bridge of access, trunk and native ports must never panic, never send a copy back to
//! the ingress port, never send into a port that does not carry the frame's VLAN, and
//! never let the MAC table grow past its capacity, never forward between two protected
//! ports or from one tunnel port to another. The third control byte makes ports 1 and
//! 2 protected and ports 4 and 5 tunnels. Also feeds the same bytes through the tag
//! push/pop path of the packet buffer. Before each frame is processed it is traced
//! (`ofproto/trace`'s core): the trace must change nothing and predict exactly the
//! verdict and copies processing then gives.
#![no_main]

use rvs_switch::bridge::{Actions, Bridge, BridgeConfig, PortConfig, PortVlan, VlanMode, Verdict};
use rvs_switch::packet::PacketBuf;
use rvs_switch::time::Time;
use rvs_switch::types::VlanId;
use libfuzzer_sys::fuzz_target;

fn v(n: u16) -> VlanId {
    VlanId::new(n).unwrap()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (ctl, frame) = data.split_at(3);
    let bit = |n: u8| ctl[2] & (1 << n) != 0;
    let mut ports = vec![
        PortConfig::access(1, v(10)),
        PortConfig::access(2, v(20)),
        PortConfig { vlan: PortVlan::new(None, &[v(10), v(20)], None), ..PortConfig::trunk(3) },
        PortConfig { vlan: PortVlan::new(Some(v(10)), &[v(30)], Some(VlanMode::NativeUntagged)), ..PortConfig::trunk(4) },
        PortConfig::trunk(5),
    ];
    ports[0].protected = bit(0);
    ports[1].protected = bit(1);
    ports[3].tunnel = bit(2);
    ports[4].tunnel = bit(3);
    let cap = 16;
    let mut b = Bridge::new(BridgeConfig { mac_table_size: cap, ..BridgeConfig::default() }, ports);
    let mut a = Actions::default();
    let in_port = u16::from(ctl[0]) % 5;
    let now = Time::from_secs(u64::from(ctl[1]));
    // Several frames from the same bytes: chunks of the input, so learning happens.
    for (i, chunk) in frame.chunks(64.max(frame.len() / 4 + 1)).enumerate() {
        let port = (in_port + i as u16) % 5;
        let before = (b.fdb().entries(now), b.fdb().stats(), b.drops().clone());
        let t = b.trace(now, port, chunk);
        assert_eq!(before, (b.fdb().entries(now), b.fdb().stats(), b.drops().clone()), "a trace changed the bridge");
        let verdict = b.process(now, port, chunk, &mut a);
        assert_eq!(t.verdict, verdict, "trace and forwarding disagree");
        assert_eq!(t.outputs.as_slice(), a.as_slice(), "trace and forwarding send different copies");
        if let Verdict::Forward { vlan, .. } = verdict {
            for e in a.iter() {
                assert_ne!(e.port, port);
                let (from, to) = (&b.ports()[port as usize], &b.ports()[e.port as usize]);
                assert!(!(from.protected && to.protected), "protected to protected");
                assert!(!(from.tunnel && to.tunnel), "tunnel to tunnel (split horizon)");
                let p = &b.ports()[e.port as usize];
                assert!(p.vlan.includes(vlan));
                assert_eq!(e.tag, p.vlan.output_tag(vlan));
            }
        }
        assert!(b.fdb().len() <= cap);
    }
    let mut p = PacketBuf::from_frame(frame);
    if p.push_vlan(0x8100, 10) {
        assert_eq!(p.pop_vlan(), Some(10));
        assert_eq!(p.frame(), frame);
    }
});
