//! Which member of a bond carries a frame, as Open vSwitch's ofproto/bond.c (3.1):
//! * members are *enabled* when their carrier is up and LACP (if any) lets them
//!   ([`Bond::set_carrier`], [`Bond::set_may_enable`]), after `bond_updelay` going up
//!   and `bond_downdelay` going down (time passed in; [`Bond::poll_timeout`] says
//!   when a delay ends);
//! * **active-backup**: one active member carries everything; a member marked
//!   `bond-primary` is preferred when enabled, else the last active one (by MAC,
//!   `bond_active_slave`), else the first enabled one; when none is enabled, the one
//!   whose updelay ends first is taken at once;
//! * **balance-slb** and **balance-tcp**: each of 256 buckets ([`super::hash`]) is
//!   assigned to an enabled member; a bucket whose member is disabled moves to the
//!   next enabled member in turn; every `bond-rebalance-interval` (default 10 s, at
//!   least 1 s, 0 never) buckets move from the most to the least loaded member when
//!   that evens the load by more than OVS's thresholds ([`Bond::rebalance`]);
//!   balance-tcp carries nothing until LACP is negotiated; with `lacp-fallback-ab`, a
//!   bond whose LACP did not negotiate falls back to active-backup.
//!
//! [`Bond::output`] answers per frame, reading only: buckets are assigned in
//! [`Bond::run`], not on lookup (OVS assigns lazily: a bucket never used is dealt again when a
//! member comes up, [`Bond::account`] marks use), so the
//! datapath asks with `&Bond` and never allocates.

use super::hash::{self, BUCKETS, Policy};
use super::lacp::{LacpStatus, MemberId};
use crate::time::Time;
use crate::types::MacAddr;

/// Port `bond_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// OVS's default since 1.5.
    #[default]
    ActiveBackup,
    BalanceSlb,
    BalanceTcp,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "active-backup" => Some(Mode::ActiveBackup),
            "balance-slb" => Some(Mode::BalanceSlb),
            "balance-tcp" => Some(Mode::BalanceTcp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ActiveBackup => "active-backup",
            Mode::BalanceSlb => "balance-slb",
            Mode::BalanceTcp => "balance-tcp",
        }
    }
}

/// Default `other_config:bond-rebalance-interval`, ms.
pub const DEFAULT_REBALANCE_MS: u64 = 10_000;

/// A bond's settings (Port columns and `other_config`, read as OVS's bridge.c does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondConfig {
    pub name: String,
    pub mode: Mode,
    /// `other_config:rvs-bond-hash=l23` (balance-tcp only): hash by layer 2+3.
    pub l23: bool,
    pub updelay_ms: u64,
    pub downdelay_ms: u64,
    /// 0: never rebalance.
    pub rebalance_interval_ms: u64,
    pub lacp_fallback_ab: bool,
    /// `other_config:bond-primary` (active-backup or fallback only).
    pub primary: Option<String>,
    /// `other_config:all-members-active`: accept multicast on every SLB member.
    pub all_members_active: bool,
    /// `other_config:bond-hash-basis`.
    pub basis: u32,
    /// `other_config:bond-detect-mode=miimon`: the members' link is polled every this
    /// many milliseconds (`bond-miimon-interval`, 200 if unset or not positive); 0 in
    /// the default carrier mode.
    pub miimon_ms: u64,
}

impl BondConfig {
    /// The settings with OVS's defaults.
    pub fn new(name: &str, mode: Mode) -> BondConfig {
        BondConfig {
            name: name.into(),
            mode,
            l23: false,
            updelay_ms: 0,
            downdelay_ms: 0,
            rebalance_interval_ms: DEFAULT_REBALANCE_MS,
            lacp_fallback_ab: false,
            primary: None,
            all_members_active: false,
            basis: 0,
            miimon_ms: 0,
        }
    }

    /// The hash policy of the balancing modes.
    pub fn policy(&self) -> Option<Policy> {
        match self.mode {
            Mode::ActiveBackup => None,
            Mode::BalanceSlb => Some(Policy::SrcMacVlan),
            Mode::BalanceTcp if self.l23 => Some(Policy::L23),
            Mode::BalanceTcp => Some(Policy::L34),
        }
    }
}

