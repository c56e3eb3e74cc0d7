//! ovs-appctl-style commands, answered the way ovs-vswitchd answers them (same text,
//! same errors), plus rvs's own (`fdb/show BR --format=json`, `rvs/drops`).
//!
//! Each command is a name, an argument count range, a usage string for
//! `list-commands`, and a handler. Argument-count and unknown-command errors use
//! OVS's unixctl wording.

use std::fmt::Write as _;

use serde_json::json;

use crate::control::Control;
use crate::logging;
use crate::store::StaticMac;
use crate::worker::{Worker, WorkerStats};
use rvs_switch::types::{MacAddr, OfPort, VlanId};

/// (name, usage, min args, max args)
const COMMANDS: &[(&str, &str, usize, usize)] = &[
    ("bond/show", "[port]", 0, 1),
    ("dpif/show", "", 0, 0),
    ("exit", "[--cleanup]", 0, 1),
    ("fdb/add", "bridge port vlan mac", 4, 4),
    ("fdb/del", "bridge vlan mac", 3, 3),
    ("fdb/flush", "[bridge]", 0, 1),
    ("fdb/show", "bridge [--format=json]", 1, 2),
    ("fdb/stats-clear", "[bridge]", 0, 1),
    ("fdb/stats-show", "bridge", 1, 1),
    ("list-commands", "", 0, 0),
    ("rvs/drops", "[bridge]", 0, 1),
    ("rvs/workers", "", 0, 0),
    ("rvs/workers-clear", "", 0, 0),
    ("version", "", 0, 0),
    ("vlog/list", "", 0, 0),
    ("vlog/set", "{spec | PATTERN:destination:pattern}", 0, usize::MAX),
];

type Reply = Result<String, String>;

/// Runs one command: `Ok(output)` or `Err(error text)` ("server returned an error").
/// Like OVS's unixctl server, a non-empty answer always ends with a newline.
pub async fn run(ctl: &mut Control, cmd: &str, args: &[String]) -> Reply {
    let nl = |mut s: String| {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s
    };
    match dispatch(ctl, cmd, args).await {
        Ok(s) => Ok(nl(s)),
        Err(s) => Err(nl(s)),
    }
}

async fn dispatch(ctl: &mut Control, cmd: &str, args: &[String]) -> Reply {
    let Some(&(_, _, min, max)) = COMMANDS.iter().find(|c| c.0 == cmd) else {
        return Err(format!("\"{cmd}\" is not a valid command (use \"list-commands\" to see a list of valid commands)"));
    };
    if args.len() < min {
        return Err(format!("\"{cmd}\" command requires at least {min} arguments"));
    }
    if args.len() > max {
        return Err(format!("\"{cmd}\" command takes at most {max} arguments"));
    }
    let a = |i: usize| args.get(i).map(String::as_str);
    match cmd {
        "list-commands" => Ok(list_commands()),
        "version" => Ok(format!("rvs-vswitchd (rvs) {}\n", env!("CARGO_PKG_VERSION"))),
        "exit" => {
            ctl.exit_requested = true;
            Ok(String::new())
        }
        "fdb/show" => fdb_show(ctl, &args[0], a(1)).await,
        "fdb/flush" => fdb_each(ctl, a(0), |b| b.core.fdb_mut().flush(), "table successfully flushed").await,
        "fdb/stats-clear" => fdb_each(ctl, a(0), |b| b.core.fdb_mut().clear_stats(), "statistics successfully cleared").await,
        "fdb/stats-show" => fdb_stats_show(ctl, &args[0]).await,
        "fdb/add" => fdb_add(ctl, &args[0], &args[1], &args[2], &args[3]).await,
        "fdb/del" => fdb_del(ctl, &args[0], &args[1], &args[2]).await,
        "dpif/show" => dpif_show(ctl).await,
        // rvs has no bonds: nothing to show, and no port is a bond.
        "bond/show" => match a(0) {
            None => Ok(String::new()),
            Some(_) => Err("no such bond".into()),
        },
        "rvs/drops" => drops(ctl, a(0)).await,
        "rvs/workers" => workers(ctl).await,
        "rvs/workers-clear" => ask_all(ctl, |w| w.stats = WorkerStats::new()).await.map(|_| String::new()),
        "vlog/list" => Ok(logging::vlog_list()),
        "vlog/set" => logging::vlog_set(args).map(|_| String::new()).map_err(|e| e.to_string()),
        _ => Err(format!("\"{cmd}\" is not a valid command")),
    }
}

