//! The control plane's side of bonds: for each bond Port, its LACP state machine and
//! member selection ([`rvs_switch::bond`]), driven as that module's docs say, and the
//! packet path's [`BondPort`] built over the members' open devices.
//!
//! [`Bonds::sync`] follows the plan (a bond is made anew when its settings, members or
//! their OpenFlow numbers change; its port is rebuilt, keeping the state, when a member
//! is reopened); [`Bonds::run`] runs every [`TICK`] on the control plane's timer and on
//! link events: carrier from the members' flags (`IFF_RUNNING`) and socket failures,
//! received LACPDUs, LACP's timers and the PDUs they send, selection, rebalancing; then
//! it publishes the new selection to the packet path. Nothing here runs per frame.
//!
//! After a failover of an active-backup or balance-slb bond without LACP, the bond
//! asks for learning packets ([`Bonds::take_learning`]): as OVS, one RARP per MAC the
//! bridge learned on its other ports, sent through the bond, so the switch upstream
//! moves those MACs to the member now in use at once.
//!
//! In `bond-detect-mode=miimon` the members' links are polled (MII, else ethtool's link
//! state) every `bond-miimon-interval` instead; delays and miimon wake the bonds when
//! due ([`Bonds::next_due`]), not only on the tick. LACP marker PDUs are counted, not
//! answered, as in OVS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rvs_ovsdb::view::{Interface, Port};
use rvs_ovsdb::{Datum, Db, Uuid};
use rvs_switch::bond::config::{bond_config, lacp_config, member_config, unknown_detect_mode};
use rvs_switch::bond::hash::{self, FlowKey, Policy};
use rvs_switch::bond::lacp::{Lacp, LacpStatus};
use rvs_switch::bond::select::{Bond, Mode};
use rvs_switch::bond::show;
use rvs_switch::time::{Clock, Time};
use rvs_switch::types::{MacAddr, OfPort, VlanId};
use rvs_switch::wire::lacp::{FRAME_LEN, SUBTYPE_LACP};
use rvs_sys::netdev;

use crate::plan::{BondSpec, Plan};
use crate::port::PortStats;
use crate::port::bond::{BondPort, BondShared, MemberIo, send_control};
use crate::reconcile::OpenIface;

/// How often bonds run without a link event: LACP's fast rate is one PDU a second,
/// its timeouts are whole seconds; carrier is also read on every link event.
pub const TICK: Duration = Duration::from_millis(250);

/// What a bond is made from, per member: (its interface, name, ofport, spec).
type MadeOf = Vec<(Uuid, String, u16, BondSpec)>;

/// One bond member as the control plane knows it.
struct MemberCtl {
    iface: Uuid,
    name: String,
    mac: MacAddr,
    /// The open device's serial ([`OpenIface::serial`]), 0 when not open.
    serial: u64,
    carrier: bool,
}

/// A bond whose upstream switch should relearn the bridge's MACs: RARPs for them go
/// out through `io` ([`rarp`]).
pub struct Learning {
    pub bridge: String,
    pub ofport: OfPort,
    pub io: Arc<BondPort>,
}

/// One bond.
pub struct BondCtl {
    pub name: String,
    bridge: String,
    /// What it was made from: (member interface, its name, its ofport, its spec).
    made_of: MadeOf,
    members: Vec<MemberCtl>,
    lacp: Option<Lacp>,
    bond: Bond,
    shared: Arc<BondShared>,
    /// The packet path's port.
    pub io: Arc<BondPort>,
    /// The bond port's own counters (the members count theirs on their interfaces).
    pub stats: Arc<PortStats>,
    /// Changes when [`BondCtl::io`] is rebuilt.
    pub serial: u64,
    /// The active member's MAC, as last written to `bond_active_slave`.
    written_active: Option<MacAddr>,
    /// In `bond-detect-mode=miimon`, when the members' links are polled next.
    next_mii: Time,
    /// Per member: the last LACPDU the partner sent (handed to a successor daemon).
    last_pdu: Vec<Option<Vec<u8>>>,
    /// Per member: LACPDUs a predecessor handed over, replayed at the first run.
    handed: Vec<Option<Vec<u8>>>,
}

