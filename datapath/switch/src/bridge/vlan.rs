//! Per-port VLAN policy, with Open vSwitch's semantics (ovs-vswitchd.conf.db(5), Port
//! table, "VLAN Configuration").
//!
//! * access (`tag=N`): untagged on the wire, VLAN N inside. A frame that arrives with a
//!   tag whose VID is not 0 is dropped, whatever the VID. Egress is untagged.
//! * trunk (`trunks=` list, empty = all VLANs): a frame is in the VLAN of its tag, or in
//!   VLAN 0 when untagged; VLANs not trunked are dropped. Egress is tagged unless VLAN 0.
//! * native-tagged / native-untagged (`tag` = native VLAN): like trunk, but untagged
//!   frames are in the native VLAN; egress in the native VLAN is tagged (native-tagged)
//!   or untagged (native-untagged). The native VLAN is always trunked and VLAN 0 never
//!   is, as OVS forces (ofproto-dpif's bundle_set).
//! * empty `vlan_mode`: access when `tag` is set (a `trunks` list is then ignored, as OVS
//!   logs), trunk otherwise.
//!
//! This module does no I/O and knows nothing about frames beyond a TCI.

use crate::bridge::DropReason;
use crate::types::VlanId;

/// The `vlan_mode` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanMode {
    Access,
    Trunk,
    NativeTagged,
    NativeUntagged,
}

impl VlanMode {
    /// Parses the column's value; `dot1q-tunnel` (QinQ) is not supported by rvs and
    /// yields `None`, like any unknown value.
    pub fn parse(s: &str) -> Option<VlanMode> {
        match s {
            "access" => Some(VlanMode::Access),
            "trunk" => Some(VlanMode::Trunk),
            "native-tagged" => Some(VlanMode::NativeTagged),
            "native-untagged" => Some(VlanMode::NativeUntagged),
            _ => None,
        }
    }
}

/// A set of VLANs as a 4096-bit bitmap.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet([u64; 64]);

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet([0; 64])
    }
}

impl std::fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries((0..=VlanId::MAX).filter(|&v| self.contains_raw(v))).finish()
    }
}

impl VlanSet {
    pub fn from_ids(ids: impl IntoIterator<Item = VlanId>) -> VlanSet {
        let mut s = VlanSet::default();
        for v in ids {
            s.insert(v);
        }
        s
    }

    pub fn insert(&mut self, v: VlanId) {
        let v = v.get() as usize;
        self.0[v / 64] |= 1 << (v % 64);
    }

    pub fn remove(&mut self, v: VlanId) {
        let v = v.get() as usize;
        self.0[v / 64] &= !(1 << (v % 64));
    }

    #[inline]
    pub fn contains(&self, v: VlanId) -> bool {
        self.contains_raw(v.get())
    }

    #[inline]
    fn contains_raw(&self, v: u16) -> bool {
        let v = v as usize;
        self.0[v / 64] & (1 << (v % 64)) != 0
    }
}

/// A port's effective VLAN policy, normalized from the Port columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortVlan {
    mode: VlanMode,
    /// Access VLAN, or native VLAN for the native modes (0 when `tag` is unset).
    vlan: VlanId,
    /// Trunked VLANs; `None` trunks all of them.
    trunks: Option<Box<VlanSet>>,
}

impl Default for PortVlan {
    /// A port with no VLAN configuration: a trunk of all VLANs (untagged = VLAN 0).
    fn default() -> Self {
        PortVlan { mode: VlanMode::Trunk, vlan: VlanId::NONE, trunks: None }
    }
}

