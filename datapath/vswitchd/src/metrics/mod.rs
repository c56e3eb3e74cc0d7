//! Metrics in Prometheus's text exposition format (version 0.0.4): `rvsctl
//! rvs/metrics` prints them, and the opt-in HTTP listener ([`http`],
//! `Open_vSwitch other_config:rvs-metrics-listen`) serves the same text at
//! `GET /metrics`.
//!
//! What is exported (every counter is `_total`, every series has `# HELP`/`# TYPE`):
//! * per port (`bridge`, `port` labels): received/sent packets and bytes, dropped and
//!   erroneous frames each way;
//! * per bridge: drops by reason (`reason` label, the names of `rvs/drops`), MAC table
//!   size and capacity, addresses learned, expired (aged out), evicted and moved, MAC
//!   flaps detected;
//! * per datapath worker (`worker` label): frames, receive calls, wake-ups, seconds
//!   busy / spinning / asleep;
//! * per VXLAN receive socket (`endpoint` label): its receive counters;
//! * the listener itself: whether it listens (`rvs_metrics_listener_up`).
//!
//! Everything is read with one query per worker (closures run between batches, as
//! every command's are) and from the atomics beside the sockets: the packet path is
//! never stopped or locked for a scrape. Label values are escaped as the format
//! requires (backslash, double quote, newline).

pub mod http;

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::appctl::{AppctlError, ask_all};
use crate::control::Control;
use crate::port::StatsSnapshot;
use crate::worker::WorkerStats;
use rvs_switch::bridge::FdbStats;

