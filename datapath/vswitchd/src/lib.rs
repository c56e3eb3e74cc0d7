//! `rvs-vswitchd`: the daemon.
//!
//! Threads: the datapath workers ([`worker`], `other_config:n-workers`, default one per 4 CPUs, 1 to 8)
//! running poll loops over the ports' receive queues, and the control plane on the
//! main thread (a single-threaded tokio runtime) serving the control socket
//! ([`server`]), watching link events, and owning the database ([`control`]). They
//! talk only through messages: configuration snapshots and closures go to the workers
//! between batches; broken-port reports come back.
//!
//! Startup: load `DBDIR/conf.db` (a corrupt file is an error naming it), detach if
//! asked (the parent returns only once the control socket accepts commands), open the
//! ports, serve. SIGTERM/SIGINT stop cleanly: the workers stop, every port closes, the
//! socket and pidfile are removed. The taps rvs created stay (persistent, without
//! carrier while no daemon holds them), wherever they are, for the next start to
//! attach to; a tap is deleted when its interface leaves the configuration.
//!
//! Ports ([`port`]) are thin I/O backends behind one pair of traits (receive queues,
//! and ports that frames are sent to; a VXLAN endpoint is the first without the
//! second), with a companion trait for what the control plane asks of them; every
//! system call they make goes through `rvs_sys`, so this crate has no `unsafe`.
#![forbid(unsafe_code)]

pub mod appctl;
pub mod bonds;
pub mod capture;
pub mod control;
pub mod fdbkeep;
pub mod logging;
pub mod metrics;
pub mod mirrors;
pub mod notify;
pub mod plan;
pub mod port;
pub mod qos;
pub mod reconcile;
pub mod server;
pub mod status;
pub mod store;
pub mod takeover;
pub mod trace;
pub mod tunnel;
pub mod worker;

/// Test builds count allocations per thread (the no-allocation-when-warm test).
#[cfg(test)]
#[global_allocator]
static COUNTING: rvs_sys::alloc_count::Counting = rvs_sys::alloc_count::Counting;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::sync::mpsc;

use control::Control;
use rvs_ovsdb::Db;
use rvs_ovsdb::proto::{Request, Response, SOCKET_NAME};
use rvs_switch::time::Clock;
use rvs_sys::{netlink, process};
use store::{Meta, Store};
use worker::{WorkerEvent, WorkerHandle};

/// Command-line flags of rvs-vswitchd.
#[derive(Parser, Debug)]
#[command(name = "rvs-vswitchd", version, about = "rvs userspace virtual switch daemon (drop-in for ovs-vswitchd)")]
pub struct Opts {
    /// Run directory: the control socket is DIR/rvs.sock [default: $RVS_RUNDIR, else /run/rvs]
    #[arg(long, value_name = "DIR")]
    pub rundir: Option<PathBuf>,
    /// Database directory: the configuration is DIR/conf.db [default: $RVS_DBDIR, else /var/lib/rvs]
    #[arg(long, value_name = "DIR")]
    pub dbdir: Option<PathBuf>,
    /// Run in the background; return once the control socket accepts commands
    #[arg(long)]
    pub detach: bool,
    /// Write the daemon's pid to FILE [default FILE: RUNDIR/rvs-vswitchd.pid]
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "@default")]
    pub pidfile: Option<PathBuf>,
    /// Log to FILE instead of stderr [default FILE: /var/log/rvs/rvs-vswitchd.log]
    #[arg(long = "log-file", value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "@default")]
    pub log_file: Option<PathBuf>,
    /// Use plain system calls only: no io_uring for tap writes, no receive rings on
    /// AF_PACKET sockets (for kernels or sandboxes that refuse or break them; slower)
    #[arg(long)]
    pub plain_io: bool,
    /// Take over from the rvs-vswitchd running on the same run directory without a
    /// forwarding gap (an upgrade or a restart VMs do not notice): open every port
    /// beside it, then tell it to exit. Without a running daemon, start as usual
    #[arg(long)]
    pub takeover: bool,
}

fn dir_from(flag: &Option<PathBuf>, env: &str, default: &str) -> PathBuf {
    flag.clone().or_else(|| std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from)).unwrap_or_else(|| PathBuf::from(default))
}

