//! `--db=REMOTE`: which of ovs-vsctl's remote forms lead to rvs-vswitchd, and how the
//! others end — the way ovs-vsctl's end against a server that is not there, so scripts
//! that test for failure see the same message and status.
//!
//! * `unix:PATH` is the daemon's control socket (several, comma-separated: the first
//!   one that accepts a connection; ovs-vsctl picks among them in random order).
//! * `punix:PATH`, `ptcp:…`, `pssl:…` make ovs-vsctl listen and wait for a server to
//!   connect to it; nothing ever does, so it waits until `--timeout` ends it (forever
//!   without). rvsctl listens on the same address and waits the same way; the `punix`
//!   socket is removed when the time is up, as OVS removes it.
//! * `tcp:IP[:PORT]` (default port 6640) is tried: where ovs-vsctl gets a connection
//!   error, rvsctl prints the same one; a server that accepts is not rvs-vswitchd
//!   (which listens on a unix socket only), and rvsctl says so.
//! * `ssl:…` fails as ovs-vsctl fails without key, certificate and CA certificate
//!   ("Protocol not available"); any other form: "Address family not supported by
//!   protocol".

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::CtlError;

/// OVSDB's registered port (ovs-vsctl's default for `tcp:` and `ptcp:`).
const OVSDB_PORT: u16 = 6640;

/// What `--db` leads to.
pub enum Remote {
    /// A control socket (the first of a list that accepts a connection, else the first).
    Unix(PathBuf),
    /// A passive form: listen here and wait to be ended by `--timeout`.
    Passive(Listen),
    /// A form that fails as ovs-vsctl fails: the error's text after the remote's name.
    Fails(String),
}

pub enum Listen {
    Unix(PathBuf),
    Tcp(u16, String),
    Nothing,
}

/// Reads a `--db` value.
pub fn parse(db: &str) -> Remote {
    let all: Vec<&str> = db.split(',').collect();
    let unix: Vec<PathBuf> = all.iter().filter_map(|r| r.strip_prefix("unix:")).map(PathBuf::from).collect();
    if unix.len() > 1 {
        let up = unix.iter().find(|p| std::os::unix::net::UnixStream::connect(p).is_ok());
        return Remote::Unix(up.unwrap_or(&unix[0]).clone());
    }
    let one = all[0];
    if let Some(p) = one.strip_prefix("unix:") {
        return Remote::Unix(PathBuf::from(p));
    }
    if let Some(p) = one.strip_prefix("punix:") {
        return Remote::Passive(Listen::Unix(PathBuf::from(p)));
    }
    if let Some(rest) = one.strip_prefix("ptcp:") {
        let mut it = rest.splitn(2, ':');
        let port = it.next().and_then(|p| p.parse().ok()).unwrap_or(OVSDB_PORT);
        return Remote::Passive(Listen::Tcp(port, it.next().unwrap_or("0.0.0.0").to_string()));
    }
    if one.starts_with("pssl:") {
        return Remote::Passive(Listen::Nothing);
    }
    if let Some(rest) = one.strip_prefix("tcp:") {
        return Remote::Fails(tcp(rest));
    }
    if one.starts_with("ssl:") {
        return Remote::Fails(failed("Protocol not available"));
    }
    Remote::Fails(failed("Address family not supported by protocol"))
}

fn failed(why: &str) -> String {
    format!("database connection failed ({why})")
}

fn tcp(rest: &str) -> String {
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, p.parse().unwrap_or(0)),
        _ => (rest, OVSDB_PORT),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        // OVS takes addresses, not names, and reports a name this way.
        return failed("Address family not supported by protocol");
    };
    match TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5)) {
        Err(e) => failed(&rvs_sys::strerror(&e)),
        Ok(_) => "not rvs-vswitchd: rvs listens on a unix socket only (--db=unix:PATH)".to_string(),
    }
}

/// Listens as ovs-vsctl does for a passive remote and waits for the end `--timeout`
/// brings (or forever). Returns only when listening fails.
pub fn wait_passive(l: &Listen, timeout: Option<u32>) -> CtlError {
    let mut cleanup = Vec::new();
    let _held: Box<dyn std::any::Any> = match l {
        Listen::Unix(p) => match UnixListener::bind(p) {
            Ok(s) => {
                cleanup.push(p.clone());
                Box::new(s)
            }
            Err(e) => return CtlError::new(format!("punix:{}: listen failed ({})", p.display(), rvs_sys::strerror(&e))),
        },
        Listen::Tcp(port, ip) => match TcpListener::bind((ip.as_str(), *port)) {
            Ok(s) => Box::new(s),
            Err(e) => return CtlError::new(format!("ptcp:{port}:{ip}: listen failed ({})", rvs_sys::strerror(&e))),
        },
        Listen::Nothing => Box::new(()),
    };
    crate::watchdog::arm(timeout.unwrap_or(0), cleanup);
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(db: &str) -> String {
        match parse(db) {
            Remote::Fails(m) => m,
            _ => panic!("{db} does not fail"),
        }
    }

    #[test]
    fn forms() {
        assert!(matches!(parse("unix:/x"), Remote::Unix(p) if p == std::path::Path::new("/x")));
        assert!(matches!(parse("punix:/x"), Remote::Passive(Listen::Unix(_))));
        assert!(matches!(parse("ptcp:6640:127.0.0.1"), Remote::Passive(Listen::Tcp(6640, _))));
        assert_eq!(fails("ssl:127.0.0.1:1"), "database connection failed (Protocol not available)");
        assert_eq!(fails("bogus:x"), "database connection failed (Address family not supported by protocol)");
        assert_eq!(fails(""), "database connection failed (Address family not supported by protocol)");
        assert_eq!(fails("tcp:nosuchhost.invalid:6640"), "database connection failed (Address family not supported by protocol)");
        assert_eq!(fails("tcp:127.0.0.1:1"), "database connection failed (Connection refused)");
    }
}
