//! The per-frame forwarding decision ([`Bridge::process`]).

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
}

/// The output list of one decision. Reused across frames: allocate it once.
#[derive(Debug, Default)]
pub struct Actions {
    list: Vec<Egress>,
}

impl Actions {
    pub fn with_capacity(n: usize) -> Actions {
        Actions { list: Vec::with_capacity(n) }
    }

    #[inline]
    pub fn clear(&mut self) {
        self.list.clear();
    }

    #[inline]
    fn push(&mut self, e: Egress) {
        self.list.push(e);
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
    /// grouped by tag: the shell then changes the frame's tag at most twice.
    pub fn sort_by_tag(&mut self) {
        self.list.sort_unstable_by_key(|e| (e.tag.map_or(0, |v| v.get() + 1), e.port));
    }
}

/// The decision for one frame.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame belongs to `vlan` (priority `pcp` from its tag, 0 if untagged) and goes
    /// to every port in the [`Actions`] list. `flood` is false for known unicast.
    Forward { vlan: VlanId, pcp: u8, flood: bool },
    /// Dropped; nothing in the list.
    Drop(DropReason),
}

/// The fields of a frame the decision needs.
struct L2 {
    dst: MacAddr,
    src: MacAddr,
    vid: VlanId,
    pcp: u8,
}

#[inline]
fn parse_l2(frame: &[u8]) -> Option<L2> {
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

impl Bridge {
    /// Decides what happens to `frame`, received on `in_port` at `now`: learns its
    /// source and fills `out` with where copies go. `out` is cleared first.
    pub fn process(&mut self, now: Time, in_port: PortIdx, frame: &[u8], out: &mut Actions) -> Verdict {
        out.clear();
        let v = match self.decide(now, in_port, frame, out) {
            Ok(v) => v,
            Err(r) => Verdict::Drop(r),
        };
        if let Verdict::Drop(r) = v {
            self.drops.add(r);
            out.clear();
        }
        v
    }

    /// The port the MAC table has the source of `frame` on, in the VLAN the frame
    /// belongs to when received on `in_port` (a balance-slb bond's loop check,
    /// [`crate::bond::admit::slb_accept`]). Reads only.
    pub fn source_port(&self, in_port: PortIdx, frame: &[u8]) -> Option<PortIdx> {
        let l2 = parse_l2(frame)?;
        let vlan = self.ports.get(in_port as usize)?.vlan.input(l2.vid).ok()?;
        self.fdb.lookup(vlan, l2.src)
    }

    fn decide(&mut self, now: Time, in_port: PortIdx, frame: &[u8], out: &mut Actions) -> Result<Verdict, DropReason> {
        if self.cfg.fail_secure {
            return Err(DropReason::FailSecure);
        }
        let l2 = parse_l2(frame).ok_or(DropReason::Malformed)?;
        let inp = self.ports.get(in_port as usize).ok_or(DropReason::NoEgress)?;
        let vlan = inp.vlan.input(l2.vid)?;
        if l2.dst.is_reserved() && !self.cfg.forward_bpdu {
            return Err(DropReason::ReservedMulticast);
        }
        let (in_protected, in_tunnel) = (inp.protected, inp.tunnel);
        let learned = self.fdb.learn(now, vlan, l2.src, in_port);
        self.note(learned, vlan, l2.src, in_port, now);
        if let Learned::Moved(old) = learned {
            let from = self.ports.get(old as usize).map_or(u32::MAX, |p| p.key);
            self.flaps.moved(now, vlan, l2.src, from, self.ports[in_port as usize].key);
        }

        if !l2.dst.is_multicast()
            && let Some(p) = self.fdb.lookup(vlan, l2.dst)
        {
            let outp = &self.ports[p as usize];
            if outp.vlan.includes(vlan) {
                if p == in_port {
                    return Err(DropReason::Reflection);
                }
                if in_protected && outp.protected {
                    return Err(DropReason::Protected);
                }
                if in_tunnel && outp.tunnel && self.cfg.tunnel_split_horizon {
                    return Err(DropReason::SplitHorizon);
                }
                out.push(Egress { port: p, tag: outp.vlan.output_tag(vlan) });
                return Ok(Verdict::Forward { vlan, pcp: l2.pcp, flood: false });
            }
        }

        let split = in_tunnel && self.cfg.tunnel_split_horizon;
        for (i, p) in self.ports.iter().enumerate() {
            let i = i as PortIdx;
            if i == in_port || !p.vlan.includes(vlan) || (in_protected && p.protected) || (split && p.tunnel) {
                continue;
            }
            out.push(Egress { port: i, tag: p.vlan.output_tag(vlan) });
        }
        Ok(Verdict::Forward { vlan, pcp: l2.pcp, flood: true })
    }
}