/// Every bond, by Port UUID.
#[derive(Default)]
pub struct Bonds {
    clock: Clock,
    by_port: HashMap<Uuid, BondCtl>,
    serial: u64,
    /// From the daemon this one takes over from: each bond's members' last LACPDUs
    /// from the partner, by bond and member name ([`Bonds::lacp_handover`]); taken when
    /// the bond is made.
    pub handed: HashMap<String, HashMap<String, Vec<u8>>>,
    /// Notified by the packet path when a member receives a slow-protocols frame
    /// ([`Bonds::woken`]).
    wake: Arc<tokio::sync::Notify>,
}

impl Bonds {
    /// The bond of Port `port`, if it is one running.
    pub fn get(&self, port: &Uuid) -> Option<&BondCtl> {
        self.by_port.get(port)
    }

    /// Bonds in name order (what the appctl commands print).
    pub fn sorted(&self) -> Vec<&BondCtl> {
        let mut v: Vec<&BondCtl> = self.by_port.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn by_name_mut(&mut self, name: &str) -> Option<&mut BondCtl> {
        self.by_port.values_mut().find(|b| b.name == name)
    }

    /// For a successor daemon ([`crate::takeover::Offer`]): each LACP bond's members'
    /// last LACPDUs from the partner, by bond and member name.
    pub fn lacp_handover(&self) -> HashMap<String, HashMap<String, Vec<u8>>> {
        self.by_port
            .values()
            .map(|b| (b.name.clone(), b.members.iter().zip(&b.last_pdu).filter_map(|(m, p)| Some((m.name.clone(), p.clone()?))).collect()))
            .filter(|(_, m): &(String, HashMap<String, Vec<u8>>)| !m.is_empty())
            .collect()
    }

    /// Completes when a bond member received a slow-protocols frame (LACP) since the
    /// last time: the control plane then runs the bonds at once.
    pub fn woken(&self) -> impl std::future::Future<Output = ()> + 'static {
        let wake = self.wake.clone();
        async move { wake.notified().await }
    }

    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// Makes the bonds match `plan`, over the interfaces open now (`db` has their
    /// ofports). Returns whether any bond's port changed.
    pub fn sync(&mut self, plan: &Plan, db: &Db, open: &HashMap<Uuid, OpenIface>) -> bool {
        // (port, bridge, members)
        let mut groups: Vec<(Uuid, Uuid, MadeOf)> = Vec::new();
        for w in &plan.ifaces {
            let Some(spec) = &w.bond else { continue };
            if w.port_error.is_some() {
                continue;
            }
            let ofport = Interface::get(db, &w.iface).and_then(|i| i.ofport()).and_then(|o| u16::try_from(o).ok()).unwrap_or(0);
            let entry = (w.iface, w.name.clone(), ofport, spec.clone());
            match groups.iter_mut().find(|g| g.0 == w.port) {
                Some(g) => g.2.push(entry),
                None => groups.push((w.port, w.bridge, vec![entry])),
            }
        }
        let before = self.by_port.len();
        self.by_port.retain(|p, _| groups.iter().any(|g| g.0 == *p));
        let mut changed = before != self.by_port.len();
        for (port, bridge, made_of) in groups {
            let serials: Vec<u64> = made_of.iter().map(|m| open.get(&m.0).map_or(0, |o| o.serial)).collect();
            // A member that lost its device (ofport -1, read as 0) or got a new number
            // is the same bond: only other members or settings make a new one (and
            // start LACP again).
            let same = |a: &MadeOf| a.len() == made_of.len() && a.iter().zip(&made_of).all(|(x, y)| (x.0, &x.1, &x.3) == (y.0, &y.1, &y.3));
            let fresh = self.by_port.get(&port).is_none_or(|b| !same(&b.made_of));
            if !fresh && let Some(b) = self.by_port.get_mut(&port) {
                let now = self.clock.now();
                changed |= b.renumber(now, &made_of);
            }
            if fresh {
                let bridge_name = plan.bridge(&bridge).map(|b| b.name.clone()).unwrap_or_default();
                let now = self.clock.now();
                self.serial += 1;
                let mut b = BondCtl::new(now, db, port, &bridge_name, made_of, open, self.serial, self.wake.clone());
                if let Some(mut pdus) = self.handed.remove(&b.name) {
                    b.handed = b.members.iter().map(|m| pdus.remove(&m.name)).collect();
                }
                tracing::info!("bond {}: {} members, {}", b.name, b.members.len(), b.bond.config().mode.as_str());
                self.by_port.insert(port, b);
                changed = true;
            } else if let Some(b) = self.by_port.get_mut(&port)
                && b.members.iter().map(|m| m.serial).ne(serials.iter().copied())
            {
                self.serial += 1;
                b.rebuild(open, self.serial);
                changed = true;
            }
        }
        changed
    }

