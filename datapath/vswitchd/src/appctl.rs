//! ovs-appctl-style commands, answered the way ovs-vswitchd answers them (same text,
//! same errors), plus rvs's own (`fdb/show BR --format=json`, `rvs/drops`).
//!
//! Each command is registered once, in `COMMANDS`, with its name, usage string,
//! argument count range and handler, as OVS's `unixctl_command_register()` does. That
//! one table drives both dispatch and `list-commands`; unknown-command and
//! argument-count errors are produced in one place (`lookup`), in OVS's unixctl
//! wording, so a handler only runs with a count its registration allows.
//!
//! Must not: exit or panic because of what a client sent (only `exit` stops the
//! daemon), or wait on a datapath worker without a time limit.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

use serde_json::json;

use crate::control::Control;
use crate::logging::{self, VlogError};
use crate::store::{StaticMac, StoreError};
use crate::worker::{Worker, WorkerStats};
use rvs_ovsdb::proto::Response;
use rvs_switch::types::{MacAddr, OfPort, VlanId};

/// Why a command failed. The text is the error reply: ovs-appctl prints it before
/// "server returned an error", so each variant's text is OVS's where OVS has one.
#[derive(Debug, thiserror::Error)]
pub enum AppctlError {
    /// No command of that name is registered.
    #[error("\"{0}\" is not a valid command (use \"list-commands\" to see a list of valid commands)")]
    UnknownCommand(String),
    /// Fewer arguments than the command's registration allows.
    #[error("\"{name}\" command requires at least {min} arguments")]
    TooFewArgs { name: &'static str, min: usize },
    /// More arguments than the command's registration allows.
    #[error("\"{name}\" command takes at most {max} arguments")]
    TooManyArgs { name: &'static str, max: usize },
    #[error("no such bridge")]
    NoSuchBridge,
    /// A bond command's error, in OVS's words ("no such bond", "no such member",
    /// "no such lacp object", "invalid mac", ...).
    #[error("{0}")]
    Bond(&'static str),
    #[error("bad MAC address")]
    BadMac,
    /// rvs refuses what OVS 3.1 would store as an entry that never matches (VLAN 4096,
    /// `-1` as 65535) or silently reads as another VLAN (`abc` as 0, `12abc` as 12).
    #[error("bad VLAN {0:?}: a number from 0 to 4095 expected")]
    BadVlan(String),
    /// OVS 3.1 stores these; rvs refuses them: a static entry is for one station.
    #[error("{0} is a multicast or broadcast address: a static MAC entry must be unicast")]
    MulticastMac(MacAddr),
    /// `fdb/add` of a port that is not on the bridge (OVS's text for it).
    #[error("software error, odp port is present but no ofp port")]
    NoOfPort,
    /// `fdb/del` of an entry that was never added; OVS's text ends in a newline of its own.
    #[error("could not find static mac entry\n")]
    NoStaticEntry,
    #[error("datapath worker did not answer")]
    WorkerSilent,
    /// `rvs/capture` of an interface that is not open.
    #[error("no such port {0} (or it is not open: see its error column)")]
    NoSuchPort(String),
    /// `rvs/capture` refused (bad limit, unwritable file, one already running).
    #[error("{0}")]
    Capture(String),
    /// `rvs/takeover` refused (see [`crate::takeover`]).
    #[error("takeover refused: {0}")]
    Takeover(String),
    /// A command's own error text (`ofproto/trace`'s are OVS's).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vlog(#[from] VlogError),
}

type Reply = Result<String, AppctlError>;

/// A handler's answer, to be awaited by [`run`].
type Pending<'a> = Pin<Box<dyn Future<Output = Reply> + 'a>>;

/// Runs a command whose argument count `lookup` has checked.
type Handler = for<'a> fn(&'a mut Control, &'a [String]) -> Pending<'a>;

/// One registered command (OVS's `struct unixctl_command`).
struct Command {
    name: &'static str,
    /// Shown by `list-commands` after the name.
    usage: &'static str,
    min_args: usize,
    max_args: usize,
    handler: Handler,
    /// Shown by `list-commands`: OVS registers its old spellings (`bond/*-slave`)
    /// without a usage, which leaves them out of the list.
    listed: bool,
}

const fn cmd(name: &'static str, usage: &'static str, min_args: usize, max_args: usize, handler: Handler) -> Command {
    Command { name, usage, min_args, max_args, handler, listed: true }
}

/// An old spelling OVS still accepts, not listed.
const fn alias(name: &'static str, min_args: usize, max_args: usize, handler: Handler) -> Command {
    Command { name, usage: "", min_args, max_args, handler, listed: false }
}

/// An answer ready at once, for handlers that do not ask the workers.
fn done<'a>(r: Reply) -> Pending<'a> {
    Box::pin(std::future::ready(r))
}

/// The `i`th argument, if given.
fn arg(args: &[String], i: usize) -> Option<&str> {
    args.get(i).map(String::as_str)
}

/// Every command, in name order: `list-commands` prints them in this order (OVS sorts
/// its list by name). Handlers may index up to `min_args - 1` without checking.
static COMMANDS: &[Command] = &[
    cmd("bond/disable-member", "port member", 2, 2, |ctl, a| done(bond_member(ctl, &a[0], &a[1], Some(false)))),
    alias("bond/disable-slave", 2, 2, |ctl, a| done(bond_member(ctl, &a[0], &a[1], Some(false)))),
    cmd("bond/enable-member", "port member", 2, 2, |ctl, a| done(bond_member(ctl, &a[0], &a[1], Some(true)))),
    alias("bond/enable-slave", 2, 2, |ctl, a| done(bond_member(ctl, &a[0], &a[1], Some(true)))),
    cmd("bond/hash", "mac [vlan] [basis]", 1, 3, |_, a| done(crate::bonds::hash_command(&a[0], arg(a, 1), arg(a, 2)).map_err(AppctlError::Bond))),
    cmd("bond/list", "", 0, 0, |ctl, _| done(Ok(ctl.ports.bonds.bond_list()))),
    cmd("bond/migrate", "port hash member", 3, 3, |ctl, a| done(ctl.ports.bonds.migrate(&a[0], &a[1], &a[2]).map(String::from).map_err(AppctlError::Bond))),
    cmd("bond/set-active-member", "port member", 2, 2, |ctl, a| done(bond_member(ctl, &a[0], &a[1], None))),
    alias("bond/set-active-slave", 2, 2, |ctl, a| done(bond_member(ctl, &a[0], &a[1], None))),
    cmd("bond/show", "[port]", 0, 1, |ctl, a| done(ctl.ports.bonds.bond_show(arg(a, 0)).ok_or(AppctlError::Bond("no such bond")))),
    cmd("dpif-netdev/pmd-rxq-show", "[-pmd core] [-secs secs] [dp]", 0, 5, |ctl, a| Box::pin(pmd_rxq_show(ctl, a))),
    cmd("dpif-netdev/pmd-stats-clear", "[-pmd core] [dp]", 0, 3, |ctl, a| Box::pin(pmd_stats_clear(ctl, a))),
    cmd("dpif-netdev/pmd-stats-show", "[-pmd core] [dp]", 0, 3, |ctl, a| Box::pin(pmd_stats_show(ctl, a))),
    cmd("dpif/show", "", 0, 0, |ctl, _| Box::pin(dpif_show(ctl))),
    cmd("exit", "[--cleanup]", 0, 1, |ctl, _| {
        ctl.exit_requested = true;
        done(Ok(String::new()))
    }),
    cmd("fdb/add", "bridge port vlan mac", 4, 4, |ctl, a| Box::pin(fdb_add(ctl, &a[0], &a[1], &a[2], &a[3]))),
    cmd("fdb/del", "bridge vlan mac", 3, 3, |ctl, a| Box::pin(fdb_del(ctl, &a[0], &a[1], &a[2]))),
    cmd("fdb/flaps", "bridge", 1, 1, |ctl, a| Box::pin(fdb_flaps(ctl, &a[0]))),
    cmd("fdb/flush", "[bridge]", 0, 1, |ctl, a| Box::pin(fdb_each(ctl, arg(a, 0), |b| b.core.fdb_mut().flush(), "table successfully flushed"))),
    cmd("fdb/show", "bridge [--format=json]", 1, 2, |ctl, a| Box::pin(fdb_show(ctl, &a[0], arg(a, 1)))),
    cmd("fdb/stats-clear", "[bridge]", 0, 1, |ctl, a| {
        Box::pin(fdb_each(
            ctl,
            arg(a, 0),
            |b| {
                b.core.fdb_mut().clear_stats();
                b.core.flaps_mut().clear_stats();
            },
            "statistics successfully cleared",
        ))
    }),
    cmd("fdb/stats-show", "bridge", 1, 1, |ctl, a| Box::pin(fdb_stats_show(ctl, &a[0]))),
    cmd("lacp/show", "[port]", 0, 1, |ctl, a| done(ctl.ports.bonds.lacp_show(arg(a, 0), false).ok_or(AppctlError::Bond("no such lacp object")))),
    cmd("lacp/show-stats", "[port]", 0, 1, |ctl, a| done(ctl.ports.bonds.lacp_show(arg(a, 0), true).ok_or(AppctlError::Bond("no such lacp object")))),
    cmd("list-commands", "", 0, 0, |_, _| done(Ok(list_commands()))),
    cmd("ofproto/trace", "{[dp_name] odp_flow | bridge br_flow} [OPTIONS...] [-generate|packet]", 1, usize::MAX, |ctl, a| {
        Box::pin(crate::trace::appctl(ctl, a))
    }),
    cmd("qos/show", "interface", 1, 1, |ctl, a| done(qos_show(ctl, &a[0]))),
    cmd("qos/show-types", "interface", 1, 1, |ctl, a| done(qos_show_types(ctl, &a[0]))),
    cmd("rvs/capture", "port file [count|secondss]", 2, 3, |ctl, a| done(capture(ctl, &a[0], &a[1], arg(a, 2)))),
    cmd("rvs/capture-stop", "port", 1, 1, |ctl, a| done(capture_stop(ctl, &a[0]))),
    cmd("rvs/drops", "[bridge]", 0, 1, |ctl, a| Box::pin(drops(ctl, arg(a, 0)))),
    cmd("rvs/metrics", "", 0, 0, |ctl, _| Box::pin(crate::metrics::collect(ctl))),
    cmd("rvs/takeover", "pid", 1, 1, |ctl, a| Box::pin(takeover(ctl, &a[0]))),
    cmd("rvs/workers", "", 0, 0, |ctl, _| Box::pin(workers(ctl))),
    cmd("rvs/workers-clear", "", 0, 0, |ctl, _| Box::pin(workers_clear(ctl))),
    cmd("version", "", 0, 0, |_, _| done(Ok(format!("rvs-vswitchd (rvs) {}\n", env!("CARGO_PKG_VERSION"))))),
    cmd("vlog/list", "", 0, 0, |_, _| done(Ok(logging::vlog_list()))),
    // OVS registers vlog/set with INT_MAX: any number of specs.
    cmd("vlog/set", "{spec | PATTERN:destination:pattern}", 0, usize::MAX, |_, a| {
        done(logging::vlog_set(a).map(|()| String::new()).map_err(AppctlError::from))
    }),
];

/// Runs one command and gives the daemon's answer: the output, or the error text
/// ("server returned an error"). Like OVS's unixctl server, a non-empty answer always
/// ends with a newline.
pub async fn run(ctl: &mut Control, name: &str, args: &[String]) -> Response {
    let answer = match lookup(name, args.len()) {
        Ok(c) => (c.handler)(ctl, args).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(output) => Response::Appctl { ok: true, output: terminated(output) },
        Err(e) => Response::Appctl { ok: false, output: terminated(e.to_string()) },
    }
}

/// The registered command `name`, if `nargs` arguments are within its counts: the one
/// place unixctl's errors are made (OVS's `process_command()`).
fn lookup(name: &str, nargs: usize) -> Result<&'static Command, AppctlError> {
    let c = COMMANDS.iter().find(|c| c.name == name).ok_or_else(|| AppctlError::UnknownCommand(name.to_string()))?;
    if nargs < c.min_args {
        return Err(AppctlError::TooFewArgs { name: c.name, min: c.min_args });
    }
    if nargs > c.max_args {
        return Err(AppctlError::TooManyArgs { name: c.name, max: c.max_args });
    }
    Ok(c)
}

fn terminated(mut s: String) -> String {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn list_commands() -> String {
    let mut s = String::from("The available commands are:\n");
    for c in COMMANDS.iter().filter(|c| c.listed) {
        let _ = writeln!(s, "  {:<23} {}", c.name, c.usage);
    }
    s
}

/// `bond/show [port]`: rvs has no bonds: nothing to show, and no port is a bond.
/// `bond/set-active-member` (`enable` None), `bond/enable-member`, `bond/disable-member`.
fn bond_member(ctl: &mut Control, port: &str, member: &str, enable: Option<bool>) -> Reply {
    ctl.ports.bonds.member_command(port, member, enable).map(String::from).map_err(AppctlError::Bond)
}

/// `rvs/workers-clear`: every worker starts its figures again.
async fn workers_clear(ctl: &mut Control) -> Reply {
    ask_all(ctl, |w| w.stats = WorkerStats::new()).await?;
    Ok(String::new())
}

/// Fails with "no such bridge" unless `br` is a bridge.
fn bridge_exists(ctl: &Control, br: &str) -> Result<(), AppctlError> {
    ctl.bridge_ports(br).map(|_| ()).ok_or(AppctlError::NoSuchBridge)
}

/// How long a command waits for a worker's answer.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks the first worker (whose replicas of the MAC tables and copy of the
/// configuration commands show); a worker that does not answer is a server error,
/// not a hang.
pub(crate) async fn ask<R: Send + 'static>(ctl: &Control, f: impl FnOnce(&mut Worker) -> R + Send + 'static) -> Result<R, AppctlError> {
    let rx = ctl.worker.query(f);
    match tokio::time::timeout(ASK_TIMEOUT, rx).await {
        Ok(Ok(r)) => Ok(r),
        _ => Err(AppctlError::WorkerSilent),
    }
}

/// Asks every worker (to change every replica, or to add up counters); answers in
/// worker order.
pub(crate) async fn ask_all<R: Send + 'static>(ctl: &Control, f: impl Fn(&mut Worker) -> R + Send + Sync + 'static) -> Result<Vec<R>, AppctlError> {
    let mut out = Vec::new();
    for rx in ctl.worker.query_all(f) {
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(r)) => out.push(r),
            _ => return Err(AppctlError::WorkerSilent),
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
        // OVS registers fdb/show with one argument: anything else in second place gets
        // the arity error OVS would give it.
        Some(_) => return Err(AppctlError::TooManyArgs { name: "fdb/show", max: 1 }),
    };
    bridge_exists(ctl, br)?;
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
        bridge_exists(ctl, b)?;
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
    bridge_exists(ctl, br)?;
    let name = br.to_string();
    let all = ask_all(ctl, move |w| {
        w.bridge(&name).map(|b| {
            let f = b.core.fdb();
            (f.len(), f.capacity(), f.static_count(), f.stats())
        })
    })
    .await?;
    // Table sizes and expiries from the first worker's replica; addresses learned and
    // moved are counted by the worker that saw the frames, so they add up.
    let (len, cap, st, mut s) = all.first().copied().flatten().unwrap_or((0, rvs_switch::bridge::fdb::DEFAULT_CAPACITY, 0, Default::default()));
    for (_, _, _, o) in all.iter().skip(1).flatten() {
        s.learned += o.learned;
        s.moved += o.moved;
    }
    // Byte for byte OVS's text (scripts parse it): rvs's flap count is in `fdb/flaps`.
    Ok(format!(
        "Statistics for bridge \"{br}\":\n  Current/maximum MAC entries in the table: {len}/{cap}\n  Current static MAC entries in the table : {st}\n  Total number of learned MAC entries     : {}\n  Total number of expired MAC entries     : {}\n  Total number of evicted MAC entries     : {}\n  Total number of port moved MAC entries  : {}\n",
        s.learned, s.expired, s.evicted, s.moved
    ))
}

