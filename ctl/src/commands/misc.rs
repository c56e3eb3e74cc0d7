//! init, emer-reset, fail mode, and the commands for features rvs does not have (SSL,
//! Auto Attach, conntrack zones; controllers and managers are stored, in
//! `controller`). Reading those prints what there is — nothing; changing them is a
//! clear error, never a silent success.

use rvs_ovsdb::Datum;
use rvs_ovsdb::view::{Bridge, Interface, Port};

use crate::context::{Cmd, Txn};
use crate::error::{CtlError, Result};

/// `init`: the Open_vSwitch row exists once the transaction runs.
pub fn init(t: &mut Txn, _c: &mut Cmd) -> Result<()> {
    t.root();
    Ok(())
}

pub fn comment(_t: &mut Txn, _c: &mut Cmd) -> Result<()> {
    Ok(())
}

/// `emer-reset`: back to a plain learning switch, keeping bridges and ports: the
/// columns ovs-vsctl resets, and its Mirror, Controller, Manager, NetFlow, SSL, sFlow,
/// IPFIX rows deleted (with the references to them). ovs-vsctl's code also deletes
/// Flow_Sample_Collector_Set rows, but its IDL never reads that table for emer-reset,
/// so they stay; rvs keeps them too.
pub fn emer_reset(t: &mut Txn, _c: &mut Cmd) -> Result<()> {
    let root = t.root();
    t.db.set(0, &root, "manager_options", Datum::set(vec![]));
    t.db.set(0, &root, "ssl", Datum::set(vec![]));
    let bridges: Vec<_> = t.db.tables[Bridge::TABLE].keys().copied().collect();
    for b in &bridges {
        for col in ["controller", "mirrors", "netflow", "sflow", "ipfix"] {
            t.db.set(Bridge::TABLE, b, col, Datum::set(vec![]));
        }
    }
    for name in ["Mirror", "Controller", "Manager", "NetFlow", "SSL", "sFlow", "IPFIX"] {
        let ti = rvs_ovsdb::schema::table_index(name).expect("in the schema");
        t.db.tables[ti].clear();
    }
    for r in t.db.tables[Bridge::TABLE].values_mut() {
        let hwaddr = r.col(Bridge::OTHER_CONFIG).get_str("hwaddr").map(String::from);
        r.set_col(Bridge::FAIL_MODE, Datum::set(vec![]));
        r.set_col(Bridge::FLOOD_VLANS, Datum::set(vec![]));
        let oc = match &hwaddr {
            Some(h) => Datum::smap([("hwaddr", h.as_str())]),
            None => Datum::map(vec![]),
        };
        r.set_col(Bridge::OTHER_CONFIG, oc);
    }
    for r in t.db.tables[Port::TABLE].values_mut() {
        r.set_col(Port::OTHER_CONFIG, Datum::map(vec![]));
    }
    for r in t.db.tables[Interface::TABLE].values_mut() {
        r.set_col(Interface::INGRESS_POLICING_RATE, Datum::integer(0));
        r.set_col(Interface::INGRESS_POLICING_BURST, Datum::integer(0));
    }
    Ok(())
}

pub fn get_fail_mode(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let b = cache.find_bridge(c.arg(1), true)?.expect("must exist");
    if let Some(row) = cache.real_row(b)
        && let Some(m) = Bridge::get(&t.db, &row).and_then(|b| b.fail_mode()).filter(|m| !m.is_empty())
    {
        c.output += &format!("{m}\n");
    }
    Ok(())
}

pub fn del_fail_mode(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let row = cache.find_real_bridge(c.arg(1), true)?.and_then(|b| b.row).expect("must exist");
    t.db.set_col(Bridge::FAIL_MODE, &row, Datum::set(vec![]));
    Ok(())
}

pub fn set_fail_mode(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let row = cache.find_real_bridge(c.arg(1), true)?.and_then(|b| b.row).expect("must exist");
    let mode = c.arg(2);
    if mode != "standalone" && mode != "secure" {
        return Err(CtlError::new("fail-mode must be \"standalone\" or \"secure\""));
    }
    t.db.set_col(Bridge::FAIL_MODE, &row, Datum::string(mode));
    Ok(())
}

pub fn get_ssl(_t: &mut Txn, _c: &mut Cmd) -> Result<()> {
    Ok(())
}

pub fn del_ssl(_t: &mut Txn, _c: &mut Cmd) -> Result<()> {
    Ok(())
}

pub fn unsupported_ssl(_t: &mut Txn, c: &mut Cmd) -> Result<()> {
    Err(CtlError::new(format!("{}: SSL is not supported by rvs (it is configured through its local socket only)", c.arg(0))))
}

pub fn unsupported_other(_t: &mut Txn, c: &mut Cmd) -> Result<()> {
    Err(CtlError::new(format!("{}: this command is not supported by rvs", c.arg(0))))
}