fn list_commands() -> String {
    let mut s = String::from("The available commands are:\n");
    for (name, usage, _, _) in COMMANDS {
        let _ = writeln!(s, "  {name:<23} {usage}");
    }
    s
}

fn no_bridge() -> String {
    "no such bridge".into()
}

/// How long a command waits for a worker's answer.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks the first worker (whose replicas of the MAC tables and copy of the
/// configuration commands show); a worker that does not answer is a server error,
/// not a hang.
async fn ask<R: Send + 'static>(ctl: &Control, f: impl FnOnce(&mut Worker) -> R + Send + 'static) -> Result<R, String> {
    let rx = ctl.worker.query(f);
    match tokio::time::timeout(ASK_TIMEOUT, rx).await {
        Ok(Ok(r)) => Ok(r),
        _ => Err("datapath worker did not answer".into()),
    }
}

/// Asks every worker (to change every replica, or to add up counters); answers in
/// worker order.
async fn ask_all<R: Send + 'static>(ctl: &Control, f: impl Fn(&mut Worker) -> R + Send + Sync + 'static) -> Result<Vec<R>, String> {
    let mut out = Vec::new();
    for rx in ctl.worker.query_all(f) {
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(r)) => out.push(r),
            _ => return Err("datapath worker did not answer".into()),
        }
    }
    Ok(out)
}

fn port_label(ofport: u16) -> String {
    OfPort::new(ofport).map_or_else(|| ofport.to_string(), |p| p.to_string())
}

async fn fdb_show(ctl: &mut Control, br: &str, fmt: Option<&str>) -> Reply {
    let json_out = match fmt {
        None => false,
        Some("--format=json") => true,
        // Anything else is what OVS would say to a second argument.
        Some(_) => return Err("\"fdb/show\" command takes at most 1 arguments".into()),
    };
    if ctl.bridge_ports(br).is_none() {
        return Err(no_bridge());
    }
    let name = br.to_string();
    let rows = ask(ctl, move |w| {
        let now = w.now();
        w.bridge(&name).map(|b| {
            b.core
                .fdb()
                .entries(now)
                .into_iter()
                .map(|e| {
                    let p = &b.ports[e.port as usize];
                    (p.ofport.get(), p.name.clone(), e.vlan.get(), e.mac, e.age_secs)
                })
                .collect::<Vec<_>>()
        })
    })
    .await?
    .unwrap_or_default();
    if json_out {
        let v: Vec<_> = rows
            .iter()
            .map(|(ofp, name, vlan, mac, age)| json!({"port": name, "ofport": ofp, "vlan": vlan, "mac": mac.to_string(), "age": age, "static": age.is_none()}))
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
    }
    let mut s = String::from(" port  VLAN  MAC                Age\n");
    for (ofp, _, vlan, mac, age) in rows {
        let _ = write!(s, "{:>5}  {:>4}  {}  ", port_label(ofp), vlan, mac);
        match age {
            Some(a) => {
                let _ = writeln!(s, "{a:>3}");
            }
            None => s.push_str("static\n"),
        }
    }
    Ok(s)
}

