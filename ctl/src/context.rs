//! The state of one invocation while its commands run: the working copy of the
//! database, the `@name` symbols of `--id`, each command's arguments, options and
//! output, and the interfaces created (checked for errors after the commit).

use std::collections::{BTreeMap, HashMap, HashSet};

use rvs_ovsdb::view::{Bridge, Interface, Port};
use rvs_ovsdb::{Atom, Datum, Db, TABLES, Uuid};

use crate::cache::Cache;
use crate::error::{CtlError, Result};
use crate::format::Table;
use crate::names;

/// A row id defined with `--id=@name` or referenced as `@name`.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub uuid: Uuid,
    pub created: bool,
}

/// One parsed command.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    /// The command word and its arguments.
    pub argv: Vec<String>,
    /// Options such as `--if-exists` (key with dashes) and their values.
    pub options: BTreeMap<String, Option<String>>,
    pub output: String,
    pub table: Option<Table>,
}

impl Cmd {
    pub fn has(&self, opt: &str) -> bool {
        self.options.contains_key(opt)
    }

    pub fn opt(&self, opt: &str) -> Option<&str> {
        self.options.get(opt).and_then(|v| v.as_deref())
    }

    pub fn arg(&self, i: usize) -> &str {
        self.argv.get(i).map(String::as_str).unwrap_or("")
    }
}

/// The transaction being built.
#[derive(Debug, Clone)]
pub struct Txn {
    pub db: Db,
    pub symbols: HashMap<String, Symbol>,
    /// Interfaces inserted by add-br/add-port/add-bond (post-commit error check).
    pub new_ifaces: Vec<Uuid>,
    /// Set by a command that must wait and run again (`wait-until`).
    pub try_again: bool,
    /// The command running now is the last one.
    pub last_command: bool,
    /// Rows inserted by this transaction (their immutable columns may still be set).
    pub inserted: HashSet<Uuid>,
    /// Warnings ovs-vsctl logs on stderr ("module|WARN|text" after the time stamp).
    pub warnings: Vec<String>,
}

impl Txn {
    pub fn new(mut db: Db) -> Txn {
        db.ensure_root();
        Txn { db, symbols: HashMap::new(), new_ifaces: Vec::new(), try_again: false, last_command: false, inserted: HashSet::new(), warnings: Vec::new() }
    }

    /// A warning as OVS's db-ctl-base logs it.
    pub fn warn(&mut self, module: &str, text: String) {
        self.warnings.push(format!("{module}|WARN|{text}"));
    }

    pub fn cache(&self) -> Cache {
        Cache::build(&self.db)
    }

    /// The UUID for `@name`, creating the symbol (not yet "created") on first use.
    pub fn symbol(&mut self, name: &str) -> Uuid {
        self.symbols.entry(name.to_string()).or_insert_with(|| Symbol { uuid: Uuid::random(), created: false }).uuid
    }

    /// Marks `@name` as defined by `--id`; returns its UUID and whether it was new.
    pub fn define_symbol(&mut self, id: &str) -> Result<(Uuid, bool)> {
        if !id.starts_with('@') {
            return Err(CtlError::new(format!("row id \"{id}\" does not begin with \"@\"")));
        }
        let new = !self.symbols.contains_key(id);
        let s = self.symbols.entry(id.to_string()).or_insert_with(|| Symbol { uuid: Uuid::random(), created: false });
        if s.created {
            return Err(CtlError::new(format!("row id \"{id}\" may only be specified on one --id option")));
        }
        s.created = true;
        Ok((s.uuid, new))
    }

    /// Parses a value for a column type with `@name` symbols resolved.
    pub fn parse_datum(&mut self, ty: &rvs_ovsdb::ColumnType, s: &str) -> Result<Datum> {
        let mut f = |n: &str| self.symbol(n);
        Datum::from_cli(ty, s, Some(&mut f)).map_err(CtlError::from)
    }

    /// Parses one atom of a base type with symbols resolved.
    pub fn parse_atom(&mut self, base: &rvs_ovsdb::schema::BaseType, s: &str) -> Result<Atom> {
        let mut f = |n: &str| self.symbol(n);
        Atom::from_cli(base, s, false, Some(&mut f)).map(|(a, _)| a).map_err(CtlError::from)
    }

    /// `set`-style assignment `column[:key]=value` on row `u` of table `t`
    /// (db-ctl-base's set_column).
    pub fn set_column(&mut self, t: usize, u: &Uuid, arg: &str) -> Result<()> {
        let (ci, col, key, value) = parse_column_key_value(t, arg, &["="])?;
        let Some((_, value)) = value else {
            return Err(CtlError::new(format!("{arg}: missing value")));
        };
        if !col.mutable && self.db.row(t, u).is_some_and(|_| !self.inserted_now(t, u)) {
            return Err(CtlError::new(format!("cannot modify read-only column {} in table {}", col.name, TABLES[t].name)));
        }
        let d = match key {
            Some(k) => {
                let Some(vt) = col.ty.value else {
                    return Err(CtlError::new(format!("cannot specify key to set for non-map column {}", col.name)));
                };
                let k = self.parse_atom(&col.ty.key, &k)?;
                let v = self.parse_atom(&vt, &value)?;
                let mut d = self.db.tables[t][u].cols[ci].clone();
                d.put(k, v);
                d
            }
            None => self.parse_datum(&col.ty, &value)?,
        };
        if let Some(r) = self.db.row_mut(t, u) {
            r.cols[ci] = d;
        }
        Ok(())
    }