/// The counters (and capture slot) of the open interface `name`.
fn open_port_stats(ctl: &Control, name: &str) -> Result<std::sync::Arc<crate::port::PortStats>, AppctlError> {
    ctl.ports.open.values().find(|p| p.name == name).map(|p| p.stats.clone()).ok_or_else(|| AppctlError::NoSuchPort(name.to_string()))
}

/// The open interface `name`, or OVS's error for an interface it does not have.
fn open_iface<'a>(ctl: &'a Control, name: &str) -> Result<(&'a rvs_ovsdb::Uuid, &'a crate::reconcile::OpenIface), AppctlError> {
    ctl.ports.open.iter().find(|(_, p)| p.name == name).ok_or_else(|| AppctlError::Failed("no such interface".into()))
}

/// `qos/show IFACE` (OVS's text, see [`crate::qos::show`]).
fn qos_show(ctl: &mut Control, name: &str) -> Reply {
    use crate::qos::show::{Shown, show};
    let (u, p) = open_iface(ctl, name)?;
    if let Some(i) = ctl.ports.qos.installed(u) {
        let classes = rvs_sys::tc::classes(rvs_sys::tc::Dev { name: &i.name, ifindex: i.ifindex });
        return Ok(show(name, &Shown::Kernel(i, classes)));
    }
    let spec = crate::qos::spec_of_iface(&ctl.db, u);
    let shown = match spec.as_ref().map(|q| (q, crate::qos::outcome(q, p.device.qos_home()))) {
        Some((q, crate::qos::Outcome::Shaper(cfg))) => {
            let s = p.stats.snapshot();
            let shaped = p.stats.tx_shaped.load(std::sync::atomic::Ordering::Relaxed);
            Shown::Shaper { ty: &q.ty, cfg, counters: (s.tx_packets, s.tx_bytes, shaped) }
        }
        _ => Shown::None,
    };
    Ok(show(name, &shown))
}

