//! Frame parsing and the switch decision with invariant checks: arbitrary bytes into a
//! bridge of access, trunk and native ports must never panic, never send a copy back to
//! the ingress port, never send into a port that does not carry the frame's VLAN, and
//! never let the MAC table grow past its capacity, never forward between two protected
//! ports or from one tunnel port to another. The third control byte makes ports 1 and
//! 2 protected and ports 4 and 5 tunnels, and (bit 4) adds a mirror of every port to
//! the port its bits 5–6 name, or (bit 7 too) to RSPAN VLAN 30: forwarding then never
//! sends to that port nor takes frames from it, and the copies go once per port. Also feeds the same bytes through the tag
//! push/pop path of the packet buffer. Before each frame is processed it is traced
//! (`ofproto/trace`'s core): the trace must change nothing and predict exactly the
//! verdict and copies processing then gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_switch::bridge::{Actions, Bridge, BridgeConfig, MirrorConfig, MirrorOut, PortConfig, PortVlan, Verdict, VlanMode};
use rvs_switch::packet::PacketBuf;
use rvs_switch::time::Time;
use rvs_switch::types::VlanId;

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
    // The mirror's output port index, for a port mirror.
    let mirror_out = (bit(4) && !bit(7)).then(|| u16::from((ctl[2] >> 5) & 3) + 1);
    if bit(4) {
        let out = mirror_out.map_or(MirrorOut::Vlan(v(30)), |i| MirrorOut::Port(u32::from(i) + 1));
        b.set_mirrors(vec![MirrorConfig { srcs: vec![1, 2, 3, 4, 5], dsts: vec![1, 2, 3, 4, 5], vlans: None, out, snaplen: 0 }]);
    }
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
        let copies: Vec<(u16, Option<VlanId>)> = a.iter().filter(|e| e.is_mirror()).map(|e| (e.port, e.tag)).collect();
        let mut once = copies.clone();
        once.sort();
        once.dedup();
        assert_eq!(once.len(), copies.len(), "two copies to one port with one tag");
        if let Some(m) = mirror_out {
            assert!(copies.iter().all(|c| c.0 == m), "a copy elsewhere than the mirror port");
            if port == m {
                assert!(a.is_empty(), "the mirror port's input forwarded or mirrored");
            }
        }
        if let Verdict::Forward { vlan, .. } = verdict {
            for e in a.iter().filter(|e| !e.is_mirror()) {
                assert_ne!(Some(e.port), mirror_out, "forwarded to the mirror port");
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
