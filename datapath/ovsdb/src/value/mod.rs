//! Database values: UUIDs, atoms and datums, with the two text forms OVS uses.
//!
//! * The command-line form of ovs-vsctl(8) "Database Values" / ovsdb(7): atoms are
//!   decimal integers (or `a-b` ranges in sets), reals, `true`/`false` (also
//!   yes/no/on/off/1/0 on input), strings (bare, or JSON-quoted when they need it) and
//!   UUIDs; sets are `[a, b]`, maps `{k=v, …}`. Parsing follows OVS's tokenizer rules
//!   (delimiters `:=, []{}!<>`, backslash escapes, double quotes) and its error texts,
//!   because rvsctl must reject what ovs-vsctl rejects with the same words.
//! * The JSON form of RFC 7047 (`["set", […]]`, `["map", […]]`, `["uuid", "…"]`), used
//!   for `--format=json`/`--data=json`, the control protocol and the database file.
//!
//! Invariant: a [`Datum`] is sorted by key and has no duplicate keys.
//!
//! Split by concern: [`Uuid`] (`uuid`), the text forms' tokenizer, quoting and errors
//! (`text`), [`Atom`] and [`Datum`] here.

#[cfg(test)]
mod tests;
mod text;
mod uuid;

use text::*;
pub use text::{EscapeError, ValueError, is_delim, json_quote, next_token};
pub use uuid::Uuid;

use std::cmp::Ordering;

use serde_json::{Value as Json, json};

use crate::schema::{AtomicType, BaseType, ColumnType};

/// One value of an atomic type.
#[derive(Clone, Debug)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
}

impl PartialEq for Atom {
    fn eq(&self, o: &Atom) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, o: &Atom) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Atom {
    /// Same-type atoms compare as OVS compares them (strings bytewise, UUIDs as their
    /// hex text); atoms of different types (never in one datum) by type.
    fn cmp(&self, o: &Atom) -> Ordering {
        use Atom::*;
        match (self, o) {
            (Integer(a), Integer(b)) => a.cmp(b),
            (Real(a), Real(b)) => a.total_cmp(b),
            (Boolean(a), Boolean(b)) => a.cmp(b),
            (String(a), String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&o.rank()),
        }
    }
}

