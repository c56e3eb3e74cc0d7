//! `ovs-appctl ofproto/trace BRIDGE FLOW [PACKET]`: why a frame goes where it goes.
//!
//! The flow is given in OVS's OpenFlow flow syntax (the fields the switch looks at,
//! and the IP ones that name a flow: `in_port`, `dl_src`/`eth_src`, `dl_dst`/`eth_dst`,
//! `dl_vlan`, `dl_vlan_pcp`/`vlan_pcp`, `vlan_tci`, `dl_type`/`eth_type`, `nw_src`,
//! `nw_dst`, `nw_proto`, `tp_src`, `tp_dst`, and the shorthands `ip`, `icmp`, `tcp`,
//! `udp`, `arp`), or a flow naming only `in_port` followed by an Ethernet frame in hex,
//! as OVS's `ofproto/trace ... PACKET` takes it. A frame is built from the flow and
//! handed to the first worker's core, which runs the very steps forwarding runs
//! ([`rvs_switch::bridge::Bridge::trace`]) without learning anything; what it saw is
//! printed close to OVS's NORMAL-action trace ("Flow:", `bridge("br0")`, the NORMAL
//! steps, "Final flow:", "Datapath actions:").
//!
//! Errors are OVS's texts where OVS has one ("br9: unknown bridge", "Bad openflow flow
//! syntax: ..."); the reply is then an error (ovs-appctl exits with status 2).
//!
//! Must not: change anything (MAC table, counters) or send a frame.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use rvs_switch::bridge::{DropReason, Learned, Skip, Trace, Verdict, VlanMode};
use rvs_switch::types::{MacAddr, VlanId};

/// A flow as `ofproto/trace` takes it: every field not given is zero, as in OVS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Port name or OpenFlow number, as given.
    pub in_port: Option<String>,
    pub dl_src: MacAddr,
    pub dl_dst: MacAddr,
    /// The 802.1Q TCI with the CFI/"present" bit (0x1000) as OVS writes it; 0 = untagged.
    pub vlan_tci: u16,
    pub dl_type: u16,
    pub nw_src: Ipv4Addr,
    pub nw_dst: Ipv4Addr,
    pub nw_proto: u8,
    pub tp_src: u16,
    pub tp_dst: u16,
}

impl Default for Flow {
    fn default() -> Flow {
        let (z, ip) = (MacAddr::ZERO, Ipv4Addr::UNSPECIFIED);
        Flow { in_port: None, dl_src: z, dl_dst: z, vlan_tci: 0, dl_type: 0, nw_src: ip, nw_dst: ip, nw_proto: 0, tp_src: 0, tp_dst: 0 }
    }
}

const TCI_PRESENT: u16 = 0x1000;

fn int<T: TryFrom<u64>>(v: &str) -> Option<T> {
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => v.parse::<u64>().ok()?,
    };
    T::try_from(n).ok()
}

