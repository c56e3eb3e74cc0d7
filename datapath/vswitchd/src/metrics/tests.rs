//! The exposition text: escaping, families, and every line parseable.

use super::*;
use std::time::Duration;

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape("x\ny"), "x\\ny");
    let mut x = Exposition::default();
    x.family("m_total", "counter", "Help.", [(vec![("port", "p\"1".to_string())], 3.0)]);
    assert_eq!(x.finish(), "# HELP m_total Help.\n# TYPE m_total counter\nm_total{port=\"p\\\"1\"} 3\n");
}

/// Checks one line of the text format: a comment, or `name{labels} value`.
fn check_line(l: &str) -> Result<(), String> {
    if let Some(c) = l.strip_prefix("# ") {
        let mut w = c.splitn(3, ' ');
        return match (w.next(), w.next(), w.next()) {
            (Some("TYPE"), Some(_), Some("counter" | "gauge")) | (Some("HELP"), Some(_), Some(_)) => Ok(()),
            _ => Err(format!("bad comment {l:?}")),
        };
    }
    let (series, value) = l.rsplit_once(' ').ok_or(format!("no value: {l:?}"))?;
    value.parse::<f64>().map_err(|_| format!("bad value {l:?}"))?;
    let name_end = series.find('{').unwrap_or(series.len());
    let name = &series[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(format!("bad name {l:?}"));
    }
    Ok(())
}

#[test]
fn whole_text_parses() {
    let ports = vec![("vm\"1".to_string(), StatsSnapshot { rx_packets: 5, tx_bytes: 700, ..Default::default() })];
    let b = BridgeFigures {
        name: "br0".into(),
        drops: rvs_switch::bridge::DropCounters::default().iter().collect(),
        fdb_len: 2,
        fdb_cap: 8192,
        fdb: FdbStats { learned: 3, expired: 1, evicted: 0, moved: 1 },
        flaps: 0,
        ports,
    };
    let mut st = WorkerStats::new();
    st.frames = 9;
    st.busy = Duration::from_millis(1500);
    let all = vec![(0, st, vec![b])];
    let status = http::ListenerStatus::default();
    let text = render(&all, &[("0.0.0.0:4789".into(), [1, 2, 0, 0, 0])], &status);
    for l in text.lines() {
        check_line(l).unwrap();
    }
    assert!(text.contains("rvs_port_rx_packets_total{bridge=\"br0\",port=\"vm\\\"1\"} 5\n"), "{text}");
    assert!(text.contains("rvs_bridge_drops_total{bridge=\"br0\",reason=\"vlan_not_allowed\"} 0\n"));
    assert!(text.contains("rvs_bridge_mac_learned_total{bridge=\"br0\"} 3\n"));
    assert!(text.contains("rvs_worker_busy_seconds_total{worker=\"0\"} 1.5\n"));
    assert!(text.contains("rvs_vxlan_received_total{endpoint=\"0.0.0.0:4789\"} 2\n"));
    // Each family announced once, before its samples.
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut names: Vec<&str> = types.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n);
}

#[test]
fn listen_values() {
    use http::{Addr, parse_addr};
    assert_eq!(parse_addr("127.0.0.1:9477"), Ok(Addr::Tcp("127.0.0.1:9477".parse().unwrap())));
    assert_eq!(parse_addr("[::1]:9477"), Ok(Addr::Tcp("[::1]:9477".parse().unwrap())));
    assert_eq!(parse_addr("localhost:80"), Ok(Addr::Tcp("127.0.0.1:80".parse().unwrap())));
    assert_eq!(parse_addr("/run/rvs/metrics.sock"), Ok(Addr::Unix("/run/rvs/metrics.sock".into())));
    for bad in ["9477", "example.com:80", "127.0.0.1", "metrics.sock", "127.0.0.1:99999"] {
        assert!(parse_addr(bad).is_err(), "{bad}");
    }
}

#[test]
fn request_heads() {
    use http::{Asked, parse_head};
    assert_eq!(parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Asked::Metrics { head_only: false });
    assert_eq!(parse_head(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Asked::Metrics { head_only: false });
    assert_eq!(parse_head(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Asked::Metrics { head_only: true });
    assert_eq!(parse_head(b"GET / HTTP/1.1\r\n\r\n"), Asked::NotFound);
    assert_eq!(parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"), Asked::BadMethod);
    assert_eq!(parse_head(b"hello\r\n\r\n"), Asked::Bad);
    assert_eq!(parse_head(b"GET /metrics SPDY/3\r\n\r\n"), Asked::Bad);
    assert_eq!(parse_head(&[0xff, 0xfe]), Asked::Bad);
}