/// Resolves `@name` references to UUIDs while parsing (ovs-vsctl's `--id=@name`).
pub type Symbols<'a> = Option<&'a mut dyn FnMut(&str) -> Uuid>;

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }

    /// The default value of a type (0, 0.0, false, "", the all-zero UUID).
    pub fn default_of(t: AtomicType) -> Atom {
        match t {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::default()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Parses one atom of `base` from a command-line token (after tokenizing), with
    /// OVS's messages. With `allow_range`, an integer may be `a-b`; the second element
    /// of the result is then the range's end.
    pub fn from_cli(base: &BaseType, s: &str, allow_range: bool, syms: Symbols) -> Result<(Atom, Option<i64>), ValueError> {
        let (atom, end) = match base.atomic {
            AtomicType::Integer => {
                if let Some((a, b)) = allow_range.then(|| parse_range(s)).flatten() {
                    if b < a {
                        return Err(ValueError::RangeBackwards(s.into()));
                    }
                    (Atom::Integer(a), Some(b))
                } else {
                    let i = parse_c_integer(s).ok_or_else(|| ValueError::NotInteger(s.into()))?;
                    (Atom::Integer(i), None)
                }
            }
            AtomicType::Real => {
                let r: f64 = s.trim_start().parse().map_err(|_| ValueError::NotReal(s.into()))?;
                (Atom::Real(if r == 0.0 { 0.0 } else { r }), None)
            }
            AtomicType::Boolean => match s {
                "true" | "yes" | "on" | "1" => (Atom::Boolean(true), None),
                "false" | "no" | "off" | "0" => (Atom::Boolean(false), None),
                _ => return Err(ValueError::NotBoolean(s.into())),
            },
            AtomicType::String => {
                if s.is_empty() {
                    return Err(ValueError::EmptyString);
                } else if let Some(inner) = s.strip_prefix('"') {
                    if s.len() < 2 || !inner.ends_with('"') {
                        return Err(ValueError::MissingQuote(s.into()));
                    }
                    let unq = json_unescape(&inner[..inner.len() - 1]).map_err(|source| ValueError::Escape { token: s.into(), source })?;
                    (Atom::String(unq), None)
                } else {
                    (Atom::String(s.to_string()), None)
                }
            }
            AtomicType::Uuid => {
                if s.starts_with('@') {
                    match syms {
                        Some(f) => (Atom::Uuid(f(s)), None),
                        None => return Err(ValueError::NotUuid(s.into())),
                    }
                } else {
                    let u = s.parse::<Uuid>().map_err(|_| ValueError::NotUuid(s.into()))?;
                    (Atom::Uuid(u), None)
                }
            }
        };
        atom.check(base)?;
        if let Some(end) = end {
            if !base.enum_.is_empty() {
                for i in atom.as_int().unwrap_or(0) + 1..=end {
                    Atom::Integer(i).check(base)?;
                }
            } else {
                Atom::Integer(end).check(base)?;
            }
            let start = atom.as_int().unwrap_or(0);
            if (end as u64).wrapping_sub(start as u64) >= MAX_RANGE {
                return Err(ValueError::RangeTooBig { start, end });
            }
        }
        Ok((atom, end))
    }

    /// Checks enum and range constraints, with OVS's message.
    pub fn check(&self, base: &BaseType) -> Result<(), ValueError> {
        if !base.enum_.is_empty() {
            let ok = match self {
                Atom::String(s) => base.enum_.contains(&s.as_str()),
                _ => false,
            };
            if !ok {
                let valid: Vec<String> = base.enum_.iter().map(|e| Atom::String(e.to_string()).to_cli()).collect();
                return Err(ValueError::NotAllowed { value: self.to_cli(), allowed: valid.join(", ") });
            }
        }
        if let Atom::Integer(i) = *self {
            let (min, max) = (base.min_int, base.max_int);
            if i < min || i > max {
                return Err(if min != i64::MIN && max != i64::MAX {
                    ValueError::OutOfRange { value: i, min, max }
                } else if min != i64::MIN {
                    ValueError::BelowMinimum { value: i, min }
                } else {
                    ValueError::AboveMaximum { value: i, max }
                });
            }
        }
        Ok(())
    }

    /// The command-line text form (strings quoted when they need it).
    pub fn to_cli(&self) -> String {
        match self {
            Atom::Integer(i) => i.to_string(),
            Atom::Real(r) => fmt_g15(*r),
            Atom::Boolean(b) => b.to_string(),
            Atom::String(s) => {
                if string_needs_quotes(s) {
                    json_quote(s)
                } else {
                    s.clone()
                }
            }
            Atom::Uuid(u) => u.to_string(),
        }
    }

    /// The bare form (`--format=bare`, `--bare`): strings never quoted.
    pub fn to_bare(&self) -> String {
        match self {
            Atom::String(s) => s.clone(),
            _ => self.to_cli(),
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
        }
    }

    pub fn from_json(t: AtomicType, j: &Json) -> Result<Atom, ValueError> {
        let bad = || ValueError::JsonType { expected: t.name(), got: j.clone() };
        Ok(match t {
            AtomicType::Integer => Atom::Integer(j.as_i64().ok_or_else(bad)?),
            AtomicType::Real => Atom::Real(j.as_f64().ok_or_else(bad)?),
            AtomicType::Boolean => Atom::Boolean(j.as_bool().ok_or_else(bad)?),
            AtomicType::String => Atom::String(j.as_str().ok_or_else(bad)?.to_string()),
            AtomicType::Uuid => {
                let a = j.as_array().filter(|a| a.len() == 2 && a[0] == "uuid").ok_or_else(bad)?;
                Atom::Uuid(a[1].as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?)
            }
        })
    }
}

/// A column value: a sorted set of keys, or a sorted map from keys to values.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Datum {
    pub keys: Vec<Atom>,
    /// Present (and as long as `keys`) for maps.
    pub values: Option<Vec<Atom>>,
}

impl Datum {
    /// The value a new row has in a column of type `ty`: the type's default atom for
    /// scalars, empty otherwise.
    pub fn default_for(ty: &ColumnType) -> Datum {
        let keys = if ty.n_min == 1 { vec![Atom::default_of(ty.key.atomic)] } else { vec![] };
        let values = ty.value.map(|v| keys.iter().map(|_| Atom::default_of(v.atomic)).collect());
        Datum { keys, values }
    }

    pub fn empty(ty: &ColumnType) -> Datum {
        Datum { keys: vec![], values: ty.value.map(|_| vec![]) }
    }

    pub fn scalar(a: Atom) -> Datum {
        Datum { keys: vec![a], values: None }
    }

    pub fn string(s: &str) -> Datum {
        Datum::scalar(Atom::String(s.to_string()))
    }

    pub fn integer(i: i64) -> Datum {
        Datum::scalar(Atom::Integer(i))
    }

    pub fn boolean(b: bool) -> Datum {
        Datum::scalar(Atom::Boolean(b))
    }

    pub fn uuid(u: Uuid) -> Datum {
        Datum::scalar(Atom::Uuid(u))
    }

    /// A set from atoms (sorted and deduplicated here).
    pub fn set(mut atoms: Vec<Atom>) -> Datum {
        atoms.sort();
        atoms.dedup();
        Datum { keys: atoms, values: None }
    }

