//! ovsdb value syntax as rvsctl parses command-line values: any string, for any
//! column type of the schema, must parse or give an error — never panic — and what
//! parses must print and parse back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_ovsdb::{ColumnSchema, Datum, TABLES, TableSchema};

/// Every column of the supported tables, in schema order.
fn columns() -> &'static [(&'static TableSchema, &'static ColumnSchema)] {
    static ALL: std::sync::OnceLock<Vec<(&'static TableSchema, &'static ColumnSchema)>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| TABLES.iter().filter(|t| t.supported).flat_map(|t| t.columns.iter().map(move |c| (t, c))).collect())
}

// The first two bytes choose the column (so one input tries one column, and the
// fuzzer keeps for each column the inputs that reach new code); the rest is the text.
fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let Ok(s) = std::str::from_utf8(rest) else { return };
    let all = columns();
    let (t, c) = all[usize::from(u16::from_le_bytes([*a, *b])) % all.len()];
    if let Ok(d) = Datum::from_cli(&c.ty, s, None) {
        let text = d.to_cli(&c.ty);
        let back = Datum::from_cli(&c.ty, &text, None).expect("printed value parses");
        assert_eq!(back, d, "{}.{}: {s:?} -> {text:?}", t.name, c.name);
        let _ = d.to_bare();
        assert_eq!(Datum::from_json(&c.ty, &d.to_json()).expect("json"), d);
    }
});
