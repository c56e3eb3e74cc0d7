//! The opt-in metrics listener: `GET /metrics` over HTTP/1.1 on the address in
//! `Open_vSwitch other_config:rvs-metrics-listen` — `HOST:PORT` with an IP address
//! (`127.0.0.1:9477`, `[::1]:9477`; `localhost:PORT` means 127.0.0.1), or the absolute
//! path of a unix socket (mode 0600). Unset or empty: no listener (the default).
//!
//! The listener runs on the control plane's tokio runtime. A scrape is one more
//! request to the control task (`rvs/metrics`, the same text `rvsctl rvs/metrics`
//! prints), so it is served between commands and never touches the packet path. What a
//! scraper can cost is bounded: at most [`MAX_CONNECTIONS`] connections at once (more
//! are closed at once), a request head of at most [`MAX_HEAD`] bytes that must arrive
//! within [`READ_DEADLINE`], one request per connection (`Connection: close`).
//!
//! The key is read again after every command and every 2 s: a change moves the
//! listener, removing the key stops it. A value that cannot be listened on is logged
//! as an error and reported by `rvs_metrics_listener_up 0`; nothing else changes. An
//! address that could not be bound (in use, not on this node yet) is tried again at
//! each of those reads, without logging again.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::server::Job;
use rvs_ovsdb::proto::{Request, Response};

/// The `Open_vSwitch` `other_config` key.
pub const KEY: &str = "rvs-metrics-listen";
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 << 10;
/// Time for the request head to arrive, and for the answer to be written.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Time the control task has to produce the text.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// Where the listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Parses the key's value.
pub fn parse_addr(v: &str) -> Result<Addr, String> {
    if v.starts_with('/') {
        return Ok(Addr::Unix(PathBuf::from(v)));
    }
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(Addr::Tcp(a));
    }
    if let Some(port) = v.strip_prefix("localhost:").and_then(|p| p.parse::<u16>().ok()) {
        return Ok(Addr::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
    }
    Err(format!("{v:?} is neither HOST:PORT with an IP address (127.0.0.1:9477, [::1]:9477) nor an absolute unix socket path"))
}

/// What `rvs/metrics` says about the listener.
#[derive(Debug, Clone, Default)]
pub struct ListenerStatus {
    listen: Option<String>,
    error: Option<String>,
}

