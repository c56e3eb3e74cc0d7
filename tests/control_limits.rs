//! The control socket's limits (README, "Control socket limits"), tried as a careless
//! or hostile local client would: many idle connections, a client that starts a
//! request and stops, frames larger than any configuration, several large frames at
//! once. Other clients keep being served, the daemon's memory stays bounded, and it
//! answers every refusal with an error before closing.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rvs_testkit::*;

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).expect("VmRSS")
}

/// Reads what the daemon sends until it closes, bounded by `secs`: the body of its
/// last frame as text (empty when it closed without answering).
fn until_closed(s: &mut UnixStream, secs: u64) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(secs) {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(got.get(4..).unwrap_or(&[])).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(String::new()),
        }
    }
    None
}

#[test]
fn idle_connections_do_not_lock_out_other_clients() {
    let d = Daemon::start("idle", None);
    // Far more idle connections than the daemon holds.
    let mut idle: Vec<UnixStream> = (0..300).map(|_| UnixStream::connect(d.socket()).expect("connect")).collect();
    for i in 0..10 {
        let out = d.ctl(&["--timeout=5", "add-br", &format!("lim{i}")]);
        assert!(out.status.success(), "command {i} failed beside 300 idle connections: {}\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    }
    assert_eq!(d.ctl_ok(&["list-br"]).lines().count(), 10);
    // The oldest idle connections were closed to make room; the newest are held.
    assert_eq!(until_closed(&mut idle[0], 5).as_deref(), Some(""), "the oldest idle connection is still held");
    let log = d.log();
    let warnings = log.matches("clients held").count();
    assert!((1..=2).contains(&warnings), "expected the crowding logged once per period, got {warnings}:\n{log}");
    idle.clear();
}

#[test]
fn a_client_that_stops_half_way_is_closed() {
    let d = Daemon::start("slow", None);
    let mut s = UnixStream::connect(d.socket()).unwrap();
    // Two bytes of a header, then nothing: closed after the frame deadline (10 s).
    s.write_all(&[0, 0]).unwrap();
    let start = Instant::now();
    assert_eq!(until_closed(&mut s, 20).as_deref(), Some(""), "a half-sent request was held over 20 s");
    assert!(start.elapsed() >= Duration::from_secs(5), "closed before the frame deadline");
    assert!(d.ctl(&["--timeout=5", "show"]).status.success());
}

#[test]
fn oversized_and_piled_up_frames_are_refused_with_bounded_memory() {
    let d = Daemon::start("big", None);
    let pid = d.pid().expect("pid");
    // A header announcing 1 GiB or just over the request limit: refused at once.
    for len in [1u32 << 30, (16 << 20) + 1] {
        let mut s = UnixStream::connect(d.socket()).unwrap();
        s.write_all(&len.to_be_bytes()).unwrap();
        let answer = until_closed(&mut s, 10).expect("no answer to an oversized header");
        assert!(answer.contains("larger than"), "{answer}");
    }
    // Eight clients each sending 15 MiB of junk at once: whatever fits the budget is
    // read and refused as malformed, the rest refused as busy; memory stays bounded.
    let before = rss_kib(pid);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let sock = d.socket();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(sock).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                let len = 15u32 << 20;
                let _ = s.write_all(&len.to_be_bytes());
                let junk = vec![b'x'; 1 << 20];
                for _ in 0..15 {
                    if s.write_all(&junk).is_err() {
                        break;
                    }
                }
                until_closed(&mut s, 20).unwrap_or_default()
            })
        })
        .collect();
    let mut peak = before;
    let mut answers = Vec::new();
    for c in clients {
        while !c.is_finished() {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        answers.push(c.join().unwrap());
    }
    // A client refused while it is still writing may see its connection reset before
    // it reads the refusal (a unix socket closed with unread data resets): an empty
    // answer, never a wrong one. At least half get the refusal in words.
    assert!(answers.iter().all(|a| a.is_empty() || a.contains("protocol error") || a.contains("busy")), "{answers:?}");
    assert!(answers.iter().filter(|a| !a.is_empty()).count() >= 4, "{answers:?}");
    assert!(answers.iter().any(|a| a.contains("busy")), "no request was refused for the budget: {answers:?}");
    // The read budget is 64 MiB; allow for the allocator's slack.
    assert!(peak - before < 100 << 10, "memory grew by {} MiB", (peak - before) >> 10);
    assert!(d.ctl(&["--timeout=5", "show"]).status.success(), "the daemon no longer answers:\n{}", d.log());
}
