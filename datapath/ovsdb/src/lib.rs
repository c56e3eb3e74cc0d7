//! The configuration database: OVSDB-style tables of rows, shared by `rvs-vswitchd`
//! (which owns and persists it) and `rvsctl` (which reads a snapshot, runs ovs-vsctl
//! commands against a copy, and sends back the difference as a transaction).
//!
//! Semantics follow RFC 7047 as far as ovs-vsctl can observe them: rows have UUIDs;
//! columns have types and constraints ([`schema`]); rows of non-root tables (Bridge,
//! Port, Interface) that nothing refers to any more are garbage-collected at commit;
//! references must point at existing rows; indexed columns (`name`) are unique.
//!
//! Code reads and writes the columns it knows through the typed views of [`view`]
//! (`Port::get(&db, &u)?.vlan_mode()`, `db.set_col(Port::TAG, &u, ..)`), checked
//! against the schema at compile time; access by a name a user typed goes through
//! [`TableSchema::column`].
//!
//! Nothing in this crate does I/O: persistence is the daemon's job
//! (`rvs_vswitchd::store`); [`proto`] is the control protocol's message types.
#![forbid(unsafe_code)]

pub mod proto;
pub mod schema;
pub mod value;
pub mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

pub use schema::{ColumnSchema, ColumnType, TABLES, TableSchema, tables};
pub use value::ValueError;
pub use value::{Atom, Datum, Uuid};
pub use view::Col;

/// Why a database, a row or a change to them was refused. The texts of the commit
/// checks are ovsdb-server's, as ovs-vsctl prints them after `transaction error: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    #[error("unknown table {0}")]
    UnknownTable(String),
    #[error("unknown column {column} in table {table}")]
    UnknownColumn { table: String, column: String },
    #[error("{0} row is not a JSON object")]
    RowNotObject(&'static str),
    #[error("{table}.{column}: {source}")]
    Column { table: &'static str, column: String, source: ValueError },
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("bad uuid {0}")]
    BadUuid(String),
    #[error("bad row uuid {uuid} in table {table}")]
    BadRowUuid { table: String, uuid: String },
    #[error("row {uuid} already exists in table {table}")]
    RowExists { table: String, uuid: String },
    #[error("no row {uuid} in table {table}")]
    NoRow { table: String, uuid: String },
    #[error("update is not an object")]
    UpdateNotObject,
    #[error("missing \"{0}\"")]
    Missing(&'static str),
    #[error("table {0} is not an object")]
    TableNotObject(String),
    #[error("the Open_vSwitch table may hold only one row")]
    SeveralRoots,
    #[error("table {0} is not supported by rvs")]
    Unsupported(&'static str),
    #[error("{table}.{column} of row {row}: {source}")]
    Constraint { table: &'static str, column: &'static str, row: Uuid, source: ValueError },
    #[error("constraint violation: {table} column {column} of row {row} has {count} value(s), allowed {min} to {max}")]
    Count { table: &'static str, column: &'static str, row: Uuid, count: usize, min: u32, max: u32 },
    #[error("referential integrity violation: Table {table} column {column} row {row} references nonexistent row {target} in table {target_table}.")]
    Dangling { table: &'static str, column: &'static str, row: Uuid, target: Uuid, target_table: &'static str },
    #[error(
        "constraint violation: Transaction causes multiple rows in \"{table}\" table to have identical values ({key}) for index on {on}.  First row, with UUID {first}, existed in the database before this transaction and was not modified by the transaction.  Second row, with UUID {second}, was inserted by this transaction."
    )]
    Duplicate { table: &'static str, key: String, on: String, first: Uuid, second: Uuid },
}

/// One row: a value for every column of its table, in schema order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub cols: Vec<Datum>,
}

impl Row {
    /// The values of table `t`'s index columns as ovsdb-server prints them in a
    /// duplicate's error: each in ovs-vsctl's text form, as an English list ("1 and
    /// <uuid>").
    pub fn index_values(&self, t: &TableSchema) -> String {
        let vals: Vec<String> = t.index.iter().filter_map(|ix| t.column(ix)).map(|(ci, c)| self.cols[ci].to_cli(&c.ty)).collect();
        schema::english_list(&vals)
    }

    /// A row with every column at its default.
    pub fn new(t: &TableSchema) -> Row {
        Row { cols: t.columns.iter().map(|c| Datum::default_for(&c.ty)).collect() }
    }

    /// The value of column `name` of table `t`, for code generic over columns (names
    /// taken from the schema). Code that knows its column uses [`view`] instead.
    ///
    /// # Panics
    /// If `name` is not a column of `t`.
    pub fn get<'a>(&'a self, t: &TableSchema, name: &str) -> &'a Datum {
        &self.cols[t.column_index(name)]
    }

    pub fn set(&mut self, t: &TableSchema, name: &str, d: Datum) {
        self.cols[t.column_index(name)] = d;
    }

    /// The row as a JSON object of its columns; with `all` false, columns at their
    /// default are left out, and ephemeral columns unless `ephemeral`.
    pub fn to_json(&self, t: &TableSchema, all: bool, ephemeral: bool) -> Json {
        let mut m = Map::new();
        for (c, d) in t.columns.iter().zip(&self.cols) {
            if (c.ephemeral && !ephemeral) || (!all && *d == Datum::default_for(&c.ty)) {
                continue;
            }
            m.insert(c.name.to_string(), d.to_json());
        }
        Json::Object(m)
    }

    /// Reads a row written by [`Row::to_json`]; missing columns take their default.
    pub fn from_json(t: &TableSchema, j: &Json) -> Result<Row, DbError> {
        let obj = j.as_object().ok_or(DbError::RowNotObject(t.name))?;
        let mut row = Row::new(t);
        for (k, v) in obj {
            let (i, c) = t.column(k).ok_or_else(|| DbError::UnknownColumn { table: t.name.into(), column: k.clone() })?;
            row.cols[i] = Datum::from_json(&c.ty, v).map_err(|source| DbError::Column { table: t.name, column: k.clone(), source })?;
        }
        Ok(row)
    }
}