impl ListenerStatus {
    /// The configured value, if any, and whether it is being served.
    pub fn describe(&self) -> (Option<String>, bool) {
        (self.listen.clone(), self.listen.is_some() && self.error.is_none())
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// The running listener, owned by the control loop.
pub struct Listener {
    jobs: mpsc::Sender<Job>,
    want: Option<String>,
    task: Option<(AbortHandle, Option<PathBuf>)>,
}

impl Listener {
    pub fn new(jobs: mpsc::Sender<Job>) -> Listener {
        Listener { jobs, want: None, task: None }
    }

    /// Makes the listener follow the key's value `want` (`None` or empty: off).
    pub fn sync(&mut self, want: Option<&str>, status: &mut ListenerStatus) {
        let want = want.filter(|w| !w.is_empty());
        if want == self.want.as_deref() {
            // An address that could not be listened on (taken, not yet configured) is
            // tried again at every sync, quietly: it may have become free.
            if let Some(w) = want
                && self.task.is_none()
                && status.error.is_some()
                && parse_addr(w).and_then(|a| self.start(&a)).is_ok()
            {
                tracing::info!("metrics: serving GET /metrics on {w} (the address is free now)");
                status.error = None;
            }
            return;
        }
        self.stop();
        self.want = want.map(String::from);
        *status = ListenerStatus { listen: self.want.clone(), error: None };
        let Some(w) = want else {
            tracing::info!("metrics listener stopped ({KEY} removed)");
            return;
        };
        match parse_addr(w).and_then(|a| self.start(&a)) {
            Ok(()) => tracing::info!("metrics: serving GET /metrics on {w}"),
            Err(e) => {
                let e = format!("other_config:{KEY}: {e}; no metrics listener");
                tracing::error!("{e}");
                status.error = Some(e);
            }
        }
    }

    fn start(&mut self, a: &Addr) -> Result<(), String> {
        let live = Rc::new(Cell::new(0usize));
        let jobs = self.jobs.clone();
        match a {
            Addr::Tcp(sa) => {
                let l = std::net::TcpListener::bind(sa).map_err(|e| format!("cannot listen on {sa}: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
                let t = tokio::task::spawn_local(async move {
                    loop {
                        if let Ok((s, _)) = l.accept().await {
                            admit(s, &live, &jobs);
                        }
                    }
                });
                self.task = Some((t.abort_handle(), None));
            }
            Addr::Unix(p) => {
                let l = crate::server::bind(p).map_err(|e| match e {
                    crate::server::BindError::InUse(p) => format!("cannot listen on {p}: another process accepts connections there"),
                    e => e.to_string(),
                })?;
                let l = tokio::net::UnixListener::from_std(l).map_err(|e| e.to_string())?;
                let t = tokio::task::spawn_local(async move {
                    loop {
                        if let Ok((s, _)) = l.accept().await {
                            admit(s, &live, &jobs);
                        }
                    }
                });
                self.task = Some((t.abort_handle(), Some(p.clone())));
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some((t, path)) = self.task.take() {
            t.abort();
            if let Some(p) = path {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves the connection if there is room, else closes it.
fn admit<S: AsyncRead + AsyncWrite + Unpin + 'static>(s: S, live: &Rc<Cell<usize>>, jobs: &mpsc::Sender<Job>) {
    if live.get() >= MAX_CONNECTIONS {
        return;
    }
    live.set(live.get() + 1);
    let (live, jobs) = (live.clone(), jobs.clone());
    tokio::task::spawn_local(async move {
        let _ = tokio::time::timeout(READ_DEADLINE + ANSWER_DEADLINE + READ_DEADLINE, connection(s, &jobs)).await;
        live.set(live.get() - 1);
    });
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    Bad,
}

/// Reads a request head: `GET /metrics` (a query string is ignored) or `HEAD`.
pub fn parse_head(head: &[u8]) -> Asked {
    let Ok(text) = std::str::from_utf8(head) else { return Asked::Bad };
    let mut parts = text.lines().next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else { return Asked::Bad };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Asked::Bad;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Asked::BadMethod,
    };
    match target.split('?').next() {
        Some("/metrics") => Asked::Metrics { head_only },
        _ => Asked::NotFound,
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, jobs: &mpsc::Sender<Job>) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let asked = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break parse_head(&head);
        }
        if head.len() > MAX_HEAD {
            let _ = reply(&mut s, "431 Request Header Fields Too Large", "request head too large\n", false).await;
            return;
        }
        match tokio::time::timeout(READ_DEADLINE, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    };
    let (status, body, head_only) = match asked {
        Asked::Metrics { head_only } => match ask_metrics(jobs).await {
            Some(text) => ("200 OK", text, head_only),
            None => ("503 Service Unavailable", "metrics not available\n".to_string(), head_only),
        },
        Asked::NotFound => ("404 Not Found", "only /metrics is served here\n".into(), false),
        Asked::BadMethod => ("405 Method Not Allowed", "GET /metrics\n".into(), false),
        Asked::Bad => ("400 Bad Request", "not an HTTP/1 request\n".into(), false),
    };
    let _ = tokio::time::timeout(READ_DEADLINE, reply(&mut s, status, &body, head_only)).await;
}

async fn ask_metrics(jobs: &mpsc::Sender<Job>) -> Option<String> {
    let (tx, rx) = oneshot::channel();
    let req = Request::Appctl { command: "rvs/metrics".into(), args: Vec::new() };
    tokio::time::timeout(ANSWER_DEADLINE, jobs.send((req, tx))).await.ok()?.ok()?;
    match tokio::time::timeout(ANSWER_DEADLINE, rx).await {
        Ok(Ok(Response::Appctl { ok: true, output })) => Some(output),
        _ => None,
    }
}

async fn reply<S: AsyncWrite + Unpin>(s: &mut S, status: &str, body: &str, head_only: bool) -> std::io::Result<()> {
    let kind = if status.starts_with("200") { "text/plain; version=0.0.4; charset=utf-8" } else { "text/plain; charset=utf-8" };
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await?;
    if !head_only {
        s.write_all(body.as_bytes()).await?;
    }
    s.shutdown().await
}
