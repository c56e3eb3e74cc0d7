//! Traffic control over rtnetlink: the root qdisc of a device (HTB or HFSC with handle
//! `1:`), its classes, their parameters and counters — what `tc qdisc/class add/del/
//! show` do, as messages (RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC, RTM_NEWTCLASS,
//! RTM_DELTCLASS, RTM_GETTCLASS) on a NETLINK_ROUTE socket of this namespace.
//!
//! Only the encoding lives here: which classes a QoS row calls for, and their rates,
//! are decided by the caller (rvs-vswitchd's `qos`). Each call opens its own socket,
//! waits at most [`TIMEOUT`] for the kernel's answer and fails with a [`TcError`]
//! naming the operation and the device. Parsing answers never panics: what does not
//! fit is skipped or reported as [`TcError::Malformed`].

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::{cvt, cvt_size, owned};

/// The longest a request waits for the kernel's answer.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `TC_H_ROOT`: the parent of a root qdisc.
pub const TC_H_ROOT: u32 = 0xffff_ffff;

/// A class or qdisc handle `major:minor`.
pub const fn handle(major: u16, minor: u16) -> u32 {
    ((major as u32) << 16) | minor as u32
}

/// A device traffic control is set on: its name (for messages) and index.
#[derive(Debug, Clone, Copy)]
pub struct Dev<'a> {
    pub name: &'a str,
    pub ifindex: u32,
}

/// A failed traffic control request.
#[derive(Debug, thiserror::Error)]
pub enum TcError {
    /// The kernel refused or the socket failed.
    #[error("{op} on {dev} failed ({})", crate::strerror(.os))]
    Kernel { op: &'static str, dev: String, os: io::Error },
    /// The kernel answered something this parser does not understand.
    #[error("{op} on {dev}: malformed netlink answer ({what})")]
    Malformed { op: &'static str, dev: String, what: &'static str },
}

impl TcError {
    /// The OS error, if the kernel gave one.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            TcError::Kernel { os, .. } => os.raw_os_error(),
            TcError::Malformed { .. } => None,
        }
    }
}

/// The root qdisc to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootQdisc {
    /// `tc qdisc add dev D root handle 1: htb default DEFCLS` (r2q 10, as OVS).
    Htb { defcls: u32 },
    /// `tc qdisc add dev D root handle 1: hfsc default DEFCLS`.
    Hfsc { defcls: u16 },
}

/// `struct tc_ratespec`: a rate in bytes per second and how its table is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateSpec {
    pub cell_log: u8,
    pub mpu: u16,
    pub rate: u32,
}

/// `struct tc_htb_opt` without its unused fields: one HTB class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HtbOpt {
    pub rate: RateSpec,
    pub ceil: RateSpec,
    /// Burst at `rate` and at `ceil`, in scheduler ticks.
    pub buffer: u32,
    pub cbuffer: u32,
    /// 0: the kernel derives it from the rate (r2q).
    pub quantum: u32,
    pub prio: u32,
}

/// The class parameters to set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClassOpt {
    /// An HTB class, with the rate tables computed for `ticks_per_s` (see [`psched`]).
    Htb { opt: HtbOpt, ticks_per_s: f64 },
    /// An HFSC class: real-time and link-sharing curves at `min` bytes/s, upper limit
    /// at `max` bytes/s (linear curves: `sc rate MIN ul rate MAX`).
    Hfsc { min: u32, max: u32 },
}

/// A root qdisc as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub kind: String,
    pub handle: u32,
}

/// What the kernel counted for a class (`TCA_STATS2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassStats {
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
}

/// A class as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Class {
    pub handle: u32,
    pub parent: u32,
    pub kind: String,
    /// HTB's parameters (rate and ceil in bytes/s, buffer in ticks, prio).
    pub htb: Option<HtbOpt>,
    /// HFSC's (real-time rate, upper-limit rate), bytes/s.
    pub hfsc: Option<(u32, u32)>,
    pub stats: ClassStats,
}

/// The packet scheduler's clock as `/proc/net/psched` gives it, as OVS reads it:
/// (ticks per second, the kernel's buffer HZ). Falls back to OVS's defaults (1, 100).
pub fn psched() -> (f64, u32) {
    let text = std::fs::read_to_string("/proc/net/psched").unwrap_or_default();
    parse_psched(&text).unwrap_or((1.0, 100))
}

fn parse_psched(text: &str) -> Option<(f64, u32)> {
    let v: Vec<u32> = text.split_whitespace().map(|w| u32::from_str_radix(w, 16)).collect::<Result<_, _>>().ok()?;
    let [a, b, c, d] = v[..] else { return None };
    if a == 0 || b == 0 || c == 0 {
        return None;
    }
    Some((f64::from(a) * f64::from(c) / f64::from(b), if c == 1_000_000 { d } else { 100 }))
}

