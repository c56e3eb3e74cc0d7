//! Installing, changing and removing the qdisc a QoS calls for on an AF_PACKET port's
//! device ([`super::qdisc_plan`]), through `rvs_sys::tc`, from the control plane
//! (reconcile); the workers never wait for it.
//!
//! [`KernelQos::sync`] is called on every reconcile and does nothing unless what a
//! port's qdisc is computed from (the QoS, the device's MTU and speed) changed since
//! it was installed. To install, it does what OVS does: a device whose root qdisc is
//! already of the type keeps it and has its classes replaced (so a daemon restarting
//! or taking over changes nothing in flight); otherwise the root qdisc is deleted and
//! made anew. Classes of queues no longer configured are deleted. When the QoS goes
//! away, or the port, the qdisc rvs installed is deleted. A device seen for the first
//! time without QoS that has an HTB or HFSC root `1:` (rvs's or OVS's, left from a
//! configuration changed while no daemon ran) has it deleted, as OVS would.
//! `linux-noop` leaves the device's qdisc as it is, whatever it is.

use std::collections::HashMap;

use rvs_ovsdb::Uuid;
use rvs_sys::tc::{self, Dev, TcError};

use super::{DevFacts, QdiscPlan, QosSpec};

/// What was installed on one device.
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: String,
    pub ifindex: u32,
    pub spec: QosSpec,
    pub facts: DevFacts,
    pub plan: QdiscPlan,
}

/// The qdiscs rvs installed, by interface.
#[derive(Debug, Default)]
pub struct KernelQos {
    installed: HashMap<Uuid, Installed>,
    /// Interfaces already looked at once (for leftovers, see the module docs).
    seen: std::collections::HashSet<Uuid>,
}

/// One interface's wish: its device and the QoS it should have (`None`: none).
pub struct Want<'a> {
    pub iface: Uuid,
    pub name: &'a str,
    pub ifindex: u32,
    pub spec: Option<&'a QosSpec>,
}

impl KernelQos {
    /// What is installed on `iface`, if anything.
    pub fn installed(&self, iface: &Uuid) -> Option<&Installed> {
        self.installed.get(iface)
    }

    /// Brings one device in line with `want`. `Ok(true)` when a qdisc of rvs's shapes
    /// the device now.
    pub fn sync(&mut self, want: &Want<'_>, facts: impl FnOnce() -> DevFacts) -> Result<bool, TcError> {
        let dev = Dev { name: want.name, ifindex: want.ifindex };
        let first = self.seen.insert(want.iface);
        let Some(spec) = want.spec else {
            if let Some(old) = self.installed.remove(&want.iface) {
                if old.ifindex == want.ifindex {
                    tracing::info!("{}: QoS removed: deleting its {} qdisc", want.name, old.plan.ty);
                    tc::del_root_qdisc(dev)?;
                }
            } else if first {
                remove_leftover(dev)?;
            }
            return Ok(false);
        };
        let facts = facts();
        if let Some(old) = self.installed.get(&want.iface)
            && old.ifindex == want.ifindex
            && old.spec == *spec
            && old.facts == facts
        {
            return Ok(true);
        }
        let Some(plan) = super::qdisc_plan(spec, &facts) else { return Ok(false) };
        // Whatever was there is not what it was once this starts.
        self.installed.remove(&want.iface);
        install(dev, &plan)?;
        tracing::info!("{}: QoS {} installed (max-rate {} bit/s, {} queue(s))", want.name, plan.ty, plan.max_rate * 8, plan.classes.len() - 1);
        self.installed.insert(want.iface, Installed { name: want.name.to_string(), ifindex: want.ifindex, spec: spec.clone(), facts, plan });
        Ok(true)
    }

    /// Leaves the device's qdisc as it is and forgets it (`linux-noop`: OVS leaves
    /// whatever qdisc is there, also one it installed itself).
    pub fn leave(&mut self, iface: &Uuid) {
        self.seen.insert(*iface);
        self.installed.remove(iface);
    }

    /// Forgets (and removes the qdisc of) every interface not in `keep`: ports that
    /// left the configuration or closed.
    pub fn retain(&mut self, keep: impl Fn(&Uuid) -> bool) {
        self.installed.retain(|u, i| {
            if keep(u) {
                return true;
            }
            // The device may be gone with its port (a VM's tap): nothing to do then.
            if rvs_sys::netdev::ifindex(&i.name).ok() == Some(i.ifindex) {
                match tc::del_root_qdisc(Dev { name: &i.name, ifindex: i.ifindex }) {
                    Ok(()) => tracing::info!("{}: port closed: its {} qdisc deleted", i.name, i.plan.ty),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            false
        });
        self.seen.retain(|u| keep(u));
    }
}

/// What a qdisc on device `name` is computed from, read now.
pub fn facts(name: &str) -> DevFacts {
    static PSCHED: std::sync::OnceLock<(f64, u32)> = std::sync::OnceLock::new();
    let (ticks_per_s, buffer_hz) = *PSCHED.get_or_init(tc::psched);
    DevFacts { mtu: rvs_sys::netdev::mtu(name).unwrap_or(1500), speed_mbps: rvs_sys::netdev::speed_mbps(name).ok().flatten(), ticks_per_s, buffer_hz }
}

/// The kernel's name of a plan's root qdisc.
fn kind_of(plan: &QdiscPlan) -> &'static str {
    match plan.root {
        tc::RootQdisc::Htb { .. } => "htb",
        tc::RootQdisc::Hfsc { .. } => "hfsc",
    }
}

fn install(dev: Dev<'_>, plan: &QdiscPlan) -> Result<(), TcError> {
    let root = tc::root_qdisc(dev)?;
    let same = root.as_ref().is_some_and(|q| q.kind == kind_of(plan) && q.handle == tc::handle(1, 0));
    if !same {
        tc::del_root_qdisc(dev)?;
        tc::add_root_qdisc(dev, plan.root)?;
    }
    for c in &plan.classes {
        tc::set_class(dev, c.handle, c.parent, &c.opt)?;
    }
    if same {
        // Queues no longer configured (children first: a class with children cannot go).
        let wanted: Vec<u32> = plan.classes.iter().map(|c| c.handle).collect();
        let mut stale: Vec<u32> = tc::classes(dev)?.into_iter().map(|c| c.handle).filter(|h| h >> 16 == 1 && !wanted.contains(h)).collect();
        stale.sort_unstable_by(|a, b| b.cmp(a));
        for h in stale {
            tc::del_class(dev, h)?;
        }
    }
    Ok(())
}

fn remove_leftover(dev: Dev<'_>) -> Result<(), TcError> {
    if let Some(q) = tc::root_qdisc(dev)?
        && matches!(q.kind.as_str(), "htb" | "hfsc")
        && q.handle == tc::handle(1, 0)
    {
        tracing::info!("{}: no QoS configured: deleting the {} qdisc left on it", dev.name, q.kind);
        tc::del_root_qdisc(dev)?;
    }
    Ok(())
}
