//! `show`: the overview ovs-vsctl prints — the Open_vSwitch row's UUID, then each
//! bridge with its non-default columns, ports and interfaces, indented by four spaces
//! per level (OVS's cmd_show with ovs-vsctl's table of shown columns). OVS lists rows
//! in hash order; rvs sorts bridges, ports and interfaces by name.

use rvs_ovsdb::view::{Bridge, Interface, OpenVswitch, Port};
use rvs_ovsdb::{Col, Datum, Db, TABLES, Uuid};

use crate::context::{Cmd, Txn};
use crate::error::Result;

/// (table, columns shown in order)
const SHOWN: &[(usize, &[Col])] = &[
    (OpenVswitch::TABLE, &[OpenVswitch::MANAGER_OPTIONS, OpenVswitch::BRIDGES, OpenVswitch::OVS_VERSION]),
    (Bridge::TABLE, &[Bridge::CONTROLLER, Bridge::FAIL_MODE, Bridge::DATAPATH_TYPE, Bridge::PORTS]),
    (Port::TABLE, &[Port::TAG, Port::TRUNKS, Port::INTERFACES]),
    (Interface::TABLE, &[Interface::TYPE, Interface::OPTIONS, Interface::ERROR, Interface::BFD_STATUS]),
];

fn sorted_by_name(db: &Db, t: usize, d: &Datum) -> Vec<Uuid> {
    let mut v: Vec<Uuid> = d.uuids().filter(|u| db.row(t, u).is_some()).collect();
    v.sort_by(|a, b| db.name_of(t, a).cmp(&db.name_of(t, b)));
    v
}

fn row(db: &Db, t: usize, u: &Uuid, level: usize, out: &mut String) {
    let ts = &TABLES[t];
    let pad = " ".repeat(level * 4);
    if t == OpenVswitch::TABLE {
        out.push_str(&format!("{pad}{u}\n"));
    } else {
        let name = db.get(t, u, "name").map(|d| d.to_cli(&ts.column("name").expect("name").1.ty)).unwrap_or_default();
        out.push_str(&format!("{pad}{} {name}\n", ts.name));
    }
    let cols = SHOWN.iter().find(|(x, _)| *x == t).map(|(_, c)| *c).unwrap_or(&[]);
    for &col in cols {
        let cs = col.schema();
        let d = db.col(col, u).cloned().unwrap_or_default();
        if let Some(rt) = cs.ty.key.ref_table.and_then(rvs_ovsdb::schema::table_index) {
            if SHOWN.iter().any(|(x, _)| *x == rt) {
                for r in sorted_by_name(db, rt, &d) {
                    row(db, rt, &r, level + 1, out);
                }
            }
            continue;
        }
        if d != Datum::default_for(&cs.ty) {
            out.push_str(&format!("{pad}    {}: {}\n", cs.name, d.to_cli(&cs.ty)));
        }
    }
}

pub fn show(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let roots: Vec<Uuid> = OpenVswitch::all(&t.db).map(|r| r.uuid).collect();
    for r in roots {
        row(&t.db, OpenVswitch::TABLE, &r, 0, &mut c.output);
    }
    Ok(())
}
