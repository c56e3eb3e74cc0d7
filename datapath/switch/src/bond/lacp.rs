//! LACP (IEEE 802.1AX) for one bond, as a sans-I/O state machine: LACPDUs and carrier
//! changes in, LACPDUs to send and "may this member carry traffic" out, time passed in
//! ([`Lacp::rx`], [`Lacp::tick`], [`Lacp::carrier`], [`Lacp::poll_timeout`]).
//!
//! It behaves as Open vSwitch's lib/lacp.c (3.1), which is a simplified 802.1AX, so
//! that an rvs bond and an OVS bond agree on every state:
//! * **Receive** ([`Status`]): a member is *current* while LACPDUs arrive (timeout 3×
//!   the transmit interval our own `lacp-time` asks for), then *expired* for 3 s (the
//!   partner is asked for fast PDUs), then *defaulted* (partner forgotten). A carrier
//!   change expires a current member (or any member of an active bond).
//! * **Periodic transmit**: every 1 s when the partner asked for a short timeout
//!   (its state's timeout bit), else every 30 s; at once when what we would say
//!   changed in a way 802.1AX calls "need to transmit" (port, key, system, priorities,
//!   activity, timeout, synchronization, aggregation). A passive bond sends nothing to
//!   a defaulted member, so two passive ends never start (802.1AX 5.4.1).
//! * **Selection** (OVS's `lacp_update_attached`): the lead member is the one with the
//!   best priority (system priority and ID of whichever end has the better one, then
//!   that end's port priority and number), preferring members that may be enabled and
//!   keeping to the partner system of a member already current and attached; members
//!   whose partner system or key differs from the lead's are detached — a member
//!   cabled to another switch does not carry traffic. A member whose partner is our
//!   own system (a loop) is never attached.
//! * **Mux**: an attached member is synchronized and collecting/distributing; it may
//!   carry traffic once its partner says it is synchronized too ([`Lacp::may_enable`]),
//!   or, with `lacp-fallback-ab`, while defaulted.
//!
//! Churn detection: OVS 3.1 has no churn machine (802.1AX 6.4.17); it counts expiries,
//! defaults and carrier changes (`lacp/show-stats`), and so does rvs ([`Stats`]).
//!
//! No I/O, no clock, no allocation except in configuration and [`Lacp::tick`]'s list
//! of PDUs to send.

use crate::time::Time;
use crate::types::MacAddr;
use crate::wire::lacp::{Info, LacpRepr, SlowProtocol, State, classify};

/// Transmit interval with a short (fast) timeout, ms.
pub const FAST_TX_MS: u64 = 1000;
/// Transmit interval with a long (slow) timeout, ms.
pub const SLOW_TX_MS: u64 = 30_000;
/// A partner is expired after this many transmit intervals without a PDU.
pub const RX_MULTIPLIER: u64 = 3;

/// Index of a member in its bond (the order the shell registered them).
pub type MemberId = usize;

/// The bond's LACP settings (Port `lacp`, `other_config:lacp-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LacpConfig {
    /// The port's name (`lacp/show`'s heading).
    pub name: String,
    /// `other_config:lacp-system-id`, else the bridge's MAC; never zero.
    pub system_id: MacAddr,
    /// `other_config:lacp-system-priority` (default 65534 in OVS's bridge.c).
    pub system_priority: u16,
    /// `lacp=active` (else passive).
    pub active: bool,
    /// `other_config:lacp-time=fast`.
    pub fast: bool,
    /// `other_config:lacp-fallback-ab=true`.
    pub fallback_ab: bool,
}

/// One member's LACP settings (Interface `other_config:lacp-port-id`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    pub name: String,
    /// `lacp-port-id`, else the OpenFlow port number.
    pub port_id: u16,
    /// `lacp-port-priority` (OVS's default 65535).
    pub port_priority: u16,
    /// `lacp-aggregation-key`; 0: the key is the first member's port id.
    pub key: u16,
}

/// The receive machine's state of a member (OVS's member_status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Partner information up to date.
    Current,
    /// Partner information out of date; waiting 3 s more before forgetting it.
    Expired,
    /// No partner.
    Defaulted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Expired => "expired",
            Status::Defaulted => "defaulted",
        }
    }
}