/// One member as the bond sees it.
#[derive(Debug, Clone)]
pub struct BondMember {
    pub name: String,
    pub mac: MacAddr,
    /// May be chosen for frames.
    pub enabled: bool,
    /// LACP (or, without LACP, nothing) lets it carry traffic.
    pub may_enable: bool,
    pub carrier: bool,
    /// When a pending up- or downdelay ends.
    pub delay_expires: Option<Time>,
    /// Load of its buckets at the last rebalance (bytes, decaying).
    pub tx_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Bucket {
    pub member: Option<MemberId>,
    /// Frames went through it ([`Bond::account`]) since the buckets were reset: its
    /// member stays its member while enabled (OVS assigns a bucket at its first use).
    pub used: bool,
    /// Bytes sent recently (halved at each rebalance).
    pub tx_bytes: u64,
}

/// The bond's member selection.
#[derive(Debug, Clone)]
pub struct Bond {
    cfg: BondConfig,
    members: Vec<BondMember>,
    active: Option<MemberId>,
    active_mac: MacAddr,
    lacp: LacpStatus,
    /// [`BUCKETS`] entries in the balancing modes (and not falling back), else empty.
    buckets: Vec<Bucket>,
    next_rebalance: Time,
    /// Round-robin position for assigning buckets.
    rr: usize,
    /// Something changed that the datapath must see (OVS's bond_revalidate).
    changed: bool,
    /// The active member changed or a member was disabled: the shell should send
    /// learning frames (RARPs) for the bridge's MACs (SLB / active-backup).
    pub send_learning_packets: bool,
}

impl Bond {
    /// A bond of `members` (name, MAC), all disabled until [`Bond::run`]; `lacp` is
    /// `Off` for a bond without LACP. `last_active` is `bond_active_slave`.
    pub fn new(now: Time, cfg: BondConfig, members: &[(&str, MacAddr)], lacp: LacpStatus, last_active: MacAddr) -> Bond {
        let members = members
            .iter()
            .map(|&(name, mac)| BondMember {
                name: name.into(),
                mac,
                enabled: false,
                may_enable: lacp == LacpStatus::Off,
                carrier: false,
                delay_expires: None,
                tx_bytes: 0,
            })
            .collect();
        let mut b = Bond {
            cfg,
            members,
            active: None,
            active_mac: last_active,
            lacp,
            buckets: Vec::new(),
            next_rebalance: now,
            rr: 0,
            changed: true,
            send_learning_packets: false,
        };
        b.reset_buckets(now);
        b
    }

    pub fn config(&self) -> &BondConfig {
        &self.cfg
    }

    pub fn members(&self) -> &[BondMember] {
        &self.members
    }

    pub fn active(&self) -> Option<MemberId> {
        self.active
    }

    /// The active member's MAC (what `bond_active_slave` stores), zero if none.
    pub fn active_mac(&self) -> MacAddr {
        self.active_mac
    }

