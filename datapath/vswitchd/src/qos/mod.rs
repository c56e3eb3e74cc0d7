//! Egress QoS: a Port's `qos` (a QoS row and its Queues) carried out where the port's
//! frames can be shaped.
//!
//! * On an existing netdev (an AF_PACKET port: a libvirt tap, an uplink, a veth) as
//!   OVS's `lib/netdev-linux.c` does it: the kernel's HTB or HFSC qdisc, root `1:`,
//!   class `1:fffe` at the QoS's `max-rate` (default: the link speed ethtool reports,
//!   10 Gbit/s when it reports none), one class `1:(N+1)` per Queue N under it, queue 0
//!   (the default class) made with OVS's defaults when the QoS has none. Frames rvs
//!   sends there pass the qdisc: the port's sockets stop bypassing it
//!   (`PACKET_QDISC_BYPASS` is turned off while a qdisc shapes the port). [`kernel`]
//!   installs, changes and removes it; this module only computes it (pure).
//! * On a tap rvs writes itself (`internal`, `tap`), where no qdisc sees the frames,
//!   in rvs's own egress path: a token bucket per port at the default queue's rate
//!   with a bounded queue in front (`rvs_switch::bridge::shaper`), like a qdisc;
//!   frames that find it full are dropped and counted.
//! * `egress-policer` (OVS's DPDK type: `cir` bytes/s, `cbs` bytes) by the same bucket
//!   without a queue (above the rate is dropped), on any port; `linux-noop` leaves the device's qdisc alone (and lets frames
//!   through it). Any other type is not applied, as in OVS, which ignores the failure;
//!   rvs also says so in the Port's `status` and the log.
//!
//! Everything here is a pure function of the database and the device's MTU and speed.

pub mod kernel;
pub mod show;

use std::collections::BTreeMap;

use rvs_ovsdb::view::{Port, Qos, Queue};
use rvs_ovsdb::{Db, Uuid};
use rvs_switch::bridge::shaper::ShaperConfig;
use rvs_sys::tc::{ClassOpt, HtbOpt, RateSpec, RootQdisc, handle};

/// A Port's QoS as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QosSpec {
    pub ty: String,
    pub other_config: BTreeMap<String, String>,
    /// Queue number → the Queue's `other_config`.
    pub queues: BTreeMap<u32, BTreeMap<String, String>>,
}

/// The QoS of Port `port`, if it has one with a type (OVS treats an empty type as none).
pub fn spec_for(db: &Db, port: &Uuid) -> Option<QosSpec> {
    let q = Port::get(db, port)?.qos().and_then(|u| Qos::get(db, &u))?;
    if q.type_().is_empty() {
        return None;
    }
    let smap = |d: &rvs_ovsdb::Datum| d.str_pairs().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    let d = q.queues();
    let queues = d
        .keys
        .iter()
        .zip(d.values.iter().flatten())
        .filter_map(|(k, v)| {
            let id = u32::try_from(k.as_int()?).ok()?;
            Some((id, Queue::get(db, &v.as_uuid()?).map(|q| smap(q.other_config())).unwrap_or_default()))
        })
        .collect();
    Some(QosSpec { ty: q.type_().to_string(), other_config: smap(q.other_config()), queues })
}

/// The QoS of the Port that interface `iface` belongs to.
pub fn spec_of_iface(db: &Db, iface: &Uuid) -> Option<QosSpec> {
    Port::all(db).find(|p| p.interfaces().any(|i| i == *iface)).and_then(|p| spec_for(db, &p.uuid))
}

/// Where a port's egress can be shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosHome {
    /// A netdev whose qdisc sees what rvs sends (AF_PACKET).
    Kernel,
    /// A tap rvs writes directly: only rvs's own egress path can shape it.
    Rvs,
    /// Neither (a tunnel): only `egress-policer`.
    None,
}

/// The QoS types rvs honours on a port of `home` (`qos/show-types`): the Linux ones
/// in the order OVS 3.1 lists them, then `egress-policer`.
pub fn types_for(home: QosHome) -> &'static [&'static str] {
    match home {
        QosHome::Kernel => &["linux-hfsc", "linux-noop", "linux-htb", "egress-policer"],
        QosHome::Rvs => &["linux-hfsc", "linux-htb", "egress-policer"],
        QosHome::None => &["egress-policer"],
    }
}

/// What a QoS comes to on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A qdisc on the device (`linux-htb`, `linux-hfsc`).
    Qdisc,
    /// The device's qdisc as it is, passed by rvs's frames (`linux-noop`).
    Noop,
    /// rvs's own shaper.
    Shaper(ShaperConfig),
    /// Not applied: the type is not honoured on such a port.
    Unsupported,
}