impl Flow {
    /// Parses OVS's `field=value,...` syntax. The error is the text after OVS's "Bad
    /// openflow flow syntax: ".
    pub fn parse(s: &str) -> Result<Flow, String> {
        let mut f = Flow::default();
        let mut seen: Vec<&str> = Vec::new();
        for tok in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (k, v) = match tok.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (tok, None),
            };
            let proto = match k {
                "ip" => Some((0x0800, 0)),
                "icmp" => Some((0x0800, 1)),
                "tcp" => Some((0x0800, 6)),
                "udp" => Some((0x0800, 17)),
                "arp" => Some((0x0806, 0)),
                _ => None,
            };
            if let Some((ty, p)) = proto {
                f.dl_type = ty;
                f.nw_proto = p;
                continue;
            }
            let canon = match k {
                "eth_src" => "dl_src",
                "eth_dst" => "dl_dst",
                "eth_type" => "dl_type",
                "vlan_pcp" => "dl_vlan_pcp",
                "ip_src" => "nw_src",
                "ip_dst" => "nw_dst",
                "ip_proto" => "nw_proto",
                "tcp_src" | "udp_src" => "tp_src",
                "tcp_dst" | "udp_dst" => "tp_dst",
                k => k,
            };
            const KNOWN: &[&str] =
                &["in_port", "dl_src", "dl_dst", "dl_type", "dl_vlan", "dl_vlan_pcp", "vlan_tci", "nw_src", "nw_dst", "nw_proto", "tp_src", "tp_dst"];
            if !KNOWN.contains(&canon) {
                return Err(format!("{s}: unknown field {k}"));
            }
            let Some(v) = v else { return Err(format!("field {k} missing value")) };
            if seen.contains(&canon) {
                return Err(format!("{s}: field {k} set multiple times"));
            }
            seen.push(canon);
            let mac = |v: &str| v.parse::<MacAddr>().map_err(|_| format!("{v}: invalid Ethernet address"));
            let ip = |v: &str| v.parse::<Ipv4Addr>().map_err(|_| format!("{v}: invalid IP address"));
            let num = |bits: u32| int::<u64>(v).filter(|&n| n < 1 << bits).ok_or_else(|| format!("{v}: could not convert to {bits}-bit integer"));
            match canon {
                "in_port" => f.in_port = Some(v.to_string()),
                "dl_src" => f.dl_src = mac(v)?,
                "dl_dst" => f.dl_dst = mac(v)?,
                "dl_type" => f.dl_type = num(16)? as u16,
                "vlan_tci" => f.vlan_tci = num(16)? as u16,
                "dl_vlan" => {
                    let n = num(16)? as u16;
                    // OVS: dl_vlan=0xffff means "no 802.1Q header".
                    f.vlan_tci = if n == 0xffff {
                        0
                    } else if n > VlanId::MAX {
                        return Err(format!("{v}: VLAN ID out of range (0 to 4095)"));
                    } else {
                        (f.vlan_tci & 0xe000) | TCI_PRESENT | n
                    };
                }
                "dl_vlan_pcp" => f.vlan_tci = (f.vlan_tci & 0x0fff) | TCI_PRESENT | ((num(3)? as u16) << 13),
                "nw_src" => f.nw_src = ip(v)?,
                "nw_dst" => f.nw_dst = ip(v)?,
                "nw_proto" => f.nw_proto = num(8)? as u8,
                "tp_src" => f.tp_src = num(16)? as u16,
                _ => f.tp_dst = num(16)? as u16,
            }
        }
        Ok(f)
    }

    /// The frame this flow describes: Ethernet (with an 802.1Q tag when the TCI says
    /// so), an IPv4 header and the first bytes of TCP/UDP when the flow is IP, padded
    /// to the 60-byte minimum.
    pub fn frame(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&self.dl_dst.0);
        b.extend_from_slice(&self.dl_src.0);
        if self.vlan_tci & TCI_PRESENT != 0 {
            b.extend_from_slice(&[0x81, 0x00]);
            b.extend_from_slice(&(self.vlan_tci & !TCI_PRESENT).to_be_bytes());
        }
        b.extend_from_slice(&self.dl_type.to_be_bytes());
        if self.dl_type == 0x0800 {
            let l4 = matches!(self.nw_proto, 6 | 17);
            let total: u16 = 20 + if l4 { 8 } else { 0 };
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[8] = 64;
            ip[9] = self.nw_proto;
            ip[12..16].copy_from_slice(&self.nw_src.octets());
            ip[16..20].copy_from_slice(&self.nw_dst.octets());
            let sum = !ip.chunks(2).fold(0u32, |s, w| {
                let s = s + u32::from(u16::from_be_bytes([w[0], w[1]]));
                (s & 0xffff) + (s >> 16)
            }) as u16;
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            b.extend_from_slice(&ip);
            if l4 {
                b.extend_from_slice(&self.tp_src.to_be_bytes());
                b.extend_from_slice(&self.tp_dst.to_be_bytes());
                b.extend_from_slice(&[0; 4]);
            }
        }
        if b.len() < 60 {
            b.resize(60, 0);
        }
        b
    }

    /// The flow of a frame (OVS's `flow_extract`, for the fields shown here).
    pub fn of_frame(frame: &[u8], in_port: Option<String>) -> Flow {
        let mut f = Flow { in_port, ..Flow::default() };
        if frame.len() < 14 {
            return f;
        }
        f.dl_dst = MacAddr::from_slice(&frame[0..6]);
        f.dl_src = MacAddr::from_slice(&frame[6..12]);
        let mut at = 12;
        if frame[12..14] == [0x81, 0x00] && frame.len() >= 18 {
            f.vlan_tci = u16::from_be_bytes([frame[14], frame[15]]) | TCI_PRESENT;
            at = 16;
        }
        f.dl_type = u16::from_be_bytes([frame[at], frame[at + 1]]);
        let ip = &frame[at + 2..];
        if f.dl_type == 0x0800 && ip.len() >= 20 && ip[0] >> 4 == 4 {
            f.nw_proto = ip[9];
            f.nw_src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            f.nw_dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            let ihl = usize::from(ip[0] & 15) * 4;
            if matches!(f.nw_proto, 6 | 17) && ip.len() >= ihl + 4 {
                f.tp_src = u16::from_be_bytes([ip[ihl], ip[ihl + 1]]);
                f.tp_dst = u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]);
            }
        }
        f
    }

    /// The flow as OVS prints it after "Flow:", `in_port` as the OpenFlow number.
    pub fn display(&self, ofport: u16) -> String {
        let proto = match (self.dl_type, self.nw_proto) {
            (0x0800, 6) => "tcp,",
            (0x0800, 17) => "udp,",
            (0x0800, 1) => "icmp,",
            (0x0800, _) => "ip,",
            (0x0806, _) => "arp,",
            _ => "",
        };
        let mut s = format!("{proto}in_port={ofport},vlan_tci={:#06x},dl_src={},dl_dst={}", self.vlan_tci, self.dl_src, self.dl_dst);
        if self.dl_type == 0x0800 {
            let _ = write!(s, ",nw_src={},nw_dst={}", self.nw_src, self.nw_dst);
            if proto == "ip," {
                let _ = write!(s, ",nw_proto={}", self.nw_proto);
            }
            if matches!(self.nw_proto, 6 | 17) {
                let _ = write!(s, ",tp_src={},tp_dst={}", self.tp_src, self.tp_dst);
            }
        } else if proto.is_empty() {
            let _ = write!(s, ",dl_type={:#06x}", self.dl_type);
        }
        s
    }
}

