//! Tests of database values.

use super::*;
use crate::schema::*;

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