/// What `spec` comes to on a port of `home`.
pub fn outcome(spec: &QosSpec, home: QosHome) -> Outcome {
    match (spec.ty.as_str(), home) {
        ("linux-htb" | "linux-hfsc", QosHome::Kernel) => Outcome::Qdisc,
        ("linux-noop", QosHome::Kernel) => Outcome::Noop,
        ("linux-htb" | "linux-hfsc", QosHome::Rvs) => own_shaper(spec).map_or(Outcome::Unsupported, Outcome::Shaper),
        ("egress-policer", _) => egress_policer(spec).map_or(Outcome::Unsupported, Outcome::Shaper),
        _ => Outcome::Unsupported,
    }
}

/// Why `spec` is not applied on a port of `home` (the Port's `status:qos`).
pub fn unsupported_note(spec: &QosSpec, home: QosHome) -> String {
    let types = types_for(home).join(", ");
    match (spec.ty.as_str(), home) {
        ("linux-htb" | "linux-hfsc", QosHome::Rvs) => "not applied: no max-rate in the QoS or its queue 0 (rvs's taps have no link speed to default to)".into(),
        ("egress-policer", _) => "not applied: egress-policer needs other_config:cir (bytes/s)".into(),
        (t, _) => format!("not applied: QoS type {t} is not supported on this port (rvs applies {types})"),
    }
}

fn get(m: &BTreeMap<String, String>, key: &str) -> u64 {
    // OVS reads these with smap_get_ullong: a value that is not a number is 0.
    m.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The default queue's (queue 0) shaping on an rvs tap: its `max-rate`, else the QoS's
/// (bits/s, read as bytes/s), its `burst` else the QoS's (bits); `None` without a rate.
pub fn own_shaper(spec: &QosSpec) -> Option<ShaperConfig> {
    let empty = BTreeMap::new();
    let q0 = spec.queues.get(&0).unwrap_or(&empty);
    let qos_max = get(&spec.other_config, "max-rate");
    let rate = match get(q0, "max-rate") {
        0 => qos_max,
        r if qos_max == 0 => r,
        r => r.min(qos_max),
    } / 8;
    let burst = match get(q0, "burst") {
        0 => get(&spec.other_config, "burst"),
        b => b,
    } / 8;
    (rate > 0).then_some(ShaperConfig { rate, burst })
}

/// `egress-policer` as OVS-DPDK reads it: `cir` in bytes/s, `cbs` in bytes.
pub fn egress_policer(spec: &QosSpec) -> Option<ShaperConfig> {
    let rate = get(&spec.other_config, "cir");
    (rate > 0).then_some(ShaperConfig { rate, burst: get(&spec.other_config, "cbs") })
}

/// HTB's and HFSC's queue numbers run below this (OVS's `HTB_N_QUEUES`).
pub const N_QUEUES: u32 = 0xf000;
/// OVS's default link speed when ethtool reports none (`NETDEV_DEFAULT_BPS`).
pub const DEFAULT_BPS: u64 = 10_000_000_000;

/// The link rate OVS assumes from ethtool's speed (Mbit/s): the exact speeds it
/// knows, else 10 Gbit/s.
pub fn link_bps(speed_mbps: Option<u32>) -> u64 {
    match speed_mbps {
        Some(s @ (10 | 100 | 1000 | 10_000 | 40_000 | 100_000 | 1_000_000)) => u64::from(s) * 1_000_000,
        _ => DEFAULT_BPS,
    }
}

/// The device facts a qdisc is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DevFacts {
    pub mtu: u32,
    /// ethtool's speed in Mbit/s.
    pub speed_mbps: Option<u32>,
    /// `/proc/net/psched`: scheduler ticks per second, buffer HZ.
    pub ticks_per_s: f64,
    pub buffer_hz: u32,
}

/// One class of a planned qdisc, with what `qos/show` prints for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedClass {
    /// The queue number (`None`: the root class `1:fffe`).
    pub queue: Option<u32>,
    pub handle: u32,
    pub parent: u32,
    pub opt: ClassOpt,
    /// `qos/show`'s details for the queue, in OVS's order.
    pub details: Vec<(&'static str, u64)>,
}

/// The qdisc and classes a `linux-htb` or `linux-hfsc` QoS calls for on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct QdiscPlan {
    pub root: RootQdisc,
    /// OVS's name of the type.
    pub ty: &'static str,
    /// The QoS's max-rate in bytes/s (`qos/show`'s first line).
    pub max_rate: u64,
    pub classes: Vec<PlannedClass>,
}