    /// One run of every bond (see the module docs). Returns the member interfaces whose
    /// socket failed, to be reopened.
    pub fn run(&mut self) -> Vec<Uuid> {
        let now = self.clock.now();
        let mut broken = Vec::new();
        for b in self.by_port.values_mut() {
            b.run(now, &mut broken);
        }
        broken
    }

    /// How long until some bond has something to do by itself before its next
    /// [`TICK`]: a member's up- or downdelay ends, miimon polls the links, LACP sends
    /// a PDU or a partner's information expires. The
    /// control plane runs the bonds then, so delays and miimon keep their own
    /// granularity rather than the tick's.
    pub fn next_due(&self) -> Option<Duration> {
        let now = self.clock.now();
        self.by_port
            .values()
            .filter_map(|b| {
                let mii = (b.bond.config().miimon_ms != 0).then_some(b.next_mii);
                [b.bond.poll_timeout(), mii, b.lacp.as_ref().and_then(Lacp::poll_timeout)].into_iter().flatten().min()
            })
            .min()
            .map(|t| Duration::from_millis(t.since(now)))
    }

    /// The bond's open members' smallest MTU into its port's counters (the worker's
    /// oversize check reads it there).
    pub fn refresh_mtus(&self, open: &HashMap<Uuid, OpenIface>) {
        for b in self.by_port.values() {
            let mtus = b.members.iter().filter_map(|m| open.get(&m.iface)).map(|o| o.stats.mtu.load(std::sync::atomic::Ordering::Relaxed));
            let mtu = mtus.filter(|&m| m > 0).min().unwrap_or(0);
            b.stats.mtu.store(mtu, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The bonds that should send learning packets now (OVS's
    /// bond_should_send_learning_packets: without LACP, or falling back to
    /// active-backup, in active-backup or balance-slb mode, with an active member).
    pub fn take_learning(&mut self) -> Vec<Learning> {
        let mut out = Vec::new();
        for b in self.by_port.values_mut() {
            let wanted = std::mem::take(&mut b.bond.send_learning_packets);
            let c = b.bond.config();
            let may = (b.lacp.is_none() && c.mode != Mode::BalanceTcp) || b.bond.falling_back_to_ab();
            if wanted
                && may
                && b.bond.active().is_some()
                && let Some(ofport) = b.ofport()
            {
                out.push(Learning { bridge: b.bridge.clone(), ofport, io: b.io.clone() });
            }
        }
        out
    }

    /// Writes each bond's active member to Port `bond_active_slave` when it changed;
    /// returns whether anything was written.
    pub fn write_status(&mut self, db: &mut Db) -> bool {
        let mut wrote = false;
        for (port, b) in &mut self.by_port {
            let mac = b.bond.active_mac();
            if b.written_active != Some(mac) {
                b.written_active = Some(mac);
                let d = if mac.is_zero() { Datum::set(vec![]) } else { Datum::string(&mac.to_string()) };
                db.set_col(Port::BOND_ACTIVE_SLAVE, port, d);
                wrote = true;
            }
        }
        wrote
    }

    /// `bond/show [PORT]`.
    pub fn bond_show(&self, port: Option<&str>) -> Option<String> {
        let now = self.clock.now();
        let all = self.sorted();
        let chosen: Vec<&&BondCtl> = all.iter().filter(|b| port.is_none_or(|p| p == b.name)).collect();
        if port.is_some() && chosen.is_empty() {
            return None;
        }
        Some(chosen.iter().map(|b| show::bond_show(&b.bond, now)).collect())
    }

    /// `lacp/show [PORT]` (`stats`: `lacp/show-stats`).
    pub fn lacp_show(&self, port: Option<&str>, stats: bool) -> Option<String> {
        let all = self.sorted();
        let chosen: Vec<&Lacp> = all.iter().filter(|b| port.is_none_or(|p| p == b.name)).filter_map(|b| b.lacp.as_ref()).collect();
        if port.is_some() && chosen.is_empty() {
            return None;
        }
        Some(chosen.iter().map(|l| if stats { show::lacp_show_stats(l) } else { show::lacp_show(l) }).collect())
    }

    /// `bond/list`: each bond's mode and members (by name; OVS lists them in hash
    /// order), tab-separated under OVS's header.
    /// The recirculation id column is always 0: rvs hashes balance-tcp without
    /// recirculation (OVS's userspace datapath shows the id it allocated).
    pub fn bond_list(&self) -> String {
        let mut s = String::from("bond\ttype\trecircID\tmembers\n");
        for b in self.sorted() {
            let mut names: Vec<&str> = b.members.iter().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            s.push_str(&format!("{}\t{}\t0\t{}\n", b.name, b.bond.config().mode.as_str(), names.join(", ")));
        }
        s
    }

    /// `bond/migrate PORT HASH MEMBER`: moves a balance-slb bond's hash bucket to a
    /// member, checking in OVS's order (bond, mode, hash, member, member enabled).
    /// `HASH` is decimal digits taken modulo the bucket count (OVS: `atoi & BOND_MASK`;
    /// no digits at all is bucket 0, as there).
    pub fn migrate(&mut self, port: &str, hash: &str, member: &str) -> Result<&'static str, &'static str> {
        let b = self.by_name_mut(port).ok_or("no such bond")?;
        if b.bond.config().mode != Mode::BalanceSlb {
            return Err("not an SLB bond");
        }
        if !hash.bytes().all(|c| c.is_ascii_digit()) {
            return Err("bad hash");
        }
        let bucket = hash.bytes().fold(0u8, |h, c| h.wrapping_mul(10).wrapping_add(c - b'0'));
        let id = b.members.iter().position(|m| m.name == member).ok_or("no such member")?;
        b.bond.migrate(bucket, id)?;
        tracing::info!("bond {}: hash {bucket} migrated to {member}", b.name);
        b.shared.publish(b.bond.clone());
        Ok("migrated")
    }

    /// `bond/set-active-member`, `bond/enable-member`, `bond/disable-member`:
    /// `enable` is `None` for the first. The reply text, or the error text.
    pub fn member_command(&mut self, port: &str, member: &str, enable: Option<bool>) -> Result<&'static str, &'static str> {
        let b = self.by_name_mut(port).ok_or("no such bond")?;
        let id = b.members.iter().position(|m| m.name == member).ok_or("no such member")?;
        let reply = match enable {
            None => {
                let before = b.bond.active();
                b.bond.set_active(id)?;
                if before == Some(id) {
                    "no change"
                } else {
                    tracing::info!("bond {}: active member is now {member}", b.name);
                    "done"
                }
            }
            Some(on) => {
                b.bond.set_enabled(id, on)?;
                if on { "enabled" } else { "disabled" }
            }
        };
        b.shared.publish(b.bond.clone());
        Ok(reply)
    }
}

/// The learning packet OVS sends for `mac` (compose_rarp): a broadcast RARP request
/// from `mac`, tagged with `tag` if the bond sends that VLAN tagged.
pub fn rarp(mac: MacAddr, tag: Option<VlanId>) -> Vec<u8> {
    let mut f = Vec::with_capacity(46);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac.0);
    if let Some(v) = tag {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.get().to_be_bytes());
    }
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, op 3 (reverse request);
    // sender and target hardware address `mac`, protocol addresses zero.
    f.extend_from_slice(&[0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3]);
    for _ in 0..2 {
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&[0; 4]);
    }
    f
}

/// `bond/hash MAC [VLAN] [BASIS]`: the bucket balance-slb gives the MAC.
pub fn hash_command(mac: &str, vlan: Option<&str>, basis: Option<&str>) -> Result<String, &'static str> {
    let vlan = match vlan {
        Some(v) => v.parse::<u32>().map_err(|_| "invalid vlan")?,
        None => 0,
    };
    let basis = match basis {
        Some(b) => b.parse::<u32>().map_err(|_| "invalid basis")?,
        None => 0,
    };
    let mac: MacAddr = mac.parse().map_err(|_| "invalid mac")?;
    let key = FlowKey { src: mac, ..FlowKey::default() };
    Ok(format!("{}", hash::hash(Policy::SrcMacVlan, &key, vlan as u16, basis) as u8))
}

