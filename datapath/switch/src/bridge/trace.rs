//! Why a frame goes where it goes: the forwarding decision observed step by step
//! (`ovs-appctl ofproto/trace`).
//!
//! [`Bridge::process`] and [`Bridge::trace`] run the same steps ([`Bridge::admit`] and
//! [`Bridge::output`] in `forward`), generic over an [`Observer`] told of each one. The
//! hot path passes [`NoObserver`], whose empty inline methods compile away. The two
//! differ only in learning: `process` learns the source, `trace` asks the MAC table what
//! learning would do ([`MacTable::would_learn`](super::MacTable::would_learn)) and looks
//! the destination up in the table as learning would leave it. A trace therefore
//! changes nothing — not the MAC table, not the drop counters, not the flap watch — and
//! predicts exactly what processing the same frame at the same time would do (a fuzz
//! target checks it).
//!
//! A trace allocates (it records what it saw); it is for the control plane, never per
//! forwarded frame.

use super::fdb::{Learned, WouldLearn};
use super::forward::{Actions, Egress, Verdict};
use super::{Bridge, PortIdx};
use crate::time::Time;
use crate::types::{MacAddr, VlanId};

/// Why the flooding step left a port out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The frame came in there.
    Ingress,
    /// The port does not carry the frame's VLAN.
    NotInVlan,
    /// Both ports are protected.
    Protected,
    /// Tunnel to tunnel with split horizon on.
    SplitHorizon,
    /// The port is a mirror's output port.
    MirrorOutput,
}

impl Skip {
    pub fn describe(self) -> &'static str {
        match self {
            Skip::Ingress => "ingress port",
            Skip::NotInVlan => "VLAN not carried",
            Skip::Protected => "protected to protected",
            Skip::SplitHorizon => "split horizon (tunnel to tunnel)",
            Skip::MirrorOutput => "mirror output port",
        }
    }
}

/// Told of each step of a forwarding decision. Every method does nothing by default.
pub trait Observer {
    /// Whether [`Observer::skipped`] is wanted: the flooding loop works out why it left
    /// a port out only then (a constant, so the forwarding path has no test for it).
    const WANTS_SKIPS: bool = false;

    /// The frame's addresses and the tag it carried (VLAN 0, priority 0 if none).
    #[inline(always)]
    fn parsed(&mut self, _src: MacAddr, _dst: MacAddr, _vid: VlanId, _pcp: u8) {}
    /// The ingress port admitted the frame into `vlan`.
    #[inline(always)]
    fn admitted(&mut self, _vlan: VlanId) {}
    /// The destination looked up: multicast (not looked up), or the port it was
    /// learned on, if any.
    #[inline(always)]
    fn looked_up(&mut self, _multicast: bool, _port: Option<PortIdx>) {}
    /// Flooding left `port` out.
    #[inline(always)]
    fn skipped(&mut self, _port: PortIdx, _why: Skip) {}
    /// Mirror `mirror` (its index in [`Bridge::set_mirrors`]) sent `copy`.
    #[inline(always)]
    fn mirrored(&mut self, _mirror: usize, _copy: Egress) {}
}

/// The observer of the forwarding path: sees nothing, costs nothing.
pub struct NoObserver;

impl Observer for NoObserver {}

/// Everything a trace saw, for the control plane to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceRecord {
    /// Source, destination, VID and PCP of the frame's tag, if it parsed.
    pub parsed: Option<(MacAddr, MacAddr, VlanId, u8)>,
    pub vlan: Option<VlanId>,
    /// What learning the source would do, if the frame got that far.
    pub learn: Option<WouldLearn>,
    /// `Some(multicast, port)` once the destination was looked up.
    pub lookup: Option<(bool, Option<PortIdx>)>,
    pub skipped: Vec<(PortIdx, Skip)>,
    /// Mirror copies: (mirror index, copy), in the order OVS makes them.
    pub mirrored: Vec<(usize, Egress)>,
}

impl Observer for TraceRecord {
    const WANTS_SKIPS: bool = true;

    fn parsed(&mut self, src: MacAddr, dst: MacAddr, vid: VlanId, pcp: u8) {
        self.parsed = Some((src, dst, vid, pcp));
    }
    fn admitted(&mut self, vlan: VlanId) {
        self.vlan = Some(vlan);
    }
    fn looked_up(&mut self, multicast: bool, port: Option<PortIdx>) {
        self.lookup = Some((multicast, port));
    }
    fn skipped(&mut self, port: PortIdx, why: Skip) {
        self.skipped.push((port, why));
    }
    fn mirrored(&mut self, mirror: usize, copy: Egress) {
        self.mirrored.push((mirror, copy));
    }
}

/// A whole trace: the steps, the verdict, and the copies that would be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub record: TraceRecord,
    pub verdict: Verdict,
    pub outputs: Vec<Egress>,
}

impl Bridge {
    /// What [`Bridge::process`] would do with `frame` received on `in_port` at `now`,
    /// changing nothing.
    pub fn trace(&self, now: Time, in_port: PortIdx, frame: &[u8]) -> Trace {
        let mut record = TraceRecord::default();
        let mut out = Actions::with_capacity(self.ports.len());
        let r = self.admit(in_port, frame, &mut record).and_then(|a| {
            let flood = self.is_flood_vlan(a.vlan);
            let w = match self.grat_arp(now, in_port, &a, frame) {
                super::forward::GratArp::Locked => WouldLearn { learned: Learned::GratArpLocked, evicts: None },
                _ => self.fdb().would_learn(now, a.vlan, a.src(), in_port),
            };
            // A flood VLAN learns nothing (no learning step to show).
            record.learn = (!flood).then_some(w);
            let src = (a.vlan, a.src());
            let fdb = self.fdb();
            // The table as learning would leave it: the source on the ingress port
            // (unless refused), the evicted entry gone.
            let lookup = |v: VlanId, m: MacAddr| {
                if flood || w.evicts == Some((v, m)) {
                    None
                } else if (v, m) == src && !matches!(w.learned, Learned::Refused | Learned::GratArpLocked) {
                    Some(in_port)
                } else {
                    fdb.lookup(v, m)
                }
            };
            self.output(&a, in_port, &mut out, &mut record, lookup)
        });
        let verdict = r.unwrap_or_else(Verdict::Drop);
        if matches!(verdict, Verdict::Drop(_)) {
            out.clear();
        }
        if self.mirrors.active {
            self.mirror(in_port, frame, &mut out, &mut record);
        }
        let outputs = out.as_slice().to_vec();
        Trace { record, verdict, outputs }
    }
}
