//! Finding tables, columns and rows by the names users type, with ovs-vsctl's rules
//! (lib/db-ctl-base.c): case does not matter, `-` equals `_`, a unique prefix is
//! enough (libvirt writes `trunk=` for `trunks`), an exact match always wins; rows are
//! found by UUID (or a unique UUID prefix of at least 4 hex digits), by `.` for the
//! single Open_vSwitch row, or by the table's name column (for QoS: the name of the
//! Port whose `qos` points at it).

use rvs_ovsdb::{ColumnSchema, Db, TABLES, TableSchema, Uuid, tables};

use crate::error::CtlError;

fn norm(c: u8) -> u8 {
    if c == b'-' { b'_' } else { c.to_ascii_lowercase() }
}

/// How well user input `s` matches `name`: exact = MAX, case/dash-insensitive equal =
/// MAX-1, a prefix = its length, else 0.
fn score(name: &str, s: &str) -> u32 {
    if name == s {
        return u32::MAX;
    }
    let (n, u) = (name.as_bytes(), s.as_bytes());
    let mut i = 0;
    loop {
        let a = n.get(i).copied();
        let b = u.get(i).copied();
        match (a, b) {
            (Some(x), Some(y)) if norm(x) == norm(y) => i += 1,
            (None, None) => return u32::MAX - 1,
            (_, None) => return i as u32,
            _ => return 0,
        }
    }
}

/// Picks the best match of `s` among `names`; `Err(None)` when nothing matches,
/// `Err(Some(list))` when several match equally well.
fn best<'a>(names: impl Iterator<Item = &'a str>, s: &str) -> Result<&'a str, Option<Vec<&'a str>>> {
    let mut best_score = 0;
    let mut found: Vec<&str> = Vec::new();
    for n in names {
        let sc = score(n, s);
        if sc > 0 && sc >= best_score {
            if sc > best_score {
                found.clear();
            }
            found.push(n);
            best_score = sc;
        }
    }
    match found.len() {
        0 => Err(None),
        1 => Ok(found[0]),
        _ => {
            found.sort();
            found.dedup();
            Err(Some(found))
        }
    }
}

/// The table named (or abbreviated) `s`, as its index in [`TABLES`].
pub fn table(s: &str) -> Result<usize, CtlError> {
    match best(TABLES.iter().map(|t| t.name), s) {
        Ok(n) => Ok(rvs_ovsdb::schema::table_index(n).unwrap_or(0)),
        Err(None) => Err(CtlError::new(format!("unknown table \"{s}\""))),
        Err(Some(m)) => Err(CtlError::new(format!("\"{s}\" matches multiple table names: {}", m.join(", ")))),
    }
}

/// The column of table `t` named (or abbreviated) `s`.
pub fn column(t: usize, s: &str) -> Result<(usize, &'static ColumnSchema), CtlError> {
    let ts = &TABLES[t];
    match best(ts.columns.iter().map(|c| c.name), s) {
        Ok(n) => Ok(ts.column(n).unwrap_or((0, &ts.columns[0]))),
        Err(None) => Err(CtlError::new(format!("{} does not contain a column whose name matches \"{s}\"", ts.name))),
        Err(Some(m)) => Err(CtlError::new(format!("{} contains more than one column whose name matches \"{s}\": {}", ts.name, m.join(", ")))),
    }
}

/// Refuses to change a table rvs does not implement.
pub fn writable(t: usize) -> Result<&'static TableSchema, CtlError> {
    let ts = &TABLES[t];
    if ts.supported { Ok(ts) } else { Err(CtlError::new(format!("the {} table is not supported by rvs", ts.name))) }
}

/// Whether `s` looks like the start of a UUID: hex digits and dashes in the right
/// places. Returns the number of hex digits, 0 if it does not.
fn uuid_prefix_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.bytes().enumerate() {
        if i >= 36 {
            return 0;
        }
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return 0;
            }
        } else if c.is_ascii_hexdigit() {
            n += 1;
        } else {
            return 0;
        }
    }
    n
}