/// The bond's LACP status, as `bond/show` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LacpStatus {
    /// Some member is attached to an aggregator.
    Negotiated,
    /// LACP runs but nothing is negotiated.
    Configured,
    /// The bond has no LACP (`lacp=off` or unset).
    Off,
}

impl LacpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LacpStatus::Negotiated => "negotiated",
            LacpStatus::Configured => "configured",
            LacpStatus::Off => "off",
        }
    }
}

/// Counters of one member (`lacp/show-stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub tx_pdus: u32,
    pub rx_pdus: u32,
    pub rx_bad: u32,
    pub rx_marker: u32,
    pub link_expired: u32,
    pub link_defaulted: u32,
    pub carrier_changed: u32,
}

/// One member's state.
#[derive(Debug, Clone)]
pub struct Member {
    pub cfg: MemberConfig,
    pub status: Status,
    /// Attached to the bond's aggregator.
    pub attached: bool,
    pub carrier_up: bool,
    /// What the partner last said about itself.
    pub partner: Info,
    /// What the partner last said about us (or what we last sent): a difference
    /// from what we would say now means "need to transmit".
    ntt_actor: Info,
    tx_at: Time,
    rx_at: Time,
    pub stats: Stats,
}

/// A LACPDU to send on a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    pub member: MemberId,
    pub pdu: LacpRepr,
}

/// A link's priority for selection: (system priority, system, port priority, port)
/// of the better end; smaller is better.
type Priority = (u16, [u8; 6], u16, u16);

/// LACP of one bond.
#[derive(Debug, Clone)]
pub struct Lacp {
    cfg: LacpConfig,
    members: Vec<Member>,
    negotiated: bool,
    /// Selection must run again.
    update: bool,
}

impl Lacp {
    pub fn new(cfg: LacpConfig) -> Lacp {
        Lacp { cfg, members: Vec::new(), negotiated: false, update: true }
    }

    pub fn config(&self) -> &LacpConfig {
        &self.cfg
    }

    /// New settings (lacp_configure): a new system or fallback reruns selection.
    pub fn configure(&mut self, cfg: LacpConfig) {
        if cfg.system_id != self.cfg.system_id || cfg.system_priority != self.cfg.system_priority || cfg.fallback_ab != self.cfg.fallback_ab {
            self.update = true;
        }
        self.cfg = cfg;
    }

    /// Adds a member (returning its id) or updates the settings of member `id`
    /// (lacp_member_register). A new member starts defaulted; with an active bond,
    /// or a changed port/key, expired, so it asks its partner for fast PDUs.
    pub fn register(&mut self, now: Time, id: Option<MemberId>, cfg: MemberConfig) -> MemberId {
        let id = match id.filter(|&i| i < self.members.len()) {
            Some(i) => i,
            None => {
                self.members.push(Member {
                    cfg: MemberConfig { port_id: 0, port_priority: 0, key: 0, ..cfg.clone() },
                    status: Status::Defaulted,
                    attached: false,
                    carrier_up: false,
                    partner: Info::default(),
                    ntt_actor: Info::default(),
                    tx_at: Time::ZERO,
                    rx_at: Time::ZERO,
                    stats: Stats::default(),
                });
                self.update = true;
                self.members.len() - 1
            }
        };
        let m = &self.members[id];
        let changed = (m.cfg.port_id, m.cfg.port_priority, m.cfg.key) != (cfg.port_id, cfg.port_priority, cfg.key);
        self.members[id].cfg = cfg;
        if changed {
            self.update = true;
            if self.cfg.active || self.negotiated {
                self.set_expired(now, id);
            }
        }
        id
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.get(id)
    }

    pub fn status(&self) -> LacpStatus {
        if self.negotiated { LacpStatus::Negotiated } else { LacpStatus::Configured }
    }

    /// The aggregation key we send: the first member's key, else its port id.
    pub fn key(&self) -> Option<u16> {
        self.members.first().map(|m| if m.cfg.key != 0 { m.cfg.key } else { m.cfg.port_id })
    }

    fn set_expired(&mut self, now: Time, id: MemberId) {
        let m = &mut self.members[id];
        m.status = Status::Expired;
        m.partner.state = m.partner.state.with(State::TIMEOUT, true).with(State::SYNCHRONIZATION, false);
        m.rx_at = now + RX_MULTIPLIER * FAST_TX_MS;
    }