/// `qos/show-types IFACE`: the QoS types rvs honours on that interface.
fn qos_show_types(ctl: &mut Control, name: &str) -> Reply {
    let (_, p) = open_iface(ctl, name)?;
    Ok(crate::qos::show::show_types(name, crate::qos::types_for(p.device.qos_home())))
}

/// `rvs/capture PORT FILE [COUNT|SECONDSs]`: starts writing the frames port PORT
/// receives and sends to the pcap file FILE (see [`crate::capture`]); answers at once.
fn capture(ctl: &mut Control, port: &str, file: &str, limit: Option<&str>) -> Reply {
    let limits = crate::capture::Limits::parse(limit).map_err(AppctlError::Capture)?;
    let stats = open_port_stats(ctl, port)?;
    let path = crate::capture::absolute(file);
    crate::capture::start(stats, port, &path, limits).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists if e.get_ref().is_some() => AppctlError::Capture(e.to_string()),
        _ => AppctlError::Capture(format!("cannot write {}: {}", path.display(), rvs_sys::strerror(&e))),
    })
}

/// `rvs/capture-stop PORT`: ends the port's capture (its file is complete).
fn capture_stop(ctl: &mut Control, port: &str) -> Reply {
    let stats = open_port_stats(ctl, port)?;
    if !stats.capture.busy() {
        return Err(AppctlError::Capture(format!("no capture runs on port {port}")));
    }
    stats.capture.stop();
    Ok(String::new())
}