impl BondCtl {
    #[allow(clippy::too_many_arguments)]
    fn new(
        now: Time,
        db: &Db,
        port: Uuid,
        bridge: &str,
        made_of: MadeOf,
        open: &HashMap<Uuid, OpenIface>,
        serial: u64,
        wake: Arc<tokio::sync::Notify>,
    ) -> BondCtl {
        let spec = made_of[0].3.clone();
        let name = spec.port_name.clone();
        let members: Vec<MemberCtl> = made_of
            .iter()
            .map(|(iface, n, _, _)| MemberCtl {
                iface: *iface,
                name: n.clone(),
                mac: netdev::hwaddr(n).map(MacAddr).unwrap_or(MacAddr::ZERO),
                serial: open.get(iface).map_or(0, |o| o.serial),
                carrier: false,
            })
            .collect();
        let oc = |k: &str| spec.other_config.get(k).map(String::as_str);
        let cfg = bond_config(&name, spec.bond_mode.as_deref(), spec.updelay, spec.downdelay, oc);
        if let Some(mode) = unknown_detect_mode(oc) {
            tracing::warn!("port {name}: unsupported bond-detect-mode {mode}, defaulting to carrier");
        }
        // OVS's default LACP system ID is the bridge's MAC.
        let bridge_mac = netdev::hwaddr(bridge).map(MacAddr).ok().filter(|m| !m.is_zero()).unwrap_or_else(|| members[0].mac);
        let mut lacp = lacp_config(&name, spec.lacp.as_deref(), made_of.len(), bridge_mac, oc).map(Lacp::new);
        if let Some(l) = &mut lacp {
            for (_, n, ofport, s) in &made_of {
                let mc = member_config(n, *ofport, |k| s.member_config.get(k).map(String::as_str));
                let _ = l.register(now, None, mc);
            }
        }
        let last_active = Port::get(db, &port).and_then(|p| p.bond_active_slave()).and_then(|m| m.parse::<MacAddr>().ok()).unwrap_or(MacAddr::ZERO);
        let named: Vec<(&str, MacAddr)> = members.iter().map(|m| (m.name.as_str(), m.mac)).collect();
        let status = lacp.as_ref().map_or(LacpStatus::Off, |l| l.status());
        let bond = Bond::new(now, cfg, &named, status, last_active);
        let shared = Arc::new(BondShared::new(bond.clone(), wake));
        let stats = Arc::new(PortStats::default());
        let io = Arc::new(BondPort::new(&name, member_ios(&members, open), shared.clone()));
        let n = members.len();
        BondCtl {
            name,
            bridge: bridge.into(),
            made_of,
            members,
            lacp,
            bond,
            shared,
            io,
            stats,
            serial,
            written_active: None,
            next_mii: now,
            last_pdu: vec![None; n],
            handed: Vec::new(),
        }
    }

