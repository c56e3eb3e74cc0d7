//! The per-frame forwarding decision ([`Bridge::process`]).

use super::trace::{NoObserver, Observer, Skip};
use super::{Bridge, DropReason, Learned, PortIdx};
use crate::time::Time;
use crate::types::{MacAddr, VlanId};
use crate::wire::{be16, ethernet, vlan};

/// One copy of the frame to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    pub port: PortIdx,
    /// The tag the copy leaves with; `None` = untagged.
    pub tag: Option<VlanId>,
    /// 0 for a forwarding output; for a mirror's copy ([`super::mirror`]), how many
    /// bytes of the frame it keeps (`u16::MAX`: all of them).
    pub snap: u16,
}

impl Egress {
    /// A forwarding output (not a mirror's copy).
    #[inline]
    pub fn to(port: PortIdx, tag: Option<VlanId>) -> Egress {
        Egress { port, tag, snap: 0 }
    }

    /// Whether this is a mirror's copy.
    #[inline]
    pub fn is_mirror(&self) -> bool {
        self.snap != 0
    }
}

/// The output list of one decision. Reused across frames: allocate it once.
#[derive(Debug, Default)]
pub struct Actions {
    list: Vec<Egress>,
    /// The mirrors that copied the frame (bit `i`: the `i`-th given to
    /// [`Bridge::set_mirrors`]), for the shell to count in their statistics.
    mirrored: u32,
}

impl Actions {
    pub fn with_capacity(n: usize) -> Actions {
        Actions { list: Vec::with_capacity(n), mirrored: 0 }
    }

    #[inline]
    pub fn clear(&mut self) {
        self.list.clear();
        self.mirrored = 0;
    }

    /// The mirrors that copied the frame: bit `i` for the `i`-th mirror given to
    /// [`Bridge::set_mirrors`]. 0 when no mirror is configured.
    #[inline]
    pub fn mirrored(&self) -> u32 {
        self.mirrored
    }

    #[inline]
    pub(super) fn push(&mut self, e: Egress) {
        self.list.push(e);
    }

    /// Keeps the copies `f` accepts.
    pub(super) fn retain(&mut self, f: impl FnMut(&Egress) -> bool) {
        self.list.retain(f);
    }

    #[inline]
    pub fn as_slice(&self) -> &[Egress] {
        &self.list
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Egress> {
        self.list.iter()
    }

    /// Orders the copies so that all untagged ones come first and tagged ones follow,
    /// grouped by tag: the shell then changes the frame's tag at most twice. Mirror
    /// copies to truncate (`snaplen`) come after all the others, longest first, so that
    /// the shell may cut the frame as it goes.
    pub fn sort_by_tag(&mut self) {
        // 0 for a whole frame; for a cut copy, smaller for a longer one.
        let cut = |e: &Egress| if e.snap == 0 || e.snap == u16::MAX { 0 } else { u16::MAX - e.snap };
        self.list.sort_unstable_by_key(|e| (cut(e), e.tag.map_or(0, |v| v.get() + 1), e.port));
    }
}

/// The decision for one frame.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame belongs to `vlan` (priority `pcp` from its tag, 0 if untagged) and goes
    /// to every port in the [`Actions`] list. `flood` is false for known unicast.
    Forward { vlan: VlanId, pcp: u8, flood: bool },
    /// Dropped: nothing in the list but mirror copies (a frame is mirrored as it was
    /// received even when forwarding drops it, as OVS does).
    Drop(DropReason),
}

/// The fields of a frame the decision needs.
/// What a gratuitous ARP does to learning ([`Bridge::grat_arp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GratArp {
    /// Not a gratuitous ARP: learn as usual.
    No,
    /// From a bond, not locked: learn as usual.
    Learn,
    /// From a port that is not a bond: learn, then lock the entry.
    Lock,
    /// From a bond while locked: do not learn.
    Locked,
}

pub(super) struct L2 {
    pub(super) dst: MacAddr,
    src: MacAddr,
    pub(super) vid: VlanId,
    pcp: u8,
}

#[inline]
pub(super) fn parse_l2(frame: &[u8]) -> Option<L2> {
    if frame.len() < ethernet::HEADER_LEN {
        return None;
    }
    let dst = MacAddr::from_slice(&frame[0..6]);
    let src = MacAddr::from_slice(&frame[6..12]);
    if be16(frame, vlan::TPID_OFFSET) == 0x8100 {
        if frame.len() < ethernet::HEADER_LEN + vlan::TAG_LEN {
            return None;
        }
        let tci = be16(frame, vlan::TPID_OFFSET + 2);
        return Some(L2 { dst, src, vid: VlanId::from_tci(tci), pcp: (tci >> 13) as u8 });
    }
    Some(L2 { dst, src, vid: VlanId::NONE, pcp: 0 })
}