    pub fn lacp_status(&self) -> LacpStatus {
        self.lacp
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    pub fn next_rebalance(&self) -> Time {
        self.next_rebalance
    }

    pub fn set_carrier(&mut self, member: MemberId, up: bool) {
        if let Some(m) = self.members.get_mut(member) {
            m.carrier = up;
        }
    }

    /// LACP's verdict on a member (always true without LACP).
    pub fn set_may_enable(&mut self, member: MemberId, may: bool) {
        if let Some(m) = self.members.get_mut(member) {
            m.may_enable = may;
        }
    }

    /// LACP configured but not negotiated, with fallback: behave as active-backup.
    pub fn falling_back_to_ab(&self) -> bool {
        self.cfg.lacp_fallback_ab && self.cfg.mode != Mode::ActiveBackup && self.lacp == LacpStatus::Configured
    }

    /// Whether buckets are balanced by load (bond_is_balanced).
    pub fn is_balanced(&self) -> bool {
        self.cfg.rebalance_interval_ms != 0 && self.cfg.mode != Mode::ActiveBackup && !self.falling_back_to_ab()
    }

    fn reset_buckets(&mut self, now: Time) {
        if self.cfg.mode != Mode::ActiveBackup && !self.falling_back_to_ab() {
            self.buckets = vec![Bucket::default(); BUCKETS];
            self.next_rebalance = now + self.cfg.rebalance_interval_ms;
        } else {
            self.buckets = Vec::new();
        }
    }

    /// Applies link states, delays and the LACP status (bond_run); returns whether
    /// what the datapath sees changed.
    pub fn run(&mut self, now: Time, lacp: LacpStatus) -> bool {
        if self.lacp != lacp {
            self.lacp = lacp;
            self.changed = true;
            if self.falling_back_to_ab() || self.buckets.is_empty() {
                self.reset_buckets(now);
            }
        }
        let mut primary = None;
        let enabled_before = self.members.iter().filter(|m| m.enabled).count();
        for id in 0..self.members.len() {
            self.link_status_update(now, id);
            let m = &self.members[id];
            if self.cfg.mode == Mode::ActiveBackup && m.enabled && self.cfg.primary.as_deref() == Some(m.name.as_str()) {
                primary = Some(id);
            }
        }
        let active_ok = self.active.is_some_and(|a| self.members[a].enabled);
        if !active_ok || primary.is_some_and(|p| Some(p) != self.active) {
            self.choose_active(now);
        }
        let grew = self.members.iter().filter(|m| m.enabled).count() > enabled_before;
        self.assign_buckets(grew);
        std::mem::take(&mut self.changed)
    }

    fn link_status_update(&mut self, now: Time, id: MemberId) {
        let (up_delay, down_delay) = (self.cfg.updelay_ms, self.cfg.downdelay_ms);
        let m = &mut self.members[id];
        let up = m.carrier && m.may_enable;
        if (up == m.enabled) != m.delay_expires.is_none() {
            m.delay_expires = if up == m.enabled { None } else { Some(now + if up { up_delay } else { down_delay }) };
        }
        if m.delay_expires.is_some_and(|t| now >= t) {
            self.enable(id, up);
        }
    }

    fn enable(&mut self, id: MemberId, on: bool) {
        let m = &mut self.members[id];
        m.delay_expires = None;
        if m.enabled != on {
            m.enabled = on;
            self.changed = true;
            if !on {
                self.send_learning_packets = true;
            }
        }
    }

    /// bond_choose_member.
    fn choose(&self) -> Option<MemberId> {
        let ms = &self.members;
        let primary = self.cfg.primary.as_deref();
        ms.iter()
            .position(|m| m.enabled && primary == Some(m.name.as_str()))
            .or_else(|| ms.iter().position(|m| m.enabled && !self.active_mac.is_zero() && m.mac == self.active_mac))
            .or_else(|| ms.iter().position(|m| m.enabled))
            .or_else(|| (0..ms.len()).filter(|&i| ms[i].may_enable && ms[i].delay_expires.is_some()).min_by_key(|&i| ms[i].delay_expires))
    }

    fn choose_active(&mut self, _now: Time) {
        let old = self.active;
        self.active = self.choose();
        match self.active {
            Some(a) => {
                if !self.members[a].enabled {
                    // No member is enabled: skip the rest of this one's updelay.
                    self.enable(a, true);
                }
                self.send_learning_packets = true;
                if old != self.active {
                    self.active_mac = self.members[a].mac;
                    self.changed = true;
                }
            }
            None if old.is_some() => {
                self.active_mac = MacAddr::ZERO;
                self.changed = true;
            }
            None => {}
        }
    }

    /// Buckets without an enabled member go to the enabled members in turn. When
    /// members were enabled (`grew`), the buckets never used are dealt again over all
    /// enabled members (bucket `i` to the `i mod n`th): OVS leaves a bucket without a
    /// member until its first frame, which then gets an enabled member in turn, so a
    /// member that comes up before the traffic gets its share at once, not only at the
    /// next rebalance. A bucket in use stays where it is (its flows keep their member).
    fn assign_buckets(&mut self, grew: bool) {
        let enabled: Vec<MemberId> = (0..self.members.len()).filter(|&i| self.members[i].enabled).collect();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            let new = if grew && !b.used && !enabled.is_empty() {
                Some(enabled[i % enabled.len()])
            } else if b.member.is_none_or(|m| !self.members[m].enabled) {
                (!enabled.is_empty()).then(|| {
                    self.rr = (self.rr + 1) % enabled.len();
                    enabled[self.rr]
                })
            } else {
                continue;
            };
            if new != b.member {
                b.member = new;
                self.changed = true;
            }
        }
    }