    /// A new port over the members open now, the state kept.
    fn rebuild(&mut self, open: &HashMap<Uuid, OpenIface>, serial: u64) {
        for m in &mut self.members {
            m.serial = open.get(&m.iface).map_or(0, |o| o.serial);
            if let Ok(mac) = netdev::hwaddr(&m.name) {
                m.mac = MacAddr(mac);
            }
        }
        self.io = Arc::new(BondPort::new(&self.name, member_ios(&self.members, open), self.shared.clone()));
        self.serial = serial;
    }

    /// Takes the members' OpenFlow numbers from `made_of` (the same members), a
    /// member without one keeping its last; LACP's port ids follow. Returns whether
    /// any changed.
    fn renumber(&mut self, now: Time, made_of: &MadeOf) -> bool {
        let mut changed = false;
        for (id, new) in made_of.iter().enumerate() {
            let old = &mut self.made_of[id];
            if new.2 == 0 || new.2 == old.2 {
                continue;
            }
            old.2 = new.2;
            changed = true;
            if let Some(l) = &mut self.lacp {
                let _ = l.register(now, Some(id), member_config(&new.1, new.2, |k| new.3.member_config.get(k).map(String::as_str)));
            }
        }
        changed
    }

    /// The OpenFlow port the bridge knows the bond by: its lowest member's.
    pub fn ofport(&self) -> Option<OfPort> {
        self.made_of.iter().filter(|m| self.members.iter().any(|c| c.iface == m.0 && c.serial != 0)).filter_map(|m| OfPort::new(m.2)).min()
    }

    /// The first member interface (the bond's `iface` for the worker).
    pub fn first_iface(&self) -> Uuid {
        self.members[0].iface
    }

