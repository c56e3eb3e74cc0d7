//! The generic database commands of ovs-vsctl(8): get, list, find, set, add, remove,
//! clear, create, destroy, wait-until — over any implemented table, with ovsdb value
//! syntax, `col:key` access to maps, abbreviations, `--id=@name` symbols, and OVS's
//! error texts (lib/db-ctl-base.c).

use std::cmp::Ordering;

use rvs_ovsdb::schema::{ColumnType, scalar, uuid_ref};
use rvs_ovsdb::{Datum, TABLES, Uuid};

use crate::context::{Cmd, Txn, parse_column_key, parse_column_key_value};
use crate::error::{CtlError, Result};
use crate::format::{Cell, Table};
use crate::names;

fn table_arg(c: &Cmd) -> Result<usize> {
    names::table(c.arg(1))
}

fn is_uuid_word(s: &str) -> bool {
    s.eq_ignore_ascii_case("_uuid") || s.eq_ignore_ascii_case("-uuid")
}

pub fn get(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let must_exist = !c.has("--if-exists");
    let id = c.opt("--id").map(String::from);
    if id.is_some() && !must_exist {
        return Err(CtlError::new("--if-exists and --id may not be specified together"));
    }
    // As ovs-vsctl: a bare "get TABLE RECORD" typed at a terminal is likely a mistake.
    if id.is_none() && c.argv.len() <= 3 && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        t.warn("db_ctl_base", "\"get\" command without row arguments or \"--id\" is possibly erroneous".into());
    }
    let tbl = table_arg(c)?;
    for a in &c.argv[3..] {
        if !is_uuid_word(a) {
            precheck_column(tbl, a)?;
        }
    }
    let Some(row) = names::get_row(&t.db, tbl, c.arg(2), must_exist)? else { return Ok(()) };
    if let Some(id) = id {
        let (uuid_sym, new) = t.define_symbol(&id)?;
        if !new {
            return Err(CtlError::new(format!("row id \"{id}\" specified on \"get\" command was used before it was defined")));
        }
        // The symbol names an existing row: use that row's UUID.
        let _ = uuid_sym;
        if let Some(s) = t.symbols.get_mut(&id) {
            s.uuid = row;
        }
    }
    let ts = &TABLES[tbl];
    for a in &c.argv[3..] {
        if is_uuid_word(a) {
            c.output += &format!("{row}\n");
            continue;
        }
        let (ci, col, key) = parse_column_key(tbl, a)?;
        let d = &t.db.tables[tbl][&row].cols[ci];
        match key {
            Some(k) => {
                let Some(vt) = col.ty.value else {
                    return Err(CtlError::new(format!("cannot specify key to get for non-map column {}", col.name)));
                };
                let key = t.parse_atom(&col.ty.key, &k)?;
                let d = &t.db.tables[tbl][&row].cols[ci];
                match d.get(&key) {
                    Some(v) => c.output += &Datum::scalar(v.clone()).to_cli(&scalar(vt)),
                    None if must_exist => {
                        return Err(CtlError::new(format!("no key \"{k}\" in {} record \"{}\" column {}", ts.name, c.arg(2), col.name)));
                    }
                    None => {}
                }
            }
            None => c.output += &d.to_cli(&col.ty),
        }
        c.output.push('\n');
    }
    Ok(())
}

/// The columns of `--columns=a,b` (or all, `_uuid` first).
fn columns(tbl: usize, spec: Option<&str>) -> Result<Vec<Option<usize>>> {
    let ts = &TABLES[tbl];
    match spec {
        None => Ok(std::iter::once(None).chain((0..ts.columns.len()).map(Some)).collect()),
        Some(s) => {
            let mut v = Vec::new();
            for name in s.split([',', ' ']).filter(|n| !n.is_empty()) {
                if name.eq_ignore_ascii_case("_uuid") {
                    v.push(None);
                } else {
                    if !ts.supported {
                        return Err(CtlError::new(format!("the {} table is not supported by rvs", ts.name)));
                    }
                    v.push(Some(names::column(tbl, name)?.0));
                }
            }
            if v.is_empty() {
                return Err(CtlError::new("must specify at least one column name"));
            }
            Ok(v)
        }
    }
}

fn uuid_type() -> ColumnType {
    scalar(uuid_ref("Open_vSwitch"))
}

