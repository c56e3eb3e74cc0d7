//! VXLAN interface options (ovs-vswitchd.conf.db(5), Interface table, "Tunnel
//! Options"), parsed and checked the way OVS does, with OVS's error texts where OVS has
//! one and a clear "not supported by rvs" where rvs lacks the feature.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::port::vxlan::TxSettings;
use rvs_switch::types::Vni;

/// The IANA VXLAN port (RFC 7348), OVS's default `dst_port`.
pub const DEFAULT_DST_PORT: u16 = 4789;
/// OVS's default outer TTL.
pub const DEFAULT_TTL: u8 = 64;

/// A tunnel's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub remote: IpAddr,
    pub vni: Vni,
    pub dst_port: u16,
    pub tx: TxSettings,
}

/// Why a VXLAN interface's options cannot be carried out; the text (OVS's where OVS
/// has one) becomes the interface's `error` column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// A feature OVS has and rvs does not: `what` names the option.
    #[error("{name}: {what} is not supported by rvs")]
    Unsupported { name: String, what: String },
    #[error("{name}: bad vxlan '{key}'")]
    BadAddress { name: String, key: &'static str },
    #[error("{name}: multicast remote_ip={value} not allowed")]
    MulticastRemote { name: String, value: String },
    #[error("{name}: invalid TOS {value}")]
    BadTos { name: String, value: String },
    #[error("{name}: invalid vxlan {key} {value} (a VNI is 0 to 16777215)")]
    BadVni { name: String, key: String, value: String },
    /// A value OVS would wrap or read loosely (`dst_port=70000` as 4464, `ttl=300` as
    /// 44, `df_default=maybe` as false): rvs refuses it and says what it takes.
    #[error("{name}: invalid vxlan {key} {value} ({expected})")]
    BadValue { name: String, key: &'static str, value: String, expected: &'static str },
    #[error("{name}: vxlan type requires valid 'remote_ip' argument")]
    NoRemote { name: String },
    #[error("{name}: 'remote_ip' and 'local_ip' has to be of the same address family")]
    MixedFamilies { name: String },
}

