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

use std::cmp::Ordering;
use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde_json::{Value as Json, json};

use super::schema::{AtomicType, BaseType, ColumnType};

/// A 128-bit row identifier (RFC 4122 textual form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID.
    pub fn random() -> Uuid {
        let mut b = [0u8; 16];
        let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
        if !ok {
            // /dev/urandom is always there on Linux; if it is not, fall back to
            // SipHash with a random key over the time: unique is all we need.
            use std::hash::{BuildHasher, Hasher};
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            for half in 0..2 {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(t.as_nanos());
                h.write_u32(std::process::id());
                h.write_usize(half);
                b[half * 8..half * 8 + 8].copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = ();
    /// Accepts exactly the 36-character 8-4-4-4-12 hex form (either case).
    fn from_str(s: &str) -> Result<Uuid, ()> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(());
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return Err(());
                }
                i += 1;
                continue;
            }
            let hex = |c: u8| (c as char).to_digit(16).ok_or(());
            out[n] = (hex(b[i])? * 16 + hex(b[i + 1])?) as u8;
            n += 1;
            i += 2;
        }
        Ok(Uuid(out))
    }
}

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

/// Why a value could not be parsed or does not fit its type. The texts are
/// ovs-vsctl's (lib/ovsdb-data.c, lib/ovsdb-types.c), word for word: rvsctl prints them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("\"{0}\" is not a valid range. Range end cannot be before start.")]
    RangeBackwards(String),
    #[error("\"{0}\" is not a valid integer or range")]
    NotInteger(String),
    #[error("\"{0}\" is not a valid real number")]
    NotReal(String),
    #[error("\"{0}\" is not a valid boolean (use \"true\" or \"false\")")]
    NotBoolean(String),
    #[error("An empty string is not valid as input; use \"\" to represent the empty string")]
    EmptyString,
    #[error("{0}: missing quote at end of quoted string")]
    MissingQuote(String),
    #[error("{token}: {source}")]
    Escape { token: String, source: EscapeError },
    #[error("\"{0}\" is not a valid UUID")]
    NotUuid(String),
    #[error("constraint violation: Range \"{start}-{end}\" is too big. Maximum allowed size is {MAX_RANGE}.")]
    RangeTooBig { start: i64, end: i64 },
    /// `value` and `allowed` in their command-line forms.
    #[error("constraint violation: {value} is not one of the allowed values ([{allowed}])")]
    NotAllowed { value: String, allowed: String },
    #[error("constraint violation: {value} is not in the valid range {min} to {max} (inclusive)")]
    OutOfRange { value: i64, min: i64, max: i64 },
    #[error("constraint violation: {value} is less than minimum allowed value {min}")]
    BelowMinimum { value: i64, min: i64 },
    #[error("constraint violation: {value} is greater than maximum allowed value {max}")]
    AboveMaximum { value: i64, max: i64 },
    #[error("{0}: backslash at end of argument")]
    TrailingBackslash(String),
    #[error("{0}: quoted string extends past end of argument")]
    UnclosedQuote(String),
    #[error("use \"{{}}\" to specify the empty map")]
    EmptyMapSyntax,
    #[error("use \"[]\" to specify the empty set")]
    EmptySetSyntax,
    /// `english` is the column type as ovs-vsctl words it ([`ColumnType::english`]).
    #[error("{input}: unexpected \"{delim}\" parsing {english}")]
    UnexpectedDelimiter { input: String, delim: char, english: String },
    #[error("{at_token}: syntax error at \"{found}\" expecting \"=\"")]
    ExpectingEquals { at_token: String, found: String },
    #[error("{input}: missing \"{delim}\" at end of data")]
    MissingEnd { input: String, delim: char },
    #[error("{input}: trailing garbage after \"{delim}\"")]
    TrailingGarbage { input: String, delim: char },
    /// `what` is "value(s)" or "pair(s)".
    #[error("{input}: {count} {what} specified but the minimum number is {min}")]
    TooFew { input: String, count: usize, what: &'static str, min: u32 },
    #[error("{input}: {count} {what} specified but the maximum number is {max}")]
    TooMany { input: String, count: usize, what: &'static str, max: u32 },
    #[error("{0}: map contains duplicate key")]
    DuplicateKey(String),
    #[error("{0}: set contains duplicate value")]
    DuplicateValue(String),
    /// JSON of the wrong type for a column (the database file or the control protocol).
    #[error("expected {expected} but got {got}")]
    JsonType { expected: &'static str, got: Json },
    #[error("expected a map but got {0}")]
    JsonNotMap(Json),
    #[error("bad map pair {0}")]
    JsonBadPair(Json),
    #[error("bad set {0}")]
    JsonBadSet(Json),
}

/// A bad escape inside a quoted string, worded as OVS's JSON parser does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("quoted string may not include unescaped \"")]
    UnescapedQuote,
    #[error("quoted string may not end with backslash")]
    TrailingBackslash,
    #[error("malformed \\u escape")]
    MalformedU,
    #[error("malformed escaped surrogate pair")]
    MalformedSurrogatePair,
    #[error("invalid UTF-16 surrogate")]
    InvalidSurrogate,
    #[error("bad escape \\{0}")]
    BadEscape(char),
}

/// Largest integer range `a-b` accepted in one token.
const MAX_RANGE: u64 = 4096;

/// strtoll(s, 10) that must consume the whole string: leading white space and a sign
/// are allowed, nothing after the digits.
fn parse_c_integer(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.strip_prefix('+').unwrap_or(t).parse().ok()
}

/// `a-b` where both are integers as above (the first may have a sign).
fn parse_range(s: &str) -> Option<(i64, i64)> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let skip = usize::from(t.starts_with(['+', '-']));
    let dash = t[skip..].find('-')? + skip;
    Some((parse_c_integer(&t[..dash])?, parse_c_integer(&t[dash + 1..])?))
}