/// A frame that passed admission: its fields, the VLAN it belongs to, and what the
/// decision needs of its ingress port.
pub(super) struct Admitted {
    l2: L2,
    pub(super) vlan: VlanId,
    in_protected: bool,
    in_tunnel: bool,
}

impl Admitted {
    pub(super) fn src(&self) -> MacAddr {
        self.l2.src
    }
}

impl Bridge {
    /// Decides what happens to `frame`, received on `in_port` at `now`: learns its
    /// source and fills `out` with where copies go. `out` is cleared first.
    pub fn process(&mut self, now: Time, in_port: PortIdx, frame: &[u8], out: &mut Actions) -> Verdict {
        self.process_observed(now, in_port, frame, out, &mut NoObserver)
    }

    /// [`Bridge::process`], telling `obs` each step. With [`NoObserver`] the calls
    /// compile away (the hot path); a trace uses [`Bridge::trace`] instead, which
    /// shares every step but learning.
    #[inline]
    pub fn process_observed<O: Observer>(&mut self, now: Time, in_port: PortIdx, frame: &[u8], out: &mut Actions, obs: &mut O) -> Verdict {
        out.clear();
        let v = match self.decide(now, in_port, frame, out, obs) {
            Ok(v) => v,
            Err(r) => Verdict::Drop(r),
        };
        if let Verdict::Drop(r) = v {
            self.drops.add(r);
            out.clear();
        }
        if self.mirrors.active {
            out.mirrored = self.mirror(in_port, frame, out, obs);
        }
        v
    }

    /// A balance-slb bond's loop check of `frame` received on `in_port` at `now`
    /// ([`crate::bond::admit::slb_accept`]: its source learned on another port, a
    /// gratuitous ARP, the entry's gratuitous-ARP lock). Reads only; a frame the check
    /// cannot place (malformed, VLAN not admitted) is left to [`Bridge::process`].
    pub fn slb_admits(&self, in_port: PortIdx, frame: &[u8], now: Time) -> bool {
        let Some(l2) = parse_l2(frame) else { return true };
        let Some(vlan) = self.ports.get(in_port as usize).and_then(|p| p.vlan.input(l2.vid).ok()) else { return true };
        let grat_arp = l2.dst.is_broadcast() && crate::bond::admit::is_gratuitous_arp(frame);
        let locked = grat_arp && self.fdb.grat_arp_locked(vlan, l2.src, now);
        crate::bond::admit::slb_accept(self.fdb.lookup(vlan, l2.src), in_port, grat_arp, locked)
    }

    #[inline]
    fn decide<O: Observer>(&mut self, now: Time, in_port: PortIdx, frame: &[u8], out: &mut Actions, obs: &mut O) -> Result<Verdict, DropReason> {
        let a = self.admit(in_port, frame, obs)?;
        // A flood VLAN learns nothing and looks nothing up (one `output` either way:
        // a second one inlined here made the forwarding path measurably slower).
        let flood = self.is_flood_vlan(a.vlan);
        if !flood {
            self.learn_source(now, in_port, &a, frame);
        }
        self.output(&a, in_port, out, obs, |v, m| if flood { None } else { self.fdb.lookup(v, m) })
    }

    /// Learns the admitted frame's source on `in_port` (OVS's update_learning_table).
    #[inline]
    fn learn_source(&mut self, now: Time, in_port: PortIdx, a: &Admitted, frame: &[u8]) {
        let (learned, lock) = match self.grat_arp(now, in_port, a, frame) {
            GratArp::Locked => (Learned::GratArpLocked, false),
            g => (self.fdb.learn(now, a.vlan, a.l2.src, in_port), g == GratArp::Lock),
        };
        if lock {
            self.fdb.lock_grat_arp(a.vlan, a.l2.src, now + super::GRAT_ARP_LOCK_MS);
        }
        self.note(learned, a.vlan, a.l2.src, in_port, now, lock);
        if let Learned::Moved(old) = learned {
            let from = self.ports.get(old as usize).map_or(u32::MAX, |p| p.key);
            self.flaps.moved(now, a.vlan, a.l2.src, from, self.ports[in_port as usize].key);
        }
    }

