//! Port mirroring (OVS's Mirror table): which extra copies of a frame the bridge sends,
//! decided beside the forwarding decision. No I/O; the shell sends the copies with the
//! other outputs and adds the frame to the statistics of the mirrors that used it
//! ([`Actions::mirrored`]).
//!
//! Semantics are those of OVS 3.1 (`ofproto/ofproto-dpif-xlate.c`, `mirror_packet`, and
//! `ofproto/ofproto-dpif-mirror.c`):
//! * a mirror selects frames received on its source ports (`select_src_port`, after the
//!   ingress port admitted their VLAN, whatever forwarding then decides) and frames the
//!   bridge sends out of its destination ports (`select_dst_port`); `select_all` makes
//!   every port both; `select_vlan`, if not empty, keeps only frames in those VLANs;
//! * the copy goes to the mirror's output port, tagged as a frame in that VLAN leaves
//!   that port (its VLAN mode; no check that the port carries the VLAN), or, for RSPAN
//!   (`output_vlan`), is flooded in the output VLAN to every port that carries it and is
//!   not a mirror output port — unless the frame is already in that VLAN or its
//!   destination is a reserved group address;
//! * a mirror output port takes no part in forwarding: frames received on it are
//!   dropped (before learning), flooding leaves it out, and known unicast to an address
//!   learned there is dropped ([`DropReason::MirrorPort`]);
//! * a frame is copied at most once per destination: mirrors with the same output
//!   (port, or VLAN) are duplicates, and once one of them copied the frame the others
//!   do not; each copy sent is itself an output, so the destination mirrors of the port
//!   it leaves from apply to it too (OVS's recursion, bounded: every step marks at least
//!   one more mirror done);
//! * `snaplen` truncates the copies the mirror sends ([`Egress::snap`]).
//!
//! At most [`MAX_MIRRORS`] mirrors per bridge (OVS's limit), so a frame's mirrors fit a
//! `u32` mask. With no mirror configured, the forwarding path pays one test of a bool.

use super::forward::{Actions, Egress};
use super::trace::{Observer, Skip};
use super::vlan::VlanSet;
use super::{Bridge, PortConfig, PortIdx};
use crate::types::VlanId;

/// OVS's MAX_MIRRORS.
pub const MAX_MIRRORS: usize = 32;

/// Where a mirror sends its copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOut {
    /// `output_port`: the port with this stable key.
    Port(u32),
    /// `output_vlan`: flooded in this VLAN (RSPAN).
    Vlan(VlanId),
}

/// One mirror as the core needs it; ports are named by their stable keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorConfig {
    /// Source ports (frames received there).
    pub srcs: Vec<u32>,
    /// Destination ports (frames sent there).
    pub dsts: Vec<u32>,
    /// `select_vlan`; `None` selects every VLAN.
    pub vlans: Option<Box<VlanSet>>,
    pub out: MirrorOut,
    /// Bytes kept of each copy; 0 keeps the whole frame.
    pub snaplen: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Port(PortIdx),
    Vlan(VlanId),
    /// Output port not on the bridge: the mirror selects nothing.
    None,
}

#[derive(Debug, Clone)]
struct Compiled {
    vlans: Option<Box<VlanSet>>,
    out: Out,
    /// This mirror and those with the same output.
    dup: u32,
    snaplen: u16,
}

/// A bridge's mirrors, compiled against its current ports.
#[derive(Debug, Clone, Default)]
pub(super) struct Mirrors {
    /// Any mirror configured: the one test the forwarding path makes.
    pub(super) active: bool,
    configs: Vec<MirrorConfig>,
    list: Vec<Compiled>,
    /// Per port index: the mirrors it is a source of, a destination of, the output of.
    src: Vec<u32>,
    dst: Vec<u32>,
    out: Vec<u32>,
}

impl Mirrors {
    /// Compiles `configs` for `ports`; mirror `i` is `configs[i]`. A mirror whose
    /// output port is not among them selects nothing (OVS: "outputs to port not on
    /// bridge"); source and destination ports not among them are ignored; mirrors past
    /// [`MAX_MIRRORS`] are left out.
    pub(super) fn compile(mut configs: Vec<MirrorConfig>, ports: &[PortConfig]) -> Mirrors {
        configs.truncate(MAX_MIRRORS);
        let n = ports.len();
        let idx = |key: u32| ports.iter().position(|p| p.key == key).map(|i| i as PortIdx);
        let mut m = Mirrors { src: vec![0; n], dst: vec![0; n], out: vec![0; n], ..Mirrors::default() };
        for (i, c) in configs.iter().enumerate() {
            let bit = 1u32 << i;
            let out = match c.out {
                MirrorOut::Port(k) => idx(k).map(Out::Port),
                MirrorOut::Vlan(v) => Some(Out::Vlan(v)),
            };
            m.list.push(Compiled { vlans: c.vlans.clone(), out: out.unwrap_or(Out::None), dup: bit, snaplen: c.snaplen });
            let Some(out) = out else { continue };
            for p in c.srcs.iter().filter_map(|&k| idx(k)) {
                m.src[p as usize] |= bit;
            }
            for p in c.dsts.iter().filter_map(|&k| idx(k)) {
                m.dst[p as usize] |= bit;
            }
            if let Out::Port(p) = out {
                m.out[p as usize] |= bit;
            }
            m.active = true;
        }
        // OVS's mirror_update_dups: mirrors with the same output are one destination.
        for i in 0..m.list.len() {
            for j in 0..m.list.len() {
                if m.list[i].out == m.list[j].out {
                    m.list[i].dup |= 1 << j;
                }
            }
        }
        m.configs = configs;
        m
    }

