//! LACPDUs (IEEE 802.1AX-2008 5.4.2, formerly IEEE 802.3ad clause 43.4.2): the
//! Link Aggregation Control Protocol's frame, carried as a Slow Protocol (ethertype
//! 0x8809, subtype 1) to the Slow_Protocols_Multicast address 01:80:c2:00:00:02.
//!
//! The view here covers the 110 bytes after the ethertype:
//!
//! ```text
//! offset  size  field
//!      0     1  Subtype = 1 (LACP)
//!      1     1  Version Number = 1
//!      2     1  TLV_type = 1 (Actor Information)     3  Actor_Information_Length = 20
//!      4    15  Actor: system priority (2), system (6), key (2), port priority (2),
//!               port (2), state (1)
//!     19     3  Reserved
//!     22     1  TLV_type = 2 (Partner Information)  23  Partner_Information_Length = 20
//!     24    15  Partner: as the actor
//!     39     3  Reserved
//!     42     1  TLV_type = 3 (Collector Information) 43 Collector_Information_Length = 16
//!     44     2  CollectorMaxDelay (tens of microseconds)
//!     46    12  Reserved
//!     58     1  TLV_type = 0 (Terminator)            59  Terminator_Length = 0
//!     60    50  Reserved
//! ```
//!
//! Receive: [`LacpRepr::parse`] accepts a PDU whose subtype, actor and partner TLV
//! types and lengths are as above, and ignores the version, the collector TLV and the
//! reserved bytes — the checks Open vSwitch makes (lib/lacp.c), so rvs accepts what OVS
//! accepts; 802.1AX 5.4.2.1 itself says a receiver "shall not validate the Version
//! Number, TLV_type, or Reserved fields" beyond what is needed. Subtype 2 is the Marker
//! protocol (802.1AX 5.5), which rvs counts and does not answer, as OVS.
//!
//! Send: [`LacpRepr::emit`] writes all 110 bytes, reserved ones zero.

use super::{Truncated, be16, put_be16};
use crate::types::MacAddr;

/// Slow protocols ethertype (802.3 Annex 57A).
pub const ETHERTYPE: u16 = 0x8809;
/// Slow_Protocols_Multicast (802.3 Annex 57A.3): where LACPDUs are sent.
pub const DST_MAC: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02]);
/// Slow protocol subtype of LACP.
pub const SUBTYPE_LACP: u8 = 1;
/// Slow protocol subtype of the Marker protocol.
pub const SUBTYPE_MARKER: u8 = 2;
/// Length of a LACPDU after the ethertype.
pub const PDU_LEN: usize = 110;
/// Length of a whole LACP frame: Ethernet header and PDU.
pub const FRAME_LEN: usize = 14 + PDU_LEN;

mod field {
    use std::ops::Range;
    pub const SUBTYPE: usize = 0;
    pub const VERSION: usize = 1;
    pub const ACTOR_TLV: usize = 2;
    pub const ACTOR: Range<usize> = 4..19;
    pub const PARTNER_TLV: usize = 22;
    pub const PARTNER: Range<usize> = 24..39;
    pub const COLLECTOR_TLV: usize = 42;
    pub const COLLECTOR_DELAY: usize = 44;
    pub const TERMINATOR_TLV: usize = 58;
}

/// The actor or partner state octet (802.1AX 5.4.2.2, items s to ab).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct State(pub u8);

impl State {
    /// LACP_Activity: active (1) or passive (0).
    pub const ACTIVITY: u8 = 0x01;
    /// LACP_Timeout: short (1, fast) or long (0, slow) timeout.
    pub const TIMEOUT: u8 = 0x02;
    /// Aggregation: the link may be aggregated.
    pub const AGGREGATION: u8 = 0x04;
    /// Synchronization: the link is in the right aggregate.
    pub const SYNCHRONIZATION: u8 = 0x08;
    pub const COLLECTING: u8 = 0x10;
    pub const DISTRIBUTING: u8 = 0x20;
    /// Defaulted: the partner information is the administrative default.
    pub const DEFAULTED: u8 = 0x40;
    /// Expired: the receive machine is in the EXPIRED state.
    pub const EXPIRED: u8 = 0x80;

    pub const fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    #[must_use]
    pub const fn with(self, bit: u8, on: bool) -> State {
        if on { State(self.0 | bit) } else { State(self.0 & !bit) }
    }
}