/// One change to a row. Updates carry only the columns that changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum RowOp {
    Insert { table: String, uuid: String, row: Json },
    Update { table: String, uuid: String, row: Json },
    Delete { table: String, uuid: String },
}

/// The whole database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Db {
    /// One map per table of [`TABLES`], same index.
    pub tables: Vec<BTreeMap<Uuid, Row>>,
    /// Bumped by every committed transaction.
    pub generation: u64,
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

fn schema(t: usize) -> &'static TableSchema {
    &TABLES[t]
}

/// Table index of `name`, for ops read from the wire.
fn table_by_name(name: &str) -> Result<usize, DbError> {
    schema::table_index(name).ok_or_else(|| DbError::UnknownTable(name.into()))
}

impl Db {
    /// An empty database (no rows at all).
    pub fn new() -> Db {
        Db { tables: TABLES.iter().map(|_| BTreeMap::new()).collect(), generation: 0 }
    }

    /// The single Open_vSwitch row, if present.
    pub fn root(&self) -> Option<(Uuid, &Row)> {
        self.tables[tables::OPEN_VSWITCH].iter().next().map(|(u, r)| (*u, r))
    }

    /// Makes sure the Open_vSwitch row exists (what `ovs-vsctl init` does).
    pub fn ensure_root(&mut self) -> Uuid {
        if let Some((u, _)) = self.root() {
            return u;
        }
        let u = Uuid::random();
        self.tables[tables::OPEN_VSWITCH].insert(u, Row::new(schema(tables::OPEN_VSWITCH)));
        u
    }

    pub fn row(&self, t: usize, u: &Uuid) -> Option<&Row> {
        self.tables[t].get(u)
    }

    pub fn row_mut(&mut self, t: usize, u: &Uuid) -> Option<&mut Row> {
        self.tables[t].get_mut(u)
    }