fn or_default(v: &Option<PathBuf>, default: PathBuf) -> Option<PathBuf> {
    v.as_ref().map(|p| if p.as_os_str() == "@default" { default.clone() } else { p.clone() })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-vswitchd: {e}");
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything that can stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Bind(#[from] server::BindError),
    #[error(transparent)]
    Takeover(#[from] takeover::TakeoverError),
    #[error("cannot create run directory {0}: {1}")]
    Rundir(PathBuf, std::io::Error),
    #[error("cannot open log file {0}: {1}")]
    Log(PathBuf, std::io::Error),
    #[error("cannot write pid file {0}: {1}")]
    Pidfile(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("the daemon exited during startup{0}")]
    Detach(String),
}

/// Runs the daemon until it is told to stop.
pub fn run(opts: Opts) -> Result<(), StartError> {
    let rundir = dir_from(&opts.rundir, "RVS_RUNDIR", "/run/rvs");
    let dbdir = dir_from(&opts.dbdir, "RVS_DBDIR", "/var/lib/rvs");
    let pidfile = or_default(&opts.pidfile, rundir.join("rvs-vswitchd.pid"));
    let log_file = or_default(&opts.log_file, PathBuf::from("/var/log/rvs/rvs-vswitchd.log"));
    rvs_sys::set_plain_io(opts.plain_io);

    // Everything that can fail for a reason the operator must see happens before
    // detaching, so the error reaches the terminal; what a takeover does after it
    // reaches the terminal through the readiness pipe.
    std::fs::create_dir_all(&rundir).map_err(|e| StartError::Rundir(rundir.clone(), e))?;
    let sock_path = rundir.join(SOCKET_NAME);
    let mut store = if opts.takeover { Store::open_shared(&dbdir)? } else { Store::open(&dbdir)? };
    let mut plain = if opts.takeover { None } else { Some((store.load()?, server::bind(&sock_path)?)) };

    let mut ready_pipe = None;
    if opts.detach {
        let (mut parent_end, child_end) = UnixStream::pair().map_err(|e| StartError::Io("socketpair", e))?;
        match process::fork().map_err(|e| StartError::Io("fork", e))? {
            process::Forked::Parent { .. } => {
                drop(child_end);
                let mut msg = String::new();
                let _ = parent_end.read_to_string(&mut msg);
                return if msg == "ready" { Ok(()) } else { Err(StartError::Detach(if msg.is_empty() { String::new() } else { format!(": {msg}") })) };
            }
            process::Forked::Child => {
                drop(parent_end);
                let _ = process::setsid();
                ready_pipe = Some(child_end);
            }
        }
    }
    let result = (|| {
        logging::init(log_file.as_deref()).map_err(|e| StartError::Log(log_file.clone().unwrap_or_default(), e))?;
        // The process that takes over is this one (after a fork, the child).
        let predecessor = match plain {
            Some(_) => None,
            None => takeover::contact(&sock_path)?,
        };
        let (loaded, listener, listen_path) = match (plain.take(), &predecessor) {
            (Some((loaded, l)), _) => (loaded, l, sock_path.clone()),
            // Loaded once the old daemon agreed: it commits nothing after that.
            (None, Some(p)) => {
                let staged = takeover::staging_path(&sock_path);
                tracing::info!("taking over from rvs-vswitchd pid {}", p.offer.pid);
                (store.load()?, server::bind(&staged)?, staged)
            }
            (None, None) => {
                tracing::info!("--takeover: no daemon runs on {}; starting as usual", sock_path.display());
                store.lock_wait(Duration::ZERO)?;
                (store.load()?, server::bind(&sock_path)?, sock_path.clone())
            }
        };
        let sock_id = takeover::file_id(&listen_path);
        store.note_owner();
        if store.writable() {
            let leftovers = store.remove_leftovers();
            if leftovers > 0 {
                tracing::info!("removed {leftovers} temporary file(s) an interrupted save left beside {}", store.path().display());
            }
        }
        if opts.plain_io {
            tracing::info!("--plain-io: taps are written one frame per system call and AF_PACKET sockets read with recvmmsg (no io_uring, no receive rings)");
        }
        if opts.detach {
            let _ = process::redirect_stdio_to_devnull();
        }
        if let Some(p) = &pidfile {
            std::fs::write(p, format!("{}\n", std::process::id())).map_err(|e| StartError::Pidfile(p.clone(), e))?;
        }
        let start = Start { store, loaded, listener, listen_path, predecessor };
        let result = serve(start, &sock_path, &mut ready_pipe);
        // A successor put its own socket and pidfile there: they are not this one's.
        takeover::remove_if_ours(&sock_path, sock_id);
        if let Some(p) = &pidfile
            && std::fs::read_to_string(p).is_ok_and(|s| s.trim() == std::process::id().to_string())
        {
            let _ = std::fs::remove_file(p);
        }
        result
    })();
    if let (Err(e), Some(mut pipe)) = (&result, ready_pipe) {
        let _ = pipe.write_all(e.to_string().as_bytes());
    }
    result
}

/// What the daemon starts serving with.
struct Start {
    store: Store,
    loaded: Option<(Db, Meta)>,
    listener: std::os::unix::net::UnixListener,
    /// Where `listener` is bound: the control socket's path, or during a takeover a
    /// path beside it until the old daemon goes.
    listen_path: PathBuf,
    predecessor: Option<takeover::Predecessor>,
}

enum Event {
    Worker(WorkerEvent),
}

fn serve(start: Start, sock: &Path, ready: &mut Option<UnixStream>) -> Result<(), StartError> {
    let Start { store, loaded, listener, listen_path, predecessor } = start;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| StartError::Io("tokio runtime", e))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let worker = WorkerHandle::spawn(Clock::new(), move |e| {
            let _ = ev_tx.send(Event::Worker(e));
        })
        .map_err(|e| StartError::Io("starting the datapath thread", e))?;
        let fresh = loaded.is_none();
        let (mut db, meta) = loaded.unwrap_or_default();
        db.ensure_root();
        status::fill_root(&mut db);
        let mut ctl = Control::new(db, meta, store, worker);
        let rundir = sock.parent().unwrap_or(Path::new(".")).to_path_buf();
        ctl.rundir = Some(rundir.clone());
        ctl.ports.taps = port::taphome::TapHomes::load(&rundir.join("taps.json"));
        ctl.ports.rundir = Some(rundir.clone());
        if let Some(p) = &predecessor {
            ctl.ports.join_groups = p.offer.fanout.clone();
            ctl.ports.bonds.handed = p.offer.lacp.clone();
        }
        let removed = ctl.drop_transient_ports_after_reboot(store::boot_id());
        if removed > 0 {
            tracing::info!("node rebooted: removed {removed} transient port(s)");
        }
        ctl.reconcile();
        // Bonds carry traffic from their first run (carrier, LACP handed over), not the
        // first tick.
        run_bonds(&mut ctl);
        let kept = fdbkeep::restore(&ctl.worker, &rundir);
        if kept > 0 {
            tracing::info!("MAC tables: {kept} learned entries kept from before the restart");
        }
        if let Some(p) = predecessor {
            // Both daemons forward now; the old one goes.
            let old = p.offer.pid;
            let t = std::time::Instant::now();
            p.finish(&listen_path)?;
            ctl.store.lock_wait(Duration::from_secs(10))?;
            ctl.ports.join_groups.clear();
            // Ports that could not be shared (single-queue taps) open now.
            ctl.reconcile();
            tracing::info!("took over from pid {old}: it ended {} ms after being told", t.elapsed().as_millis());
        }
        ctl.store.save(&ctl.db, &ctl.meta)?;
        tracing::info!(
            "rvs-vswitchd {} started: {} {}, control socket {}",
            env!("CARGO_PKG_VERSION"),
            if fresh { "new database" } else { "database" },
            ctl.store.path().display(),
            sock.display()
        );

        let (jobs_tx, mut jobs) = mpsc::channel::<server::Job>(64);
        let mut metrics_listener = metrics::http::Listener::new(jobs_tx.clone());
        tokio::task::spawn_local(server::serve(listener, jobs_tx));
        sync_metrics(&mut metrics_listener, &mut ctl);
        let (link_tx, mut link_rx) = mpsc::unbounded_channel::<()>();
        watch_links(link_tx);
        if let Some(mut r) = ready.take() {
            let _ = r.write_all(b"ready");
        }
        notify::ready();

        let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut bond_tick = tokio::time::interval(bonds::TICK);
        bond_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // A bond's delay, miimon poll or LACP timer due before the next tick wakes
            // the loop then (not sooner than 1 ms from now); a LACPDU received, at once.
            let bond_due = ctl.ports.bonds.next_due().filter(|d| *d < bonds::TICK).map(|d| d.max(Duration::from_millis(1)));
            let bond_woken = ctl.ports.bonds.woken();
            tokio::select! {
                Some((req, reply)) = jobs.recv() => {
                    let resp = handle(&mut ctl, req).await;
                    let _ = reply.send(resp);
                    if ctl.exit_requested { break; }
                    sync_metrics(&mut metrics_listener, &mut ctl);
                }
                Some(Event::Worker(WorkerEvent::PortFailed { iface, name, io, error })) = ev_rx.recv() => {
                    // Every worker that used the backend may report it: reopen once.
                    if ctl.ports.is_current(iface, io) {
                        tracing::warn!("port {name}: {error}; reopening");
                        ctl.ports.mark_broken(iface);
                        ctl.reconcile();
                    }
                }
                Some(()) = link_rx.recv() => {
                    while link_rx.try_recv().is_ok() {}
                    run_bonds(&mut ctl);
                    ctl.reconcile();
                }
                _ = bond_tick.tick() => run_bonds(&mut ctl),
                _ = bond_woken => run_bonds(&mut ctl),
                _ = tokio::time::sleep(bond_due.unwrap_or_default()), if bond_due.is_some() => run_bonds(&mut ctl),
                _ = tick.tick() => {
                    ctl.handing_over();
                    ctl.reconcile();
                    sync_metrics(&mut metrics_listener, &mut ctl);
                }
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            }
        }
        if let Some(s) = ctl.handing_over() {
            // The successor has the MAC tables and is systemd's main process now.
            tracing::info!("handed over to pid {}: exiting", s.pid);
        } else {
            notify::stopping();
            let kept = fdbkeep::save(&ctl.worker, &rundir).await;
            tracing::info!("MAC tables: {kept} learned entries kept for the next start");
        }
        let Control { worker, mut ports, .. } = ctl;
        worker.stop();
        ports.close_all();
        Ok(())
    })
}

