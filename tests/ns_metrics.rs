//! Namespace tests of the metrics (issue 26 part 6): `rvsctl rvs/metrics` and the
//! opt-in listener `Open_vSwitch other_config:rvs-metrics-listen`, scraped over HTTP on
//! 127.0.0.1 inside the node's own namespace (and on a unix socket). Every line of
//! every scrape is parsed; counters must move with traffic; the listener follows live
//! changes and removal of the key; a bad value is an error in the log and in the
//! metrics, and changes nothing else; connections beyond the limit are closed. Root
//! required.
//!
//! Addresses: VMs 198.18.70.0/24; the listener on the node namespace's loopback.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use rvs_testkit::*;

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition format strictly enough for a test: every line is a
/// `# HELP`/`# TYPE` comment or a sample; every sample's family was announced by a
/// `# TYPE` line before it; label values are unescaped.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# ") {
            let w: Vec<&str> = rest.splitn(3, ' ').collect();
            match w.as_slice() {
                ["TYPE", name, kind @ ("counter" | "gauge")] => {
                    if typed.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(format!("family {name} announced twice"));
                    }
                }
                ["HELP", _, _] => {}
                _ => return Err(format!("bad comment line {l:?}")),
            }
            continue;
        }
        let (name, rest) = match l.find('{') {
            Some(i) => (&l[..i], &l[i..]),
            None => l.split_once(' ').map(|(n, _)| (n, &l[n.len()..])).ok_or(format!("no value in {l:?}"))?,
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            return Err(format!("bad metric name in {l:?}"));
        }
        if !typed.contains_key(name) {
            return Err(format!("{name} has no # TYPE before it"));
        }
        if typed[name] == "counter" && !name.ends_with("_total") {
            return Err(format!("counter {name} does not end in _total"));
        }
        let mut labels = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        if chars.peek() == Some(&'{') {
            chars.next();
            loop {
                let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                if chars.next() != Some('"') {
                    return Err(format!("label {key} not quoted in {l:?}"));
                }
                let mut v = String::new();
                loop {
                    match chars.next().ok_or(format!("unterminated label in {l:?}"))? {
                        '\\' => match chars.next() {
                            Some('n') => v.push('\n'),
                            Some(c @ ('\\' | '"')) => v.push(c),
                            _ => return Err(format!("bad escape in {l:?}")),
                        },
                        '"' => break,
                        c => v.push(c),
                    }
                }
                labels.insert(key.trim_start_matches(',').to_string(), v);
                match chars.next() {
                    Some(',') => continue,
                    Some('}') => break,
                    _ => return Err(format!("bad label list in {l:?}")),
                }
            }
        }
        let value: String = chars.collect();
        let value = value.strip_prefix(' ').ok_or(format!("no space before the value in {l:?}"))?;
        let v: f64 = value.parse().map_err(|_| format!("bad value in {l:?}"))?;
        out.push((name.to_string(), labels, v));
    }
    Ok(out)
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples.iter().find(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))).map(|s| s.2)
}

/// `GET /metrics` on 127.0.0.1:`port` inside the node's namespace: (status line, body).
fn scrape(ns: &Netns, port: u16, request: &'static str) -> Result<(String, String), String> {
    ns.run_in(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut r = String::new();
        s.read_to_string(&mut r).map_err(|e| e.to_string())?;
        let (head, body) = r.split_once("\r\n\r\n").ok_or(format!("no head in {r:?}"))?;
        let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).and_then(|v| v.parse().ok()).ok_or("no length")?;
        if len != body.len() {
            return Err(format!("Content-Length {len}, body {}", body.len()));
        }
        Ok((head.lines().next().unwrap_or("").to_string(), body.to_string()))
    })
}

const GET: &str = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n";