    fn run(&mut self, now: Time, broken: &mut Vec<Uuid>) {
        let failed = self.shared.take_broken();
        // miimon polls the links on its own interval (OVS reads nothing else then);
        // carrier mode reads the device flags on every run, i.e. on each link event.
        let miimon = self.bond.config().miimon_ms;
        let poll_mii = miimon != 0 && now >= self.next_mii;
        if poll_mii {
            self.next_mii = now + miimon;
        }
        for (id, m) in self.members.iter_mut().enumerate() {
            let sock_ok = m.serial != 0 && !failed.contains(&id);
            if !sock_ok && m.serial != 0 {
                broken.push(m.iface);
                m.serial = 0;
            }
            let up = if !sock_ok {
                false
            } else if miimon != 0 {
                if !poll_mii {
                    continue;
                }
                netdev::mii_link(&m.name).unwrap_or(false)
            } else {
                let flags = netdev::flags(&m.name).unwrap_or(0);
                flags & netdev::IFF_UP as u32 != 0 && flags & netdev::IFF_RUNNING as u32 != 0
            };
            if up != m.carrier {
                m.carrier = up;
                tracing::info!("bond {}: member {}: carrier {}", self.name, m.name, if up { "up" } else { "down" });
                if let Some(l) = &mut self.lacp {
                    l.carrier(now, id, up);
                }
                self.bond.set_carrier(id, up);
            }
        }
        let mut status = LacpStatus::Off;
        if let Some(l) = &mut self.lacp {
            // A predecessor's last LACPDU from the partner on each member (a takeover),
            // once carrier is known: negotiated from the first run, as the partner
            // still sees it.
            for (id, pdu) in std::mem::take(&mut self.handed).into_iter().enumerate() {
                if let Some(pdu) = pdu {
                    let _ = l.rx(now, id, &pdu);
                }
            }
            for f in self.shared.take_slow() {
                if f.payload().first() == Some(&SUBTYPE_LACP) {
                    self.last_pdu[f.member] = Some(f.payload().to_vec());
                }
                let _ = l.rx(now, f.member, f.payload());
            }
            for t in l.tick(now) {
                let mut frame = [0u8; FRAME_LEN];
                t.pdu.emit_frame(self.members[t.member].mac, &mut frame);
                send_control(&self.io, t.member, &frame);
            }
            for id in 0..self.members.len() {
                self.bond.set_may_enable(id, l.may_enable(id));
            }
            status = l.status();
        } else {
            // Without LACP, slow-protocols frames are dropped (never forwarded).
            let _ = self.shared.take_slow();
        }
        // What was sent since the last run first: a bucket in use keeps its member
        // when another member comes up.
        for (b, bytes) in self.shared.take_bucket_bytes() {
            self.bond.account(b, bytes);
        }
        let before: Vec<bool> = self.bond.members().iter().map(|m| m.enabled).collect();
        let _ = self.bond.run(now, status);
        for (m, was) in self.bond.members().iter().zip(before) {
            if m.enabled != was {
                tracing::info!("bond {}: member {}: {}", self.name, m.name, if m.enabled { "enabled" } else { "disabled" });
            }
        }
        let _ = self.bond.rebalance(now);
        self.shared.publish(self.bond.clone());
    }
}

fn member_ios(members: &[MemberCtl], open: &HashMap<Uuid, OpenIface>) -> Vec<MemberIo> {
    members
        .iter()
        .map(|m| {
            let o = open.get(&m.iface);
            MemberIo { name: m.name.clone(), device: o.map(|o| o.device.clone()), stats: o.map(|o| o.stats.clone()).unwrap_or_default() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_packets_are_ovs_rarps() {
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let f = rarp(mac, None);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..22], &[0x80, 0x35, 0, 1, 8, 0, 6, 4, 0, 3]);
        assert_eq!((&f[6..12], &f[22..28], &f[32..38]), (&mac.0[..], &mac.0[..], &mac.0[..]));
        let t = rarp(mac, VlanId::new(10));
        assert_eq!(&t[12..18], &[0x81, 0, 0, 10, 0x80, 0x35]);
    }

    #[test]
    fn bond_hash_checks_its_arguments() {
        assert_eq!(hash_command("zz", None, None), Err("invalid mac"));
        assert_eq!(hash_command("00:11:22:33:44:55", Some("x"), None), Err("invalid vlan"));
        assert_eq!(hash_command("00:11:22:33:44:55", None, Some("-1")), Err("invalid basis"));
        let h = hash_command("00:11:22:33:44:55", Some("0"), Some("0")).unwrap();
        assert_eq!(h, hash_command("00:11:22:33:44:55", None, None).unwrap());
        assert!(h.parse::<u8>().is_ok());
    }
}