/// OVS's `eth_from_hex`: the frame in hex (spaces allowed), at least an Ethernet header.
pub fn frame_from_hex(s: &str) -> Result<Vec<u8>, &'static str> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err("Trace packet must be in hexadecimal format");
    }
    let frame: Vec<u8> = digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("0"), 16).unwrap_or(0)).collect();
    if frame.len() < 14 {
        return Err("Trace packet is too short");
    }
    Ok(frame)
}

/// What the trace's request came to: the bridge, the flow (with `in_port`), and the
/// frame to trace.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub bridge: String,
    pub flow: Flow,
    pub frame: Vec<u8>,
}

/// Parses `ofproto/trace`'s arguments the way OVS's `parse_flow_and_packet` does:
/// options first (`-generate` is accepted: rvs always builds the frame), then
/// `bridge flow [packet]`. The bridge is not checked here.
pub fn parse_args(args: &[String]) -> Result<Request, String> {
    let mut rest: Vec<&str> = Vec::new();
    for a in args {
        match a.as_str() {
            "-generate" | "--generate" => {}
            o if o.starts_with('-') => return Err(format!("{o}: unknown option")),
            _ if rest.len() >= 3 => return Err("too many arguments".into()),
            a => rest.push(a),
        }
    }
    let mut packet = None;
    if rest.len() > 1 {
        match frame_from_hex(rest[rest.len() - 1]) {
            Ok(f) => {
                packet = Some(f);
                rest.pop();
            }
            Err(e) if rest.len() > 2 => return Err(e.into()),
            Err(_) => {}
        }
    }
    match rest.as_slice() {
        [bridge, flow] => {
            let flow = Flow::parse(flow).map_err(|e| format!("Bad openflow flow syntax: {e}"))?;
            let frame = packet.clone().unwrap_or_else(|| flow.frame());
            let flow = if packet.is_some() { Flow::of_frame(&frame, flow.in_port) } else { flow };
            Ok(Request { bridge: bridge.to_string(), flow, frame })
        }
        // OVS would read one argument as a datapath flow; rvs has no datapath flows.
        [one] => Err(format!("{one}: datapath flows are not supported by rvs (or the bridge name was omitted)")),
        _ => Err("Syntax error".into()),
    }
}