impl PortVlan {
    /// Normalizes the Port columns `tag`, `trunks` and `vlan_mode` the way OVS does.
    pub fn new(tag: Option<VlanId>, trunks: &[VlanId], mode: Option<VlanMode>) -> PortVlan {
        let mode = mode.unwrap_or(if tag.is_some() { VlanMode::Access } else { VlanMode::Trunk });
        let vlan = match mode {
            VlanMode::Trunk => VlanId::NONE,
            _ => tag.unwrap_or(VlanId::NONE),
        };
        let trunks = match mode {
            VlanMode::Access => None,
            VlanMode::Trunk => (!trunks.is_empty()).then(|| Box::new(VlanSet::from_ids(trunks.iter().copied()))),
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                if vlan.is_none() {
                    (!trunks.is_empty()).then(|| Box::new(VlanSet::from_ids(trunks.iter().copied())))
                } else {
                    // Force trunking the native VLAN and never trunk VLAN 0.
                    let mut set = if trunks.is_empty() {
                        let mut all = VlanSet([u64::MAX; 64]);
                        all.remove(VlanId::NONE);
                        all
                    } else {
                        VlanSet::from_ids(trunks.iter().copied())
                    };
                    set.insert(vlan);
                    set.remove(VlanId::NONE);
                    Some(Box::new(set))
                }
            }
        };
        PortVlan { mode, vlan, trunks }
    }

    /// An access port in `vlan`.
    pub fn access(vlan: VlanId) -> PortVlan {
        PortVlan::new(Some(vlan), &[], None)
    }

    pub fn mode(&self) -> VlanMode {
        self.mode
    }

    /// The access or native VLAN.
    pub fn vlan(&self) -> VlanId {
        self.vlan
    }

    #[inline]
    fn trunks_vlan(&self, v: VlanId) -> bool {
        self.mode != VlanMode::Access && self.trunks.as_ref().is_none_or(|s| s.contains(v))
    }

    /// The VLAN a frame that arrived with tag VID `vid` (0 = untagged or priority
    /// tagged) belongs to, or why it is dropped.
    #[inline]
    pub fn input(&self, vid: VlanId) -> Result<VlanId, DropReason> {
        match self.mode {
            VlanMode::Access => {
                if vid.is_none() {
                    Ok(self.vlan)
                } else {
                    Err(DropReason::TaggedOnAccess)
                }
            }
            VlanMode::NativeTagged | VlanMode::NativeUntagged if vid.is_none() => Ok(self.vlan),
            _ => {
                if self.trunks_vlan(vid) {
                    Ok(vid)
                } else {
                    Err(DropReason::VlanNotAllowed)
                }
            }
        }
    }

    /// Whether frames in `vlan` may leave through this port.
    #[inline]
    pub fn includes(&self, vlan: VlanId) -> bool {
        match self.mode {
            VlanMode::Access => vlan == self.vlan,
            _ => self.trunks_vlan(vlan),
        }
    }

    /// The tag a frame in `vlan` carries when it leaves through this port: `None` for
    /// untagged. Only meaningful when [`PortVlan::includes`] holds.
    #[inline]
    pub fn output_tag(&self, vlan: VlanId) -> Option<VlanId> {
        let vid = match self.mode {
            VlanMode::Access => VlanId::NONE,
            VlanMode::Trunk | VlanMode::NativeTagged => vlan,
            VlanMode::NativeUntagged => {
                if vlan == self.vlan {
                    VlanId::NONE
                } else {
                    vlan
                }
            }
        };
        (!vid.is_none()).then_some(vid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u16) -> VlanId {
        VlanId::new(n).unwrap()
    }

    #[test]
    fn access_port() {
        let p = PortVlan::new(Some(v(10)), &[v(20)], None);
        assert_eq!(p.mode(), VlanMode::Access, "tag wins over trunks when vlan_mode is empty");
        assert_eq!(p.input(v(0)), Ok(v(10)));
        assert_eq!(p.input(v(10)), Err(DropReason::TaggedOnAccess));
        assert_eq!(p.input(v(20)), Err(DropReason::TaggedOnAccess));
        assert!(p.includes(v(10)));
        assert!(!p.includes(v(20)));
        assert!(!p.includes(v(0)));
        assert_eq!(p.output_tag(v(10)), None);
    }

    #[test]
    fn trunk_all() {
        let p = PortVlan::default();
        assert_eq!(p.input(v(0)), Ok(v(0)));
        assert_eq!(p.input(v(4095)), Ok(v(4095)));
        assert!(p.includes(v(0)));
        assert_eq!(p.output_tag(v(0)), None);
        assert_eq!(p.output_tag(v(7)), Some(v(7)));
    }

    #[test]
    fn trunk_list_drops_untagged_and_others() {
        let p = PortVlan::new(None, &[v(10), v(20)], None);
        assert_eq!(p.input(v(10)), Ok(v(10)));
        assert_eq!(p.input(v(30)), Err(DropReason::VlanNotAllowed));
        assert_eq!(p.input(v(0)), Err(DropReason::VlanNotAllowed));
        assert!(!p.includes(v(0)));
        assert!(p.includes(v(20)));
    }

    #[test]
    fn trunk_mode_ignores_tag() {
        let p = PortVlan::new(Some(v(5)), &[], Some(VlanMode::Trunk));
        assert_eq!(p.input(v(0)), Ok(v(0)));
        assert_eq!(p.output_tag(v(5)), Some(v(5)));
    }

    #[test]
    fn native_untagged() {
        let p = PortVlan::new(Some(v(42)), &[v(47)], Some(VlanMode::NativeUntagged));
        assert_eq!(p.input(v(0)), Ok(v(42)));
        assert_eq!(p.input(v(42)), Ok(v(42)), "native VLAN is trunked even if not listed");
        assert_eq!(p.input(v(47)), Ok(v(47)));
        assert_eq!(p.input(v(48)), Err(DropReason::VlanNotAllowed));
        assert_eq!(p.output_tag(v(42)), None);
        assert_eq!(p.output_tag(v(47)), Some(v(47)));
        assert!(!p.includes(v(0)), "VLAN 0 is never trunked on a native port");
    }

    #[test]
    fn native_tagged_all() {
        let p = PortVlan::new(Some(v(42)), &[], Some(VlanMode::NativeTagged));
        assert_eq!(p.input(v(0)), Ok(v(42)));
        assert_eq!(p.input(v(100)), Ok(v(100)));
        assert_eq!(p.output_tag(v(42)), Some(v(42)));
        assert!(!p.includes(v(0)));
    }

    #[test]
    fn access_without_tag_is_vlan0() {
        let p = PortVlan::new(None, &[], Some(VlanMode::Access));
        assert_eq!(p.input(v(0)), Ok(v(0)));
        assert!(p.includes(v(0)));
        assert_eq!(VlanMode::parse("dot1q-tunnel"), None);
    }
}