    /// Column `col` of row `u` in table `t`, for code generic over columns; code that
    /// knows its column uses [`Db::col`] with a [`view`] constant.
    pub fn get(&self, t: usize, u: &Uuid, col: &str) -> Option<&Datum> {
        self.row(t, u).map(|r| r.get(schema(t), col))
    }

    /// Sets column `col` of row `u`; `false` if there is no such row.
    pub fn set(&mut self, t: usize, u: &Uuid, col: &str, d: Datum) -> bool {
        match self.tables[t].get_mut(u) {
            Some(r) => {
                r.set(schema(t), col, d);
                true
            }
            None => false,
        }
    }

    /// Inserts a row with default columns and returns its UUID.
    pub fn insert_new(&mut self, t: usize) -> Uuid {
        let u = Uuid::random();
        self.tables[t].insert(u, Row::new(schema(t)));
        u
    }

    pub fn delete(&mut self, t: usize, u: &Uuid) -> Option<Row> {
        self.tables[t].remove(u)
    }

    /// The row of an indexed table whose `name` is `name`.
    pub fn find_by_name(&self, t: usize, name: &str) -> Option<Uuid> {
        let i = schema(t).column_index("name");
        self.tables[t].iter().find(|(_, r)| r.cols[i].as_str() == Some(name)).map(|(u, _)| *u)
    }

    /// The name of row `u` of an indexed table.
    pub fn name_of(&self, t: usize, u: &Uuid) -> Option<&str> {
        self.get(t, u, "name").and_then(Datum::as_str)
    }

    /// Every (table, row) that refers to row `target` of table `target_table`, with
    /// the number of references.
    pub fn referrers(&self, target_table: usize, target: &Uuid) -> Vec<(usize, Uuid, usize)> {
        let tname = TABLES[target_table].name;
        let mut out = Vec::new();
        for (ti, t) in self.tables.iter().enumerate() {
            for (u, r) in t {
                let n: usize = TABLES[ti]
                    .columns
                    .iter()
                    .zip(&r.cols)
                    .map(|(c, d)| {
                        // A weak reference does not hold its row (it just goes away).
                        let kr = c.ty.key.ref_table == Some(tname) && !c.ty.key.weak;
                        let vr = c.ty.value.filter(|v| !v.weak).and_then(|v| v.ref_table) == Some(tname);
                        let mut n = 0;
                        if kr {
                            n += d.keys.iter().filter(|a| a.as_uuid() == Some(*target)).count();
                        }
                        if vr {
                            n += d.values.iter().flatten().filter(|a| a.as_uuid() == Some(*target)).count();
                        }
                        n
                    })
                    .sum();
                if n > 0 {
                    out.push((ti, *u, n));
                }
            }
        }
        out
    }

    /// Removes weak references (Mirror's ports) to rows that are gone, with their map
    /// pairs, as an OVSDB server does at commit.
    fn drop_dangling_weak(&mut self) {
        let exists: Vec<std::collections::HashSet<Uuid>> = self.tables.iter().map(|t| t.keys().copied().collect()).collect();
        let gone = |b: Option<schema::BaseType>, a: &Atom| {
            b.filter(|b| b.weak).and_then(|b| b.ref_table).and_then(schema::table_index).is_some_and(|rt| a.as_uuid().is_some_and(|u| !exists[rt].contains(&u)))
        };
        for (ti, t) in self.tables.iter_mut().enumerate() {
            for r in t.values_mut() {
                for (c, d) in TABLES[ti].columns.iter().zip(r.cols.iter_mut()) {
                    if !c.ty.key.weak && !c.ty.value.is_some_and(|v| v.weak) {
                        continue;
                    }
                    let keep: Vec<bool> =
                        (0..d.keys.len()).map(|i| !gone(Some(c.ty.key), &d.keys[i]) && !d.values.as_ref().is_some_and(|v| gone(c.ty.value, &v[i]))).collect();
                    let mut it = keep.iter();
                    d.keys.retain(|_| *it.next().unwrap_or(&true));
                    if let Some(v) = d.values.as_mut() {
                        let mut it = keep.iter();
                        v.retain(|_| *it.next().unwrap_or(&true));
                    }
                }
            }
        }
    }