/// A label value escaped for the text format.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Builds the exposition text, one family at a time.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// One metric family: `# HELP`, `# TYPE`, then one sample per (labels, value).
    pub fn family<'a>(&mut self, name: &str, kind: &str, help: &str, samples: impl IntoIterator<Item = (Vec<(&'a str, String)>, f64)>) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                let _ = write!(self.text, "{{{}}}", l.join(","));
            }
            let _ = writeln!(self.text, " {v}");
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// What one worker reports about one bridge.
struct BridgeFigures {
    name: String,
    drops: Vec<(&'static str, u64)>,
    fdb_len: usize,
    fdb_cap: usize,
    fdb: FdbStats,
    flaps: u64,
    ports: Vec<(String, StatsSnapshot)>,
}

type WorkerFigures = (usize, WorkerStats, Vec<BridgeFigures>);

/// `rvs/metrics`: the whole exposition.
pub async fn collect(ctl: &mut Control) -> Result<String, AppctlError> {
    let listener = ctl.metrics_status.clone();
    let all: Vec<WorkerFigures> = ask_all(ctl, |w| {
        let bridges = w
            .bridges
            .iter()
            .map(|b| {
                let f = b.core.fdb();
                BridgeFigures {
                    name: b.name.clone(),
                    drops: b.core.drops().iter().collect(),
                    fdb_len: f.len(),
                    fdb_cap: f.capacity(),
                    fdb: f.stats(),
                    flaps: b.core.flaps().total(),
                    ports: b.ports.iter().map(|p| (p.name.clone(), p.stats.snapshot())).collect(),
                }
            })
            .collect();
        (w.id(), w.stats, bridges)
    })
    .await?;
    let endpoints: Vec<(String, [u64; 5])> = ctl
        .ports
        .vxlan_endpoints()
        .iter()
        .map(|e| {
            let at = e.local.map_or_else(|| if e.v6 { "[::]".to_string() } else { "0.0.0.0".to_string() }, |a| a.to_string());
            let s = &e.stats;
            (
                format!("{at}:{}", e.port),
                [s.receives.load(Relaxed), s.received.load(Relaxed), s.bad_header.load(Relaxed), s.unknown_tunnel.load(Relaxed), s.truncated.load(Relaxed)],
            )
        })
        .collect();
    Ok(render(&all, &endpoints, &listener))
}

fn render(all: &[WorkerFigures], endpoints: &[(String, [u64; 5])], listener: &http::ListenerStatus) -> String {
    let mut x = Exposition::default();
    // Ports share their counters between workers: the first worker's view is whole.
    let first: &[BridgeFigures] = all.first().map_or(&[], |w| &w.2);
    let port_family = |x: &mut Exposition, name: &str, help: &str, f: fn(&StatsSnapshot) -> u64| {
        let samples = first.iter().flat_map(|b| b.ports.iter().map(move |(p, s)| (vec![("bridge", b.name.clone()), ("port", p.clone())], f(s) as f64)));
        x.family(name, "counter", help, samples);
    };
    port_family(&mut x, "rvs_port_rx_packets_total", "Frames received on the port.", |s| s.rx_packets);
    port_family(&mut x, "rvs_port_rx_bytes_total", "Bytes received on the port.", |s| s.rx_bytes);
    port_family(&mut x, "rvs_port_tx_packets_total", "Frames sent on the port.", |s| s.tx_packets);
    port_family(&mut x, "rvs_port_tx_bytes_total", "Bytes sent on the port.", |s| s.tx_bytes);
    port_family(&mut x, "rvs_port_rx_dropped_total", "Received frames dropped (policed, refused by the switch, lost by the device).", |s| s.rx_dropped);
    port_family(&mut x, "rvs_port_tx_dropped_total", "Frames dropped on their way out of the port.", |s| s.tx_dropped);
    port_family(&mut x, "rvs_port_rx_errors_total", "Frames that could not be read whole.", |s| s.rx_errors);
    port_family(&mut x, "rvs_port_tx_errors_total", "Frames the device refused.", |s| s.tx_errors);

    // Drops and learning are counted by the worker that saw the frame: they add up.
    // (bridge, drops by reason, learned, moved, flaps), summed over workers.
    type Sums = (String, Vec<(&'static str, u64)>, u64, u64, u64);
    let mut per_bridge: Vec<Sums> = Vec::new();
    for b in all.iter().flat_map(|w| w.2.iter()) {
        match per_bridge.iter_mut().find(|r| r.0 == b.name) {
            None => per_bridge.push((b.name.clone(), b.drops.clone(), b.fdb.learned, b.fdb.moved, b.flaps)),
            Some(r) => {
                for (d, (_, n)) in r.1.iter_mut().zip(&b.drops) {
                    d.1 += n;
                }
                r.2 += b.fdb.learned;
                r.3 += b.fdb.moved;
                r.4 += b.flaps;
            }
        }
    }
    let drops = per_bridge.iter().flat_map(|(b, d, ..)| d.iter().map(move |(r, n)| (vec![("bridge", b.clone()), ("reason", r.to_string())], *n as f64)));
    x.family("rvs_bridge_drops_total", "counter", "Frames the bridge dropped, by reason (see rvs/drops).", drops);
    let bl = |b: &str| vec![("bridge", b.to_string())];
    x.family("rvs_bridge_mac_entries", "gauge", "MAC table entries now.", first.iter().map(|b| (bl(&b.name), b.fdb_len as f64)));
    x.family("rvs_bridge_mac_capacity", "gauge", "MAC table capacity (other_config:mac-table-size).", first.iter().map(|b| (bl(&b.name), b.fdb_cap as f64)));
    x.family("rvs_bridge_mac_learned_total", "counter", "MAC addresses learned.", per_bridge.iter().map(|r| (bl(&r.0), r.2 as f64)));
    x.family("rvs_bridge_mac_expired_total", "counter", "MAC entries aged out.", first.iter().map(|b| (bl(&b.name), b.fdb.expired as f64)));
    x.family("rvs_bridge_mac_evicted_total", "counter", "MAC entries evicted from a full table.", first.iter().map(|b| (bl(&b.name), b.fdb.evicted as f64)));
    x.family("rvs_bridge_mac_moved_total", "counter", "MAC addresses that moved to another port.", per_bridge.iter().map(|r| (bl(&r.0), r.3 as f64)));
    x.family("rvs_bridge_mac_flaps_total", "counter", "MAC flaps detected (see fdb/flaps).", per_bridge.iter().map(|r| (bl(&r.0), r.4 as f64)));

    let wl = |id: usize| vec![("worker", id.to_string())];
    x.family("rvs_worker_frames_total", "counter", "Frames read by the datapath worker.", all.iter().map(|(id, s, _)| (wl(*id), s.frames as f64)));
    x.family(
        "rvs_worker_receive_calls_total",
        "counter",
        "Receive calls that returned frames.",
        all.iter().map(|(id, s, _)| (wl(*id), s.receive_calls as f64)),
    );
    x.family("rvs_worker_wakeups_total", "counter", "Sleeps ended by arriving input.", all.iter().map(|(id, s, _)| (wl(*id), s.wakeups as f64)));
    x.family(
        "rvs_worker_busy_seconds_total",
        "counter",
        "Seconds reading, switching and sending.",
        all.iter().map(|(id, s, _)| (wl(*id), s.busy.as_secs_f64())),
    );
    x.family(
        "rvs_worker_spinning_seconds_total",
        "counter",
        "Seconds polling after traffic.",
        all.iter().map(|(id, s, _)| (wl(*id), s.spinning.as_secs_f64())),
    );
    x.family(
        "rvs_worker_sleeping_seconds_total",
        "counter",
        "Seconds asleep waiting for input.",
        all.iter().map(|(id, s, _)| (wl(*id), s.sleeping.as_secs_f64())),
    );

    let ep = |i: usize, name: &str, help: &str, x: &mut Exposition| {
        x.family(name, "counter", help, endpoints.iter().map(|(e, c)| (vec![("endpoint", e.clone())], c[i] as f64)));
    };
    ep(0, "rvs_vxlan_receive_calls_total", "Receive calls on the VXLAN socket.", &mut x);
    ep(1, "rvs_vxlan_received_total", "VXLAN datagrams received.", &mut x);
    ep(2, "rvs_vxlan_bad_header_total", "Datagrams dropped for a bad VXLAN header.", &mut x);
    ep(3, "rvs_vxlan_unknown_tunnel_total", "Datagrams from no configured tunnel (remote and VNI).", &mut x);
    ep(4, "rvs_vxlan_truncated_total", "Datagrams cut short.", &mut x);

    let (listen, up) = listener.describe();
    x.family(
        "rvs_metrics_listener_up",
        "gauge",
        "1 if other_config:rvs-metrics-listen is being served, 0 if it could not be.",
        listen.map(|l| (vec![("listen", l)], up as u8 as f64)),
    );
    x.finish()
}

#[cfg(test)]
mod tests;