    /// Rows inserted by this transaction may set immutable columns (`name`).
    fn inserted_now(&self, _t: usize, u: &Uuid) -> bool {
        self.inserted.contains(u)
    }

    /// Inserts a row with default columns (and the given UUID, if any).
    pub fn insert_row(&mut self, t: usize, uuid: Option<Uuid>) -> Uuid {
        let u = uuid.unwrap_or_else(Uuid::random);
        self.db.tables[t].insert(u, rvs_ovsdb::Row::new(&TABLES[t]));
        self.inserted.insert(u);
        u
    }

    /// Adds `port` to the `ports` of bridge row `b`.
    pub fn bridge_add_port(&mut self, b: &Uuid, port: Uuid) {
        let mut ports = self.db.col(Bridge::PORTS, b).cloned().unwrap_or_default();
        ports.insert(Atom::Uuid(port), None);
        self.db.set_col(Bridge::PORTS, b, ports);
    }

    /// Removes `port` from bridge row `b` and deletes the port and its interfaces.
    pub fn delete_port(&mut self, b: &Uuid, port: &Uuid) {
        let mut ports = self.db.col(Bridge::PORTS, b).cloned().unwrap_or_default();
        ports.remove(&Atom::Uuid(*port), None);
        self.db.set_col(Bridge::PORTS, b, ports);
        let ifaces: Vec<Uuid> = Port::get(&self.db, port).map(|p| p.interfaces().collect()).unwrap_or_default();
        for i in ifaces {
            self.db.delete(Interface::TABLE, &i);
        }
        self.db.delete(Port::TABLE, port);
    }

    /// Inserts an Interface and a Port holding it; returns (port, iface).
    pub fn insert_port(&mut self, name: &str, iface_names: &[&str], iface_type: Option<&str>) -> (Uuid, Vec<Uuid>) {
        let mut ifaces = Vec::new();
        for n in iface_names {
            let i = self.insert_row(Interface::TABLE, None);
            self.db.set_col(Interface::NAME, &i, Datum::string(n));
            if let Some(ty) = iface_type {
                self.db.set_col(Interface::TYPE, &i, Datum::string(ty));
            }
            ifaces.push(i);
        }
        let p = self.insert_row(Port::TABLE, None);
        self.db.set_col(Port::NAME, &p, Datum::string(name));
        self.db.set_col(Port::INTERFACES, &p, Datum::set(ifaces.iter().map(|u| Atom::Uuid(*u)).collect()));
        (p, ifaces)
    }

    /// The Open_vSwitch row.
    pub fn root(&mut self) -> Uuid {
        self.db.ensure_root()
    }
}

/// A parsed `column[:key][op value]`: column index and schema, key, and (operator
/// index, value).
pub type ColumnKeyValue = (usize, &'static rvs_ovsdb::ColumnSchema, Option<String>, Option<(usize, String)>);

/// Splits `column[:key][op value]` (db-ctl-base's parse_column_key_value): returns the
/// column index and schema, the key, and (operator index, value) when an operator is
/// present. `ops` are the allowed operators, longest match wins.
pub fn parse_column_key_value(t: usize, arg: &str, ops: &[&str]) -> Result<ColumnKeyValue> {
    let (ci, col, key, rest) = column_and_key(t, arg)?;
    let mut best: Option<(usize, usize)> = None;
    for (i, op) in ops.iter().enumerate() {
        if op.len() > best.map_or(0, |b| b.1) && rest.starts_with(op) && rest.len() > op.len() {
            best = Some((i, op.len()));
        }
    }
    match best {
        Some((i, len)) => Ok((ci, col, key, Some((i, rest[len..].to_string())))),
        None => Err(CtlError::new(missing_operator(arg, ops))),
    }
}

/// The `column[:key]` at the start of `arg`, and what follows it.
fn column_and_key(t: usize, arg: &str) -> Result<(usize, &'static rvs_ovsdb::ColumnSchema, Option<String>, &str)> {
    let (col_name, mut rest) = rvs_ovsdb::value::next_token(arg).map_err(CtlError::from)?;
    if col_name.is_empty() {
        return Err(CtlError::new(format!("{arg}: missing column name")));
    }
    let (ci, col) = names::column(t, &col_name)?;
    let mut key = None;
    if let Some(r) = rest.strip_prefix(':') {
        let (k, r2) = rvs_ovsdb::value::next_token(r).map_err(CtlError::from)?;
        key = Some(k);
        rest = r2;
    }
    Ok((ci, col, key, rest))
}

/// Like [`parse_column_key_value`] for arguments without a value (`get`).
pub fn parse_column_key(t: usize, arg: &str) -> Result<(usize, &'static rvs_ovsdb::ColumnSchema, Option<String>)> {
    let (ci, col, key, rest) = column_and_key(t, arg)?;
    if !rest.is_empty() {
        return Err(CtlError::new(format!("{arg}: trailing garbage \"{rest}\" in argument")));
    }
    Ok((ci, col, key))
}

fn missing_operator(arg: &str, ops: &[&str]) -> String {
    let mut s = format!("{arg}: argument does not end in \"{}\"", ops[0]);
    if ops.len() == 2 {
        s += &format!(" or \"{}\"", ops[1]);
    } else if ops.len() > 2 {
        for op in &ops[1..ops.len() - 1] {
            s += &format!(", \"{op}\"");
        }
        s += &format!(", or \"{}\"", ops[ops.len() - 1]);
    }
    s + " followed by a value."
}
