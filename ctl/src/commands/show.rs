//! `show`: the overview ovs-vsctl prints — the Open_vSwitch row's UUID, then each
//! bridge with its non-default columns, ports and interfaces, indented by four spaces
//! per level (OVS's cmd_show with ovs-vsctl's table of shown columns). OVS lists rows
//! in hash order; rvs sorts bridges, ports and interfaces by name.

use rvs_ovsdb::{Datum, Db, TABLES, Uuid, tables};

use crate::context::{Cmd, Txn};
use crate::error::Result;

/// (table, columns shown in order)
const SHOWN: &[(usize, &[&str])] = &[
    (tables::OPEN_VSWITCH, &["manager_options", "bridges", "ovs_version"]),
    (tables::BRIDGE, &["controller", "fail_mode", "datapath_type", "ports"]),
    (tables::PORT, &["tag", "trunks", "interfaces"]),
    (tables::INTERFACE, &["type", "options", "error", "bfd_status"]),
];

fn sorted_by_name(db: &Db, t: usize, d: &Datum) -> Vec<Uuid> {
    let mut v: Vec<Uuid> = d.uuids().filter(|u| db.row(t, u).is_some()).collect();
    v.sort_by(|a, b| db.name_of(t, a).cmp(&db.name_of(t, b)));
    v
}

fn row(db: &Db, t: usize, u: &Uuid, level: usize, out: &mut String) {
    let ts = &TABLES[t];
    let pad = " ".repeat(level * 4);
    if t == tables::OPEN_VSWITCH {
        out.push_str(&format!("{pad}{u}\n"));
    } else {
        let name = db.get(t, u, "name").map(|d| d.to_cli(&ts.column("name").expect("name").1.ty)).unwrap_or_default();
        out.push_str(&format!("{pad}{} {name}\n", ts.name));
    }
    let cols = SHOWN.iter().find(|(x, _)| *x == t).map(|(_, c)| *c).unwrap_or(&[]);
    for col in cols {
        let (_, cs) = ts.column(col).expect("shown column exists");
        let d = db.get(t, u, col).cloned().unwrap_or_default();
        if let Some(rt) = cs.ty.key.ref_table.and_then(rvs_ovsdb::schema::table_index) {
            if SHOWN.iter().any(|(x, _)| *x == rt) {
                for r in sorted_by_name(db, rt, &d) {
                    row(db, rt, &r, level + 1, out);
                }
            }
            continue;
        }
        if d != Datum::default_for(&cs.ty) {
            out.push_str(&format!("{pad}    {col}: {}\n", d.to_cli(&cs.ty)));
        }
    }
}

pub fn show(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let roots: Vec<Uuid> = t.db.tables[tables::OPEN_VSWITCH].keys().copied().collect();
    for r in roots {
        row(&t.db, tables::OPEN_VSWITCH, &r, 0, &mut c.output);
    }
    Ok(())
}