    /// The earliest time [`Bond::run`] has something to do by itself (a delay ends).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.members.iter().filter_map(|m| m.delay_expires).min()
    }

    /// The bucket of a frame in VLAN `vlan`, in the balancing modes.
    pub fn bucket(&self, frame: &[u8], vlan: u16) -> Option<u8> {
        let p = self.cfg.policy()?;
        (!self.buckets.is_empty()).then(|| hash::bucket(p, frame, vlan, self.cfg.basis))
    }

    /// The member that transmits `frame` (in VLAN `vlan`), or `None` to drop it
    /// (choose_output_member). Reads only; never allocates.
    pub fn output(&self, frame: &[u8], vlan: u16) -> Option<MemberId> {
        let mut mode = self.cfg.mode;
        if self.lacp == LacpStatus::Configured {
            if !self.cfg.lacp_fallback_ab {
                return None;
            }
            mode = Mode::ActiveBackup;
        }
        match mode {
            Mode::ActiveBackup => self.active,
            Mode::BalanceTcp if self.lacp != LacpStatus::Negotiated => None,
            Mode::BalanceTcp | Mode::BalanceSlb => {
                let b = self.buckets.get(usize::from(self.bucket(frame, vlan)?))?;
                b.member.filter(|&m| self.members[m].enabled)
            }
        }
    }

    /// Counts `bytes` sent through `bucket` (bond_account): marks it used, and adds
    /// the bytes to its load for rebalancing.
    pub fn account(&mut self, bucket: u8, bytes: u64) {
        let balanced = self.is_balanced();
        if let Some(b) = self.buckets.get_mut(usize::from(bucket)) {
            b.used = true;
            if balanced {
                b.tx_bytes += bytes;
            }
        }
    }

    /// Moves buckets from the most to the least loaded enabled members when due
    /// (bond_rebalance); returns whether any moved.
    pub fn rebalance(&mut self, now: Time) -> bool {
        if !self.is_balanced() || now < self.next_rebalance {
            return false;
        }
        self.next_rebalance = now + self.cfg.rebalance_interval_ms;
        let moved = super::rebalance::run(&mut self.members, &mut self.buckets);
        for b in &mut self.buckets {
            b.tx_bytes /= 2;
        }
        if moved {
            self.changed = true;
        }
        moved
    }

    /// `bond/enable-member` / `bond/disable-member` (OVS's bond_enable_member): sets
    /// the member's state now, cancelling a pending delay. As in OVS this lasts until
    /// the next [`Bond::run`] sees the link disagree (then the up- or downdelay starts).
    pub fn set_enabled(&mut self, member: MemberId, on: bool) -> Result<(), &'static str> {
        if member >= self.members.len() {
            return Err("no such member");
        }
        self.enable(member, on);
        Ok(())
    }

    /// `bond/migrate` (OVS's bond_unixctl_migrate): moves hash bucket `bucket` (already
    /// masked to the bucket count) to `member` now, in a balance-slb bond only. The
    /// bucket then counts as used, so it stays there until rebalancing moves it.
    pub fn migrate(&mut self, bucket: u8, member: MemberId) -> Result<(), &'static str> {
        if self.cfg.mode != Mode::BalanceSlb {
            return Err("not an SLB bond");
        }
        let m = self.members.get(member).ok_or("no such member")?;
        if !m.enabled {
            return Err("cannot migrate to disabled member");
        }
        if let Some(b) = self.buckets.get_mut(usize::from(bucket)) {
            b.member = Some(member);
            b.used = true;
            self.changed = true;
        }
        Ok(())
    }

    /// `bond/set-active-member`: makes an enabled member active now.
    pub fn set_active(&mut self, member: MemberId) -> Result<(), &'static str> {
        let m = self.members.get(member).ok_or("no such member")?;
        if !m.enabled {
            return Err("cannot make disabled member active");
        }
        if self.active != Some(member) {
            self.active = Some(member);
            self.active_mac = m.mac;
            self.changed = true;
            self.send_learning_packets = true;
        }
        Ok(())
    }
}
