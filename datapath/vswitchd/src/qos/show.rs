//! `qos/show IFACE` and `qos/show-types IFACE` texts, in OVS 3.1's format
//! (`vswitchd/bridge.c`: `qos_unixctl_show`, `qos_unixctl_show_queue`): the type and
//! its details, then per queue ("Default" for queue 0) its details and the counters
//! of its class. The details are what rvs installed (OVS prints what it set, too);
//! the counters are read from the kernel's class, or for rvs's own shaper from the
//! port (tx_errors: frames the shaper dropped).

use std::fmt::Write;

use rvs_switch::bridge::shaper::ShaperConfig;
use rvs_sys::tc;

use super::kernel::Installed;

/// What a port's QoS is, for the printout.
pub enum Shown<'a> {
    /// Nothing applied (no QoS, `linux-noop`, or a type rvs does not honour there).
    None,
    /// A qdisc rvs installed, and the classes the kernel has on the device now.
    Kernel(&'a Installed, Result<Vec<tc::Class>, tc::TcError>),
    /// rvs's own shaper: the QoS type, its settings as configured, and the port's
    /// sent packets, bytes and shaped drops.
    Shaper { ty: &'a str, cfg: ShaperConfig, counters: (u64, u64, u64) },
}

/// `qos/show NAME`.
pub fn show(name: &str, what: &Shown<'_>) -> String {
    let mut s = String::new();
    match what {
        Shown::None => {
            let _ = writeln!(s, "QoS not configured on {name}");
        }
        Shown::Kernel(i, classes) => {
            let _ = writeln!(s, "QoS: {name} {}", i.plan.ty);
            let _ = writeln!(s, "max-rate: {}", 8 * i.plan.max_rate);
            for c in i.plan.classes.iter() {
                let Some(q) = c.queue else { continue };
                queue_head(&mut s, q, &c.details);
                match classes {
                    Ok(cs) => match cs.iter().find(|k| k.handle == c.handle) {
                        Some(k) => counters(&mut s, k.stats.packets, k.stats.bytes, k.stats.drops),
                        None => {
                            let _ = write!(s, "  Failed to get statistics for queue {q}: No such file or directory");
                        }
                    },
                    Err(e) => {
                        let _ = write!(s, "  Failed to get statistics for queue {q}: {}", os_text(e));
                    }
                }
            }
        }
        Shown::Shaper { ty, cfg, counters: (p, b, d) } => {
            let _ = writeln!(s, "QoS: {name} {ty}");
            if *ty == "egress-policer" {
                let _ = writeln!(s, "cir: {}", cfg.rate);
                let _ = writeln!(s, "cbs: {}", cfg.burst);
            } else {
                let _ = writeln!(s, "max-rate: {}", 8 * cfg.rate);
                queue_head(&mut s, 0, &[("max-rate", 8 * cfg.rate), ("burst", 8 * cfg.burst)]);
                counters(&mut s, *p, *b, *d);
            }
        }
    }
    s
}

fn queue_head(s: &mut String, q: u32, details: &[(&str, u64)]) {
    s.push('\n');
    if q == 0 {
        s.push_str("Default:\n");
    } else {
        let _ = writeln!(s, "Queue {q}:");
    }
    for (k, v) in details {
        let _ = writeln!(s, "  {k}: {v}");
    }
}

fn counters(s: &mut String, packets: u64, bytes: u64, errors: u64) {
    let _ = writeln!(s, "  tx_packets: {packets}");
    let _ = writeln!(s, "  tx_bytes: {bytes}");
    let _ = writeln!(s, "  tx_errors: {errors}");
}

fn os_text(e: &tc::TcError) -> String {
    match e {
        tc::TcError::Kernel { os, .. } => rvs_sys::strerror(os),
        other => other.to_string(),
    }
}

/// `qos/show-types NAME`: the types rvs honours on that port.
pub fn show_types(name: &str, types: &[&str]) -> String {
    if types.is_empty() {
        return format!("No QoS types supported for interface: {name}\n");
    }
    types.iter().map(|t| format!("QoS type: {t}\n")).collect()
}
