//! Port and interface commands: list-ports, add-port (with `COLUMN[:KEY]=VALUE`
//! settings on the new Port), add-bond, add-bond-iface, del-bond-iface, del-port,
//! port-to-br, list-ifaces, iface-to-br.
//!
//! A bond is one Port with several Interfaces (ovs-vswitchd.conf.db(5)); the commands
//! here only shape those rows, as ovs-vsctl does: `bond_mode` and `lacp` values are
//! checked by the schema's enums when set (`add-bond … bond_mode=…`, `set Port`).

use rvs_ovsdb::view::{Interface, Port};
use rvs_ovsdb::{Atom, Datum};

use crate::context::{Cmd, Txn};
use crate::error::{CtlError, Result};

/// The command as the user typed it, for `--may-exist` messages.
fn command_string(c: &Cmd) -> String {
    let mut words: Vec<String> = c.options.keys().cloned().collect();
    words.extend(c.argv.iter().cloned());
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(|ch: char| ch.is_whitespace() || "\"'\\$`*?[](){}<>|;&#~".contains(ch)) {
                format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn list_ports(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let b = cache.find_bridge(c.arg(1), true)?.expect("must exist");
    let mut names: Vec<&str> = b.ports.iter().map(String::as_str).filter(|p| *p != b.name).collect();
    names.sort_unstable();
    for n in names {
        c.output += &format!("{n}\n");
    }
    Ok(())
}

pub fn add_port(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let (br, port) = (c.arg(1).to_string(), c.arg(2).to_string());
    let settings: Vec<String> = c.argv[3..].to_vec();
    add(t, c, &br, &port, std::slice::from_ref(&port), false, &settings)
}

/// `add-bond BRIDGE PORT IFACE... [COLUMN[:KEY]=VALUE]...`: the interfaces are the
/// arguments up to the first one holding a `=` (ovs-vsctl reads them that way, so an
/// interface name cannot contain `=`); at least two are needed.
pub fn add_bond(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let (br, port) = (c.arg(1).to_string(), c.arg(2).to_string());
    let rest = &c.argv[3..];
    let n = rest.iter().position(|a| a.contains('=')).unwrap_or(rest.len());
    if n < 2 {
        return Err(CtlError::new(format!("add-bond requires at least 2 interfaces, but only {n} were specified")));
    }
    let (ifaces, settings) = (rest[..n].to_vec(), rest[n..].to_vec());
    add(t, c, &br, &port, &ifaces, c.has("--fake-iface"), &settings)
}

/// `add-bond-iface BOND IFACE`: one more interface in an existing port (any port:
/// ovs-vsctl also turns a single-interface port into a bond this way).
pub fn add_bond_iface(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let port = cache.find_port(c.arg(1), true)?.expect("must exist").clone();
    let name = c.arg(2).to_string();
    if c.has("--may-exist")
        && let Some(i) = cache.find_iface(&name, false)?
    {
        if i.port == port.name {
            return Ok(());
        }
        return Err(CtlError::new(format!("\"{}\" but {name} is actually attached to port {}", command_string(c), i.port)));
    }
    cache.check_conflicts(&name, &format!("cannot create an interface named {name}"))?;
    let i = t.insert_row(Interface::TABLE, None);
    t.db.set_col(Interface::NAME, &i, Datum::string(&name));
    let mut ifaces = t.db.col(Port::INTERFACES, &port.row).cloned().unwrap_or_default();
    ifaces.insert(Atom::Uuid(i), None);
    t.db.set_col(Port::INTERFACES, &port.row, ifaces);
    t.new_ifaces.push(i);
    Ok(())
}

/// `del-bond-iface [BOND] IFACE`: removes an interface from its port; the last one
/// stays (a port without interfaces is refused, as by ovs-vsctl).
pub fn del_bond_iface(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let name = c.argv.last().cloned().unwrap_or_default();
    let Some(iface) = cache.find_iface(&name, !c.has("--if-exists"))?.cloned() else { return Ok(()) };
    if c.argv.len() > 2 {
        let port = cache.find_port(c.arg(1), true)?.expect("must exist");
        if iface.port != port.name {
            return Err(CtlError::new(format!("port {} does not have an interface {name}", c.arg(1))));
        }
    }
    let port = &cache.ports[&iface.port];
    if port.ifaces.len() < 2 {
        return Err(CtlError::new(format!("cannot delete last interface from port {}", port.name)));
    }
    let mut ifaces = t.db.col(Port::INTERFACES, &port.row).cloned().unwrap_or_default();
    ifaces.remove(&Atom::Uuid(iface.row), None);
    t.db.set_col(Port::INTERFACES, &port.row, ifaces);
    t.db.delete(Interface::TABLE, &iface.row);
    Ok(())
}

/// add-port and add-bond share this (ovs-vsctl's add_port).
/// `fake_iface` is `--fake-iface`, written before the settings (which may override it).
pub fn add(t: &mut Txn, c: &Cmd, br_name: &str, port_name: &str, ifaces: &[String], fake_iface: bool, settings: &[String]) -> Result<()> {
    if port_name.is_empty() {
        return Err(CtlError::new("port name must not be empty string"));
    }
    if ifaces.iter().any(String::is_empty) {
        return Err(CtlError::new("interface name must not be empty string"));
    }
    let cache = t.cache();
    if c.has("--may-exist")
        && let Some(p) = cache.find_port(port_name, false)?
    {
        let mut want: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        want.sort_unstable();
        let mut have: Vec<&str> = p.ifaces.iter().map(String::as_str).collect();
        have.sort_unstable();
        if p.bridge != br_name {
            return Err(CtlError::new(format!("\"{}\" but {port_name} is actually attached to bridge {}", command_string(c), p.bridge)));
        }
        if want != have {
            return Err(CtlError::new(format!("\"{}\" but {port_name} actually has interface(s) {}", command_string(c), have.join(", "))));
        }
        return Ok(());
    }
    cache.check_conflicts(port_name, &format!("cannot create a port named {port_name}"))?;
    for i in ifaces {
        cache.check_conflicts(i, &format!("cannot create an interface named {i}"))?;
    }
    let bridge = cache.find_bridge(br_name, true)?.expect("must exist").clone();
    let names: Vec<&str> = ifaces.iter().map(String::as_str).collect();
    let (port, new_ifaces) = t.insert_port(port_name, &names, None);
    t.new_ifaces.extend(new_ifaces);
    if fake_iface {
        t.db.set_col(Port::BOND_FAKE_IFACE, &port, Datum::boolean(true));
    }
    if bridge.parent.is_some() {
        t.db.set_col(Port::TAG, &port, Datum::integer(bridge.vlan));
    }
    for s in settings {
        t.set_column(Port::TABLE, &port, s)?;
    }
    let real = cache.real_row(&bridge).ok_or_else(|| CtlError::new(format!("no bridge named {br_name}")))?;
    t.bridge_add_port(&real, port);
    Ok(())
}

pub fn del_port(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let must_exist = !c.has("--if-exists");
    let target = c.argv.last().cloned().unwrap_or_default();
    let cache = t.cache();
    let port = if cache.find_bridge(&target, false)?.is_some() {
        if must_exist {
            return Err(CtlError::new(format!(
                "cannot delete port {target} because it is the local port for bridge {target} (deleting this port requires deleting the entire bridge)"
            )));
        }
        None
    } else if !c.has("--with-iface") {
        cache.find_port(&target, must_exist)?
    } else {
        let p = cache.find_port(&target, false)?.or_else(|| cache.find_iface(&target, false).ok().flatten().and_then(|i| cache.ports.get(&i.port)));
        if must_exist && p.is_none() {
            return Err(CtlError::new(format!("no port or interface named {target}")));
        }
        p
    };
    let Some(port) = port.cloned() else { return Ok(()) };
    if c.argv.len() == 3 {
        let b = cache.find_bridge(c.arg(1), true)?.expect("must exist");
        if port.bridge != b.name {
            let pb = &cache.bridges[&port.bridge];
            return Err(CtlError::new(if pb.parent.as_deref() == Some(b.name.as_str()) {
                format!("bridge {} does not have a port {} (although its child bridge {} does)", c.arg(1), c.arg(2), port.bridge)
            } else {
                format!("bridge {} does not have a port {}", c.arg(1), c.arg(2))
            }));
        }
    }
    let real = cache.real_row(cache.bridge_of_port(&port)).ok_or_else(|| CtlError::new("internal error: port without bridge"))?;
    t.delete_port(&real, &port.row);
    Ok(())
}

pub fn port_to_br(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let p = cache.find_port(c.arg(1), true)?.expect("must exist");
    c.output += &format!("{}\n", p.bridge);
    Ok(())
}

pub fn list_ifaces(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let b = cache.find_bridge(c.arg(1), true)?.expect("must exist");
    let mut names: Vec<&str> =
        b.ports.iter().filter_map(|p| cache.ports.get(p)).flat_map(|p| p.ifaces.iter().map(String::as_str)).filter(|i| *i != b.name).collect();
    names.sort_unstable();
    for n in names {
        c.output += &format!("{n}\n");
    }
    Ok(())
}

pub fn iface_to_br(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let i = cache.find_iface(c.arg(1), true)?.expect("must exist");
    c.output += &format!("{}\n", cache.ports[&i.port].bridge);
    Ok(())
}