/// The row of table `t` that `id` names (see the module docs). `Ok(None)` when there
/// is none; `Err` for ambiguous names.
pub fn find_row(db: &Db, t: usize, id: &str) -> Result<Option<Uuid>, CtlError> {
    if let Ok(u) = id.parse::<Uuid>()
        && db.tables[t].contains_key(&u)
    {
        return Ok(Some(u));
    }
    if id == "." {
        let mut it = db.tables[t].keys();
        if let (Some(u), None) = (it.next(), it.next()) {
            return Ok(Some(*u));
        }
    }
    // The row whose column `col` of table `nt` is `id` (a name, or an integer id).
    let by_col = |nt: usize, col: &str, id: &str| -> Result<Option<Uuid>, CtlError> {
        let ts = &TABLES[nt];
        let Some((ci, _)) = ts.column(col) else { return Ok(None) };
        let mut hit = None;
        for (u, r) in &db.tables[nt] {
            let d = &r.cols[ci];
            let matches = match (d.as_str(), d.as_int()) {
                (Some(name), _) => name == id || (col == "name" && id.len() >= 4 && name.parse::<Uuid>().is_ok() && name.starts_with(id)),
                (None, Some(n)) => id.parse::<i64>() == Ok(n),
                _ => false,
            };
            if matches {
                if hit.is_some() {
                    return Err(CtlError::new(format!("multiple rows in {} match \"{id}\"", ts.name)));
                }
                hit = Some(*u);
            }
        }
        Ok(hit)
    };
    // The row that the named row of table `nt` refers to in its column `via`, when
    // that column holds exactly one reference (ovs-vsctl's row ids: a bridge's name
    // names its NetFlow, sFlow, IPFIX, AutoAttach and single Controller rows).
    let through = |nt: usize, via: &str, id: &str| -> Result<Option<Uuid>, CtlError> {
        let Some(r) = by_col(nt, "name", id)? else { return Ok(None) };
        let d = db.get(nt, &r, via);
        Ok(d.filter(|d| d.len() == 1).and_then(|d| d.keys[0].as_uuid()).filter(|q| db.tables[t].contains_key(q)))
    };
    let name = TABLES[t].name;
    let found = match name {
        "Bridge" | "Port" | "Interface" | "Mirror" | "Flow_Table" => by_col(t, "name", id)?,
        "Manager" => by_col(t, "target", id)?,
        "Flow_Sample_Collector_Set" => by_col(t, "id", id)?,
        "QoS" => through(tables::PORT, "qos", id)?,
        "Controller" | "NetFlow" | "sFlow" | "IPFIX" | "AutoAttach" => {
            let via = match name {
                "Controller" => "controller",
                "NetFlow" => "netflow",
                "sFlow" => "sflow",
                "IPFIX" => "ipfix",
                _ => "auto_attach",
            };
            through(tables::BRIDGE, via, id)?
        }
        _ => None,
    };
    if found.is_some() {
        return Ok(found);
    }
    if uuid_prefix_len(id) >= 4 {
        let mut hit: Option<Uuid> = None;
        for u in db.tables[t].keys() {
            if u.to_string().starts_with(&id.to_ascii_lowercase()) {
                if let Some(h) = hit {
                    return Err(CtlError::new(format!("{} contains 2 or more rows whose UUIDs begin with {id}: at least {h} and {u}", TABLES[t].name)));
                }
                hit = Some(*u);
            }
        }
        return Ok(hit);
    }
    Ok(None)
}

/// Like [`find_row`], but a missing row is an error when `must_exist`.
pub fn get_row(db: &Db, t: usize, id: &str, must_exist: bool) -> Result<Option<Uuid>, CtlError> {
    match find_row(db, t, id)? {
        Some(u) => Ok(Some(u)),
        None if must_exist => Err(CtlError::new(format!("no row \"{id}\" in table {}", TABLES[t].name))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_column_matching() {
        assert_eq!(TABLES[table("Bridge").unwrap()].name, "Bridge");
        assert_eq!(TABLES[table("bridge").unwrap()].name, "Bridge");
        assert_eq!(TABLES[table("queue").unwrap()].name, "Queue");
        assert_eq!(TABLES[table("open_vswitch").unwrap()].name, "Open_vSwitch");
        assert_eq!(TABLES[table("qos").unwrap()].name, "QoS");
        assert_eq!(table("Nosuchtable").unwrap_err().to_string(), "unknown table \"Nosuchtable\"");
        assert!(table("F").unwrap_err().to_string().contains("matches multiple table names: Flow_Sample_Collector_Set, Flow_Table"));
        let p = table("Port").unwrap();
        assert_eq!(column(p, "trunk").unwrap().1.name, "trunks");
        assert_eq!(column(p, "external-ids").unwrap().1.name, "external_ids");
        assert_eq!(column(p, "TAG").unwrap().1.name, "tag");
        assert_eq!(column(p, "nosuchcol").unwrap_err().to_string(), "Port does not contain a column whose name matches \"nosuchcol\"");
        assert!(
            column(p, "bond_").unwrap_err().to_string().starts_with("Port contains more than one column whose name matches \"bond_\": bond_active_slave, ")
        );
    }

    #[test]
    fn uuid_prefixes() {
        assert_eq!(uuid_prefix_len("56a0"), 4);
        assert_eq!(uuid_prefix_len("56a00daa-3c"), 10);
        assert_eq!(uuid_prefix_len("56a00daa3c"), 0);
        assert_eq!(uuid_prefix_len("br0"), 0);
    }
}