/// A port of the traced bridge, as the printout names it.
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub name: String,
    pub ofport: u16,
    pub mode: VlanMode,
    /// Access or native VLAN.
    pub vlan: VlanId,
    /// For a tunnel: its options (`remote_ip=..., key=...`).
    pub tunnel: Option<String>,
}

/// Prints a trace the way OVS prints a NORMAL-action trace.
/// `mirrors` names the bridge's mirrors by index (as the core numbers them).
pub fn format(bridge: &str, flow: &Flow, in_port: u16, ports: &[PortInfo], t: &Trace, fail_secure: bool, mirrors: &[String]) -> String {
    let p = |i: u16| ports.get(usize::from(i));
    let name = |i: u16| p(i).map_or_else(|| format!("#{i}"), |p| p.name.clone());
    let inp = p(in_port).map_or(0, |p| p.ofport);
    let mut s = format!("Flow: {}\n\nbridge(\"{bridge}\")\n{}\n", flow.display(inp), "-".repeat(bridge.len() + 10));
    let mut lines: Vec<String> = Vec::new();
    let mut say = |line: String| lines.push(line);
    let r = &t.record;
    if fail_secure {
        s.push_str("No match.\n    drop\n");
        say("fail_mode=secure and no controller: the bridge forwards nothing (rvs has no OpenFlow flows)".into());
    } else {
        s.push_str(" 0. priority 0\n    NORMAL\n");
        let say = &mut say;
        if let Some((_, _, vid, _)) = r.parsed {
            let ip = p(in_port);
            match (r.vlan, t.verdict) {
                (None, Verdict::Drop(DropReason::TaggedOnAccess)) => say(format!(
                    "dropping VLAN {} tagged packet received on port {} configured as VLAN {} access port",
                    vid,
                    name(in_port),
                    ip.map_or(0, |p| p.vlan.get())
                )),
                (None, Verdict::Drop(DropReason::VlanNotAllowed)) => {
                    let v = if vid.is_none() && ip.is_some_and(|p| p.mode != VlanMode::Trunk) { ip.map_or(0, |p| p.vlan.get()) } else { vid.get() };
                    say(format!("dropping VLAN {v} packet received on port {} not configured for trunking VLAN {v}", name(in_port)))
                }
                (Some(v), _) if vid.is_none() => say(format!("untagged frame on port {} is in VLAN {v}", name(in_port))),
                (Some(v), _) => say(format!("VLAN {v} tagged frame admitted on port {}", name(in_port))),
                _ => {}
            }
        }
        if let (Some(v), Some(w)) = (r.vlan, r.learn) {
            let src = r.parsed.map_or(MacAddr::ZERO, |x| x.0);
            match w.learned {
                Learned::New => say(format!("learned that {src} is on port {} in VLAN {v}", name(in_port))),
                Learned::Moved(old) => say(format!("learned that {src} is on port {} in VLAN {v} (moved from port {})", name(in_port), name(old))),
                Learned::Known | Learned::Refreshed => say(format!("{src} already learned on port {} in VLAN {v}", name(in_port))),
                Learned::Refused if src.is_multicast() => say(format!("source {src} is multicast: not learned")),
                Learned::Refused => say(format!("{src} not learned (a static entry, or a table full of static entries)")),
                Learned::GratArpLocked => say(format!("gratuitous ARP from {src} on a bond while its entry is locked: not learned")),
            }
            if let Some((ev, em)) = w.evicts {
                say(format!("MAC table full: learning evicts {em} in VLAN {ev}"));
            }
        }
        match (r.lookup, t.verdict) {
            (_, Verdict::Drop(DropReason::Malformed)) => say("frame too short for its Ethernet header or 802.1Q tag, dropping".into()),
            (_, Verdict::Drop(DropReason::ReservedMulticast)) => {
                say("destination is an IEEE 802.1D reserved group address and forward-bpdu is off, dropping".into())
            }
            (_, Verdict::Drop(DropReason::Reflection)) => say("learned port is input port, dropping".into()),
            (None, Verdict::Drop(DropReason::MirrorPort)) => say("input port is mirror output port, dropping".into()),
            (Some(_), Verdict::Drop(DropReason::MirrorPort)) => say("learned port is a mirror port, dropping".into()),
            (Some((_, Some(o))), Verdict::Drop(DropReason::Protected)) => say(format!("learned port {} and input port are both protected, dropping", name(o))),
            (Some((_, Some(o))), Verdict::Drop(DropReason::SplitHorizon)) => {
                say(format!("learned port {} is a tunnel, as is the input port: split horizon, dropping", name(o)))
            }
            (Some((true, _)), _) => say("multicast or broadcast destination, flooding".into()),
            (Some((false, Some(_))), Verdict::Forward { flood: false, .. }) => say("forwarding to learned port".into()),
            (Some((false, Some(o))), Verdict::Forward { flood: true, .. }) => say(format!("learned port {} does not carry the VLAN, flooding", name(o))),
            (Some((false, None)), _) => say("no learned MAC for destination, flooding".into()),
            (_, Verdict::Drop(d)) => say(format!("dropping ({})", d.name())),
            _ => {}
        }
        for &(i, why) in &r.skipped {
            if why != Skip::Ingress {
                say(format!("not flooding to port {}: {}", name(i), why.describe()));
            }
        }
        for e in t.outputs.iter().filter(|e| !e.is_mirror()) {
            let tag = e.tag.map_or_else(|| "untagged".to_string(), |v| format!("tagged VLAN {v}"));
            say(format!("output to port {} ({tag})", name(e.port)));
            if let Some(opts) = p(e.port).and_then(|p| p.tunnel.as_ref()) {
                say(format!("tunnel: VXLAN to {opts}"));
            }
        }
    }
    // Mirror copies are made whatever forwarding decided (a dropped frame too).
    for (m, e) in &t.record.mirrored {
        let tag = e.tag.map_or_else(|| "untagged".to_string(), |v| format!("tagged VLAN {v}"));
        let mname = mirrors.get(*m).map_or_else(|| format!("#{m}"), Clone::clone);
        let cut = if e.snap != u16::MAX { format!(", first {} bytes", e.snap) } else { String::new() };
        lines.push(format!("mirror {mname}: output to port {} ({tag}{cut})", name(e.port)));
    }
    for l in lines {
        let _ = writeln!(s, "     -> {l}");
    }
    let _ = writeln!(s, "\nFinal flow: unchanged\nDatapath actions: {}", datapath_actions(flow, ports, t));
    s
}

