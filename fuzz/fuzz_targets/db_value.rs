//! ovsdb value syntax as rvsctl parses command-line values: any string, for every
//! column type of the schema, must parse or give an error — never panic — and what
//! parses must print and parse back to the same value.
#![no_main]

use rvs_ovsdb::{Datum, TABLES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for t in TABLES.iter().filter(|t| t.supported) {
        for c in t.columns {
            if let Ok(d) = Datum::from_cli(&c.ty, s, None) {
                let text = d.to_cli(&c.ty);
                let back = Datum::from_cli(&c.ty, &text, None).expect("printed value parses");
                assert_eq!(back, d, "{}.{}: {s:?} -> {text:?}", t.name, c.name);
                let _ = d.to_bare();
                assert_eq!(Datum::from_json(&c.ty, &d.to_json()).expect("json"), d);
            }
        }
    }
});