    /// All UUIDs referred to by any row, per table.
    fn referenced(&self) -> Vec<std::collections::HashSet<Uuid>> {
        let mut seen = vec![std::collections::HashSet::new(); TABLES.len()];
        for (ti, t) in self.tables.iter().enumerate() {
            for r in t.values() {
                for (c, d) in TABLES[ti].columns.iter().zip(&r.cols) {
                    if let Some(rt) = c.ty.key.ref_table.filter(|_| !c.ty.key.weak).and_then(schema::table_index) {
                        seen[rt].extend(d.uuids());
                    }
                    if let (Some(rt), Some(vals)) = (c.ty.value.filter(|v| !v.weak).and_then(|v| v.ref_table).and_then(schema::table_index), &d.values) {
                        seen[rt].extend(vals.iter().filter_map(Atom::as_uuid));
                    }
                }
            }
        }
        seen
    }

    /// Deletes rows of non-root tables that nothing refers to, until none is left
    /// (deleting a Bridge orphans its Ports, which orphans their Interfaces).
    pub fn collect_garbage(&mut self) -> usize {
        let mut removed = 0;
        loop {
            self.drop_dangling_weak();
            let seen = self.referenced();
            let mut any = false;
            for (ti, t) in self.tables.iter_mut().enumerate() {
                if TABLES[ti].is_root {
                    continue;
                }
                let before = t.len();
                t.retain(|u, _| seen[ti].contains(u));
                if t.len() != before {
                    any = true;
                    removed += before - t.len();
                }
            }
            if !any {
                return removed;
            }
        }
    }

    /// Checks what an OVSDB server checks at commit: column constraints and counts,
    /// references to existing rows, unique indexes, rows only in implemented tables.
    pub fn check(&self) -> Result<(), DbError> {
        if self.tables[tables::OPEN_VSWITCH].len() > 1 {
            return Err(DbError::SeveralRoots);
        }
        for (ti, t) in self.tables.iter().enumerate() {
            let ts = schema(ti);
            if !ts.supported && !t.is_empty() {
                return Err(DbError::Unsupported(ts.name));
            }
            let mut names = std::collections::HashMap::new();
            for (u, r) in t {
                for (c, d) in ts.columns.iter().zip(&r.cols) {
                    d.check(&c.ty).map_err(|source| DbError::Constraint { table: ts.name, column: c.name, row: *u, source })?;
                    if (d.len() as u64) < u64::from(c.ty.n_min) || (d.len() as u64) > u64::from(c.ty.n_max) {
                        return Err(DbError::Count { table: ts.name, column: c.name, row: *u, count: d.len(), min: c.ty.n_min, max: c.ty.n_max });
                    }
                    for (base, atoms) in [(Some(c.ty.key), Some(&d.keys)), (c.ty.value, d.values.as_ref())] {
                        let (Some(rt), Some(atoms)) = (base.and_then(|b| b.ref_table), atoms) else { continue };
                        let rti = schema::table_index(rt).unwrap_or(0);
                        for a in atoms.iter().filter_map(Atom::as_uuid) {
                            if !self.tables[rti].contains_key(&a) {
                                return Err(DbError::Dangling { table: ts.name, column: c.name, row: *u, target: a, target_table: rt });
                            }
                        }
                    }
                }
                if !ts.index.is_empty() {
                    let key = r.index_values(ts);
                    if let Some(other) = names.insert(key.clone(), *u) {
                        return Err(DbError::Duplicate { table: ts.name, key, on: ts.index_phrase(), first: other, second: *u });
                    }
                }
            }
        }
        Ok(())
    }