/// The copies as OVS writes datapath actions: tag changes, then the output port's
/// number; "drop" when nothing is sent.
fn datapath_actions(flow: &Flow, ports: &[PortInfo], t: &Trace) -> String {
    if t.outputs.is_empty() {
        return "drop".into();
    }
    let mut outs = t.outputs.clone();
    outs.sort_unstable_by_key(|e| (e.is_mirror() && e.snap != u16::MAX, e.tag.map_or(0, |v| v.get() + 1), e.port));
    let pcp = (flow.vlan_tci >> 13) as u8;
    let mut cur = (flow.vlan_tci & TCI_PRESENT != 0).then_some(flow.vlan_tci & 0x0fff);
    let mut acts: Vec<String> = Vec::new();
    for e in outs {
        let want = e.tag.map(|v| v.get());
        if want != cur {
            if cur.is_some() {
                acts.push("pop_vlan".into());
            }
            if let Some(v) = want {
                acts.push(format!("push_vlan(vid={v},pcp={pcp})"));
            }
            cur = want;
        }
        if e.is_mirror() && e.snap != u16::MAX {
            acts.push(format!("trunc({})", e.snap));
        }
        acts.push(ports.get(usize::from(e.port)).map_or_else(|| e.port.to_string(), |p| p.ofport.to_string()));
    }
    acts.join(",")
}