// Netlink and tc constants not in every libc.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_STATS2: u16 = 7;
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_CTAB: u16 = 3;
const TCA_HTB_RTAB: u16 = 4;
const TCA_HFSC_RSC: u16 = 1;
const TCA_HFSC_FSC: u16 = 2;
const TCA_HFSC_USC: u16 = 3;
const NLA_F_NESTED: u16 = 1 << 15;
const HDR: usize = 16;
const TCMSG: usize = 20;

/// One request being built: netlink header, `struct tcmsg`, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16, ifindex: u32, handle: u32, parent: u32) -> Msg {
        let mut buf = Vec::with_capacity(2048);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        buf.extend_from_slice(&1u32.to_ne_bytes()); // seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills it
        buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        buf.extend_from_slice(&ifindex.to_ne_bytes());
        buf.extend_from_slice(&handle.to_ne_bytes());
        buf.extend_from_slice(&parent.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // info
        Msg { buf, nests: Vec::new() }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
        self
    }

    fn nest(&mut self, ty: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.attr(ty | NLA_F_NESTED, &[])
    }

    fn end_nest(&mut self) -> &mut Msg {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn done(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn ratespec(r: &RateSpec) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = r.cell_log;
    b[1] = 1; // linklayer: TC_LINKLAYER_ETHERNET
    b[6..8].copy_from_slice(&r.mpu.to_ne_bytes());
    b[8..12].copy_from_slice(&r.rate.to_ne_bytes());
    b
}

fn htb_opt_bytes(o: &HtbOpt) -> Vec<u8> {
    let mut b = Vec::with_capacity(44);
    b.extend_from_slice(&ratespec(&o.rate));
    b.extend_from_slice(&ratespec(&o.ceil));
    for v in [o.buffer, o.cbuffer, o.quantum, 0, o.prio] {
        b.extend_from_slice(&v.to_ne_bytes());
    }
    b
}

/// The 256-entry rate table for `r` (ticks to send each size of packet), as iproute2
/// and OVS compute it; kernels that know the link layer only check it is there.
fn rtab(r: &RateSpec, ticks_per_s: f64) -> Vec<u8> {
    (0..256u32)
        .flat_map(|i| {
            let size = ((i + 1) << r.cell_log).max(u32::from(r.mpu));
            let ticks = if r.rate == 0 { 0 } else { (ticks_per_s * f64::from(size) / f64::from(r.rate)) as u32 };
            ticks.to_ne_bytes()
        })
        .collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| u64::from_ne_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
}

/// The attributes in `b`: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((ty, data))
    })
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked and owned at once.
    let fd = owned(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) })?;
    let tv = libc::timeval { tv_sec: TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
    // SAFETY: passes a pointer to a live timeval and its exact size; only read.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

fn send_to_kernel(fd: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain old data; all-zero (pid 0: the kernel) is valid.
    let mut sa: libc::sockaddr_nl = unsafe { zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `msg` is live for its length and `sa` is a valid sockaddr_nl of the size
    // passed; both are only read.
    let n = cvt_size(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    if n != msg.len() { Err(io::Error::from_raw_os_error(libc::EMSGSIZE)) } else { Ok(()) }
}

/// Sends `msg` and reads the answer: each message of a dump goes to `each` until
/// NLMSG_DONE; a request with NLM_F_ACK ends at its acknowledgement.
fn transact(op: &'static str, dev: Dev<'_>, msg: Vec<u8>, mut each: impl FnMut(&[u8])) -> Result<(), TcError> {
    let kernel = |os: io::Error| TcError::Kernel { op, dev: dev.name.to_string(), os };
    let fd = open_socket().map_err(kernel)?;
    send_to_kernel(&fd, &msg).map_err(kernel)?;
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded: each datagram waits at most TIMEOUT, and a dump of one device's classes
    // is a few datagrams; 4096 is far beyond any real answer.
    for _ in 0..4096 {
        let n = crate::netlink::recv(fd.as_fd(), &mut buf).map_err(kernel)?;
        let mut off = 0;
        while off + HDR <= n {
            let len = u32_at(&buf, off) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < HDR || off + len > n {
                return Err(TcError::Malformed { op, dev: dev.name.to_string(), what: "message length" });
            }
            let body = &buf[off + HDR..off + len];
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let err = u32_at(body, 0) as i32;
                    return if err == 0 { Ok(()) } else { Err(kernel(io::Error::from_raw_os_error(-err))) };
                }
                _ => each(body),
            }
            off += len.next_multiple_of(4);
        }
    }
    Err(TcError::Malformed { op, dev: dev.name.to_string(), what: "no end of answer" })
}

fn ack(op: &'static str, dev: Dev<'_>, m: Msg) -> Result<(), TcError> {
    transact(op, dev, m.done(), |_| {})
}

const ACK: u16 = libc::NLM_F_ACK as u16;
const CREATE: u16 = libc::NLM_F_CREATE as u16;
const EXCL: u16 = libc::NLM_F_EXCL as u16;
const DUMP: u16 = libc::NLM_F_DUMP as u16;

/// `tc qdisc del dev D root`. Deleting the default qdisc (EINVAL, ENOENT) is success:
/// the device is then as it would be.
pub fn del_root_qdisc(dev: Dev<'_>) -> Result<(), TcError> {
    match ack("deleting the root qdisc", dev, Msg::new(libc::RTM_DELQDISC, ACK, dev.ifindex, 0, TC_H_ROOT)) {
        Err(e) if matches!(e.os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(()),
        r => r,
    }
}

/// Creates the root qdisc with handle `1:` (the device must have the default one).
pub fn add_root_qdisc(dev: Dev<'_>, q: RootQdisc) -> Result<(), TcError> {
    let mut m = Msg::new(libc::RTM_NEWQDISC, ACK | CREATE | EXCL, dev.ifindex, handle(1, 0), TC_H_ROOT);
    match q {
        RootQdisc::Htb { defcls } => {
            // struct tc_htb_glob: version 3, rate2quantum 10, defcls, debug, direct_pkts.
            let glob: Vec<u8> = [3u32, 10, defcls, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
            m.attr(TCA_KIND, b"htb\0").nest(TCA_OPTIONS).attr(TCA_HTB_INIT, &glob).end_nest();
            ack("creating the root HTB qdisc", dev, m)
        }
        RootQdisc::Hfsc { defcls } => {
            m.attr(TCA_KIND, b"hfsc\0").attr(TCA_OPTIONS, &defcls.to_ne_bytes());
            ack("creating the root HFSC qdisc", dev, m)
        }
    }
}

/// Creates class `handle` under `parent`, or changes it when it exists
/// (`tc class replace`).
pub fn set_class(dev: Dev<'_>, handle: u32, parent: u32, opt: &ClassOpt) -> Result<(), TcError> {
    let mut m = Msg::new(libc::RTM_NEWTCLASS, ACK | CREATE, dev.ifindex, handle, parent);
    match opt {
        ClassOpt::Htb { opt, ticks_per_s } => {
            m.attr(TCA_KIND, b"htb\0").nest(TCA_OPTIONS);
            m.attr(TCA_HTB_PARMS, &htb_opt_bytes(opt)).attr(TCA_HTB_RTAB, &rtab(&opt.rate, *ticks_per_s)).attr(TCA_HTB_CTAB, &rtab(&opt.ceil, *ticks_per_s));
            m.end_nest();
        }
        ClassOpt::Hfsc { min, max } => {
            // struct tc_service_curve: m1, d, m2.
            let curve = |rate: u32| -> Vec<u8> { [0u32, 0, rate].iter().flat_map(|v| v.to_ne_bytes()).collect() };
            m.attr(TCA_KIND, b"hfsc\0").nest(TCA_OPTIONS);
            m.attr(TCA_HFSC_RSC, &curve(*min)).attr(TCA_HFSC_FSC, &curve(*min)).attr(TCA_HFSC_USC, &curve(*max));
            m.end_nest();
        }
    }
    ack("setting a traffic class", dev, m)
}

/// `tc class del dev D classid HANDLE`.
pub fn del_class(dev: Dev<'_>, handle: u32) -> Result<(), TcError> {
    ack("deleting a traffic class", dev, Msg::new(libc::RTM_DELTCLASS, ACK, dev.ifindex, handle, 0))
}

/// The device's root qdisc, `None` when it has the built-in default (which the kernel
/// does not list).
pub fn root_qdisc(dev: Dev<'_>) -> Result<Option<Qdisc>, TcError> {
    let mut found = None;
    transact("reading the qdiscs", dev, Msg::new(libc::RTM_GETQDISC, DUMP, 0, 0, 0).done(), |b| {
        if b.len() >= TCMSG && u32_at(b, 4) == dev.ifindex && u32_at(b, 12) == TC_H_ROOT {
            let kind = attrs(&b[TCMSG..]).find(|(t, _)| *t == TCA_KIND).map(|(_, d)| cstr(d)).unwrap_or_default();
            found = Some(Qdisc { kind, handle: u32_at(b, 8) });
        }
    })?;
    Ok(found)
}

/// Every class of the device, with its parameters and counters.
pub fn classes(dev: Dev<'_>) -> Result<Vec<Class>, TcError> {
    let mut out = Vec::new();
    transact("reading the traffic classes", dev, Msg::new(libc::RTM_GETTCLASS, DUMP, dev.ifindex, 0, 0).done(), |b| {
        if b.len() >= TCMSG && u32_at(b, 4) == dev.ifindex {
            out.push(parse_class(b));
        }
    })?;
    Ok(out)
}

/// One RTM_NEWTCLASS message body (`struct tcmsg` and attributes).
fn parse_class(b: &[u8]) -> Class {
    let mut c = Class { handle: u32_at(b, 8), parent: u32_at(b, 12), ..Class::default() };
    let mut options: &[u8] = &[];
    for (ty, d) in attrs(&b[TCMSG..]) {
        match ty {
            TCA_KIND => c.kind = cstr(d),
            TCA_OPTIONS => options = d,
            TCA_STATS2 => {
                for (sty, s) in attrs(d) {
                    match sty {
                        TCA_STATS_BASIC => {
                            c.stats.bytes = u64_at(s, 0);
                            c.stats.packets = u64::from(u32_at(s, 8));
                        }
                        TCA_STATS_QUEUE => c.stats.drops = u64::from(u32_at(s, 8)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let spec = |s: &[u8], at: usize| RateSpec { cell_log: s[at], mpu: u16::from_ne_bytes([s[at + 6], s[at + 7]]), rate: u32_at(s, at + 8) };
    for (ty, d) in attrs(options) {
        match (c.kind.as_str(), ty) {
            ("htb", TCA_HTB_PARMS) if d.len() >= 44 => {
                c.htb = Some(HtbOpt {
                    rate: spec(d, 0),
                    ceil: spec(d, 12),
                    buffer: u32_at(d, 24),
                    cbuffer: u32_at(d, 28),
                    quantum: u32_at(d, 32),
                    prio: u32_at(d, 40),
                });
            }
            ("hfsc", TCA_HFSC_RSC) if d.len() >= 12 => c.hfsc = Some((u32_at(d, 8), c.hfsc.map_or(0, |h| h.1))),
            ("hfsc", TCA_HFSC_USC) if d.len() >= 12 => c.hfsc = Some((c.hfsc.map_or(0, |h| h.0), u32_at(d, 8))),
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psched_as_ovs_reads_it() {
        assert_eq!(parse_psched("000003e8 00000040 000f4240 3b9aca00\n"), Some((15_625_000.0, 1_000_000_000)));
        assert_eq!(parse_psched("1 1 0 1"), None);
        assert_eq!(parse_psched("garbage"), None);
    }

    #[test]
    fn htb_class_message_round_trips() {
        let opt = HtbOpt {
            rate: RateSpec { cell_log: 3, mpu: 60, rate: 12_500_000 },
            ceil: RateSpec { cell_log: 3, mpu: 60, rate: 25_000_000 },
            buffer: 1000,
            cbuffer: 500,
            quantum: 1500,
            prio: 2,
        };
        let mut m = Msg::new(libc::RTM_NEWTCLASS, 0, 7, handle(1, 1), handle(1, 0xfffe));
        m.attr(TCA_KIND, b"htb\0").nest(TCA_OPTIONS).attr(TCA_HTB_PARMS, &htb_opt_bytes(&opt)).attr(TCA_HTB_RTAB, &rtab(&opt.rate, 15.625e6)).end_nest();
        let msg = m.done();
        assert_eq!(u32_at(&msg, 0) as usize, msg.len());
        let c = parse_class(&msg[HDR..]);
        assert_eq!((c.handle, c.parent, c.kind.as_str()), (0x1_0001, 0x1_fffe, "htb"));
        assert_eq!(c.htb, Some(opt));
        // Truncated or garbage input parses to what can be read, without panicking.
        for n in 0..msg.len() {
            let _ = parse_class(&msg[HDR.min(n)..n.max(HDR + TCMSG)]);
        }
    }

    #[test]
    fn garbage_parses_without_panicking() {
        // Pseudo-random bytes (xorshift), and the same with plausible attribute
        // headers spliced in: parse_class reads what it can and never panics.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in (TCMSG..600).step_by(7) {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = parse_class(&b);
            for at in (TCMSG..len.saturating_sub(4)).step_by(16) {
                let alen = ((x as usize) % 64) as u16;
                b[at..at + 2].copy_from_slice(&alen.to_ne_bytes());
                b[at + 2..at + 4].copy_from_slice(&[TCA_OPTIONS as u8, 0]);
            }
            let _ = parse_class(&b);
            let _ = attrs(&b).count();
        }
    }

    #[test]
    fn rate_table_is_ticks_per_cell() {
        let t = rtab(&RateSpec { cell_log: 3, mpu: 60, rate: 1_000_000 }, 1e6);
        assert_eq!(t.len(), 1024);
        assert_eq!(u32_at(&t, 0), 60, "the first cells are the minimum packet unit");
        assert_eq!(u32_at(&t, 4 * 255), 2048);
    }
}