    /// A map from pairs (sorted here; for duplicate keys the last one wins).
    pub fn map(pairs: impl IntoIterator<Item = (Atom, Atom)>) -> Datum {
        let m: std::collections::BTreeMap<Atom, Atom> = pairs.into_iter().collect();
        let (keys, values) = m.into_iter().unzip();
        Datum { keys, values: Some(values) }
    }

    /// A string-to-string map.
    pub fn smap<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Datum {
        Datum::map(pairs.into_iter().map(|(k, v)| (Atom::String(k.into()), Atom::String(v.into()))))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn is_map(&self) -> bool {
        self.values.is_some()
    }

    /// The single key of a scalar or optional column.
    pub fn first(&self) -> Option<&Atom> {
        self.keys.first()
    }

    pub fn as_str(&self) -> Option<&str> {
        self.first().and_then(Atom::as_str)
    }

    pub fn as_int(&self) -> Option<i64> {
        self.first().and_then(Atom::as_int)
    }

    pub fn as_bool(&self) -> Option<bool> {
        self.first().and_then(Atom::as_bool)
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        self.first().and_then(Atom::as_uuid)
    }

    /// UUIDs among the keys (a reference set).
    pub fn uuids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.keys.iter().filter_map(Atom::as_uuid)
    }

    fn find(&self, key: &Atom) -> Result<usize, usize> {
        self.keys.binary_search(key)
    }

    pub fn contains(&self, key: &Atom) -> bool {
        self.find(key).is_ok()
    }

    /// The value for `key` in a map.
    pub fn get(&self, key: &Atom) -> Option<&Atom> {
        let i = self.find(key).ok()?;
        self.values.as_ref().map(|v| &v[i])
    }

