//! set-controller, get-controller, del-controller, set-manager, get-manager,
//! del-manager: stored as ovs-vsctl stores them (Controller rows on the bridge,
//! Manager rows on the Open_vSwitch row), so a line that sets a controller among other
//! commands commits as with OVS. rvs does not act on them — no OpenFlow, no OVSDB
//! remote — and says so in a warning on stderr, once per command.

use rvs_ovsdb::view::Bridge;
use rvs_ovsdb::{Atom, Datum, TABLES, Uuid, schema};

use crate::context::{Cmd, Txn};
use crate::error::{CtlError, Result};

fn table(name: &str) -> usize {
    schema::table_index(name).expect("in the schema")
}

/// Targets of the rows `refs` of `tbl`, sorted, one per line.
fn targets(t: &Txn, tbl: usize, refs: &Datum) -> String {
    let mut v: Vec<String> = refs.uuids().filter_map(|u| t.db.get(tbl, &u, "target")?.as_str().map(String::from)).collect();
    v.sort();
    v.iter().map(|s| format!("{s}\n")).collect()
}

/// New rows of `tbl` for `targets`, with `--inactivity-probe` when given.
fn insert(t: &mut Txn, c: &Cmd, tbl: usize, targets: &[String]) -> Result<Datum> {
    let probe = match c.opt("--inactivity-probe") {
        Some(p) => Some(p.parse::<i64>().map_err(|_| CtlError::new(format!("\"{p}\" is not a valid integer")))?),
        None => None,
    };
    let mut rows = Vec::new();
    for target in targets {
        let u = t.insert_row(tbl, None);
        t.db.set(tbl, &u, "target", Datum::string(target));
        if let Some(p) = probe {
            t.db.set(tbl, &u, "inactivity_probe", Datum::set(vec![Atom::Integer(p)]));
        }
        rows.push(Atom::Uuid(u));
    }
    Ok(Datum::set(rows))
}

fn real_bridge(t: &Txn, name: &str) -> Result<Uuid> {
    Ok(t.cache().find_real_bridge(name, true)?.and_then(|b| b.row).expect("must exist"))
}

pub fn get_controller(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let cache = t.cache();
    let b = cache.find_bridge(c.arg(1), true)?.expect("must exist");
    let Some(row) = cache.real_row(b) else { return Ok(()) };
    let refs = t.db.col(Bridge::CONTROLLER, &row).cloned().unwrap_or_else(|| Datum::set(vec![]));
    c.output += &targets(t, table("Controller"), &refs);
    Ok(())
}

pub fn del_controller(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let row = real_bridge(t, c.arg(1))?;
    t.db.set_col(Bridge::CONTROLLER, &row, Datum::set(vec![]));
    Ok(())
}

pub fn set_controller(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let row = real_bridge(t, c.arg(1))?;
    let refs = insert(t, c, table("Controller"), &c.argv[2..])?;
    t.db.set_col(Bridge::CONTROLLER, &row, refs);
    Ok(())
}

fn managers(t: &mut Txn) -> (Uuid, usize) {
    (t.root(), TABLES[0].column_index("manager_options"))
}

pub fn get_manager(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let (root, ci) = managers(t);
    let refs = t.db.tables[0][&root].cols[ci].clone();
    c.output += &targets(t, table("Manager"), &refs);
    Ok(())
}

pub fn del_manager(t: &mut Txn, _c: &mut Cmd) -> Result<()> {
    let (root, _) = managers(t);
    t.db.set(0, &root, "manager_options", Datum::set(vec![]));
    Ok(())
}

pub fn set_manager(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let (root, _) = managers(t);
    let refs = insert(t, c, table("Manager"), &c.argv[1..])?;
    t.db.set(0, &root, "manager_options", refs);
    Ok(())
}