#[cfg(test)]
mod tests;

/// The `ofproto/trace` command: parse, check bridge and port, trace on the first
/// worker (whose MAC table replica commands show), print.
pub(crate) async fn appctl(ctl: &mut crate::control::Control, args: &[String]) -> Result<String, crate::appctl::AppctlError> {
    use crate::appctl::AppctlError::Failed;
    let req = parse_args(args).map_err(Failed)?;
    let unknown_bridge = || Failed(format!("{}: unknown bridge", req.bridge));
    ctl.bridge_ports(&req.bridge).ok_or_else(unknown_bridge)?;
    let Some(want) = req.flow.in_port.clone() else {
        return Err(Failed("Bad openflow flow syntax: in_port is required (rvs traces the NORMAL action of a port)".into()));
    };
    let (bn, frame, w2) = (req.bridge.clone(), req.frame.clone(), want.clone());
    let got = crate::appctl::ask(ctl, move |w| {
        let now = w.now();
        let b = w.bridge(&bn)?;
        let ports: Vec<_> = b.ports.iter().map(|p| (p.name.clone(), p.ofport.get(), p.core.vlan.mode(), p.core.vlan.vlan(), p.core.tunnel)).collect();
        // OVS's port keyword LOCAL names the bridge's own port (OpenFlow 65534).
        let idx = ports.iter().position(|p| p.0 == w2 || p.1.to_string() == w2 || (w2 == "LOCAL" && p.1 == 65534));
        Some((idx.map(|i| (i, b.core.trace(now, i as u16, &frame))), ports, b.core.config().fail_secure))
    })
    .await?;
    let (found, ports, fail_secure) = got.ok_or_else(unknown_bridge)?;
    let Some((idx, t)) = found else {
        return Err(Failed(format!("Bad openflow flow syntax: {want}: port value out of range for in_port")));
    };
    let ports: Vec<PortInfo> = ports
        .into_iter()
        .map(|(name, ofport, mode, vlan, tunnel)| {
            let tunnel = tunnel.then(|| ctl.iface_options(&name));
            PortInfo { name, ofport, mode, vlan, tunnel }
        })
        .collect();
    let mirrors: Vec<String> = rvs_ovsdb::view::Bridge::all(&ctl.db)
        .find(|b| b.name() == req.bridge)
        .map(|b| crate::mirrors::plan(&ctl.db, &b.uuid).0.into_iter().map(|m| m.name).collect())
        .unwrap_or_default();
    Ok(format(&req.bridge, &req.flow, idx as u16, &ports, &t, fail_secure, &mirrors))
}
