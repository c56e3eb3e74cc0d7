//! Bridge commands: add-br (real and fake VLAN bridges), del-br, list-br, br-exists,
//! br-to-vlan, br-to-parent, br-set-external-id, br-get-external-id.

use rvs_ovsdb::view::{Bridge, OpenVswitch, Port};
use rvs_ovsdb::{Atom, Col, Datum};

use crate::context::{Cmd, Txn};
use crate::error::{CtlError, Result};

/// `atoi()`: leading integer, 0 if none.
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let end = t.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')))).map_or(t.len(), |(i, _)| i);
    t[..end].parse().unwrap_or(0)
}

pub fn add_br(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let may_exist = c.has("--may-exist");
    let name = c.arg(1).to_string();
    if name.is_empty() {
        return Err(CtlError::new("bridge name must not be empty string"));
    }
    let (parent, vlan) = match c.argv.len() {
        2 => (None, 0),
        4 => {
            let v = atoi(c.arg(3));
            if !(0..=4095).contains(&v) {
                return Err(CtlError::new(format!("{}: vlan must be between 0 and 4095", c.arg(0))));
            }
            (Some(c.arg(2).to_string()), v)
        }
        _ => return Err(CtlError::new(format!("'{}' command takes exactly 1 or 3 arguments", c.arg(0)))),
    };
    let cache = t.cache();
    if may_exist && let Some(br) = cache.find_bridge(&name, false)? {
        match (&parent, &br.parent) {
            (None, None) => return Ok(()),
            (None, Some(_)) => {
                return Err(CtlError::new(format!("\"--may-exist add-br {name}\" but {name} is a VLAN bridge for VLAN {}", br.vlan)));
            }
            (Some(p), None) => {
                return Err(CtlError::new(format!("\"--may-exist add-br {name} {p} {vlan}\" but {name} is not a VLAN bridge")));
            }
            (Some(p), Some(bp)) if p != bp => {
                return Err(CtlError::new(format!("\"--may-exist add-br {name} {p} {vlan}\" but {name} has the wrong parent {bp}")));
            }
            (Some(p), Some(_)) if br.vlan != vlan => {
                return Err(CtlError::new(format!("\"--may-exist add-br {name} {p} {vlan}\" but {name} is a VLAN bridge for the wrong VLAN {}", br.vlan)));
            }
            _ => return Ok(()),
        }
    }
    cache.check_conflicts(&name, &format!("cannot create a bridge named {name}"))?;
    let iface = match &parent {
        None => {
            let (port, ifaces) = t.insert_port(&name, &[&name], Some("internal"));
            let b = t.insert_row(Bridge::TABLE, None);
            t.db.set_col(Bridge::NAME, &b, Datum::string(&name));
            t.db.set_col(Bridge::PORTS, &b, Datum::uuid(port));
            let root = t.root();
            let mut brs = t.db.col(OpenVswitch::BRIDGES, &root).cloned().unwrap_or_default();
            brs.insert(Atom::Uuid(b), None);
            t.db.set_col(OpenVswitch::BRIDGES, &root, brs);
            ifaces[0]
        }
        Some(p) => {
            let parent_br = match cache.find_bridge(p, false)? {
                Some(b) if b.parent.is_some() => return Err(CtlError::new("cannot create bridge with fake bridge as parent")),
                Some(b) => b,
                None => return Err(CtlError::new(format!("parent bridge {p} does not exist"))),
            };
            if let Some(conflict) = cache.bridges.values().find(|x| x.parent.as_deref() == Some(p.as_str()) && x.vlan == vlan) {
                return Err(CtlError::new(format!("bridge {p} already has a child VLAN bridge {} on VLAN {vlan}", conflict.name)));
            }
            let Some(prow) = parent_br.row else { return Err(CtlError::new(format!("parent bridge {p} does not exist"))) };
            let (port, ifaces) = t.insert_port(&name, &[&name], Some("internal"));
            t.db.set_col(Port::FAKE_BRIDGE, &port, Datum::boolean(true));
            t.db.set_col(Port::TAG, &port, Datum::integer(vlan));
            t.bridge_add_port(&prow, port);
            ifaces[0]
        }
    };
    t.new_ifaces.push(iface);
    Ok(())
}