    fn set_defaulted(&mut self, id: MemberId) {
        let m = &mut self.members[id];
        m.partner = Info::default();
        m.status = Status::Defaulted;
        self.update = true;
    }

    /// A slow-protocols payload (the bytes after ethertype 0x8809) received on
    /// `member`. Returns whether the member may now carry traffic. PDUs that arrive
    /// while the member's carrier is down are dropped, as OVS does (a NIC that reports
    /// its link late).
    pub fn rx(&mut self, now: Time, member: MemberId, payload: &[u8]) -> bool {
        let fast = self.cfg.fast;
        let Some(m) = self.members.get_mut(member) else { return false };
        m.stats.rx_pdus += 1;
        let pdu = match classify(payload) {
            SlowProtocol::Lacp => match LacpRepr::parse_bytes(payload) {
                Ok(p) => p,
                Err(_) => {
                    m.stats.rx_bad += 1;
                    return false;
                }
            },
            SlowProtocol::Marker => {
                m.stats.rx_marker += 1;
                return false;
            }
            SlowProtocol::Other(_) => {
                m.stats.rx_bad += 1;
                return false;
            }
        };
        if !m.carrier_up {
            return false;
        }
        m.status = Status::Current;
        m.rx_at = now + RX_MULTIPLIER * if fast { FAST_TX_MS } else { SLOW_TX_MS };
        m.ntt_actor = pdu.partner;
        if m.partner != pdu.actor {
            m.partner = pdu.actor;
            self.update = true;
        }
        self.may_enable(member)
    }

    /// The member's carrier changed (lacp_member_carrier_changed).
    pub fn carrier(&mut self, now: Time, member: MemberId, up: bool) {
        let Some(m) = self.members.get(member) else { return };
        if m.status == Status::Current || self.cfg.active {
            self.set_expired(now, member);
        }
        let m = &mut self.members[member];
        if m.carrier_up != up {
            m.carrier_up = up;
            m.stats.carrier_changed += 1;
        }
    }

    /// May `member` send and receive traffic: attached, and its partner synchronized
    /// (or defaulted, with `lacp-fallback-ab`).
    pub fn may_enable(&self, member: MemberId) -> bool {
        self.members
            .get(member)
            .is_some_and(|m| m.attached && (m.partner.state.has(State::SYNCHRONIZATION) || (self.cfg.fallback_ab && m.status == Status::Defaulted)))
    }

    /// Whether a member's partner information is not defaulted.
    pub fn is_current(&self, member: MemberId) -> bool {
        self.members.get(member).is_some_and(|m| m.status != Status::Defaulted)
    }

    fn may_tx(&self, m: &Member) -> bool {
        m.carrier_up && (self.cfg.active || m.status != Status::Defaulted)
    }

    /// Runs the timers and selection, and returns the LACPDUs due (lacp_run).
    pub fn tick(&mut self, now: Time) -> Vec<Transmit> {
        for id in 0..self.members.len() {
            let m = &self.members[id];
            if now >= m.rx_at {
                match m.status {
                    Status::Current => {
                        self.set_expired(now, id);
                        self.members[id].stats.link_expired += 1;
                    }
                    Status::Expired => {
                        self.set_defaulted(id);
                        self.members[id].stats.link_defaulted += 1;
                    }
                    Status::Defaulted => {}
                }
            }
        }
        if self.update {
            self.update_attached();
        }
        let mut out = Vec::new();
        for id in 0..self.members.len() {
            if !self.may_tx(&self.members[id]) {
                continue;
            }
            let actor = self.actor(id);
            let m = &mut self.members[id];
            if now >= m.tx_at || !tx_equal(&actor, &m.ntt_actor) {
                m.ntt_actor = actor;
                m.stats.tx_pdus += 1;
                m.tx_at = now + if m.partner.state.has(State::TIMEOUT) { FAST_TX_MS } else { SLOW_TX_MS };
                out.push(Transmit { member: id, pdu: LacpRepr { actor, partner: m.partner, collector_max_delay: 0 } });
            }
        }
        out
    }