/// Runs the bonds (LACP, carrier, selection); a member whose socket failed is
/// reopened.
fn run_bonds(ctl: &mut Control) {
    let broken = ctl.ports.bonds.run();
    let _ = ctl.ports.bonds.write_status(&mut ctl.db);
    send_learning_packets(ctl);
    if !broken.is_empty() {
        for iface in broken {
            ctl.ports.mark_broken(iface);
        }
        ctl.reconcile();
    }
}

/// For each bond that failed over (see [`bonds::Bonds::take_learning`]): asks a
/// worker for the MACs its bridge learned on other ports, then sends a RARP from each
/// through the bond, off the control plane's loop.
fn send_learning_packets(ctl: &mut Control) {
    use rvs_switch::types::{MacAddr, VlanId};
    for l in ctl.ports.bonds.take_learning() {
        let (bridge, ofport) = (l.bridge.clone(), l.ofport);
        let rx = ctl.worker.query(move |w| -> Vec<(MacAddr, Option<VlanId>)> {
            let now = w.now();
            let Some(b) = w.bridge(&bridge) else { return Vec::new() };
            let Some(bond) = b.ports.iter().position(|p| p.dp.ofport == ofport) else { return Vec::new() };
            let vlan = &b.core.ports()[bond].vlan;
            let entries = b.core.fdb().entries(now);
            entries.iter().filter(|e| usize::from(e.port) != bond && vlan.includes(e.vlan)).map(|e| (e.mac, vlan.output_tag(e.vlan))).collect()
        });
        tokio::task::spawn_local(async move {
            let Ok(Ok(macs)) = tokio::time::timeout(Duration::from_secs(1), rx).await else { return };
            for (mac, tag) in macs {
                let _ = port::PortIo::send(&*l.io, &rvs_switch::packet::PacketBuf::from_frame(&bonds::rarp(mac, tag)));
            }
        });
    }
}