    /// The changes that turn `self` into `newer`.
    pub fn diff(&self, newer: &Db) -> Vec<RowOp> {
        let mut ops = Vec::new();
        for (ti, (old, new)) in self.tables.iter().zip(&newer.tables).enumerate() {
            let ts = schema(ti);
            for (u, r) in new {
                match old.get(u) {
                    None => ops.push(RowOp::Insert { table: ts.name.into(), uuid: u.to_string(), row: r.to_json(ts, false, true) }),
                    Some(o) if o != r => {
                        let mut m = Map::new();
                        for ((c, a), b) in ts.columns.iter().zip(&o.cols).zip(&r.cols) {
                            if a != b {
                                m.insert(c.name.to_string(), b.to_json());
                            }
                        }
                        ops.push(RowOp::Update { table: ts.name.into(), uuid: u.to_string(), row: Json::Object(m) });
                    }
                    Some(_) => {}
                }
            }
            for u in old.keys().filter(|u| !new.contains_key(u)) {
                ops.push(RowOp::Delete { table: ts.name.into(), uuid: u.to_string() });
            }
        }
        ops
    }

    /// Applies `ops` (no checks: call [`Db::collect_garbage`] and [`Db::check`] after).
    pub fn apply(&mut self, ops: &[RowOp]) -> Result<(), DbError> {
        for op in ops {
            match op {
                RowOp::Insert { table, uuid, row } => {
                    let ti = table_by_name(table)?;
                    let u = uuid.parse().map_err(|_| DbError::BadUuid(uuid.clone()))?;
                    if self.tables[ti].contains_key(&u) {
                        return Err(DbError::RowExists { table: table.clone(), uuid: uuid.clone() });
                    }
                    self.tables[ti].insert(u, Row::from_json(schema(ti), row)?);
                }
                RowOp::Update { table, uuid, row } => {
                    let ti = table_by_name(table)?;
                    let u: Uuid = uuid.parse().map_err(|_| DbError::BadUuid(uuid.clone()))?;
                    let ts = schema(ti);
                    let r = self.tables[ti].get_mut(&u).ok_or_else(|| DbError::NoRow { table: table.clone(), uuid: uuid.clone() })?;
                    for (k, v) in row.as_object().ok_or(DbError::UpdateNotObject)? {
                        let (i, c) = ts.column(k).ok_or_else(|| DbError::UnknownColumn { table: table.clone(), column: k.clone() })?;
                        r.cols[i] = Datum::from_json(&c.ty, v)?;
                    }
                }
                RowOp::Delete { table, uuid } => {
                    let ti = table_by_name(table)?;
                    let u: Uuid = uuid.parse().map_err(|_| DbError::BadUuid(uuid.clone()))?;
                    self.tables[ti].remove(&u).ok_or_else(|| DbError::NoRow { table: table.clone(), uuid: uuid.clone() })?;
                }
            }
        }
        Ok(())
    }

    /// The database as JSON: `{"Table": {"uuid": {row}}}` plus the generation.
    /// Ephemeral (status) columns are included only when `ephemeral` is set.
    pub fn to_json(&self, ephemeral: bool) -> Json {
        let mut tabs = Map::new();
        for (ti, t) in self.tables.iter().enumerate() {
            if t.is_empty() {
                continue;
            }
            let ts = schema(ti);
            let rows: Map<String, Json> = t.iter().map(|(u, r)| (u.to_string(), r.to_json(ts, false, ephemeral))).collect();
            tabs.insert(ts.name.to_string(), Json::Object(rows));
        }
        serde_json::json!({ "generation": self.generation, "tables": tabs })
    }