    /// The (key, value) pairs of a string-to-string map; other pairs are skipped.
    pub fn str_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys.iter().zip(self.values.iter().flatten()).filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
    }

    /// The value for string key `key` in a string map, as text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(&Atom::String(key.to_string())).and_then(Atom::as_str)
    }

    /// Inserts a key (set) or a pair (map). Returns `false` if the key was present; in a
    /// map the old value is kept (OVS's `add` does not replace).
    pub fn insert(&mut self, key: Atom, value: Option<Atom>) -> bool {
        match self.find(&key) {
            Ok(_) => false,
            Err(i) => {
                self.keys.insert(i, key);
                if let (Some(vals), Some(v)) = (self.values.as_mut(), value) {
                    vals.insert(i, v);
                }
                true
            }
        }
    }

    /// Sets `key` to `value` in a map, replacing any old value.
    pub fn put(&mut self, key: Atom, value: Atom) {
        match self.find(&key) {
            Ok(i) => {
                if let Some(v) = self.values.as_mut() {
                    v[i] = value;
                }
            }
            Err(i) => {
                self.keys.insert(i, key);
                self.values.get_or_insert_with(Vec::new).insert(i, value);
            }
        }
    }

    /// Removes `key` (and, if `value` is given, only when the map holds that value).
    pub fn remove(&mut self, key: &Atom, value: Option<&Atom>) -> bool {
        if let Ok(i) = self.find(key) {
            if let (Some(want), Some(vals)) = (value, self.values.as_ref())
                && &vals[i] != want
            {
                return false;
            }
            self.keys.remove(i);
            if let Some(v) = self.values.as_mut() {
                v.remove(i);
            }
            return true;
        }
        false
    }

    /// Parses the command-line form for a column of type `ty` (ovsdb_datum_from_string).
    pub fn from_cli(ty: &ColumnType, s: &str, mut syms: Symbols) -> Result<Datum, ValueError> {
        let is_map = ty.is_map();
        let mut d = Datum::empty(ty);
        let mut p = skip_spaces(s);
        let end_delim = if p.starts_with(if is_map { '{' } else { '[' }) {
            p = skip_spaces(&p[1..]);
            Some(if is_map { '}' } else { ']' })
        } else if p.is_empty() {
            return Err(if is_map { ValueError::EmptyMapSyntax } else { ValueError::EmptySetSyntax });
        } else {
            None
        };
        let mut dup = false;
        while let Some(c) = p.chars().next() {
            if Some(c) == end_delim {
                break;
            }
            if is_delim(c) {
                return Err(ValueError::UnexpectedDelimiter { input: s.into(), delim: c, english: ty.english() });
            }
            let start = p;
            let (tok, rest) = next_token(p)?;
            let (key, range_end) = Atom::from_cli(&ty.key, &tok, true, syms.as_deref_mut().map(|f| f as _))?;
            p = rest;
            let value = if let Some(vt) = ty.value {
                p = skip_spaces(p);
                match p.strip_prefix('=') {
                    Some(r) => {
                        let (vtok, rest) = next_token(skip_spaces(r))?;
                        p = rest;
                        Some(Atom::from_cli(&vt, &vtok, false, syms.as_deref_mut().map(|f| f as _))?.0)
                    }
                    None => {
                        let at = p.chars().next().map(String::from).unwrap_or_default();
                        return Err(ValueError::ExpectingEquals { at_token: start.into(), found: at });
                    }
                }
            } else {
                None
            };
            match (range_end, key.as_int()) {
                (Some(end), Some(start)) => {
                    for i in start..=end {
                        dup |= !d.insert(Atom::Integer(i), None);
                    }
                }
                _ => dup |= !d.insert(key, value),
            }
            p = skip_spaces(p);
            if let Some(r) = p.strip_prefix(',') {
                p = skip_spaces(r);
            }
        }
        if let Some(e) = end_delim {
            if !p.starts_with(e) {
                return Err(ValueError::MissingEnd { input: s.into(), delim: e });
            }
            if !skip_spaces(&p[1..]).is_empty() {
                return Err(ValueError::TrailingGarbage { input: s.into(), delim: e });
            }
        }
        let what = if is_map { "pair(s)" } else { "value(s)" };
        if (d.len() as u64) < u64::from(ty.n_min) {
            return Err(ValueError::TooFew { input: s.into(), count: d.len(), what, min: ty.n_min });
        }
        if (d.len() as u64) > u64::from(ty.n_max) {
            return Err(ValueError::TooMany { input: s.into(), count: d.len(), what, max: ty.n_max });
        }
        if dup {
            return Err(if is_map { ValueError::DuplicateKey(s.into()) } else { ValueError::DuplicateValue(s.into()) });
        }
        Ok(d)
    }

    /// The command-line text form (ovsdb_datum_to_string).
    pub fn to_cli(&self, ty: &ColumnType) -> String {
        let brackets = ty.n_max > 1 || self.is_empty();
        let (open, close) = if ty.is_map() { ('{', '}') } else { ('[', ']') };
        let mut s = String::new();
        if brackets {
            s.push(open);
        }
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&k.to_cli());
            if let Some(v) = self.values.as_ref() {
                s.push('=');
                s.push_str(&v[i].to_cli());
            }
        }
        if brackets {
            s.push(close);
        }
        s
    }

    /// The bare form: atoms separated by spaces, maps as `k=v`, nothing quoted.
    pub fn to_bare(&self) -> String {
        let mut s = String::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&k.to_bare());
            if let Some(v) = self.values.as_ref() {
                s.push('=');
                s.push_str(&v[i].to_bare());
            }
        }
        s
    }

    /// RFC 7047 JSON: a lone atom for a one-element set, `["set", …]` otherwise,
    /// `["map", [[k, v], …]]` for maps.
    pub fn to_json(&self) -> Json {
        if let Some(vals) = &self.values {
            let pairs: Vec<Json> = self.keys.iter().zip(vals).map(|(k, v)| json!([k.to_json(), v.to_json()])).collect();
            return json!(["map", pairs]);
        }
        if self.keys.len() == 1 {
            return self.keys[0].to_json();
        }
        json!(["set", self.keys.iter().map(Atom::to_json).collect::<Vec<_>>()])
    }

    /// Reads the JSON form for a column of type `ty`.
    pub fn from_json(ty: &ColumnType, j: &Json) -> Result<Datum, ValueError> {
        if ty.is_map() {
            let vt = ty.value.map(|v| v.atomic).unwrap_or(AtomicType::String);
            let pairs =
                j.as_array().filter(|a| a.len() == 2 && a[0] == "map").and_then(|a| a[1].as_array()).ok_or_else(|| ValueError::JsonNotMap(j.clone()))?;
            let mut d = Datum::empty(ty);
            for p in pairs {
                let kv = p.as_array().filter(|kv| kv.len() == 2).ok_or_else(|| ValueError::JsonBadPair(p.clone()))?;
                d.insert(Atom::from_json(ty.key.atomic, &kv[0])?, Some(Atom::from_json(vt, &kv[1])?));
            }
            return Ok(d);
        }
        if let Some(a) = j.as_array().filter(|a| a.len() == 2 && a[0] == "set") {
            let elems = a[1].as_array().ok_or_else(|| ValueError::JsonBadSet(j.clone()))?;
            let atoms = elems.iter().map(|e| Atom::from_json(ty.key.atomic, e)).collect::<Result<Vec<_>, _>>()?;
            return Ok(Datum::set(atoms));
        }
        Ok(Datum::scalar(Atom::from_json(ty.key.atomic, j)?))
    }

    /// Checks element count and every atom's constraints against `ty`.
    pub fn check(&self, ty: &ColumnType) -> Result<(), ValueError> {
        for k in &self.keys {
            k.check(&ty.key)?;
        }
        if let (Some(vals), Some(vt)) = (&self.values, &ty.value) {
            for v in vals {
                v.check(vt)?;
            }
        }
        Ok(())
    }
}