    /// When [`Lacp::tick`] must run next (lacp_wait); `None`: only on an event.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.update {
            return Some(Time::ZERO);
        }
        let tx = self.members.iter().filter(|m| self.may_tx(m)).map(|m| m.tx_at);
        let rx = self.members.iter().filter(|m| m.status != Status::Defaulted).map(|m| m.rx_at);
        tx.chain(rx).min()
    }

    /// What we say about ourselves on `id` (member_get_actor).
    pub fn actor(&self, id: MemberId) -> Info {
        let m = &self.members[id];
        let mut s = State(0)
            .with(State::ACTIVITY, self.cfg.active)
            .with(State::TIMEOUT, self.cfg.fast)
            .with(State::SYNCHRONIZATION, m.attached)
            .with(State::DEFAULTED, m.status == Status::Defaulted)
            .with(State::EXPIRED, m.status == Status::Expired)
            .with(State::AGGREGATION, self.members.len() > 1);
        if m.attached || !self.negotiated {
            s = s.with(State::COLLECTING, true).with(State::DISTRIBUTING, true);
        }
        Info {
            system_priority: self.cfg.system_priority,
            system: self.cfg.system_id,
            key: self.key().unwrap_or(0),
            port_priority: m.cfg.port_priority,
            port: m.cfg.port_id,
            state: s,
        }
    }

    /// The link's priority (member_get_priority): the information of whichever end
    /// has the better system priority (then the lower system ID), key and state left
    /// out; smaller is better.
    fn priority(&self, id: MemberId) -> Priority {
        let m = &self.members[id];
        let ours = (self.cfg.system_priority, self.cfg.system_id.0);
        let theirs = (m.partner.system_priority, m.partner.system.0);
        let i = if ours < theirs { self.actor(id) } else { m.partner };
        (i.system_priority, i.system.0, i.port_priority, i.port)
    }

    /// Selection (lacp_update_attached).
    fn update_attached(&mut self) {
        self.update = false;
        // A member that works now: current and attached, best priority.
        let mut lead: Option<(MemberId, bool, Priority)> = None;
        let mut lead_current: Option<MemberId> = None;
        for id in 0..self.members.len() {
            let m = &self.members[id];
            if m.status == Status::Current && m.attached {
                let pri = self.priority(id);
                if lead.is_none_or(|(_, _, lp)| pri < lp) {
                    lead = Some((id, true, pri));
                    lead_current = Some(id);
                }
            }
        }
        let current_partner = lead_current.map(|l| self.members[l].partner.system);
        for id in 0..self.members.len() {
            self.members[id].attached = false;
            let m = &self.members[id];
            if m.partner.system == self.cfg.system_id {
                // Loopback: the member is cabled to its own bond.
                continue;
            }
            if m.status == Status::Defaulted {
                self.members[id].attached = self.cfg.fallback_ab;
                continue;
            }
            let pri = self.priority(id);
            // Read while the member is detached, as OVS does (so always false): a
            // working lead found above is kept.
            let enable = self.may_enable(id);
            let attached = current_partner.is_none_or(|s| s == m.partner.system);
            self.members[id].attached = attached;
            if attached && lead.is_none_or(|(_, le, lp)| (enable && !le) || (enable == le && pri < lp)) {
                lead = Some((id, enable, pri));
            }
        }
        self.negotiated = lead.is_some();
        if let Some((l, _, _)) = lead {
            let (key, sys) = (self.members[l].partner.key, self.members[l].partner.system);
            let fallback = self.cfg.fallback_ab;
            for m in &mut self.members {
                if (fallback && m.status == Status::Defaulted) || m.partner.key != key || m.partner.system != sys {
                    m.attached = false;
                }
            }
        }
    }
}

/// Two actor informations that do not differ in a way that requires a PDU
/// (802.1AX 6.4.9's NTT conditions, as OVS's info_tx_equal).
fn tx_equal(a: &Info, b: &Info) -> bool {
    const BITS: u8 = State::ACTIVITY | State::TIMEOUT | State::SYNCHRONIZATION | State::AGGREGATION;
    (a.state.0 ^ b.state.0) & BITS == 0
        && a.port == b.port
        && a.port_priority == b.port_priority
        && a.key == b.key
        && a.system_priority == b.system_priority
        && a.system == b.system
}