fn make_table(tbl: usize, cols: &[Option<usize>]) -> Table {
    let ts = &TABLES[tbl];
    Table { headings: cols.iter().map(|c| c.map_or("_uuid".to_string(), |i| ts.columns[i].name.to_string())).collect(), rows: vec![] }
}

fn add_record(t: &Txn, tbl: usize, u: &Uuid, cols: &[Option<usize>], out: &mut Table) {
    let ts = &TABLES[tbl];
    let r = &t.db.tables[tbl][u];
    out.rows.push(
        cols.iter()
            .map(|c| match c {
                None => Cell { datum: Datum::uuid(*u), ty: uuid_type() },
                Some(i) => Cell { datum: r.cols[*i].clone(), ty: ts.columns[*i].ty },
            })
            .collect(),
    );
}

pub fn list(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let must_exist = !c.has("--if-exists");
    let tbl = table_arg(c)?;
    let cols = columns(tbl, c.opt("--columns"))?;
    let mut out = make_table(tbl, &cols);
    if c.argv.len() > 2 {
        for id in &c.argv[2..] {
            if let Some(u) = names::get_row(&t.db, tbl, id, must_exist)? {
                add_record(t, tbl, &u, &cols, &mut out);
            }
        }
    } else {
        let rows: Vec<Uuid> = t.db.tables[tbl].keys().copied().collect();
        for u in rows {
            add_record(t, tbl, &u, &cols, &mut out);
        }
    }
    c.table = Some(out);
    Ok(())
}

const RELOPS: &[&str] = &["=", "!=", "<", ">", "<=", ">=", "{=}", "{!=}", "{<}", "{>}", "{<=}", "{>=}", "{in}", "{not-in}"];

fn is_set_op(op: usize) -> bool {
    op >= 6
}

fn compare(a: &Datum, b: &Datum) -> Ordering {
    // ovsdb_datum_compare_3way: the shorter datum first; then the keys in order; then
    // the values in order.
    a.keys.len().cmp(&b.keys.len()).then_with(|| a.keys.cmp(&b.keys)).then_with(|| match (&a.values, &b.values) {
        (Some(av), Some(bv)) => av.cmp(bv),
        _ => Ordering::Equal,
    })
}

/// Whether every element (key, or key=value pair) of `a` is in `b`.
fn includes_all(a: &Datum, b: &Datum) -> bool {
    a.keys.iter().enumerate().all(|(i, k)| match (&a.values, b.get(k)) {
        (Some(av), Some(bv)) => &av[i] == bv,
        (None, _) => b.contains(k),
        _ => false,
    })
}

fn excludes_all(a: &Datum, b: &Datum) -> bool {
    a.keys.iter().enumerate().all(|(i, k)| match (&a.values, b.get(k)) {
        (Some(av), Some(bv)) => &av[i] != bv,
        (None, _) => !b.contains(k),
        _ => true,
    })
}

fn relop(a: &Datum, b: &Datum, op: usize) -> bool {
    match op {
        0 | 6 => compare(a, b) == Ordering::Equal,
        1 | 7 => compare(a, b) != Ordering::Equal,
        2 => compare(a, b) == Ordering::Less,
        3 => compare(a, b) == Ordering::Greater,
        4 => compare(a, b) != Ordering::Greater,
        5 => compare(a, b) != Ordering::Less,
        8 => b.len() > a.len() && includes_all(a, b),
        9 => a.len() > b.len() && includes_all(b, a),
        10 | 12 => includes_all(a, b),
        11 => includes_all(b, a),
        13 => excludes_all(a, b),
        _ => false,
    }
}

/// Evaluates one `column[:key]OP value` condition on row `u` (check_condition).
fn condition(t: &mut Txn, tbl: usize, u: &Uuid, arg: &str) -> Result<bool> {
    let (ci, col, key, value) = parse_column_key_value(tbl, arg, RELOPS)?;
    let Some((op, value)) = value else { return Err(CtlError::new(format!("{arg}: missing value"))) };
    let mut ty = col.ty;
    ty.n_max = rvs_ovsdb::schema::UNLIMITED;
    let have = t.db.tables[tbl][u].cols[ci].clone();
    match key {
        Some(k) => {
            let Some(vt) = col.ty.value else {
                return Err(CtlError::new(format!("cannot specify key to check for non-map column {}", col.name)));
            };
            let want_key = t.parse_atom(&col.ty.key, &k)?;
            let vty = ColumnType { key: vt, value: None, n_min: ty.n_min, n_max: ty.n_max };
            let b = t.parse_datum(&vty, &value)?;
            match have.get(&want_key) {
                None if !is_set_op(op) => Ok(false),
                found => {
                    let a = match found {
                        Some(v) => Datum::scalar(v.clone()),
                        None => Datum::default(),
                    };
                    Ok(relop(&a, &b, op))
                }
            }
        }
        None => {
            let want = t.parse_datum(&col.ty, &value)?;
            Ok(relop(&have, &want, op))
        }
    }
}

