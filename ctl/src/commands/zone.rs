//! Conntrack zone timeout policies and datapath capabilities (`add-zone-tp`,
//! `del-zone-tp`, `list-zone-tp`, `list-dp-cap`), as ovs-vsctl edits and reads the
//! Datapath, CT_Zone and CT_Timeout_Policy rows. rvs stores them (it has no conntrack;
//! README says so).

use rvs_ovsdb::schema::table_index;
use rvs_ovsdb::{Atom, Datum, TABLES, Uuid};

use crate::context::{Cmd, Txn};
use crate::error::{CtlError, Result};

fn table(name: &str) -> usize {
    table_index(name).expect("in the schema")
}

/// Column `col` of row `u` of table `ti` (empty if the row is gone).
fn column(t: &Txn, ti: usize, u: &Uuid, col: &str) -> Datum {
    t.db.tables[ti].get(u).map(|r| r.cols[TABLES[ti].column_index(col)].clone()).unwrap_or_default()
}

/// The Datapath row Open_vSwitch's `datapaths` names `name`.
fn datapath(t: &mut Txn, name: &str) -> Option<Uuid> {
    let root = t.root();
    column(t, 0, &root, "datapaths").get(&Atom::String(name.into())).and_then(Atom::as_uuid)
}

/// `zone=N` as OVS scans it (`%i`: decimal, `0x` hexadecimal or `0` octal); 0 if it
/// does not scan.
fn zone_id(arg: &str) -> i64 {
    let s = arg.strip_prefix("zone=").unwrap_or("");
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let digits = |s: &str, radix: u32| {
        let end = s.find(|c: char| !c.is_digit(radix)).unwrap_or(s.len());
        i64::from_str_radix(&s[..end], radix).ok()
    };
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        digits(h, 16)
    } else if s.starts_with('0') {
        digits(s, 8)
    } else {
        digits(s, 10)
    };
    v.map_or(0, |v| if neg { -v } else { v })
}

/// C's `atoi`: leading digits after optional blanks and sign, else 0.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let v = s[..end].parse::<i64>().unwrap_or(0);
    if neg { -v } else { v }
}

pub fn add_zone_tp(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let dp_name = c.arg(1).to_string();
    let zone = zone_id(c.arg(2));
    let Some(dp) = datapath(t, &dp_name) else { return Err(CtlError::new(format!("datapath {dp_name} does not exist"))) };
    let (dpt, zt, tpt) = (table("Datapath"), table("CT_Zone"), table("CT_Timeout_Policy"));
    let zones = column(t, dpt, &dp, "ct_zones");
    let existing = zones.get(&Atom::Integer(zone)).and_then(Atom::as_uuid);
    if c.argv.len() <= 3 {
        return Err(CtlError::new("No timeout policy"));
    }
    if existing.is_some() && !c.has("--may-exist") {
        return Err(CtlError::new(format!("zone id {zone} already exists")));
    }
    // The timeouts, `KEY=VALUE` each (a value as atoi reads it); parsing stops at an
    // empty argument, as OVS's does.
    let mut timeouts = Datum::map(Vec::<(Atom, Atom)>::new());
    for a in &c.argv[3..] {
        if a.is_empty() {
            break;
        }
        let (k, v) = a.split_once(['=', ':']).unwrap_or((a.as_str(), ""));
        timeouts.remove(&Atom::String(k.into()), None);
        timeouts.insert(Atom::String(k.into()), Some(Atom::Integer(atoi(v))));
    }
    // The same timeouts as an existing policy: that policy.
    let col = TABLES[tpt].column_index("timeouts");
    let tp = match t.db.tables[tpt].iter().find(|(_, r)| r.cols[col] == timeouts).map(|(u, _)| *u) {
        Some(u) => u,
        None => {
            let u = t.insert_row(tpt, None);
            t.db.set(tpt, &u, "timeouts", timeouts);
            u
        }
    };
    let zone_row = match existing {
        Some(z) => z,
        None => {
            let z = t.insert_row(zt, None);
            let mut zones = zones;
            zones.insert(Atom::Integer(zone), Some(Atom::Uuid(z)));
            t.db.set(dpt, &dp, "ct_zones", zones);
            z
        }
    };
    t.db.set(zt, &zone_row, "timeout_policy", Datum::uuid(tp));
    Ok(())
}

pub fn del_zone_tp(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let dp_name = c.arg(1).to_string();
    let zone = zone_id(c.arg(2));
    let Some(dp) = datapath(t, &dp_name) else { return Err(CtlError::new(format!("datapath {dp_name} does not exist"))) };
    let dpt = table("Datapath");
    let mut zones = column(t, dpt, &dp, "ct_zones");
    let key = Atom::Integer(zone);
    if !zones.contains(&key) {
        if c.has("--if-exists") {
            return Ok(());
        }
        return Err(CtlError::new(format!("zone id {zone} does not exist")));
    }
    zones.remove(&key, None);
    t.db.set(dpt, &dp, "ct_zones", zones);
    Ok(())
}

pub fn list_zone_tp(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let Some(dp) = datapath(t, c.arg(1)) else { return Err(CtlError::new(format!("datapath: {} record not found", c.arg(1)))) };
    let (dpt, zt, tpt) = (table("Datapath"), table("CT_Zone"), table("CT_Timeout_Policy"));
    let zones = column(t, dpt, &dp, "ct_zones");
    let mut out = String::new();
    for (i, k) in zones.keys.iter().enumerate() {
        out += &format!("Zone:{}, Timeout Policies:", k.as_int().unwrap_or(0));
        let zone = zones.values.as_ref().and_then(|v| v[i].as_uuid());
        let tp = zone.and_then(|z| column(t, zt, &z, "timeout_policy").as_uuid());
        match tp {
            Some(tp) => {
                let timeouts = column(t, tpt, &tp, "timeouts");
                for (j, k) in timeouts.keys.iter().enumerate() {
                    let v = timeouts.values.as_ref().and_then(|v| v[j].as_int()).unwrap_or(0);
                    out += &format!(" {}={v}", k.as_str().unwrap_or(""));
                }
            }
            None => out += " system default",
        }
        out.push('\n');
    }
    c.output += &out;
    Ok(())
}

pub fn list_dp_cap(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let Some(dp) = datapath(t, c.arg(1)) else { return Err(CtlError::new(format!("datapath \"{}\" record not found", c.arg(1)))) };
    let caps = column(t, table("Datapath"), &dp, "capabilities");
    let pairs: Vec<String> = caps
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{}={}", k.as_str().unwrap_or(""), caps.values.as_ref().and_then(|v| v[i].as_str()).unwrap_or("")))
        .collect();
    c.output += &(pairs.join(" ") + "\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{atoi, zone_id};

    #[test]
    fn numbers_as_c_reads_them() {
        assert_eq!((zone_id("zone=10"), zone_id("zone=0x10"), zone_id("zone=010"), zone_id("zone=x"), zone_id("10")), (10, 16, 8, 0, 0));
        assert_eq!((atoi("12"), atoi(" 7x"), atoi("-3"), atoi("x")), (12, 7, -3, 0));
    }
}