    /// Whether port `p` is some mirror's output port.
    #[inline]
    pub(super) fn is_output(&self, p: PortIdx) -> bool {
        self.out.get(p as usize).is_some_and(|&m| m != 0)
    }

    /// The configurations compiled (to compile again when the ports change).
    pub(super) fn configs(&self) -> &[MirrorConfig] {
        &self.configs
    }
}

/// What the frame looks like to the mirrors: its VLAN where it is seen, whether its
/// destination is a reserved group address.
struct Seen {
    reserved: bool,
}

/// The VLAN a frame in `vlan` is in as seen on port `p` after leaving it: OVS runs the
/// copy's tag back through the port's input rules (`input_vid_is_valid`,
/// `xvlan_input_translate`); `None` when the port would not admit it.
#[inline]
fn seen_on(p: &PortConfig, vlan: VlanId) -> Option<VlanId> {
    p.vlan.input(p.vlan.output_tag(vlan).unwrap_or(VlanId::NONE)).ok()
}

impl Bridge {
    /// Replaces the mirrors (ports named by stable key, as in [`PortConfig::key`]). The
    /// MAC table is kept.
    pub fn set_mirrors(&mut self, mirrors: Vec<MirrorConfig>) {
        self.mirrors = Mirrors::compile(mirrors, &self.ports);
    }

    /// Takes the mirror output ports out of a flood (OVS's `xlate_normal_flood`
    /// skips them), telling `obs`.
    #[cold]
    #[inline(never)]
    pub(super) fn unflood_mirror_outputs<O: Observer>(&self, out: &mut Actions, obs: &mut O) {
        out.retain(|e| {
            let keep = !self.mirrors.is_output(e.port);
            if !keep && O::WANTS_SKIPS {
                obs.skipped(e.port, Skip::MirrorOutput);
            }
            keep
        });
    }

    /// Adds the mirror copies of `frame`, received on `in_port`, to `out`, which holds
    /// the forwarding decision's outputs; returns the mask of mirrors that copied it.
    /// Nothing for a frame received on a mirror output port or not admitted in a VLAN
    /// (OVS mirrors neither); everything else is mirrored on ingress even when
    /// forwarding dropped it, as OVS mirrors before the NORMAL action.
    #[cold]
    #[inline(never)]
    pub(super) fn mirror<O: Observer>(&self, in_port: PortIdx, frame: &[u8], out: &mut Actions, obs: &mut O) -> u32 {
        if self.mirrors.is_output(in_port) {
            return 0;
        }
        let Some(l2) = super::forward::parse_l2(frame) else { return 0 };
        let Some(vlan) = self.ports.get(in_port as usize).and_then(|p| p.vlan.input(l2.vid).ok()) else { return 0 };
        let seen = Seen { reserved: l2.dst.is_reserved() };
        let (mut done, mut used) = (0u32, 0u32);
        self.mirror_packet(self.mirrors.src[in_port as usize], vlan, &seen, &mut done, &mut used, out, obs);
        let n = out.len();
        for i in 0..n {
            let e = out.as_slice()[i];
            if e.snap != 0 {
                continue; // a mirror copy: its recursion ran when it was added
            }
            let p = &self.ports[e.port as usize];
            if let Some(v) = seen_on(p, vlan) {
                self.mirror_packet(self.mirrors.dst[e.port as usize], v, &seen, &mut done, &mut used, out, obs);
            }
        }
        used
    }

    /// OVS's `mirror_packet`: the candidates `mask` for a frame in `vlan`, less those
    /// done, copied, each copy's destination mirrors applied in turn.
    #[allow(clippy::too_many_arguments)]
    fn mirror_packet<O: Observer>(&self, mask: u32, vlan: VlanId, seen: &Seen, done: &mut u32, used: &mut u32, out: &mut Actions, obs: &mut O) {
        let mut cand = mask & !*done;
        while cand != 0 {
            let i = cand.trailing_zeros() as usize;
            let m = &self.mirrors.list[i];
            if m.vlans.as_ref().is_some_and(|s| !s.contains(vlan)) {
                cand &= cand - 1;
                continue;
            }
            *used |= 1 << i;
            *done |= m.dup;
            match m.out {
                Out::Port(p) => self.mirror_to(i, p, vlan, m.snaplen, seen, done, used, out, obs),
                Out::Vlan(ov) if ov != vlan && !seen.reserved => {
                    for (j, p) in self.ports.iter().enumerate() {
                        let j = j as PortIdx;
                        if p.vlan.includes(ov) && !self.mirrors.is_output(j) {
                            self.mirror_to(i, j, ov, m.snaplen, seen, done, used, out, obs);
                        }
                    }
                }
                Out::Vlan(_) | Out::None => {}
            }
            cand &= !*done;
        }
    }

    /// One copy of mirror `i` to port `p`, for a frame in `vlan`; then the destination
    /// mirrors of `p` for it.
    #[allow(clippy::too_many_arguments)]
    fn mirror_to<O: Observer>(
        &self,
        i: usize,
        p: PortIdx,
        vlan: VlanId,
        snaplen: u16,
        seen: &Seen,
        done: &mut u32,
        used: &mut u32,
        out: &mut Actions,
        obs: &mut O,
    ) {
        let port = &self.ports[p as usize];
        let e = Egress { port: p, tag: port.vlan.output_tag(vlan), snap: if snaplen == 0 { u16::MAX } else { snaplen } };
        obs.mirrored(i, e);
        out.push(e);
        if let Some(v) = seen_on(port, vlan) {
            self.mirror_packet(self.mirrors.dst[p as usize], v, seen, done, used, out, obs);
        }
    }
}

#[cfg(test)]
mod tests;