async fn fdb_each(ctl: &mut Control, br: Option<&str>, f: fn(&mut crate::worker::BridgeRt), ok: &str) -> Reply {
    if let Some(b) = br {
        if ctl.bridge_ports(b).is_none() {
            return Err(no_bridge());
        }
    }
    let name = br.map(String::from);
    ask_all(ctl, move |w| {
        for b in w.bridges.iter_mut().filter(|b| name.as_ref().is_none_or(|n| *n == b.name)) {
            f(b);
        }
    })
    .await?;
    Ok(ok.to_string())
}

async fn fdb_stats_show(ctl: &mut Control, br: &str) -> Reply {
    if ctl.bridge_ports(br).is_none() {
        return Err(no_bridge());
    }
    let name = br.to_string();
    let all = ask_all(ctl, move |w| {
        w.bridge(&name).map(|b| {
            let f = b.core.fdb();
            (f.len(), f.capacity(), f.static_count(), f.stats())
        })
    })
    .await?;
    // Table sizes and expiries from the first worker's replica; addresses learned and
    // moved are counted by the worker that saw the frame, so they add up.
    let (len, cap, st, mut s) = all.first().copied().flatten().unwrap_or((0, rvs_switch::bridge::fdb::DEFAULT_CAPACITY, 0, Default::default()));
    for (_, _, _, o) in all.iter().skip(1).flatten() {
        s.learned += o.learned;
        s.moved += o.moved;
    }
    Ok(format!(
        "Statistics for bridge \"{br}\":\n  Current/maximum MAC entries in the table: {len}/{cap}\n  Current static MAC entries in the table : {st}\n  Total number of learned MAC entries     : {}\n  Total number of expired MAC entries     : {}\n  Total number of evicted MAC entries     : {}\n  Total number of port moved MAC entries  : {}\n",
        s.learned, s.expired, s.evicted, s.moved
    ))
}

/// `atoi()`: the leading integer, 0 if none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let end = t.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')))).map_or(t.len(), |(i, _)| i);
    t[..end].parse().unwrap_or(0)
}

async fn fdb_add(ctl: &mut Control, br: &str, port: &str, vlan: &str, mac: &str) -> Reply {
    let Some(ports) = ctl.bridge_ports(br) else { return Err(no_bridge()) };
    let mac: MacAddr = mac.parse().map_err(|_| "bad MAC address".to_string())?;
    let vid = VlanId::new(atoi(vlan) as u16).unwrap_or(VlanId::NONE);
    if !ports.iter().any(|(n, ofp, _)| n == port && *ofp > 0) {
        return Err("software error, odp port is present but no ofp port".into());
    }
    let (bn, pn) = (br.to_string(), port.to_string());
    let previous = ask(ctl, move |w| {
        let b = w.bridge(&bn)?;
        let now = w.now();
        let e = b.core.fdb().entries(now).into_iter().find(|e| e.vlan == vid && e.mac == mac)?;
        let p = &b.ports[e.port as usize];
        (p.name != pn || e.age_secs.is_some()).then(|| (e.age_secs.is_none(), port_label(p.ofport.get())))
    })
    .await?;
    let entry = StaticMac { bridge: br.into(), port: port.into(), vlan: vid.get(), mac: mac.to_string() };
    ctl.meta.static_fdb.retain(|s| !(s.bridge == entry.bridge && s.vlan == entry.vlan && s.mac == entry.mac));
    ctl.meta.static_fdb.push(entry);
    ctl.store.save(&ctl.db, &ctl.meta).map_err(|e| e.to_string())?;
    ctl.reconcile();
    Ok(match previous {
        Some((was_static, old)) => {
            format!("Overriding already existing {} entry on {old}\n", if was_static { "static" } else { "dynamic" })
        }
        None => String::new(),
    })
}