/// `rvs/takeover PID`: the daemon `PID` (started with `--takeover`) takes this one's
/// place. Leaves the MAC tables for it, names the fanout groups it joins, and from now
/// on saves nothing while that process lives (see [`crate::takeover`]).
async fn takeover(ctl: &mut Control, pid: &str) -> Reply {
    let refuse = |why: String| Err(AppctlError::Takeover(why));
    let Ok(pid) = pid.parse::<u32>() else { return refuse(format!("{pid:?} is not a process id")) };
    if pid == std::process::id() || !crate::takeover::alive(pid) {
        return refuse(format!("no other process {pid}"));
    }
    if let Some(s) = ctl.handing_over().filter(|s| s.pid != pid) {
        return refuse(format!("already handing over to pid {}", s.pid));
    }
    let Some(rundir) = ctl.rundir.clone() else { return refuse("this daemon has no run directory".into()) };
    ctl.store.hold(true);
    ctl.successor = Some(crate::takeover::Successor { pid });
    let fdb_entries = crate::fdbkeep::save(&ctl.worker, &rundir).await;
    let offer = crate::takeover::Offer { pid: std::process::id(), fanout: ctl.ports.fanout_groups(), fdb_entries, lacp: ctl.ports.bonds.lacp_handover() };
    tracing::info!("takeover: handing over to pid {pid} ({fdb_entries} learned MAC entries, {} AF_PACKET port(s) to share)", offer.fanout.len());
    serde_json::to_string(&offer).map_err(|e| AppctlError::Takeover(e.to_string()))
}