/// OVS's `string_needs_quotes`: a string prints bare only if it starts with a letter or
/// underscore, continues with letters, digits, `_`, `-`, `.`, and would not read back as
/// a boolean or a UUID.
fn string_needs_quotes(s: &str) -> bool {
    let mut b = s.bytes();
    match b.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
        _ => return true,
    }
    if !b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')) {
        return true;
    }
    s == "true" || s == "false" || s.parse::<Uuid>().is_ok()
}

/// A JSON string literal the way OVS's JSON serializer writes it: `"` and `\` escaped,
/// \b \f \n \r \t by name, other control characters as \u00XX, everything else as is.
pub fn json_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Undoes JSON string escapes (the inside of a quoted string), with OVS's messages.
fn json_unescape(s: &str) -> Result<String, EscapeError> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '"' => return Err(EscapeError::UnescapedQuote),
            '\\' => {
                let e = it.next().ok_or(EscapeError::TrailingBackslash)?;
                match e {
                    '"' | '\\' | '/' => out.push(e),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex: String = it.by_ref().take(4).collect();
                        let cp = u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 4).ok_or(EscapeError::MalformedU)?;
                        let ch = if (0xd800..0xdc00).contains(&cp) {
                            // a surrogate pair: \uD8xx\uDCxx
                            let rest: String = it.by_ref().take(6).collect();
                            let lo = rest
                                .strip_prefix("\\u")
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .filter(|lo| (0xdc00..0xe000).contains(lo))
                                .ok_or(EscapeError::MalformedSurrogatePair)?;
                            char::from_u32(0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00))
                        } else {
                            char::from_u32(cp)
                        };
                        out.push(ch.ok_or(EscapeError::InvalidSurrogate)?);
                    }
                    other => return Err(EscapeError::BadEscape(other)),
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// printf("%.15g") for reals.
fn fmt_g15(r: f64) -> String {
    if r.is_nan() {
        return "nan".into();
    }
    if r.is_infinite() {
        return if r > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if r == 0.0 {
        return "0".into();
    }
    let exp = format!("{r:.14e}");
    let (mant, e) = exp.split_once('e').unwrap_or((&exp, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    if !(-4..15).contains(&e) {
        let mant = trim_zeros(mant);
        format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else {
        let decimals = (14 - e).max(0) as usize;
        trim_zeros(&format!("{r:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// Splits a token off the front of `s` by OVS's tokenizer rules: it ends at a delimiter
/// (`:=, []{}!<>`) outside double quotes; a backslash escapes the next character (and is
/// kept inside quotes); quotes are kept. Returns (token, rest).
pub fn next_token(s: &str) -> Result<(String, &str), ValueError> {
    let mut out = String::new();
    let mut in_quotes = false;
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        if c == '\\' {
            if in_quotes {
                out.push('\\');
            }
            match it.next() {
                Some((_, n)) => out.push(n),
                None => return Err(ValueError::TrailingBackslash(s.into())),
            }
        } else if !in_quotes && is_delim(c) {
            return Ok((out, &s[i..]));
        } else {
            out.push(c);
            if c == '"' {
                in_quotes = !in_quotes;
            }
        }
    }
    if in_quotes {
        return Err(ValueError::UnclosedQuote(s.into()));
    }
    Ok((out, ""))
}

/// OVS's token delimiters.
pub fn is_delim(c: char) -> bool {
    ":=, []{}!<>".contains(c)
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_ascii_whitespace())
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
            if let (Some(want), Some(vals)) = (value, self.values.as_ref()) {
                if &vals[i] != want {
                    return false;
                }
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

#[cfg(test)]
mod tests {
    use super::super::schema::*;
    use super::*;

    fn cli(ty: &ColumnType, s: &str) -> Result<String, String> {
        Datum::from_cli(ty, s, None).map(|d| d.to_cli(ty)).map_err(|e| e.to_string())
    }

    const TAG: ColumnType = optional(int_range(0, 4095));
    const TRUNKS: ColumnType = set_range(int_range(0, 4095), 0, 4096);
    const MODE: ColumnType = optional(string_enum(&["access", "dot1q-tunnel", "native-tagged", "native-untagged", "trunk"]));

    #[test]
    fn uuid_text() {
        let u: Uuid = "56a00daa-3c06-4ba8-8428-1f1ce0e6b9d7".parse().unwrap();
        assert_eq!(u.to_string(), "56a00daa-3c06-4ba8-8428-1f1ce0e6b9d7");
        assert!("56a00daa-3c06-4ba8-8428-1f1ce0e6b9d".parse::<Uuid>().is_err());
        assert!("56a00daa+3c06-4ba8-8428-1f1ce0e6b9d7".parse::<Uuid>().is_err());
        let r = Uuid::random();
        assert_ne!(r, Uuid::random());
        assert_eq!(r.to_string().as_bytes()[14], b'4');
    }

    #[test]
    fn integers_and_ranges() {
        assert_eq!(cli(&TAG, "10"), Ok("10".into()));
        assert_eq!(cli(&TAG, " 5"), Ok("5".into()));
        assert_eq!(cli(&TAG, "[]"), Ok("[]".into()));
        assert_eq!(cli(&TAG, "abc"), Err("\"abc\" is not a valid integer or range".into()));
        assert_eq!(cli(&TAG, "0x10"), Err("\"0x10\" is not a valid integer or range".into()));
        assert_eq!(cli(&TAG, "1.5"), Err("\"1.5\" is not a valid integer or range".into()));
        assert_eq!(cli(&TAG, "5000"), Err("constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)".into()));
        assert_eq!(cli(&TAG, "-1"), Err("constraint violation: -1 is not in the valid range 0 to 4095 (inclusive)".into()));
        assert_eq!(cli(&TAG, "[1,2]"), Err("[1,2]: 2 value(s) specified but the maximum number is 1".into()));
        assert_eq!(cli(&TRUNKS, "10-12"), Ok("[10, 11, 12]".into()));
        assert_eq!(cli(&TRUNKS, "120,130"), Ok("[120, 130]".into()));
        assert_eq!(cli(&TRUNKS, "[5000]"), Err("constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)".into()));
        assert_eq!(cli(&TRUNKS, "12-10"), Err("\"12-10\" is not a valid range. Range end cannot be before start.".into()));
        assert_eq!(cli(&TRUNKS, "1,1"), Err("1,1: set contains duplicate value".into()));
        assert_eq!(cli(&TRUNKS, ""), Err("use \"[]\" to specify the empty set".into()));
        assert_eq!(cli(&optional(int_min(1)), "0"), Err("constraint violation: 0 is less than minimum allowed value 1".into()));
    }

    #[test]
    fn strings_and_enums() {
        assert_eq!(cli(&MODE, "native-tagged"), Ok("native-tagged".into()));
        assert_eq!(
            cli(&MODE, "bogus"),
            Err("constraint violation: bogus is not one of the allowed values ([access, dot1q-tunnel, native-tagged, native-untagged, trunk])".into())
        );
        let s = scalar(string());
        assert_eq!(cli(&s, "\"x y\""), Ok("\"x y\"".into()));
        assert_eq!(cli(&s, "1ab"), Ok("\"1ab\"".into()));
        assert_eq!(cli(&s, "ab1"), Ok("ab1".into()));
        assert_eq!(cli(&s, "\"true\""), Ok("\"true\"".into()));
        assert_eq!(cli(&s, "\"tab\\tx\""), Ok("\"tab\\tx\"".into()));
        assert_eq!(cli(&s, "\"é\""), Ok("\"é\"".into()));
        assert_eq!(cli(&s, "\"unterminated"), Err("\"unterminated: quoted string extends past end of argument".into()));
        assert_eq!(cli(&s, "\"x\\y\""), Err("\"x\\y\": bad escape \\y".into()));
        assert_eq!(cli(&s, "\"\""), Ok("\"\"".into()));
    }

    #[test]
    fn maps() {
        let m = smap();
        assert_eq!(cli(&m, "{a=b, c=\"d e\"}"), Ok("{a=b, c=\"d e\"}".into()));
        assert_eq!(cli(&m, "a=b"), Ok("{a=b}".into()));
        assert_eq!(cli(&m, "{}"), Ok("{}".into()));
        assert_eq!(cli(&m, "{a=b"), Err("{a=b: missing \"}\" at end of data".into()));
        assert_eq!(cli(&m, "{a}"), Err("a}: syntax error at \"}\" expecting \"=\"".into()));
        assert_eq!(cli(&m, "{a=b, a=c}"), Err("{a=b, a=c}: map contains duplicate key".into()));
        assert_eq!(cli(&m, "{a=b} x"), Err("{a=b} x: trailing garbage after \"}\"".into()));
        assert_eq!(cli(&m, ""), Err("use \"{}\" to specify the empty map".into()));
    }

    #[test]
    fn booleans() {
        let b = scalar(boolean());
        for t in ["true", "yes", "on", "1"] {
            assert_eq!(cli(&b, t), Ok("true".into()));
        }
        assert_eq!(cli(&b, "off"), Ok("false".into()));
        assert_eq!(cli(&b, "maybe"), Err("\"maybe\" is not a valid boolean (use \"true\" or \"false\")".into()));
    }

    #[test]
    fn json_round_trip() {
        let m = smap();
        let d = Datum::from_cli(&m, "{remote_ip=\"198.19.0.2\", key=\"5000\"}", None).unwrap();
        let j = d.to_json();
        assert_eq!(j.to_string(), r#"["map",[["key","5000"],["remote_ip","198.19.0.2"]]]"#);
        assert_eq!(Datum::from_json(&m, &j).unwrap(), d);
        let t = Datum::from_cli(&TRUNKS, "[10,20]", None).unwrap();
        assert_eq!(t.to_json().to_string(), r#"["set",[10,20]]"#);
        assert_eq!(Datum::from_json(&TRUNKS, &t.to_json()).unwrap(), t);
        let one = Datum::integer(10);
        assert_eq!(one.to_json().to_string(), "10");
        let u = Datum::uuid("56a00daa-3c06-4ba8-8428-1f1ce0e6b9d7".parse().unwrap());
        assert_eq!(u.to_json().to_string(), r#"["uuid","56a00daa-3c06-4ba8-8428-1f1ce0e6b9d7"]"#);
    }

    #[test]
    fn symbols_resolve() {
        let ty = optional(uuid_ref("QoS"));
        let fixed: Uuid = "56a00daa-3c06-4ba8-8428-1f1ce0e6b9d7".parse().unwrap();
        let mut f = |_: &str| fixed;
        let d = Datum::from_cli(&ty, "@qos", Some(&mut f)).unwrap();
        assert_eq!(d.as_uuid(), Some(fixed));
        assert!(Datum::from_cli(&ty, "@qos", None).is_err());
    }

    #[test]
    fn reals() {
        assert_eq!(fmt_g15(1.5), "1.5");
        assert_eq!(fmt_g15(100.0), "100");
        assert_eq!(fmt_g15(1e20), "1e+20");
        assert_eq!(fmt_g15(0.0001), "0.0001");
        assert_eq!(fmt_g15(1.0 / 3.0), "0.333333333333333");
    }

    #[test]
    fn tokenizer() {
        assert_eq!(next_token("a:b").unwrap(), ("a".into(), ":b"));
        assert_eq!(next_token("\"a:b\"=c").unwrap(), ("\"a:b\"".into(), "=c"));
        assert_eq!(next_token("a\\:b").unwrap(), ("a:b".into(), ""));
        assert!(next_token("a\\").is_err());
    }
}