pub fn find(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let tbl = table_arg(c)?;
    let cols = columns(tbl, c.opt("--columns"))?;
    let mut out = make_table(tbl, &cols);
    let rows: Vec<Uuid> = t.db.tables[tbl].keys().copied().collect();
    let conds = c.argv[2..].to_vec();
    if !TABLES[tbl].supported
        && let Some(a) = conds.first()
    {
        parse_column_key_value(tbl, a, RELOPS)?;
    }
    'rows: for u in rows {
        for a in &conds {
            if !condition(t, tbl, &u, a)? {
                continue 'rows;
            }
        }
        add_record(t, tbl, &u, &cols, &mut out);
    }
    c.table = Some(out);
    Ok(())
}

/// The column part of `column[:key]=value` must name a column (pre_parse_column_key_value).
fn precheck_column(tbl: usize, arg: &str) -> Result<()> {
    let (name, _) = rvs_ovsdb::value::next_token(arg).map_err(CtlError::from)?;
    if name.is_empty() {
        return Err(CtlError::new(format!("{arg}: missing column name")));
    }
    names::column(tbl, &name).map(drop)
}

pub fn set(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let tbl = table_arg(c)?;
    for a in &c.argv[3..] {
        precheck_column(tbl, a)?;
    }
    let Some(row) = names::get_row(&t.db, tbl, c.arg(2), !c.has("--if-exists"))? else { return Ok(()) };
    names::writable(tbl)?;
    for a in &c.argv[3..] {
        t.set_column(tbl, &row, a)?;
    }
    Ok(())
}

fn check_mutable(t: &Txn, tbl: usize, u: &Uuid, col: &rvs_ovsdb::ColumnSchema) -> Result<()> {
    if !col.mutable && !t.inserted.contains(u) {
        return Err(CtlError::new(format!("cannot modify read-only column {} in table {}", col.name, TABLES[tbl].name)));
    }
    Ok(())
}

pub fn add(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let tbl = table_arg(c)?;
    let (ci, col) = names::column(tbl, c.arg(3))?;
    let Some(row) = names::get_row(&t.db, tbl, c.arg(2), !c.has("--if-exists"))? else { return Ok(()) };
    names::writable(tbl)?;
    check_mutable(t, tbl, &row, col)?;
    let mut new = t.db.tables[tbl][&row].cols[ci].clone();
    let mut add_ty = col.ty;
    add_ty.n_min = 1;
    add_ty.n_max = rvs_ovsdb::schema::UNLIMITED;
    // As in ovs-vsctl: within a chain, an existing key keeps its value (datum union);
    // as the last command the change is sent as a partial map update, which replaces.
    let replace = t.last_command;
    for a in &c.argv[4..] {
        let d = t.parse_datum(&add_ty, a)?;
        for (i, k) in d.keys.iter().enumerate() {
            match (&d.values, replace) {
                (Some(v), true) => new.put(k.clone(), v[i].clone()),
                (v, _) => {
                    new.insert(k.clone(), v.as_ref().map(|v| v[i].clone()));
                }
            }
        }
    }
    if new.len() as u64 > u64::from(col.ty.n_max) {
        return Err(CtlError::new(format!(
            "\"add\" operation would put {} {} in column {} of table {} but the maximum number is {}",
            new.len(),
            if col.ty.is_map() { "pairs" } else { "values" },
            col.name,
            TABLES[tbl].name,
            col.ty.n_max
        )));
    }
    t.db.tables[tbl].get_mut(&row).expect("row").cols[ci] = new;
    Ok(())
}