fn scrape_ok(ns: &Netns, port: u16) -> Vec<Sample> {
    let (status, body) = scrape(ns, port, GET).expect("scrape");
    assert_eq!(status, "HTTP/1.1 200 OK");
    parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

#[test]
fn metrics_scraped_and_parsed_and_moving_with_traffic() {
    require_tools(&["python3"]);
    let n = Node::new("met");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (p1, p2) = (unique("ma"), unique("mb"));
    let vm1 = n.vm("br0", &p1, &["tag=70"], "198.18.70.1/24");
    let _vm2 = n.vm("br0", &p2, &["tag=70"], "198.18.70.2/24");
    assert!(vm1.ping_eventually("198.18.70.2", Duration::from_secs(10)));

    // rvsctl rvs/metrics: the same text, parseable, every family typed.
    let text = n.d.ctl_ok(&["rvs/metrics"]);
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for fam in ["rvs_port_rx_packets_total", "rvs_bridge_drops_total", "rvs_bridge_mac_entries", "rvs_worker_frames_total"] {
        assert!(s.iter().any(|x| x.0 == fam), "{fam} in\n{text}");
    }
    assert!(value(&s, "rvs_bridge_mac_learned_total", &[("bridge", "br0")]).unwrap() >= 2.0);
    assert!(value(&s, "rvs_metrics_listener_up", &[]).is_none(), "no listener configured");

    // The listener, on the node namespace's loopback.
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:rvs-metrics-listen=127.0.0.1:9477"]);
    let before = scrape_ok(&n.ns, 9477);
    let rx = |s: &[Sample]| value(s, "rvs_port_rx_packets_total", &[("bridge", "br0"), ("port", &p1)]).unwrap();
    let tx = |s: &[Sample]| value(s, "rvs_port_tx_bytes_total", &[("bridge", "br0"), ("port", &p2)]).unwrap();
    assert_eq!(value(&before, "rvs_metrics_listener_up", &[("listen", "127.0.0.1:9477")]), Some(1.0));
    assert!(vm1.ping("198.18.70.2", 5));
    let after = scrape_ok(&n.ns, 9477);
    assert!(rx(&after) >= rx(&before) + 5.0, "{} -> {}", rx(&before), rx(&after));
    assert!(tx(&after) >= tx(&before) + 5.0 * 98.0, "{} -> {}", tx(&before), tx(&after));
    // Drops by reason move too: a VLAN-tagged frame on an access port.
    let drops = |s: &[Sample]| value(s, "rvs_bridge_drops_total", &[("bridge", "br0"), ("reason", "tagged_on_access_port")]).unwrap();
    let d0 = drops(&after);
    let py = format!(
        "import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((\"{p1}\",0))\nfor _ in range(3): s.send(bytes.fromhex(\"ffffffffffff02000000710181000005\" + \"88b5\" + \"00\" * 42))\n"
    );
    assert!(vm1.sh_ok(&format!("python3 -c '{py}'")));
    wait_until("drops counted", Duration::from_secs(5), || drops(&scrape_ok(&n.ns, 9477)) >= d0 + 3.0);

    // HTTP details: other paths, other methods, HEAD.
    assert_eq!(scrape(&n.ns, 9477, "GET / HTTP/1.1\r\n\r\n").unwrap().0, "HTTP/1.1 404 Not Found");
    assert_eq!(scrape(&n.ns, 9477, "POST /metrics HTTP/1.1\r\n\r\n").unwrap().0, "HTTP/1.1 405 Method Not Allowed");

    // Live change: the listener moves; the old port no longer answers.
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:rvs-metrics-listen=127.0.0.1:9478"]);
    scrape_ok(&n.ns, 9478);
    assert!(scrape(&n.ns, 9477, GET).is_err(), "old listener closed");
    // Removal: nothing listens.
    n.d.ctl_ok(&["remove", "Open_vSwitch", ".", "other_config", "rvs-metrics-listen"]);
    assert!(scrape(&n.ns, 9478, GET).is_err(), "listener stopped");
}

#[test]
fn bad_listen_value_is_reported_and_changes_nothing_else() {
    let n = Node::new("metb");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (p1, p2) = (unique("mc"), unique("md"));
    let vm1 = n.vm("br0", &p1, &[], "198.18.72.1/24");
    let _vm2 = n.vm("br0", &p2, &[], "198.18.72.2/24");
    assert!(vm1.ping_eventually("198.18.72.2", Duration::from_secs(10)));
    let db_before = n.d.ctl_ok(&["--columns=name,ofport", "list", "Interface"]);
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:rvs-metrics-listen=nonsense"]);
    wait_until("error logged", Duration::from_secs(5), || n.d.log().contains("other_config:rvs-metrics-listen"));
    let log = n.d.log();
    let line = log.lines().find(|l| l.contains("other_config:rvs-metrics-listen")).unwrap();
    assert!(line.contains("ERROR") && line.contains("\"nonsense\" is neither HOST:PORT"), "{line}");
    let s = parse(&n.d.ctl_ok(&["rvs/metrics"])).unwrap();
    assert_eq!(value(&s, "rvs_metrics_listener_up", &[("listen", "nonsense")]), Some(0.0));
    // An address that is not this node's: also refused, also reported.
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:rvs-metrics-listen=198.18.250.1:9477"]);
    let s = parse(&n.d.ctl_ok(&["rvs/metrics"])).unwrap();
    assert_eq!(value(&s, "rvs_metrics_listener_up", &[("listen", "198.18.250.1:9477")]), Some(0.0));
    assert!(n.d.log().contains("cannot listen on 198.18.250.1:9477"));
    // Nothing else changed: the ports, and forwarding.
    assert_eq!(n.d.ctl_ok(&["--columns=name,ofport", "list", "Interface"]), db_before);
    assert!(vm1.ping("198.18.72.2", 2));
    // A good value afterwards works.
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:rvs-metrics-listen=127.0.0.1:9479"]);
    scrape_ok(&n.ns, 9479);
    // A port someone else holds: refused, then served once it is free (tried again
    // every 2 s).
    let squatter = n.ns.run_in(|| std::net::TcpListener::bind("127.0.0.1:9480").expect("bind 9480"));
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:rvs-metrics-listen=127.0.0.1:9480"]);
    let s = parse(&n.d.ctl_ok(&["rvs/metrics"])).unwrap();
    assert_eq!(value(&s, "rvs_metrics_listener_up", &[("listen", "127.0.0.1:9480")]), Some(0.0));
    assert!(n.d.log().contains("cannot listen on 127.0.0.1:9480"));
    drop(squatter);
    wait_until("listener takes the freed port", Duration::from_secs(10), || {
        let s = parse(&n.d.ctl_ok(&["rvs/metrics"])).unwrap();
        value(&s, "rvs_metrics_listener_up", &[("listen", "127.0.0.1:9480")]) == Some(1.0)
    });
    scrape_ok(&n.ns, 9480);
}

#[test]
fn unix_socket_listener_and_connection_limit() {
    let n = Node::new("metu");
    n.d.ctl_ok(&["add-br", "br0"]);
    let path = n.d.dir.join("metrics.sock");
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", &format!("other_config:rvs-metrics-listen={}", path.display())]);
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("unix listener");
    s.write_all(GET.as_bytes()).unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let body = r.split_once("\r\n\r\n").unwrap().1;
    parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // Eight quiet connections fill the listener; a ninth is closed at once, and once
    // they go, scrapes are served again.
    let quiet: Vec<_> = (0..8).map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = std::os::unix::net::UnixStream::connect(&path).unwrap();
    ninth.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let _ = ninth.write_all(GET.as_bytes());
    let mut r = String::new();
    let _ = ninth.read_to_string(&mut r);
    assert!(r.is_empty(), "a connection over the limit is closed unanswered: {r:?}");
    drop(quiet);
    wait_until("served again", Duration::from_secs(5), || {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&path) else { return false };
        let _ = s.write_all(GET.as_bytes());
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        r.starts_with("HTTP/1.1 200 OK")
    });
    // Removing the key removes the socket.
    n.d.ctl_ok(&["remove", "Open_vSwitch", ".", "other_config", "rvs-metrics-listen"]);
    assert!(!path.exists());
}