/// `fdb/flaps BRIDGE` (rvs's own): how many flaps were detected since the start or
/// `fdb/stats-clear`, then the addresses that recently moved between ports again and
/// again, by VLAN and MAC: moves seen in the detection window, seconds since the last,
/// and the two ports of the last move. Each worker follows the moves of the
/// frames it received; their lists are merged here.
async fn fdb_flaps(ctl: &mut Control, br: &str) -> Reply {
    bridge_exists(ctl, br)?;
    let name = br.to_string();
    let all = ask_all(ctl, move |w| {
        let now = w.now();
        w.bridge(&name)
            .map(|b| {
                let port = |key: u32| b.ports.iter().find(|p| u32::from(p.ofport.get()) == key).map_or_else(|| format!("ofport {key}"), |p| p.name.clone());
                let recent = b.core.flaps().recent();
                (
                    b.core.flaps().total(),
                    recent.map(|f| (f.vlan.get(), f.mac, f.moves, f.last, now.since(f.last) / 1000, port(f.from), port(f.to))).collect::<Vec<_>>(),
                )
            })
            .unwrap_or_default()
    })
    .await?;
    let total: u64 = all.iter().map(|(t, _)| t).sum();
    let mut rows: Vec<(u16, MacAddr, u32, rvs_switch::time::Time, u64, String, String)> = Vec::new();
    for f in all.into_iter().flat_map(|(_, r)| r) {
        match rows.iter_mut().find(|r| (r.0, r.1) == (f.0, f.1)) {
            None => rows.push(f),
            Some(r) => {
                let moves = r.2 + f.2;
                if f.3 > r.3 {
                    *r = f;
                }
                r.2 = moves;
            }
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    let mut s = format!("Flapping MAC entries detected: {total}\n VLAN  MAC                Moves  Last  Between\n");
    for (vlan, mac, moves, _, ago, from, to) in rows {
        let _ = writeln!(s, "{vlan:>5}  {mac}  {moves:>5}  {ago:>4}  {from} and {to}");
    }
    Ok(s)
}

/// `atoi()`: the leading integer, 0 if none.
/// A VLAN argument of fdb/add and fdb/del: a decimal number from 0 to 4095.
fn vlan_arg(s: &str) -> Result<VlanId, AppctlError> {
    s.parse::<u16>().ok().and_then(VlanId::new).ok_or_else(|| AppctlError::BadVlan(s.to_string()))
}

async fn fdb_add(ctl: &mut Control, br: &str, port: &str, vlan: &str, mac: &str) -> Reply {
    let ports = ctl.bridge_ports(br).ok_or(AppctlError::NoSuchBridge)?;
    let mac: MacAddr = mac.parse().map_err(|_| AppctlError::BadMac)?;
    let vid = vlan_arg(vlan)?;
    if mac.is_multicast() {
        return Err(AppctlError::MulticastMac(mac));
    }
    if !ports.iter().any(|(n, ofp, _)| n == port && *ofp > 0) {
        return Err(AppctlError::NoOfPort);
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
    ctl.store.save(&ctl.db, &ctl.meta)?;
    ctl.reconcile();
    Ok(match previous {
        Some((was_static, old)) => {
            format!("Overriding already existing {} entry on {old}\n", if was_static { "static" } else { "dynamic" })
        }
        None => String::new(),
    })
}

async fn fdb_del(ctl: &mut Control, br: &str, vlan: &str, mac: &str) -> Reply {
    bridge_exists(ctl, br)?;
    let mac: MacAddr = mac.parse().map_err(|_| AppctlError::BadMac)?;
    let vid = vlan_arg(vlan)?;
    let before = ctl.meta.static_fdb.len();
    let (b, m) = (br.to_string(), mac.to_string());
    ctl.meta.static_fdb.retain(|s| !(s.bridge == b && s.vlan == vid.get() && s.mac == m));
    if ctl.meta.static_fdb.len() == before {
        return Err(AppctlError::NoStaticEntry);
    }
    ctl.store.save(&ctl.db, &ctl.meta)?;
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
        bridge_exists(ctl, b)?;
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
    // The endpoints' counters are atomics beside the sockets: read here, not asked of
    // a worker.
    let eps: Vec<(String, [(&str, u64); 5])> = {
        use std::sync::atomic::Ordering::Relaxed;
        ctl.ports
            .vxlan_endpoints()
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
            .collect()
    };
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
/// The arguments of the `dpif-netdev/pmd-*` commands as OVS reads them: `-pmd CORE`
/// (a core that is not a number shows every thread, as in OVS), `-secs SECS` (where
/// allowed; 0 or over 60 is 60) and a datapath name, which rvs, with one datapath,
/// ignores — as OVS shows every thread for a name it does not know.
fn pmd_args(a: &[String], secs_allowed: bool) -> (Option<usize>, u64) {
    let (mut core, mut secs) = (None, 60);
    let mut i = 0;
    while i < a.len() {
        match a[i].as_str() {
            "-pmd" if i + 1 < a.len() => {
                core = a[i + 1].parse().ok();
                i += 1;
            }
            "-secs" if secs_allowed && i + 1 < a.len() => {
                secs = a[i + 1].parse().ok().filter(|s| (1..=60).contains(s)).unwrap_or(60);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    (core, secs)
}

/// What `pmd-stats-show` needs of a worker.
type PmdStats = (Option<usize>, WorkerStats, crate::worker::Cycles);

/// `dpif-netdev/pmd-stats-show`: each polling worker as OVS shows a PMD thread, then
/// the workers that sleep when idle together as OVS's "main thread" (the one that
/// serves the ports no PMD polls). rvs has no flow caches: each frame is decided by
/// the MAC table, so the cache and upcall lines say 0.
async fn pmd_stats_show(ctl: &mut Control, a: &[String]) -> Reply {
    let (core, _) = pmd_args(a, false);
    let mut all: Vec<PmdStats> = ask_all(ctl, |w| (w.pmd_cpu(), w.stats, w.cycles())).await?;
    all.sort_by_key(|(cpu, ..)| *cpu);
    let mut s = String::new();
    for (cpu, st, cy) in all.iter().filter_map(|(p, st, cy)| Some(((*p)?, st, cy))) {
        if core.is_none_or(|c| c == cpu) {
            let _ = writeln!(s, "pmd thread numa_id {} core_id {cpu}:", rvs_sys::process::numa_node_of(cpu));
            pmd_block(&mut s, st.frames, st.out_batches, st.out_frames, Some(cy));
        }
    }
    // `-pmd CORE` shows that PMD thread only.
    if core.is_none() {
        let main = all.iter().filter(|(p, ..)| p.is_none()).fold((0, 0, 0), |(f, b, o), (_, st, _)| (f + st.frames, b + st.out_batches, o + st.out_frames));
        s.push_str("main thread:\n");
        pmd_block(&mut s, main.0, main.1, main.2, None);
    }
    Ok(s)
}

/// The lines of one thread in `pmd-stats-show` (OVS 3.1's layout).
fn pmd_block(s: &mut String, frames: u64, batches: u64, out: u64, cycles: Option<&crate::worker::Cycles>) {
    let avg = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let _ = writeln!(s, "  packets received: {frames}");
    s.push_str("  packet recirculations: 0\n");
    let _ = writeln!(s, "  avg. datapath passes per packet: {:.2}", avg(frames, frames));
    for line in ["phwol hits", "mfex opt hits", "simple match hits", "emc hits", "smc hits", "megaflow hits"] {
        let _ = writeln!(s, "  {line}: 0");
    }
    s.push_str("  avg. subtable lookups per megaflow hit: 0.00\n  miss with success upcall: 0\n  miss with failed upcall: 0\n");
    let _ = writeln!(s, "  avg. packets per output batch: {:.2}", avg(out, batches));
    if let Some(c) = cycles {
        let total = c.idle + c.processing;
        let pct = |x: u64| if total == 0 { 0.0 } else { x as f64 * 100.0 / total as f64 };
        let _ = writeln!(s, "  idle cycles: {} ({:.2}%)", c.idle, pct(c.idle));
        let _ = writeln!(s, "  processing cycles: {} ({:.2}%)", c.processing, pct(c.processing));
        if frames > 0 {
            let _ = writeln!(s, "  avg cycles per packet: {:.2} ({total}/{frames})", avg(total, frames));
            let _ = writeln!(s, "  avg processing cycles per packet: {:.2} ({}/{frames})", avg(c.processing, frames), c.processing);
        }
    }
}

/// `dpif-netdev/pmd-stats-clear`: the frame counts and cycles start again.
async fn pmd_stats_clear(ctl: &mut Control, a: &[String]) -> Reply {
    let (core, _) = pmd_args(a, false);
    ask_all(ctl, move |w| {
        if core.is_none_or(|c| w.pmd_cpu() == Some(c)) {
            w.stats = WorkerStats::new();
            w.clear_cycles();
        }
    })
    .await?;
    Ok(String::new())
}

/// `dpif-netdev/pmd-rxq-show`: per polling worker, the receive queues it polls and
/// the share of its cycles each took over the last SECS seconds (10-second intervals;
/// `NOT AVAIL` before the first has completed).
async fn pmd_rxq_show(ctl: &mut Control, a: &[String]) -> Reply {
    let (core, secs) = pmd_args(a, true);
    let intervals = secs.div_ceil(10) as usize;
    let mut all = ask_all(ctl, move |w| (w.pmd_cpu(), (w.queue_usage(intervals), w.isolated()))).await?;
    all.sort_by_key(|(cpu, _)| *cpu);
    let pct = |u: Option<u64>| u.map_or_else(|| "NOT AVAIL".to_string(), |u| format!("{u:2} %"));
    let mut s = format!("Displaying last {secs} seconds pmd usage %\n");
    for (cpu, ((queues, overhead), isolated)) in all.iter().filter_map(|(p, u)| Some(((*p)?, u))) {
        if core.is_some_and(|c| c != cpu) {
            continue;
        }
        let _ = writeln!(s, "pmd thread numa_id {} core_id {cpu}:\n  isolated : {isolated}", rvs_sys::process::numa_node_of(cpu));
        for (port, q, usage) in queues {
            let _ = writeln!(s, "  port: {port:<16}  queue-id: {q:2} (enabled)   pmd usage: {}", pct(*usage));
        }
        let _ = writeln!(s, "  overhead: {}", pct(*overhead));
    }
    Ok(s)
}

async fn workers(ctl: &mut Control) -> Reply {
    let all = ask_all(ctl, |w| {
        let mode = match (w.pmd_cpu(), w.pmd_error()) {
            (Some(c), _) => format!("polling on CPU {c} (pmd-cpu-mask)"),
            (None, Some(e)) => e.to_string(),
            (None, None) => "sleeps when idle".to_string(),
        };
        (w.id(), w.inputs(), w.learn_lost, w.stats, w.rx_modes(), rvs_sys::uring::status(), mode)
    })
    .await?;
    let mut s = String::new();
    if let crate::plan::Pmd::Refused { mask, why } = &ctl.ports.pmd {
        let _ = writeln!(s, "pmd-cpu-mask={mask} refused: {why}; the workers sleep when idle");
    }
    for (id, inputs, lost, stats, modes, uring, mode) in all {
        let _ = writeln!(s, "worker {id}: {}", if inputs.is_empty() { "(no inputs)".to_string() } else { inputs.join(" ") });
        let _ = writeln!(s, "  mode: {mode}");
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

    /// The names and counts every command had before the registry (the table OVS's
    /// tests and scripts rely on): a row changed here is a behaviour change.
    const REGISTERED: &[(&str, usize, usize)] = &[
        ("bond/disable-member", 2, 2),
        ("bond/disable-slave", 2, 2),
        ("bond/enable-member", 2, 2),
        ("bond/enable-slave", 2, 2),
        ("bond/hash", 1, 3),
        ("bond/list", 0, 0),
        ("bond/migrate", 3, 3),
        ("bond/set-active-member", 2, 2),
        ("bond/set-active-slave", 2, 2),
        ("bond/show", 0, 1),
        ("dpif-netdev/pmd-rxq-show", 0, 5),
        ("dpif-netdev/pmd-stats-clear", 0, 3),
        ("dpif-netdev/pmd-stats-show", 0, 3),
        ("dpif/show", 0, 0),
        ("exit", 0, 1),
        ("fdb/add", 4, 4),
        ("fdb/del", 3, 3),
        ("fdb/flaps", 1, 1),
        ("fdb/flush", 0, 1),
        ("fdb/show", 1, 2),
        ("fdb/stats-clear", 0, 1),
        ("fdb/stats-show", 1, 1),
        ("lacp/show", 0, 1),
        ("lacp/show-stats", 0, 1),
        ("list-commands", 0, 0),
        ("ofproto/trace", 1, usize::MAX),
        ("qos/show", 1, 1),
        ("qos/show-types", 1, 1),
        ("rvs/capture", 2, 3),
        ("rvs/capture-stop", 1, 1),
        ("rvs/drops", 0, 1),
        ("rvs/metrics", 0, 0),
        ("rvs/takeover", 1, 1),
        ("rvs/workers", 0, 0),
        ("rvs/workers-clear", 0, 0),
        ("version", 0, 0),
        ("vlog/list", 0, 0),
        ("vlog/set", 0, usize::MAX),
    ];

    #[test]
    fn registry_holds_each_command_once_in_name_order() {
        let rows: Vec<_> = COMMANDS.iter().map(|c| (c.name, c.min_args, c.max_args)).collect();
        assert_eq!(rows, REGISTERED);
        assert!(COMMANDS.windows(2).all(|w| w[0].name < w[1].name), "names sorted and unique");
        assert!(COMMANDS.iter().all(|c| c.min_args <= c.max_args));
    }

    #[test]
    fn list_commands_text() {
        // Byte for byte what rvs printed before the registry: OVS's "  %-23s %s\n" per
        // command, in name order (an empty usage leaves the trailing space, as OVS does).
        let expected = "The available commands are:\n  bond/disable-member     port member\n  bond/enable-member      port member\n  bond/hash               mac [vlan] [basis]\n  bond/list               \n  bond/migrate            port hash member\n  bond/set-active-member  port member\n  bond/show               [port]\n  dpif-netdev/pmd-rxq-show [-pmd core] [-secs secs] [dp]\n  dpif-netdev/pmd-stats-clear [-pmd core] [dp]\n  dpif-netdev/pmd-stats-show [-pmd core] [dp]\n  dpif/show               \n  exit                    [--cleanup]\n  fdb/add                 bridge port vlan mac\n  fdb/del                 bridge vlan mac\n  fdb/flaps               bridge\n  fdb/flush               [bridge]\n  fdb/show                bridge [--format=json]\n  fdb/stats-clear         [bridge]\n  fdb/stats-show          bridge\n  lacp/show               [port]\n  lacp/show-stats         [port]\n  list-commands           \n  ofproto/trace           {[dp_name] odp_flow | bridge br_flow} [OPTIONS...] [-generate|packet]\n  qos/show                interface\n  qos/show-types          interface\n  rvs/capture             port file [count|secondss]\n  rvs/capture-stop        port\n  rvs/drops               [bridge]\n  rvs/metrics             \n  rvs/takeover            pid\n  rvs/workers             \n  rvs/workers-clear       \n  version                 \n  vlog/list               \n  vlog/set                {spec | PATTERN:destination:pattern}\n";
        assert_eq!(list_commands(), expected);
    }

    fn lookup_err(name: &str, nargs: usize) -> String {
        lookup(name, nargs).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn unknown_command() {
        assert_eq!(lookup_err("bogus", 0), "\"bogus\" is not a valid command (use \"list-commands\" to see a list of valid commands)");
        // names match whole and exactly
        assert!(matches!(lookup("fdb", 1), Err(AppctlError::UnknownCommand(_))));
        assert!(matches!(lookup("FDB/SHOW", 1), Err(AppctlError::UnknownCommand(_))));
    }

    #[test]
    fn argument_counts() {
        assert_eq!(lookup_err("fdb/add", 3), "\"fdb/add\" command requires at least 4 arguments");
        assert_eq!(lookup_err("fdb/show", 0), "\"fdb/show\" command requires at least 1 arguments");
        assert_eq!(lookup_err("fdb/show", 3), "\"fdb/show\" command takes at most 2 arguments");
        assert_eq!(lookup_err("version", 1), "\"version\" command takes at most 0 arguments");
        // an unknown name is reported before any count
        assert!(matches!(lookup("bogus", 99), Err(AppctlError::UnknownCommand(_))));
        for &(name, min, max) in REGISTERED {
            assert_eq!(lookup(name, min).map(|c| c.name).ok(), Some(name));
            assert_eq!(lookup(name, max.min(64)).map(|c| c.name).ok(), Some(name));
        }
        // fdb/show's own check of its second argument says what OVS says of a second argument
        assert_eq!(AppctlError::TooManyArgs { name: "fdb/show", max: 1 }.to_string(), "\"fdb/show\" command takes at most 1 arguments");
    }

    #[test]
    fn answers_end_in_one_newline() {
        assert_eq!(terminated(String::new()), "");
        assert_eq!(terminated("x".into()), "x\n");
        assert_eq!(terminated("x\n".into()), "x\n");
        assert_eq!(terminated(AppctlError::NoStaticEntry.to_string()), "could not find static mac entry\n");
        assert_eq!(terminated(AppctlError::NoSuchBridge.to_string()), "no such bridge\n");
    }

    #[test]
    fn error_texts_are_the_replies_rvs_gave_before() {
        use AppctlError::*;
        let cases: &[(AppctlError, &str)] = &[
            (NoSuchBridge, "no such bridge"),
            (Bond("no such bond"), "no such bond"),
            (BadMac, "bad MAC address"),
            (NoOfPort, "software error, odp port is present but no ofp port"),
            (NoStaticEntry, "could not find static mac entry\n"),
            (WorkerSilent, "datapath worker did not answer"),
            (Vlog(VlogError::NoLevel), "no log level given (one of off, emer, err, warn, info, dbg)"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), *text);
        }
    }

    #[test]
    fn bond_show_without_bonds() {
        let b = crate::bonds::Bonds::default();
        assert_eq!(b.bond_show(None).as_deref(), Some(""));
        assert_eq!(b.bond_show(Some("p0")), None);
        assert_eq!(b.lacp_show(Some("p0"), false), None);
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
    fn vlan_arguments_are_whole_numbers_in_range() {
        assert_eq!(vlan_arg("10").unwrap().get(), 10);
        assert_eq!(vlan_arg("0").unwrap().get(), 0);
        assert_eq!(vlan_arg("4095").unwrap().get(), 4095);
        for bad in ["4096", "-1", "abc", "12abc", " 7", "", "65536"] {
            assert!(matches!(vlan_arg(bad), Err(AppctlError::BadVlan(_))), "{bad}");
        }
    }
}