/// strtol(s, 0): decimal, 0x hex or 0 octal, whole string.
fn strtol0(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Parses a VXLAN interface's `options`. `Err` is the interface's `error` text.
/// Unknown keys are logged and ignored, as OVS does.
pub fn parse(name: &str, options: &BTreeMap<String, String>) -> Result<VxlanSpec, TunnelError> {
    let unsupported = |what: &str| Err(TunnelError::Unsupported { name: name.into(), what: what.into() });
    let bad = |key: &'static str, value: &str, expected: &'static str| TunnelError::BadValue { name: name.into(), key, value: value.into(), expected };
    // A whole decimal number within `range`.
    let number = |key: &'static str, v: &str, range: std::ops::RangeInclusive<u32>, expected: &'static str| {
        v.parse::<u32>().ok().filter(|n| range.contains(n)).ok_or_else(|| bad(key, v, expected))
    };
    let boolean = |key: &'static str, v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, v, "true or false")),
    };
    let mut remote = None;
    let mut local = None;
    let mut tos = 0u8;
    let mut ttl = DEFAULT_TTL;
    let mut df = true;
    let mut csum = false;
    let mut dst_port = DEFAULT_DST_PORT;
    let mut vni = Vni::new(0).unwrap_or_default();
    for (k, v) in options {
        match k.as_str() {
            "remote_ip" => {
                if v == "flow" {
                    return unsupported("remote_ip=flow (flow-based tunnels)");
                }
                let ip: IpAddr = v.parse().map_err(|_| TunnelError::BadAddress { name: name.into(), key: "remote_ip" })?;
                if ip.is_multicast() {
                    return Err(TunnelError::MulticastRemote { name: name.into(), value: v.clone() });
                }
                remote = Some(ip);
            }
            "local_ip" => {
                if v == "flow" {
                    return unsupported("local_ip=flow");
                }
                local = Some(v.parse::<IpAddr>().map_err(|_| TunnelError::BadAddress { name: name.into(), key: "local_ip" })?);
            }
            "tos" => {
                if v == "inherit" {
                    return unsupported("tos=inherit");
                }
                match strtol0(v) {
                    Some(t) if t == (t & 0xfc) => tos = t as u8,
                    _ => return Err(TunnelError::BadTos { name: name.into(), value: v.clone() }),
                }
            }
            "ttl" => {
                if v == "inherit" {
                    return unsupported("ttl=inherit");
                }
                ttl = match number("ttl", v, 0..=255, "0 to 255; 0 for the default 64")? {
                    0 => DEFAULT_TTL,
                    t => t as u8,
                };
            }
            "dst_port" => dst_port = number("dst_port", v, 0..=65535, "a UDP port, 1 to 65535; 0 for the default 4789")? as u16,
            "csum" => csum = boolean("csum", v)?,
            "df_default" => df = boolean("df_default", v)?,
            "key" | "in_key" | "out_key" => {
                if v == "flow" {
                    return unsupported(&format!("{k}=flow (flow-based tunnel keys)"));
                }
                let n = strtol0(v).filter(|n| (0..=i64::from(Vni::MAX)).contains(n));
                vni = n.and_then(|n| Vni::new(n as u32)).ok_or_else(|| TunnelError::BadVni { name: name.into(), key: k.clone(), value: v.clone() })?;
            }
            "exts" | "packet_type" => return unsupported(&format!("options:{k}")),
            "remote_cert" | "remote_name" | "psk" => {}
            other => tracing::warn!("{name}: unknown vxlan argument '{other}'"),
        }
    }
    let remote = remote.ok_or_else(|| TunnelError::NoRemote { name: name.into() })?;
    if let Some(l) = local
        && l.is_ipv6() != remote.is_ipv6()
    {
        return Err(TunnelError::MixedFamilies { name: name.into() });
    }
    if dst_port == 0 {
        dst_port = DEFAULT_DST_PORT;
    }
    Ok(VxlanSpec { remote, vni, dst_port, tx: TxSettings { local, v6: remote.is_ipv6(), ttl, tos, df, csum } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn values_that_would_wrap_or_slip_are_errors() {
        for (k, v, text) in [
            ("dst_port", "70000", "vx0: invalid vxlan dst_port 70000 (a UDP port, 1 to 65535; 0 for the default 4789)"),
            ("dst_port", "-1", "vx0: invalid vxlan dst_port -1 (a UDP port, 1 to 65535; 0 for the default 4789)"),
            ("dst_port", "47x", "vx0: invalid vxlan dst_port 47x (a UDP port, 1 to 65535; 0 for the default 4789)"),
            ("ttl", "300", "vx0: invalid vxlan ttl 300 (0 to 255; 0 for the default 64)"),
            ("df_default", "maybe", "vx0: invalid vxlan df_default maybe (true or false)"),
            ("csum", "yes", "vx0: invalid vxlan csum yes (true or false)"),
        ] {
            let e = parse("vx0", &opts(&[("remote_ip", "198.19.0.2"), (k, v)])).unwrap_err();
            assert_eq!(e.to_string(), text);
        }
        let s = parse("vx0", &opts(&[("remote_ip", "198.19.0.2"), ("dst_port", "0"), ("ttl", "255"), ("csum", "true")])).unwrap();
        assert_eq!((s.dst_port, s.tx.ttl, s.tx.csum), (4789, 255, true));
    }

    #[test]
    fn defaults_as_ovs() {
        let s = parse("vx0", &opts(&[("remote_ip", "198.19.0.2")])).unwrap();
        assert_eq!(s.vni.get(), 0);
        assert_eq!(s.dst_port, 4789);
        assert!(s.tx.df && !s.tx.csum);
        assert_eq!(s.tx.ttl, 64);
        let s = parse("vx0", &opts(&[("remote_ip", "2001:db8::1"), ("key", "5000"), ("dst_port", "8472"), ("df_default", "false"), ("tos", "0x20")])).unwrap();
        assert_eq!((s.vni.get(), s.dst_port, s.tx.df, s.tx.tos, s.tx.v6), (5000, 8472, false, 0x20, true));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("vx0", &opts(&[])).unwrap_err().to_string(), "vx0: vxlan type requires valid 'remote_ip' argument");
        assert_eq!(parse("vx0", &opts(&[("remote_ip", "x")])).unwrap_err().to_string(), "vx0: bad vxlan 'remote_ip'");
        assert!(parse("vx0", &opts(&[("remote_ip", "239.1.1.1")])).unwrap_err().to_string().contains("multicast"));
        assert!(parse("vx0", &opts(&[("remote_ip", "198.19.0.2"), ("key", "flow")])).unwrap_err().to_string().contains("not supported by rvs"));
        assert!(parse("vx0", &opts(&[("remote_ip", "198.19.0.2"), ("key", "16777216")])).is_err());
        assert_eq!(parse("vx0", &opts(&[("remote_ip", "198.19.0.2"), ("tos", "3")])).unwrap_err().to_string(), "vx0: invalid TOS 3");
        assert!(parse("vx0", &opts(&[("remote_ip", "198.19.0.2"), ("local_ip", "::1")])).is_err());
        assert!(parse("vx0", &opts(&[("remote_ip", "198.19.0.2"), ("bogus", "1")])).is_ok());
    }
}