async fn fdb_del(ctl: &mut Control, br: &str, vlan: &str, mac: &str) -> Reply {
    if ctl.bridge_ports(br).is_none() {
        return Err(no_bridge());
    }
    let mac: MacAddr = mac.parse().map_err(|_| "bad MAC address".to_string())?;
    let vid = VlanId::new(atoi(vlan) as u16).unwrap_or(VlanId::NONE);
    let before = ctl.meta.static_fdb.len();
    let (b, m) = (br.to_string(), mac.to_string());
    ctl.meta.static_fdb.retain(|s| !(s.bridge == b && s.vlan == vid.get() && s.mac == m));
    if ctl.meta.static_fdb.len() == before {
        return Err("could not find static mac entry\n".into());
    }
    ctl.store.save(&ctl.db, &ctl.meta).map_err(|e| e.to_string())?;
    let bn = br.to_string();
    ask_all(ctl, move |w| {
        if let Some(b) = w.bridge_mut(&bn) {
            b.core.fdb_mut().remove(vid, mac);
        }
    })
    .await?;
    ctl.reconcile();
    Ok(String::new())
}

async fn dpif_show(ctl: &mut Control) -> Reply {
    let totals = ask(ctl, |w| w.bridges.iter().flat_map(|b| b.ports.iter()).map(|p| p.stats.snapshot().rx_packets).sum::<u64>()).await?;
    let mut s = format!("rvs@rvs-netdev: hit:{totals} missed:0\n");
    let mut bridges: Vec<String> =
        ctl.db.tables[rvs_ovsdb::tables::BRIDGE].keys().filter_map(|u| ctl.db.name_of(rvs_ovsdb::tables::BRIDGE, u).map(String::from)).collect();
    bridges.sort();
    for b in bridges {
        let _ = writeln!(s, "  {b}:");
        let mut ports = ctl.bridge_ports(&b).unwrap_or_default();
        ports.sort();
        for (name, ofport, ty) in ports {
            let kind = match ty.as_str() {
                "internal" | "tap" => "tap".to_string(),
                "" | "system" => "system".to_string(),
                other => match ctl.iface_options(&name) {
                    o if o.is_empty() => other.to_string(),
                    o => format!("{other}: {o}"),
                },
            };
            let n = if ofport < 0 { "none".to_string() } else { ofport.to_string() };
            let _ = writeln!(s, "    {name} {n}/{n}: ({kind})");
        }
    }
    Ok(s)
}

