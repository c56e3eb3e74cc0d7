//! The command-line text form's tokenizer, JSON quoting, number formatting and the
//! errors of both text forms (ovs-vsctl's words).

use serde_json::Value as Json;

use super::Uuid;

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
pub(super) const MAX_RANGE: u64 = 4096;

/// strtoll(s, 10) that must consume the whole string: leading white space and a sign
/// are allowed, nothing after the digits.
pub(super) fn parse_c_integer(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.strip_prefix('+').unwrap_or(t).parse().ok()
}

/// `a-b` where both are integers as above (the first may have a sign).
pub(super) fn parse_range(s: &str) -> Option<(i64, i64)> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let skip = usize::from(t.starts_with(['+', '-']));
    let dash = t[skip..].find('-')? + skip;
    Some((parse_c_integer(&t[..dash])?, parse_c_integer(&t[dash + 1..])?))
}

/// OVS's `string_needs_quotes`: a string prints bare only if it starts with a letter or
/// underscore, continues with letters, digits, `_`, `-`, `.`, and would not read back as
/// a boolean or a UUID.
pub(super) fn string_needs_quotes(s: &str) -> bool {
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
pub(super) fn json_unescape(s: &str) -> Result<String, EscapeError> {
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
pub(super) fn fmt_g15(r: f64) -> String {
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

pub(super) fn trim_zeros(s: &str) -> &str {
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

pub(super) fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_ascii_whitespace())
}