/// The qdisc for `spec` (`linux-htb` or `linux-hfsc`) on a device with `dev`, as
/// `htb_tc_install`/`htb_class_set` (and the HFSC ones) of OVS 3.1 compute it.
pub fn qdisc_plan(spec: &QosSpec, dev: &DevFacts) -> Option<QdiscPlan> {
    let hfsc = match spec.ty.as_str() {
        "linux-htb" => false,
        "linux-hfsc" => true,
        _ => return None,
    };
    // OVS keeps rates in `unsigned int` bytes/s.
    let clamp = |v: u64| v.min(u64::from(u32::MAX));
    let max_rate = match get(&spec.other_config, "max-rate") / 8 {
        0 => link_bps(dev.speed_mbps) / 8,
        r => r,
    };
    let max_rate = clamp(max_rate);
    let root_handle = handle(1, 0xfffe);
    let mut classes = vec![class(None, root_handle, handle(1, 0), hfsc, max_rate, max_rate, 0, 0, dev)];
    let mut queues: Vec<(u32, BTreeMap<String, String>)> = spec.queues.iter().filter(|(id, _)| **id < N_QUEUES).map(|(k, v)| (*k, v.clone())).collect();
    if !spec.queues.contains_key(&0) {
        queues.insert(0, (0, BTreeMap::new()));
    }
    let mtu = u64::from(dev.mtu);
    for (id, q) in queues {
        let (min, max, burst, prio) = if hfsc {
            let min = (get(&q, "min-rate") / 8).max(1).min(max_rate);
            let max = match q.get("max-rate") {
                Some(_) => get(&q, "max-rate") / 8,
                None => max_rate,
            };
            (min, clamp(max).max(min).min(max_rate), 0, 0)
        } else {
            let min = (get(&q, "min-rate") / 8).max(mtu).min(max_rate);
            let max = match get(&q, "max-rate") {
                0 => max_rate,
                m => m / 8,
            };
            let burst = clamp((get(&q, "burst") / 8).max(mtu + 64));
            (min, clamp(max).max(min).min(max_rate), burst, get(&q, "priority").min(u64::from(u32::MAX)) as u32)
        };
        classes.push(class(Some(id), handle(1, (id + 1) as u16), root_handle, hfsc, min, max, burst, prio, dev));
    }
    let (root, ty) = if hfsc { (RootQdisc::Hfsc { defcls: 1 }, "linux-hfsc") } else { (RootQdisc::Htb { defcls: 1 }, "linux-htb") };
    Some(QdiscPlan { root, ty, max_rate, classes })
}

/// One class: HTB with `tc_fill_rate`/`tc_calc_buffer`'s numbers, or HFSC's curves.
#[allow(clippy::too_many_arguments)]
fn class(queue: Option<u32>, h: u32, parent: u32, hfsc: bool, min: u64, max: u64, burst: u64, prio: u32, dev: &DevFacts) -> PlannedClass {
    let (min32, max32) = (min as u32, max as u32);
    if hfsc {
        let mut details = vec![("min-rate", 8 * min)];
        if min != max {
            details.push(("max-rate", 8 * max));
        }
        return PlannedClass { queue, handle: h, parent, opt: ClassOpt::Hfsc { min: min32, max: max32 }, details };
    }
    let rate = |r: u32| RateSpec { cell_log: cell_log(dev.mtu), mpu: 60, rate: r };
    let ticks = |r: u32, size: u64| if r == 0 { 0 } else { (dev.ticks_per_s * size as f64 / f64::from(r)) as u32 };
    let buffer = |r: u32| ticks(r, burst.max(u64::from(r / dev.buffer_hz.max(1)) + u64::from(dev.mtu)));
    let opt = HtbOpt {
        rate: rate(min32),
        ceil: rate(max32),
        buffer: buffer(min32),
        cbuffer: buffer(max32),
        // At least the MTU, which makes HTB ignore r2q for this class.
        quantum: if min32 / 10 < dev.mtu { dev.mtu } else { 0 },
        prio,
    };
    // The order OVS 3.1 prints them in (its hash map's order for these keys).
    let mut details = vec![("burst", 8 * burst)];
    if prio != 0 {
        details.push(("priority", u64::from(prio)));
    }
    details.push(("min-rate", 8 * min));
    if min != max {
        details.push(("max-rate", 8 * max));
    }
    PlannedClass { queue, handle: h, parent, opt: ClassOpt::Htb { opt, ticks_per_s: dev.ticks_per_s }, details }
}

/// `tc_calc_cell_log`: the shift that fits packet sizes up to the MTU plus an
/// Ethernet header and a VLAN tag into a 256-entry rate table.
fn cell_log(mtu: u32) -> u8 {
    let mut m = if mtu == 0 { 1500 } else { mtu } + 14 + 4;
    let mut c = 0;
    while m >= 256 {
        m >>= 1;
        c += 1;
    }
    c
}

#[cfg(test)]
mod tests;