async fn drops(ctl: &mut Control, br: Option<&str>) -> Reply {
    if let Some(b) = br {
        if ctl.bridge_ports(b).is_none() {
            return Err(no_bridge());
        }
    }
    let name = br.map(String::from);
    // Every worker counts the drops of the frames it handled: add them up per bridge.
    let per_worker = ask_all(ctl, move |w| {
        w.bridges
            .iter()
            .filter(|b| name.as_ref().is_none_or(|n| *n == b.name))
            .map(|b| (b.name.clone(), b.core.drops().iter().collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    })
    .await?;
    let mut rows: Vec<(String, Vec<(&'static str, u64)>)> = Vec::new();
    for (b, counters) in per_worker.into_iter().flatten() {
        match rows.iter_mut().find(|(n, _)| *n == b) {
            None => rows.push((b, counters)),
            Some((_, sum)) => {
                for (reason, n) in counters {
                    match sum.iter_mut().find(|(r, _)| *r == reason) {
                        Some((_, t)) => *t += n,
                        None => sum.push((reason, n)),
                    }
                }
            }
        }
    }
    let eps = ask(ctl, move |w| {
        use std::sync::atomic::Ordering::Relaxed;
        w.endpoints
            .iter()
            .map(|e| {
                let at = e.local.map_or_else(|| if e.v6 { "[::]".to_string() } else { "0.0.0.0".to_string() }, |a| a.to_string());
                (
                    format!("{at}:{}", e.port),
                    [
                        ("receive_calls", e.stats.receives.load(Relaxed)),
                        ("received", e.stats.received.load(Relaxed)),
                        ("bad_header", e.stats.bad_header.load(Relaxed)),
                        ("unknown_tunnel", e.stats.unknown_tunnel.load(Relaxed)),
                        ("truncated", e.stats.truncated.load(Relaxed)),
                    ],
                )
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let mut s = String::new();
    for (b, counters) in rows {
        let _ = writeln!(s, "Drops on bridge \"{b}\":");
        for (reason, n) in counters {
            let _ = writeln!(s, "  {reason:<24} {n}");
        }
    }
    if br.is_none() {
        for (ep, counters) in eps {
            let _ = writeln!(s, "VXLAN receive socket {ep}:");
            for (what, n) in counters {
                let _ = writeln!(s, "  {what:<24} {n}");
            }
        }
    }
    Ok(s)
}

/// `rvs/workers`: the datapath threads, the inputs each polls, what each did since it
/// started or since `rvs/workers-clear` (frames, receive calls, wake-ups, where its
/// time went), and learning notes lost between them.
async fn workers(ctl: &mut Control) -> Reply {
    let all = ask_all(ctl, |w| (w.id(), w.inputs(), w.learn_lost, w.stats, w.rx_modes(), rvs_sys::uring::status())).await?;
    let mut s = String::new();
    for (id, inputs, lost, stats, modes, uring) in all {
        let _ = writeln!(s, "worker {id}: {}", if inputs.is_empty() { "(no inputs)".to_string() } else { inputs.join(" ") });
        s.push_str(&format_stats(&stats));
        let _ = writeln!(s, "  tap writes: {uring}");
        if !modes.is_empty() {
            let modes: Vec<String> = modes.iter().map(|(name, m)| format!("{name} by {m}")).collect();
            let _ = writeln!(s, "  AF_PACKET receive: {}", modes.join(", "));
        }
        if lost > 0 {
            let _ = writeln!(s, "  learning notes lost: {lost}");
        }
    }
    Ok(s)
}

/// The lines of `rvs/workers` that describe what one worker did.
fn format_stats(st: &WorkerStats) -> String {
    let per = |a: u64, b: u64, scale: f64| if b == 0 { 0.0 } else { a as f64 * scale / b as f64 };
    let total = (st.busy + st.spinning + st.sleeping).as_secs_f64();
    let pct = |d: std::time::Duration| if total > 0.0 { d.as_secs_f64() * 100.0 / total } else { 0.0 };
    format!(
        "  frames received: {} in {} receive calls ({:.1} per call)\n  wake-ups: {} ({:.1} per 1000 frames)\n  time over {:.1} s: busy {:.1} %, spinning {:.1} %, sleeping {:.1} %\n",
        st.frames,
        st.receive_calls,
        per(st.frames, st.receive_calls, 1.0),
        st.wakeups,
        per(st.wakeups, st.frames, 1000.0),
        st.since.elapsed().as_secs_f64(),
        pct(st.busy),
        pct(st.spinning),
        pct(st.sleeping),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn list_is_sorted_and_formatted() {
        let l = list_commands();
        assert!(l.starts_with("The available commands are:\n"));
        assert!(l.contains("  fdb/show                bridge [--format=json]\n"));
        let names: Vec<_> = COMMANDS.iter().map(|c| c.0).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn worker_stats_lines() {
        let mut st = WorkerStats::new();
        (st.frames, st.receive_calls, st.wakeups) = (3000, 100, 6);
        (st.busy, st.spinning, st.sleeping) = (Duration::from_millis(250), Duration::from_millis(250), Duration::from_millis(500));
        let s = format_stats(&st);
        assert!(s.starts_with("  frames received: 3000 in 100 receive calls (30.0 per call)\n  wake-ups: 6 (2.0 per 1000 frames)\n  time over "), "{s}");
        assert!(s.ends_with(" s: busy 25.0 %, spinning 25.0 %, sleeping 50.0 %\n"), "{s}");
        // a worker that has not run yet divides by nothing
        assert!(format_stats(&WorkerStats::new()).contains("(0.0 per call)"));
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("10"), 10);
        assert_eq!(atoi(" 7x"), 7);
        assert_eq!(atoi("x"), 0);
    }
}