    /// Whether `frame` is a gratuitous ARP that locks its source's entry (received on a
    /// port that is not a bond) or may not move it (received on a bond while locked):
    /// OVS's update_learning_table__. Only broadcasts are looked at.
    #[inline]
    pub(super) fn grat_arp(&self, now: Time, in_port: PortIdx, a: &Admitted, frame: &[u8]) -> GratArp {
        if !a.l2.dst.is_broadcast() || !crate::bond::admit::is_gratuitous_arp(frame) {
            return GratArp::No;
        }
        if !self.ports[in_port as usize].bond {
            GratArp::Lock
        } else if self.fdb.grat_arp_locked(a.vlan, a.l2.src, now) {
            GratArp::Locked
        } else {
            GratArp::Learn
        }
    }

    /// Everything before learning: the bridge forwards at all, the frame is whole, its
    /// VLAN is admitted on the ingress port, its destination is not reserved.
    #[inline]
    pub(super) fn admit<O: Observer>(&self, in_port: PortIdx, frame: &[u8], obs: &mut O) -> Result<Admitted, DropReason> {
        if self.cfg.fail_secure {
            return Err(DropReason::FailSecure);
        }
        let l2 = parse_l2(frame).ok_or(DropReason::Malformed)?;
        obs.parsed(l2.src, l2.dst, l2.vid, l2.pcp);
        let inp = self.ports.get(in_port as usize).ok_or(DropReason::NoEgress)?;
        // OVS drops what a mirror output port receives before looking at its VLAN.
        if self.mirrors.active && self.mirrors.is_output(in_port) {
            return Err(DropReason::MirrorPort);
        }
        let vlan = inp.vlan.input(l2.vid)?;
        obs.admitted(vlan);
        if l2.dst.is_reserved() && !self.cfg.forward_bpdu {
            return Err(DropReason::ReservedMulticast);
        }
        Ok(Admitted { vlan, in_protected: inp.protected, in_tunnel: inp.tunnel, l2 })
    }

    /// Everything after learning: the destination looked up with `lookup` (the MAC
    /// table, or for a trace the table as learning would leave it), and the one port or
    /// the flooding set chosen.
    #[inline]
    pub(super) fn output<O: Observer>(
        &self,
        a: &Admitted,
        in_port: PortIdx,
        out: &mut Actions,
        obs: &mut O,
        lookup: impl Fn(VlanId, MacAddr) -> Option<PortIdx>,
    ) -> Result<Verdict, DropReason> {
        let (vlan, l2) = (a.vlan, &a.l2);
        let known = if l2.dst.is_multicast() { None } else { lookup(vlan, l2.dst) };
        obs.looked_up(l2.dst.is_multicast(), known);
        if let Some(p) = known {
            if self.mirrors.active && self.mirrors.is_output(p) {
                // OVS: "learned port is a mirror port, dropping".
                return Err(DropReason::MirrorPort);
            }
            let outp = &self.ports[p as usize];
            if outp.vlan.includes(vlan) {
                if p == in_port {
                    return Err(DropReason::Reflection);
                }
                if a.in_protected && outp.protected {
                    return Err(DropReason::Protected);
                }
                if a.in_tunnel && outp.tunnel && self.cfg.tunnel_split_horizon {
                    return Err(DropReason::SplitHorizon);
                }
                out.push(Egress::to(p, outp.vlan.output_tag(vlan)));
                return Ok(Verdict::Forward { vlan, pcp: l2.pcp, flood: false });
            }
            // Learned on a port that no longer carries the VLAN: flood, as OVS does.
        }

        let split = a.in_tunnel && self.cfg.tunnel_split_horizon;
        for (i, p) in self.ports.iter().enumerate() {
            let i = i as PortIdx;
            if i == in_port || !p.vlan.includes(vlan) || (a.in_protected && p.protected) || (split && p.tunnel) {
                // The reason is worked out only for an observer that wants it: the
                // forwarding loop stays the one test it always was.
                if O::WANTS_SKIPS {
                    obs.skipped(i, skip_reason(i == in_port, p.vlan.includes(vlan), a.in_protected && p.protected));
                }
                continue;
            }
            out.push(Egress::to(i, p.vlan.output_tag(vlan)));
        }
        // Mirror output ports are taken out after the loop, which stays the one it was
        // before mirroring (a test per port in it cost up to 60 % on 64 ports).
        if self.mirrors.active {
            self.unflood_mirror_outputs(out, obs);
        }
        Ok(Verdict::Forward { vlan, pcp: l2.pcp, flood: true })
    }
}

/// Why flooding left a port out, given that it did (split horizon when nothing else).
fn skip_reason(ingress: bool, carries: bool, both_protected: bool) -> Skip {
    if ingress {
        Skip::Ingress
    } else if !carries {
        Skip::NotInVlan
    } else if both_protected {
        Skip::Protected
    } else {
        Skip::SplitHorizon
    }
}