/// Moves, starts or stops the metrics listener after `other_config:rvs-metrics-listen`.
fn sync_metrics(l: &mut metrics::http::Listener, ctl: &mut Control) {
    let want = ctl.db.root_view().and_then(|r| r.other_config().get_str(metrics::http::KEY).map(String::from));
    l.sync(want.as_deref(), &mut ctl.metrics_status);
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, StartError> {
    tokio::signal::unix::signal(kind).map_err(|e| StartError::Io("installing a signal handler", e))
}

async fn handle(ctl: &mut Control, req: Request) -> Response {
    match req {
        Request::Snapshot => Response::Snapshot { db: ctl.snapshot() },
        Request::Commit { base_generation, ops, .. } => ctl.commit(base_generation, &ops),
        Request::Appctl { command, args } => appctl::run(ctl, &command, &args).await,
    }
}

/// Watches link events (device added, removed, changed, moved to another namespace)
/// on a thread of its own with a blocking netlink socket, and sends a notification per
/// batch. Without it, the periodic reconcile still catches every change, only later.
fn watch_links(tx: mpsc::UnboundedSender<()>) {
    let fd = match netlink::link_monitor() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("cannot watch link events ({e}); relying on periodic checks");
            return;
        }
    };
    let spawned = std::thread::Builder::new().name("rvs-netlink".into()).spawn(move || {
        use std::os::fd::AsFd;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match netlink::recv(fd.as_fd(), &mut buf) {
                Ok(n) => {
                    let evs = netlink::parse_link_events(&buf[..n]);
                    for ev in &evs {
                        tracing::debug!("link event: {ev:?}");
                    }
                    if !evs.is_empty() && tx.send(()).is_err() {
                        return;
                    }
                }
                // The socket's queue overflowed: events were lost, so check everything.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    if tx.send(()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("link events: {e}; relying on periodic checks");
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the link watcher ({e}); relying on periodic checks");
    }
}