pub fn remove(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let tbl = table_arg(c)?;
    let (ci, col) = names::column(tbl, c.arg(3))?;
    let Some(row) = names::get_row(&t.db, tbl, c.arg(2), !c.has("--if-exists"))? else { return Ok(()) };
    names::writable(tbl)?;
    check_mutable(t, tbl, &row, col)?;
    let mut old = t.db.tables[tbl][&row].cols[ci].clone();
    let mut rm_ty = col.ty;
    rm_ty.n_min = 1;
    rm_ty.n_max = rvs_ovsdb::schema::UNLIMITED;
    for a in &c.argv[4..] {
        match t.parse_datum(&rm_ty, a) {
            Ok(d) => {
                for (i, k) in d.keys.iter().enumerate() {
                    old.remove(k, d.values.as_ref().map(|v| &v[i]));
                }
            }
            Err(e) if col.ty.is_map() => {
                // A map's keys alone are also accepted.
                let keys_ty = ColumnType { value: None, ..rm_ty };
                let d = t.parse_datum(&keys_ty, a).map_err(|_| e)?;
                for k in &d.keys {
                    old.remove(k, None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    if (old.len() as u64) < u64::from(col.ty.n_min) {
        return Err(CtlError::new(format!(
            "\"remove\" operation would put {} {} in column {} of table {} but the minimum number is {}",
            old.len(),
            if col.ty.is_map() { "pairs" } else { "values" },
            col.name,
            TABLES[tbl].name,
            col.ty.n_min
        )));
    }
    t.db.tables[tbl].get_mut(&row).expect("row").cols[ci] = old;
    Ok(())
}

pub fn clear(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let tbl = table_arg(c)?;
    for a in &c.argv[3..] {
        names::column(tbl, a)?;
    }
    let Some(row) = names::get_row(&t.db, tbl, c.arg(2), !c.has("--if-exists"))? else { return Ok(()) };
    names::writable(tbl)?;
    for a in &c.argv[3..] {
        let (ci, col) = names::column(tbl, a)?;
        check_mutable(t, tbl, &row, col)?;
        if col.ty.n_min > 0 {
            return Err(CtlError::new(format!(
                "\"clear\" operation cannot be applied to column {} of table {}, which is not allowed to be empty",
                col.name, TABLES[tbl].name
            )));
        }
        t.db.tables[tbl].get_mut(&row).expect("row").cols[ci] = Datum::empty(&col.ty);
    }
    Ok(())
}

pub fn create(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let tbl = table_arg(c)?;
    names::writable(tbl)?;
    let uuid = match c.opt("--id") {
        Some(id) => match id.parse::<Uuid>() {
            Ok(u) => Some(u),
            Err(_) => Some(t.define_symbol(id)?.0),
        },
        None => None,
    };
    if uuid.is_none() && !TABLES[tbl].is_root {
        // The row is garbage as soon as it is committed (db-ctl-base's pre_create).
        t.warn("db_ctl_base", format!("applying \"create\" command to table {} without --id option will have no effect", TABLES[tbl].name));
    }
    let row = t.insert_row(tbl, uuid);
    for a in &c.argv[2..] {
        t.set_column(tbl, &row, a)?;
    }
    c.output += &format!("{row}\n");
    Ok(())
}

pub fn destroy(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let must_exist = !c.has("--if-exists");
    let all = c.has("--all");
    let tbl = table_arg(c)?;
    if all && c.argv.len() > 2 {
        return Err(CtlError::new("--all and records argument should not be specified together"));
    }
    if all && !must_exist {
        return Err(CtlError::new("--all and --if-exists should not be specified together"));
    }
    if !all && c.argv.len() == 2 {
        t.warn("db_ctl_base", "either --all or records argument should be specified".into());
        return Ok(());
    }
    let victims: Vec<Uuid> = if all {
        t.db.tables[tbl].keys().copied().collect()
    } else {
        let mut v = Vec::new();
        for id in &c.argv[2..] {
            if let Some(u) = names::get_row(&t.db, tbl, id, must_exist)? {
                v.push(u);
            }
        }
        v
    };
    for u in victims {
        t.db.delete(tbl, &u);
    }
    Ok(())
}

pub fn wait_until(t: &mut Txn, c: &mut Cmd) -> Result<()> {
    let tbl = table_arg(c)?;
    let Some(row) = names::get_row(&t.db, tbl, c.arg(2), false)? else {
        t.try_again = true;
        return Ok(());
    };
    for a in &c.argv[3..] {
        if !condition(t, tbl, &row, a)? {
            t.try_again = true;
            return Ok(());
        }
    }
    Ok(())
}