impl std::fmt::Debug for State {
    /// The names OVS prints in `lacp/show` (" activity timeout …").
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [&str; 8] = ["activity", "timeout", "aggregation", "synchronized", "collecting", "distributing", "defaulted", "expired"];
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Actor or partner information (802.1AX 5.4.2.2): 15 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Info {
    pub system_priority: u16,
    pub system: MacAddr,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: State,
}

impl Info {
    fn parse(b: &[u8]) -> Info {
        Info {
            system_priority: be16(b, 0),
            system: MacAddr::from_slice(&b[2..8]),
            key: be16(b, 8),
            port_priority: be16(b, 10),
            port: be16(b, 12),
            state: State(b[14]),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        put_be16(b, 0, self.system_priority);
        b[2..8].copy_from_slice(&self.system.0);
        put_be16(b, 8, self.key);
        put_be16(b, 10, self.port_priority);
        put_be16(b, 12, self.port);
        b[14] = self.state.0;
    }
}

/// A checked view of a slow-protocols PDU (the bytes after the ethertype).
#[derive(Debug, Clone, Copy)]
pub struct LacpPdu<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> LacpPdu<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        LacpPdu { buffer }
    }

    /// Checks that all 110 bytes of a LACPDU are there.
    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        if buffer.as_ref().len() < PDU_LEN {
            return Err(Truncated);
        }
        Ok(LacpPdu { buffer })
    }

    pub fn subtype(&self) -> u8 {
        self.buffer.as_ref()[field::SUBTYPE]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// (TLV type, length) of the actor information.
    pub fn actor_tlv(&self) -> (u8, u8) {
        let b = self.buffer.as_ref();
        (b[field::ACTOR_TLV], b[field::ACTOR_TLV + 1])
    }

    pub fn partner_tlv(&self) -> (u8, u8) {
        let b = self.buffer.as_ref();
        (b[field::PARTNER_TLV], b[field::PARTNER_TLV + 1])
    }

    pub fn actor(&self) -> Info {
        Info::parse(&self.buffer.as_ref()[field::ACTOR])
    }

    pub fn partner(&self) -> Info {
        Info::parse(&self.buffer.as_ref()[field::PARTNER])
    }

    /// CollectorMaxDelay, in tens of microseconds.
    pub fn collector_max_delay(&self) -> u16 {
        be16(self.buffer.as_ref(), field::COLLECTOR_DELAY)
    }
}

/// What a slow-protocols payload is (by its first byte), for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowProtocol {
    Lacp,
    Marker,
    /// Another subtype (OAM, OSSP, …) or nothing at all.
    Other(Option<u8>),
}

/// The subtype of a slow-protocols payload.
pub fn classify(payload: &[u8]) -> SlowProtocol {
    match payload.first() {
        Some(&SUBTYPE_LACP) => SlowProtocol::Lacp,
        Some(&SUBTYPE_MARKER) => SlowProtocol::Marker,
        other => SlowProtocol::Other(other.copied()),
    }
}

/// Why a received LACPDU is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LacpError {
    #[error("LACPDU shorter than 110 bytes")]
    Truncated,
    #[error("slow protocol subtype {0} is not LACP")]
    NotLacp(u8),
    #[error("LACPDU with actor TLV {0:?} or partner TLV {1:?} other than (1, 20) and (2, 20)")]
    BadTlv((u8, u8), (u8, u8)),
}

impl From<Truncated> for LacpError {
    fn from(_: Truncated) -> LacpError {
        LacpError::Truncated
    }
}

/// A LACPDU's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LacpRepr {
    pub actor: Info,
    pub partner: Info,
    /// CollectorMaxDelay; OVS sends 0.
    pub collector_max_delay: u16,
}

impl LacpRepr {
    pub fn parse<T: AsRef<[u8]>>(pdu: &LacpPdu<T>) -> Result<LacpRepr, LacpError> {
        if pdu.subtype() != SUBTYPE_LACP {
            return Err(LacpError::NotLacp(pdu.subtype()));
        }
        if pdu.actor_tlv() != (1, 20) || pdu.partner_tlv() != (2, 20) {
            return Err(LacpError::BadTlv(pdu.actor_tlv(), pdu.partner_tlv()));
        }
        Ok(LacpRepr { actor: pdu.actor(), partner: pdu.partner(), collector_max_delay: pdu.collector_max_delay() })
    }

    /// Parses the bytes after the ethertype.
    pub fn parse_bytes(payload: &[u8]) -> Result<LacpRepr, LacpError> {
        LacpRepr::parse(&LacpPdu::new_checked(payload)?)
    }

