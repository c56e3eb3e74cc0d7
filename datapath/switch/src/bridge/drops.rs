//! Why frames are dropped, and per-reason counters.
//!
//! A frame the core (or a port shell) refuses is never an error that unwinds a loop: it
//! is counted under one of these reasons and the loop goes on. `fdb/stats-show` and
//! `dpif/show` print the counters by name.

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header, or a truncated 802.1Q tag.
    Malformed = 0,
    /// Longer than the buffer or the egress can carry.
    Oversize,
    /// A frame with a nonzero VLAN tag on an access port.
    TaggedOnAccess,
    /// A VLAN the ingress port does not carry.
    VlanNotAllowed,
    /// The destination was learned on the ingress port: forwarding would reflect it.
    Reflection,
    /// IEEE 802.1D reserved group address (STP, LACP, LLDP, pause) not forwarded.
    ReservedMulticast,
    /// Both ingress and egress port are protected.
    Protected,
    /// Tunnel to tunnel, with split horizon on.
    SplitHorizon,
    /// Known unicast or flood found no port to go to.
    NoEgress,
    /// Received traffic above the port's ingress policing rate.
    Policed,
    /// The egress refused the frame (queue full, device gone) — counted per port too.
    TxFailed,
    /// The frame's offload metadata was inconsistent (bad GSO/checksum offsets).
    BadOffload,
    /// The bridge has `fail_mode=secure` and no controller: it forwards nothing.
    FailSecure,
    /// Received on a balance-slb bond with a source MAC learned on another port: it
    /// left through one member and came back through another (OVS's SLB rule).
    BondLoop,
    /// Sent above the egress port's QoS rate (rvs's own shaper, on ports whose frames
    /// no kernel qdisc sees): counted per port too (`tx_dropped`).
    Shaped,
    /// Received on a mirror's output port, or known unicast to an address learned
    /// there: a mirror output port takes no part in forwarding (OVS).
    MirrorPort,
}

impl DropReason {
    pub const ALL: [DropReason; 16] = [
        DropReason::Malformed,
        DropReason::Oversize,
        DropReason::TaggedOnAccess,
        DropReason::VlanNotAllowed,
        DropReason::Reflection,
        DropReason::ReservedMulticast,
        DropReason::Protected,
        DropReason::SplitHorizon,
        DropReason::NoEgress,
        DropReason::Policed,
        DropReason::TxFailed,
        DropReason::BadOffload,
        DropReason::FailSecure,
        DropReason::BondLoop,
        DropReason::Shaped,
        DropReason::MirrorPort,
    ];

    /// The name shown in counters output.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Oversize => "oversize",
            DropReason::TaggedOnAccess => "tagged_on_access_port",
            DropReason::VlanNotAllowed => "vlan_not_allowed",
            DropReason::Reflection => "reflection",
            DropReason::ReservedMulticast => "reserved_multicast",
            DropReason::Protected => "protected",
            DropReason::SplitHorizon => "split_horizon",
            DropReason::NoEgress => "no_egress",
            DropReason::Policed => "policed",
            DropReason::TxFailed => "tx_failed",
            DropReason::BadOffload => "bad_offload",
            DropReason::FailSecure => "fail_secure",
            DropReason::BondLoop => "bond_slb_loop",
            DropReason::Shaped => "shaped",
            DropReason::MirrorPort => "mirror_port",
        }
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    #[inline]
    pub fn add(&mut self, r: DropReason) {
        self.0[r as usize] += 1;
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// (name, count) for every reason, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r.name(), self.get(r)))
    }

    pub fn clear(&mut self) {
        self.0 = Default::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason() {
        let mut c = DropCounters::default();
        c.add(DropReason::Malformed);
        c.add(DropReason::Malformed);
        c.add(DropReason::BadOffload);
        assert_eq!(c.get(DropReason::Malformed), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.iter().count(), DropReason::ALL.len());
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