    /// Reads what [`Db::to_json`] wrote.
    pub fn from_json(j: &Json) -> Result<Db, DbError> {
        let mut db = Db::new();
        db.generation = j.get("generation").and_then(Json::as_u64).ok_or(DbError::Missing("generation"))?;
        let tabs = j.get("tables").and_then(Json::as_object).ok_or(DbError::Missing("tables"))?;
        for (name, rows) in tabs {
            let ti = table_by_name(name)?;
            for (u, r) in rows.as_object().ok_or_else(|| DbError::TableNotObject(name.clone()))? {
                let uuid = u.parse().map_err(|_| DbError::BadRowUuid { table: name.clone(), uuid: u.clone() })?;
                db.tables[ti].insert(uuid, Row::from_json(schema(ti), r)?);
            }
        }
        Ok(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge_with_port(db: &mut Db, br: &str, port: &str) -> (Uuid, Uuid, Uuid) {
        let root = db.ensure_root();
        let i = db.insert_new(tables::INTERFACE);
        db.set(tables::INTERFACE, &i, "name", Datum::string(port));
        let p = db.insert_new(tables::PORT);
        db.set(tables::PORT, &p, "name", Datum::string(port));
        db.set(tables::PORT, &p, "interfaces", Datum::set(vec![Atom::Uuid(i)]));
        let b = db.insert_new(tables::BRIDGE);
        db.set(tables::BRIDGE, &b, "name", Datum::string(br));
        db.set(tables::BRIDGE, &b, "ports", Datum::set(vec![Atom::Uuid(p)]));
        let mut brs = db.get(tables::OPEN_VSWITCH, &root, "bridges").unwrap().clone();
        brs.insert(Atom::Uuid(b), None);
        db.set(tables::OPEN_VSWITCH, &root, "bridges", brs);
        (b, p, i)
    }

    #[test]
    fn gc_follows_references() {
        let mut db = Db::new();
        let (b, p, i) = bridge_with_port(&mut db, "br0", "p1");
        assert_eq!(db.collect_garbage(), 0);
        assert!(db.check().is_ok());
        let root = db.root().unwrap().0;
        db.set(tables::OPEN_VSWITCH, &root, "bridges", Datum::set(vec![]));
        assert_eq!(db.collect_garbage(), 3);
        assert!(db.row(tables::BRIDGE, &b).is_none());
        assert!(db.row(tables::PORT, &p).is_none());
        assert!(db.row(tables::INTERFACE, &i).is_none());
    }

    #[test]
    fn check_catches_dangling_refs_and_duplicates() {
        let mut db = Db::new();
        let (_, p, _) = bridge_with_port(&mut db, "br0", "p1");
        db.set(tables::PORT, &p, "interfaces", Datum::set(vec![Atom::Uuid(Uuid::random())]));
        assert!(db.check().unwrap_err().to_string().starts_with("referential integrity violation"));
        let mut db = Db::new();
        bridge_with_port(&mut db, "br0", "p1");
        bridge_with_port(&mut db, "br1", "p1");
        assert!(db.check().unwrap_err().to_string().contains("identical values (p1) for index on column \"name\""));
        let mut db = Db::new();
        let (_, p, _) = bridge_with_port(&mut db, "br0", "p1");
        db.set(tables::PORT, &p, "interfaces", Datum::set(vec![]));
        assert!(db.check().is_err(), "a port needs at least one interface");
    }

    #[test]
    fn diff_apply_round_trip() {
        let mut a = Db::new();
        bridge_with_port(&mut a, "br0", "p1");
        let mut b = a.clone();
        let (_, p, _) = bridge_with_port(&mut b, "br1", "p2");
        b.set(tables::PORT, &p, "tag", Datum::integer(10));
        let p1 = b.find_by_name(tables::PORT, "p1").unwrap();
        b.set(tables::PORT, &p1, "trunks", Datum::set(vec![Atom::Integer(10), Atom::Integer(20)]));
        let ops = a.diff(&b);
        let mut c = a.clone();
        c.apply(&ops).unwrap();
        assert_eq!(c, b);
        // the ops survive the wire
        let wire = serde_json::to_string(&ops).unwrap();
        let back: Vec<RowOp> = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, ops);
    }

    #[test]
    fn json_round_trip() {
        let mut db = Db::new();
        bridge_with_port(&mut db, "br0", "p1");
        db.generation = 7;
        let j = db.to_json(true);
        assert_eq!(Db::from_json(&j).unwrap(), db);
        assert!(Db::from_json(&serde_json::json!({"tables": {}})).is_err());
    }

    #[test]
    fn referrers_counts() {
        let mut db = Db::new();
        let (b, p, _) = bridge_with_port(&mut db, "br0", "p1");
        assert_eq!(db.referrers(tables::PORT, &p), vec![(tables::BRIDGE, b, 1)]);
    }
}