    /// Writes the 110-byte PDU into the start of `b` (at least [`PDU_LEN`] long).
    pub fn emit(&self, b: &mut [u8]) -> Result<(), Truncated> {
        let b = b.get_mut(..PDU_LEN).ok_or(Truncated)?;
        b.fill(0);
        b[field::SUBTYPE] = SUBTYPE_LACP;
        b[field::VERSION] = 1;
        b[field::ACTOR_TLV..field::ACTOR_TLV + 2].copy_from_slice(&[1, 20]);
        self.actor.emit(&mut b[field::ACTOR]);
        b[field::PARTNER_TLV..field::PARTNER_TLV + 2].copy_from_slice(&[2, 20]);
        self.partner.emit(&mut b[field::PARTNER]);
        b[field::COLLECTOR_TLV..field::COLLECTOR_TLV + 2].copy_from_slice(&[3, 16]);
        put_be16(b, field::COLLECTOR_DELAY, self.collector_max_delay);
        b[field::TERMINATOR_TLV..field::TERMINATOR_TLV + 2].copy_from_slice(&[0, 0]);
        Ok(())
    }

    /// A whole frame: to Slow_Protocols_Multicast from `src` (the member's MAC),
    /// ethertype 0x8809, then the PDU.
    pub fn emit_frame(&self, src: MacAddr, b: &mut [u8; FRAME_LEN]) {
        b[0..6].copy_from_slice(&DST_MAC.0);
        b[6..12].copy_from_slice(&src.0);
        put_be16(b, 12, ETHERTYPE);
        self.emit(&mut b[14..]).expect("FRAME_LEN holds a PDU");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LACPDU laid out field by field after 802.1AX-2008 Figure 5-8: actor system
    /// 00:11:22:33:44:55 priority 32768, key 13, port 7 priority 255, state active,
    /// short timeout, aggregatable, in sync, collecting, distributing (0x3f); partner
    /// system 02:00:00:00:00:01 priority 65535, key 1, port 2 priority 32768, state
    /// 0x3d (long timeout); CollectorMaxDelay 5.
    #[rustfmt::skip]
    const FIXTURE: [u8; PDU_LEN] = [
        0x01, 0x01,                                     // subtype LACP, version 1
        0x01, 0x14,                                     // actor TLV, length 20
        0x80, 0x00,                                     // actor system priority
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55,             // actor system
        0x00, 0x0d,                                     // actor key
        0x00, 0xff,                                     // actor port priority
        0x00, 0x07,                                     // actor port
        0x3f,                                           // actor state
        0x00, 0x00, 0x00,                               // reserved
        0x02, 0x14,                                     // partner TLV, length 20
        0xff, 0xff,                                     // partner system priority
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // partner system
        0x00, 0x01,                                     // partner key
        0x80, 0x00,                                     // partner port priority
        0x00, 0x02,                                     // partner port
        0x3d,                                           // partner state
        0x00, 0x00, 0x00,                               // reserved
        0x03, 0x10,                                     // collector TLV, length 16
        0x00, 0x05,                                     // CollectorMaxDelay
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             // reserved (12)
        0x00, 0x00,                                     // terminator TLV
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // reserved (50)
    ];

    fn fixture_repr() -> LacpRepr {
        LacpRepr {
            actor: Info {
                system_priority: 32768,
                system: MacAddr([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
                key: 13,
                port_priority: 255,
                port: 7,
                state: State(0x3f),
            },
            partner: Info { system_priority: 65535, system: MacAddr([2, 0, 0, 0, 0, 1]), key: 1, port_priority: 32768, port: 2, state: State(0x3d) },
            collector_max_delay: 5,
        }
    }

    #[test]
    fn parse_fixture() {
        let r = LacpRepr::parse_bytes(&FIXTURE).unwrap();
        assert_eq!(r, fixture_repr());
        assert!(r.actor.state.has(State::SYNCHRONIZATION) && r.actor.state.has(State::TIMEOUT));
        assert!(!r.partner.state.has(State::TIMEOUT));
        assert_eq!(LacpPdu::new_checked(&FIXTURE[..]).unwrap().version(), 1);
    }

    #[test]
    fn emit_fixture() {
        let mut b = [0xaa; PDU_LEN + 4];
        fixture_repr().emit(&mut b).unwrap();
        assert_eq!(&b[..PDU_LEN], &FIXTURE[..]);
        assert_eq!(&b[PDU_LEN..], &[0xaa; 4], "nothing written past the PDU");
        assert_eq!(fixture_repr().emit(&mut [0; PDU_LEN - 1]), Err(Truncated));
    }

    #[test]
    fn frame() {
        let mut f = [0; FRAME_LEN];
        fixture_repr().emit_frame(MacAddr([2, 0, 0, 0, 0, 9]), &mut f);
        assert_eq!(&f[..14], &[0x01, 0x80, 0xc2, 0, 0, 2, 2, 0, 0, 0, 0, 9, 0x88, 0x09]);
        assert_eq!(&f[14..], &FIXTURE[..]);
    }

    /// A LACPDU frame captured (tcpdump) from Open vSwitch 3.1's userspace datapath,
    /// an active slow-timeout bond member whose partner is in sync with a fast timeout.
    #[rustfmt::skip]
    const FROM_OVS: [u8; FRAME_LEN] = [
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x02, 0x16, 0x5a, 0x3b, 0xb3, 0x89, 0x5a, 0x88, 0x09, 0x01, 0x01,
        0x01, 0x14, 0xff, 0xfe, 0xca, 0xed, 0x59, 0x97, 0x99, 0x49, 0x00, 0x01, 0xff, 0xff, 0x00, 0x02,
        0x3d, 0x00, 0x00, 0x00, 0x02, 0x14, 0xff, 0xfe, 0xf2, 0xe5, 0x79, 0x9e, 0xc3, 0x48, 0x00, 0x01,
        0xff, 0xff, 0x00, 0x02, 0x3f, 0x00, 0x00, 0x00, 0x03, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn ovs_frame_parses_and_reemits_byte_for_byte() {
        let r = LacpRepr::parse_bytes(&FROM_OVS[14..]).unwrap();
        assert_eq!(r.actor.system, MacAddr([0xca, 0xed, 0x59, 0x97, 0x99, 0x49]));
        assert_eq!((r.actor.system_priority, r.actor.key, r.actor.port_priority, r.actor.port), (65534, 1, 65535, 2));
        assert_eq!(format!("{:?}", r.actor.state), "activity aggregation synchronized collecting distributing");
        assert_eq!(format!("{:?}", r.partner.state), "activity timeout aggregation synchronized collecting distributing");
        let mut f = [0; FRAME_LEN];
        r.emit_frame(MacAddr::from_slice(&FROM_OVS[6..12]), &mut f);
        assert_eq!(f, FROM_OVS);
    }

    #[test]
    fn refusals() {
        assert_eq!(LacpRepr::parse_bytes(&FIXTURE[..PDU_LEN - 1]), Err(LacpError::Truncated));
        let mut m = FIXTURE;
        m[0] = SUBTYPE_MARKER;
        assert_eq!(LacpRepr::parse_bytes(&m), Err(LacpError::NotLacp(2)));
        assert_eq!(classify(&m), SlowProtocol::Marker);
        assert_eq!(classify(&FIXTURE), SlowProtocol::Lacp);
        assert_eq!(classify(&[]), SlowProtocol::Other(None));
        let mut t = FIXTURE;
        t[3] = 19;
        assert!(matches!(LacpRepr::parse_bytes(&t), Err(LacpError::BadTlv((1, 19), (2, 20)))));
        // What OVS ignores is ignored: version, collector TLV, reserved bytes.
        let mut v = FIXTURE;
        v[1] = 2;
        v[42] = 9;
        v[100] = 0xff;
        assert_eq!(LacpRepr::parse_bytes(&v).unwrap().actor, fixture_repr().actor);
    }

    #[test]
    fn state_names() {
        assert_eq!(format!("{:?}", State(0x3f)), "activity timeout aggregation synchronized collecting distributing");
        assert_eq!(format!("{:?}", State(0xc0)), "defaulted expired");
        assert_eq!(State(0).with(State::EXPIRED, true).with(State::EXPIRED, false), State(0));
    }

    proptest::proptest! {
        #[test]
        fn emit_parse_round_trip(a in proptest::array::uniform15(0u8..), p in proptest::array::uniform15(0u8..), d: u16) {
            let r = LacpRepr { actor: Info::parse(&a), partner: Info::parse(&p), collector_max_delay: d };
            let mut b = [0; PDU_LEN];
            r.emit(&mut b).unwrap();
            proptest::prop_assert_eq!(LacpRepr::parse_bytes(&b).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(0u8.., 0..200)) {
            let _ = LacpRepr::parse_bytes(&b);
            let _ = classify(&b);
        }
    }
}
