//! The bridge/port/interface view ovs-vsctl's bridge commands work on: real bridges,
//! "fake" VLAN bridges (a Port with `fake_bridge=true` and a `tag` on its parent), the
//! ports of each (ports whose tag matches a fake bridge of the parent belong to the
//! fake bridge), and the interfaces of each port. Built from the working copy of the
//! database whenever a command needs it, so it always reflects earlier commands of the
//! same transaction.

use std::collections::BTreeMap;

use rvs_ovsdb::view as v;
use rvs_ovsdb::{Db, Uuid};

use crate::error::{CtlError, Result};

/// A bridge as ovs-vsctl sees it.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub name: String,
    /// The Bridge row; `None` for a fake bridge.
    pub row: Option<Uuid>,
    /// The real parent of a fake bridge.
    pub parent: Option<String>,
    /// The fake bridge's VLAN (0 for real bridges).
    pub vlan: i64,
    pub ports: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub row: Uuid,
    pub bridge: String,
    pub ifaces: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub row: Uuid,
    pub port: String,
}

/// The whole view.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    pub bridges: BTreeMap<String, Bridge>,
    pub ports: BTreeMap<String, Port>,
    pub ifaces: BTreeMap<String, Iface>,
}

fn is_fake_bridge(p: v::Port) -> Option<i64> {
    p.tag().filter(|t| p.fake_bridge() && (0..=4095).contains(t))
}

/// The name of a row a reference names; `""` for a reference left dangling by an
/// earlier command of the transaction (such a row still counts, as it always has).
fn name_of(name: Option<&str>) -> String {
    name.unwrap_or_default().to_string()
}

fn ports_of(b: Option<v::Bridge<'_>>) -> Vec<Uuid> {
    b.map(|b| b.ports().collect()).unwrap_or_default()
}

impl Cache {
    /// Builds the view (vsctl_context_populate_cache).
    pub fn build(db: &Db) -> Cache {
        let mut c = Cache::default();
        let Some(root) = db.root_view() else { return c };
        let brs: Vec<(Uuid, Option<v::Bridge>)> = root.bridges().map(|u| (u, v::Bridge::get(db, &u))).collect();
        // Pass 1: bridges, real and fake.
        let mut port_names = std::collections::HashSet::new();
        for &(b, br) in &brs {
            let bn = name_of(br.map(|b| b.name()));
            if c.bridges.contains_key(&bn) {
                continue;
            }
            c.bridges.insert(bn.clone(), Bridge { name: bn.clone(), row: Some(b), parent: None, vlan: 0, ports: vec![] });
            for p in ports_of(br) {
                let port = v::Port::get(db, &p);
                let pn = name_of(port.map(|p| p.name()));
                if !port_names.insert(pn.clone()) {
                    continue;
                }
                if let Some(tag) = port.and_then(is_fake_bridge) {
                    let clash = c.bridges.values().any(|x| x.parent.as_deref() == Some(bn.as_str()) && x.vlan == tag);
                    if !c.bridges.contains_key(&pn) && !clash {
                        c.bridges.insert(pn.clone(), Bridge { name: pn, row: None, parent: Some(bn.clone()), vlan: tag, ports: vec![] });
                    }
                }
            }
        }
        // Pass 2: ports and interfaces.
        let mut seen_bridges = std::collections::HashSet::new();
        for &(_, br) in &brs {
            let bn = name_of(br.map(|b| b.name()));
            if !seen_bridges.insert(bn.clone()) {
                continue;
            }
            for p in ports_of(br) {
                let port = v::Port::get(db, &p);
                let pn = name_of(port.map(|p| p.name()));
                if c.ports.contains_key(&pn) {
                    continue;
                }
                // The port's bridge: the fake bridge of its tag, if the parent has one.
                let owner = port
                    .and_then(|p| p.tag())
                    .filter(|t| (0..=4095).contains(t))
                    .and_then(|t| c.bridges.values().find(|x| x.parent.as_deref() == Some(bn.as_str()) && x.vlan == t))
                    .map(|x| x.name.clone())
                    .unwrap_or_else(|| bn.clone());
                let mut ifaces = Vec::new();
                for i in port.map(|p| p.interfaces().collect::<Vec<_>>()).unwrap_or_default() {
                    let iname = name_of(v::Interface::get(db, &i).map(|i| i.name()));
                    if c.ifaces.contains_key(&iname) {
                        continue;
                    }
                    c.ifaces.insert(iname.clone(), Iface { name: iname.clone(), row: i, port: pn.clone() });
                    ifaces.push(iname);
                }
                if let Some(br) = c.bridges.get_mut(&owner) {
                    br.ports.push(pn.clone());
                }
                c.ports.insert(pn.clone(), Port { name: pn, row: p, bridge: owner, ifaces });
            }
        }
        c
    }

    pub fn find_bridge(&self, name: &str, must_exist: bool) -> Result<Option<&Bridge>> {
        match self.bridges.get(name) {
            Some(b) => Ok(Some(b)),
            None if must_exist => Err(CtlError::new(format!("no bridge named {name}"))),
            None => Ok(None),
        }
    }

    pub fn find_real_bridge(&self, name: &str, must_exist: bool) -> Result<Option<&Bridge>> {
        let b = self.find_bridge(name, must_exist)?;
        if let Some(b) = b
            && b.parent.is_some()
        {
            return Err(CtlError::new(format!("{name} is a fake bridge")));
        }
        Ok(b)
    }

    /// The real bridge a bridge's ports are stored in.
    pub fn real_row(&self, b: &Bridge) -> Option<Uuid> {
        match &b.parent {
            Some(p) => self.bridges.get(p).and_then(|x| x.row),
            None => b.row,
        }
    }

    /// A port by name; the local port named like its bridge does not count.
    pub fn find_port(&self, name: &str, must_exist: bool) -> Result<Option<&Port>> {
        let p = self.ports.get(name).filter(|p| p.bridge != name);
        if p.is_none() && must_exist {
            return Err(CtlError::new(format!("no port named {name}")));
        }
        Ok(p)
    }

    /// An interface by name; the local interface named like its bridge does not count.
    pub fn find_iface(&self, name: &str, must_exist: bool) -> Result<Option<&Iface>> {
        let i = self.ifaces.get(name).filter(|i| self.ports.get(&i.port).is_none_or(|p| p.bridge != name));
        if i.is_none() && must_exist {
            return Err(CtlError::new(format!("no interface named {name}")));
        }
        Ok(i)
    }

    /// The bridge a port or interface belongs to.
    pub fn bridge_of_port(&self, p: &Port) -> &Bridge {
        &self.bridges[&p.bridge]
    }

    /// Refuses a name already used by a bridge, port or interface.
    pub fn check_conflicts(&self, name: &str, what: &str) -> Result<()> {
        if self.bridges.contains_key(name) {
            return Err(CtlError::new(format!("{what} because a bridge named {name} already exists")));
        }
        if let Some(p) = self.ports.get(name) {
            return Err(CtlError::new(format!("{what} because a port named {name} already exists on bridge {}", p.bridge)));
        }
        if let Some(i) = self.ifaces.get(name) {
            let br = self.ports.get(&i.port).map(|p| p.bridge.as_str()).unwrap_or("");
            return Err(CtlError::new(format!("{what} because an interface named {name} already exists on bridge {br}")));
        }
        Ok(())
    }
}