pub fn del_br(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let Some(br) = cache.find_bridge(c.arg(1), !c.has("--if-exists"))?.cloned() else { return Ok(()) };
    // Fake children first, then the bridge's own ports, then the bridge.
    let children: Vec<String> = cache.bridges.values().filter(|x| x.parent.as_deref() == Some(br.name.as_str())).map(|x| x.name.clone()).collect();
    let real = cache.real_row(&br);
    for name in children.iter().chain(std::iter::once(&br.name)) {
        let b = &cache.bridges[name];
        for p in &b.ports {
            if let (Some(r), Some(port)) = (real, cache.ports.get(p)) {
                t.delete_port(&r, &port.row);
            }
        }
    }
    if let Some(row) = br.row {
        t.db.delete(Bridge::TABLE, &row);
        let root = t.root();
        let mut brs = t.db.col(OpenVswitch::BRIDGES, &root).cloned().unwrap_or_default();
        brs.remove(&Atom::Uuid(row), None);
        t.db.set_col(OpenVswitch::BRIDGES, &root, brs);
    }
    Ok(())
}

pub fn list_br(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let (mut real, mut fake) = (c.has("--real"), c.has("--fake"));
    if !real && !fake {
        real = true;
        fake = true;
    }
    let cache = t.cache();
    let mut names: Vec<&str> = cache.bridges.values().filter(|b| if b.parent.is_some() { fake } else { real }).map(|b| b.name.as_str()).collect();
    names.sort_unstable();
    for n in names {
        c.output += &format!("{n}\n");
    }
    Ok(())
}

pub fn br_exists(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    if t.cache().find_bridge(c.arg(1), false)?.is_none() {
        return Err(CtlError::silent(2));
    }
    Ok(())
}

pub fn br_to_vlan(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let b = cache.find_bridge(c.arg(1), true)?.expect("must exist");
    c.output += &format!("{}\n", b.vlan);
    Ok(())
}

pub fn br_to_parent(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let b = cache.find_bridge(c.arg(1), true)?.expect("must exist");
    c.output += &format!("{}\n", b.parent.as_deref().unwrap_or(&b.name));
    Ok(())
}

/// External ids live on the Bridge row, or for a fake bridge on its Port with a
/// `fake-bridge-` prefix.
fn external_ids_target(t: &Txn, bridge: &str) -> Result<(Col, rvs_ovsdb::Uuid, &'static str)> {
    let cache = t.cache();
    let b = cache.find_bridge(bridge, true)?.expect("must exist");
    Ok(match b.row {
        Some(r) => (Bridge::EXTERNAL_IDS, r, ""),
        None => (Port::EXTERNAL_IDS, cache.ports[bridge].row, "fake-bridge-"),
    })
}

pub fn br_set_external_id(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let (col, row, prefix) = external_ids_target(t, c.arg(1))?;
    let key = format!("{prefix}{}", c.arg(2));
    let mut ids = t.db.col(col, &row).cloned().unwrap_or_default();
    match c.argv.get(3) {
        Some(v) => ids.put(Atom::String(key), Atom::String(v.clone())),
        None => {
            ids.remove(&Atom::String(key), None);
        }
    }
    t.db.set_col(col, &row, ids);
    Ok(())
}

pub fn br_get_external_id(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let (col, row, prefix) = external_ids_target(t, c.arg(1))?;
    let ids = t.db.col(col, &row).cloned().unwrap_or_default();
    match c.argv.get(2) {
        Some(k) => {
            if let Some(v) = ids.get_str(&format!("{prefix}{k}")) {
                c.output += &format!("{v}\n");
            }
        }
        None => {
            for (k, v) in ids.str_pairs() {
                if let Some(k) = k.strip_prefix(prefix) {
                    c.output += &format!("{k}={v}\n");
                }
            }
        }
    }
    Ok(())
}
