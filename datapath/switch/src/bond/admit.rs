//! Whether a frame received on a bond member is accepted, as Open vSwitch decides
//! (bond_check_admissibility in ofproto/bond.c and is_admissible in
//! ofproto-dpif-xlate.c, 3.1; the reasons are in OVS's Documentation/topics/bonding.rst):
//! * with LACP negotiated the partner knows the members form one link: everything is
//!   accepted on a member that is (or may be) enabled, nothing on the others;
//! * LACP configured but not negotiated: everything is dropped, unless
//!   `lacp-fallback-ab` (then as active-backup or SLB below); balance-tcp without LACP
//!   drops everything (it requires LACP);
//! * without LACP the upstream switch sees independent links and floods broadcast and
//!   multicast to all of them: such frames are accepted only on the active member
//!   (else each would come in once per member), unless `all-members-active`;
//! * active-backup accepts nothing on a backup member (as Linux bonding);
//! * balance-slb accepts unicast on any member, but a frame whose source MAC the
//!   bridge has learned on another port probably left by one member and came back on
//!   another: it is dropped and not learned ([`slb_accept`]) — except a gratuitous
//!   ARP (a VM that moved), unless the MAC's entry is locked because a gratuitous ARP
//!   was just learned from a port that is not a bond (OVS's 5-second grat-ARP lock).

use super::lacp::{LacpStatus, MemberId};
use super::select::{Bond, Mode};
use crate::types::MacAddr;

/// The bond's verdict on a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    Accept,
    Drop,
    /// Accept unless the source MAC is learned on another port ([`slb_accept`]).
    DropIfMoved,
}

impl Bond {
    /// The verdict on a frame to `dst` received on `member`. Reads only.
    pub fn admit(&self, member: MemberId, dst: MacAddr) -> Verdict {
        let Some(m) = self.members().get(member) else { return Verdict::Drop };
        let cfg = self.config();
        match self.lacp_status() {
            LacpStatus::Negotiated => return if m.enabled || m.may_enable { Verdict::Accept } else { Verdict::Drop },
            LacpStatus::Configured if !cfg.lacp_fallback_ab => return Verdict::Drop,
            LacpStatus::Off if cfg.mode == Mode::BalanceTcp => return Verdict::Drop,
            _ => {}
        }
        let is_active = self.active() == Some(member);
        if dst.is_multicast() && !is_active && !cfg.all_members_active {
            return Verdict::Drop;
        }
        match cfg.mode {
            Mode::BalanceTcp if !cfg.lacp_fallback_ab => Verdict::Drop,
            Mode::BalanceTcp | Mode::ActiveBackup => {
                if is_active {
                    Verdict::Accept
                } else {
                    Verdict::Drop
                }
            }
            Mode::BalanceSlb => Verdict::DropIfMoved,
        }
    }

    /// [`Bond::admit`] for a whole frame (its destination MAC).
    pub fn admit_frame(&self, member: MemberId, frame: &[u8]) -> Verdict {
        match frame.get(0..6) {
            Some(d) => self.admit(member, MacAddr::from_slice(d)),
            None => Verdict::Drop,
        }
    }
}

/// For [`Verdict::DropIfMoved`]: whether to accept a frame whose source MAC the MAC
/// table has on `learned` (`None`: not learned), received on the bond's port `bond`.
/// `grat_arp`: the frame is a gratuitous ARP ([`is_gratuitous_arp`]); `locked`: the
/// entry was learned from a gratuitous ARP on a non-bond port moments ago.
pub fn slb_accept<P: PartialEq>(learned: Option<P>, bond: P, grat_arp: bool, locked: bool) -> bool {
    match learned {
        Some(p) if p != bond => grat_arp && !locked,
        _ => true,
    }
}

/// A broadcast ARP reply, or a broadcast ARP request for the sender's own address:
/// how a VM announces that it moved (OVS's is_gratuitous_arp). 802.1Q tags skipped.
pub fn is_gratuitous_arp(frame: &[u8]) -> bool {
    let be16 = |at: usize| frame.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if frame.get(0..6) != Some(&[0xff; 6][..]) {
        return false;
    }
    let mut off = 12;
    while matches!(be16(off), Some(0x8100 | 0x88a8)) {
        off += 4;
    }
    if be16(off) != Some(0x0806) {
        return false;
    }
    let arp = off + 2;
    match be16(arp + 6) {
        Some(2) => true,
        Some(1) => matches!((frame.get(arp + 14..arp + 18), frame.get(arp + 24..arp + 28)), (Some(s), Some(t)) if s == t),
        _ => false,
    }
}
