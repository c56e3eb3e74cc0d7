//! Domain values as newtypes that cannot hold invalid values.
//!
//! Everything that crosses a module boundary inside rvs and has a range (a VLAN ID, a
//! VNI, a MAC address, a port number) is one of these types, so a function that takes a
//! `VlanId` never has to check that it is below 4096 again.

use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Reads a MAC address from the first six bytes of `b`.
    ///
    /// # Panics
    /// When `b` is shorter than six bytes; callers pass a slice of a checked view.
    #[inline]
    pub fn from_slice(b: &[u8]) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[..6]);
        MacAddr(m)
    }

    /// The group bit (I/G, the least significant bit of the first octet, IEEE 802-2014
    /// 8.2.2): set for multicast and broadcast destinations.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    #[inline]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// 01:80:c2:00:00:00 to 01:80:c2:00:00:0f: the IEEE 802.1D reserved range (STP BPDUs,
    /// pause frames, LACP, LLDP, 802.1X) that a bridge must not forward (802.1D-2004
    /// 7.12.6). OVS drops these unless `other_config:forward-bpdu=true`.
    #[inline]
    pub fn is_reserved(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] & 0xf0 == 0
    }

    /// The bytes as an array.
    #[inline]
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// A locally administered unicast address derived from `seed` (used for the MAC of
    /// devices rvs creates when none is configured).
    pub fn local_from_seed(seed: u64) -> MacAddr {
        let b = seed.to_be_bytes();
        MacAddr([(b[2] & 0xfc) | 0x02, b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error for a string that is not `xx:xx:xx:xx:xx:xx`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a valid MAC address")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;
    fn from_str(s: &str) -> Result<MacAddr, BadMac> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split(':') {
            if n == 6 || part.is_empty() || part.len() > 2 {
                return Err(BadMac(s.to_string()));
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| BadMac(s.to_string()))?;
            n += 1;
        }
        if n != 6 {
            return Err(BadMac(s.to_string()));
        }
        Ok(MacAddr(out))
    }
}

/// A VLAN number as a bridge sees it: 0..=4095.
///
/// smoltcp-style designs would use 1..=4094 (the values IEEE 802.1Q allows in a tag).
/// rvs follows OVS instead, because it must accept exactly what OVS accepts: the Port
/// `tag` and `trunks` columns range over 0..=4095, and VLAN 0 is the "no VLAN" domain that
/// untagged frames on a trunk port belong to (ovs-vswitchd.conf.db(5), Port table). A
/// priority-tagged frame (VID 0 in its tag) is therefore in VLAN 0 as well.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VlanId(u16);

impl VlanId {
    /// VLAN 0: untagged traffic.
    pub const NONE: VlanId = VlanId(0);
    /// The largest value a 12-bit VID can hold.
    pub const MAX: u16 = 4095;

    /// `Some` when `v` fits in 12 bits.
    #[inline]
    pub const fn new(v: u16) -> Option<VlanId> {
        if v <= Self::MAX { Some(VlanId(v)) } else { None }
    }

    /// The low 12 bits of a TCI.
    #[inline]
    pub const fn from_tci(tci: u16) -> VlanId {
        VlanId(tci & 0x0fff)
    }

    #[inline]
    pub const fn get(self) -> u16 {
        self.0
    }

    #[inline]
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vlan{}", self.0)
    }
}

/// A VXLAN Network Identifier: 24 bits (RFC 7348 section 5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct Vni(u32);

impl Vni {
    pub const MAX: u32 = 0x00ff_ffff;

    #[inline]
    pub const fn new(v: u32) -> Option<Vni> {
        if v <= Self::MAX { Some(Vni(v)) } else { None }
    }

    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An OpenFlow-style port number, as OVS shows in `Interface.ofport` and `fdb/show`.
///
/// Numbers 1..=65279 are ordinary ports; 65534 (`OFPP_LOCAL`) is the bridge's own
/// internal port, printed as `LOCAL`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct OfPort(u16);

impl OfPort {
    /// The bridge's local port (OpenFlow `OFPP_LOCAL`).
    pub const LOCAL: OfPort = OfPort(65534);
    /// Largest number an ordinary port may have (OpenFlow `OFPP_MAX`).
    pub const MAX: u16 = 65279;

    /// `Some` for 1..=65279 and for 65534.
    pub const fn new(v: u16) -> Option<OfPort> {
        if (v >= 1 && v <= Self::MAX) || v == 65534 { Some(OfPort(v)) } else { None }
    }

    #[inline]
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for OfPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == OfPort::LOCAL { f.write_str("LOCAL") } else { write!(f, "{}", self.0) }
    }
}

/// Longest Linux interface name: IFNAMSIZ (16) minus the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// Why a string cannot name a Linux network interface (see `dev_valid_name()` in the
/// kernel's net/core/dev.c).
pub fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("name is empty");
    }
    if name.len() > IFNAME_MAX {
        return Err("name is longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("name is . or ..");
    }
    if name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0) {
        return Err("name contains '/', ':' or whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_print() {
        let m: MacAddr = "02:AB:0c:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:0c:00:00:01");
        assert!("02:ab:0c:00:00".parse::<MacAddr>().is_err());
        assert!("02:ab:0c:00:00:01:02".parse::<MacAddr>().is_err());
        assert!("02:ab:0c:00:00:zz".parse::<MacAddr>().is_err());
        assert!("02:ab:0c:00::01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!("01:00:5e:00:00:01".parse::<MacAddr>().unwrap().is_multicast());
        assert!(!"02:00:00:00:00:01".parse::<MacAddr>().unwrap().is_multicast());
        assert!("01:80:c2:00:00:00".parse::<MacAddr>().unwrap().is_reserved());
        assert!("01:80:c2:00:00:0e".parse::<MacAddr>().unwrap().is_reserved());
        assert!(!"01:80:c2:00:00:10".parse::<MacAddr>().unwrap().is_reserved());
        let l = MacAddr::local_from_seed(0xdead_beef_1234);
        assert!(!l.is_multicast());
        assert_eq!(l.0[0] & 2, 2);
    }

    #[test]
    fn vlan_range() {
        assert!(VlanId::new(4095).is_some());
        assert!(VlanId::new(4096).is_none());
        assert_eq!(VlanId::from_tci(0xe00a).get(), 10);
    }

    #[test]
    fn vni_and_ofport() {
        assert!(Vni::new(0xff_ffff).is_some());
        assert!(Vni::new(0x100_0000).is_none());
        assert_eq!(OfPort::LOCAL.to_string(), "LOCAL");
        assert!(OfPort::new(0).is_none());
        assert!(OfPort::new(65280).is_none());
        assert_eq!(OfPort::new(7).unwrap().to_string(), "7");
    }

    #[test]
    fn ifnames() {
        assert!(check_ifname("vme001c42c68006").is_ok());
        assert!(check_ifname("vme001c42c680061").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("").is_err());
    }
}
