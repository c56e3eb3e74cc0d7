//! Black-box tests of rvs-vswitchd's control protocol (what rvsctl speaks): snapshots,
//! optimistic transactions with conflicts, schema checks and garbage collection done by
//! the daemon, appctl answers. No root needed: no device is created (ports named here
//! do not exist, so they show OVS's "could not open network device" error).

use std::time::Duration;

use rvs_ovsdb::proto::{Client, Request, Response};
use rvs_ovsdb::view::{Bridge, Interface, OpenVswitch, Port};
use rvs_ovsdb::{Atom, Datum, Db, RowOp, Uuid, tables};
use rvs_testkit::*;

fn client(d: &Daemon) -> Client {
    Client::connect(&d.socket(), Duration::from_secs(10)).expect("connect")
}

fn snapshot(c: &mut Client) -> Db {
    match c.call(&Request::Snapshot).expect("snapshot") {
        Response::Snapshot { db } => Db::from_json(&db).expect("db json"),
        other => panic!("unexpected {other:?}"),
    }
}

fn commit(c: &mut Client, base: &Db, new: &Db) -> Response {
    c.call(&Request::Commit { base_generation: base.generation, ops: base.diff(new), wait: true }).expect("commit")
}

/// Adds bridge `br` with one system port `port` to a copy of `db`.
fn with_bridge(db: &Db, br: &str, port: &str) -> Db {
    let mut n = db.clone();
    let i = n.insert_new(Interface::TABLE);
    n.set_col(Interface::NAME, &i, Datum::string(port));
    let p = n.insert_new(Port::TABLE);
    n.set_col(Port::NAME, &p, Datum::string(port));
    n.set_col(Port::INTERFACES, &p, Datum::uuid(i));
    let b = n.insert_new(Bridge::TABLE);
    n.set_col(Bridge::NAME, &b, Datum::string(br));
    n.set_col(Bridge::PORTS, &b, Datum::uuid(p));
    let root = n.root().unwrap().0;
    let mut brs = n.col(OpenVswitch::BRIDGES, &root).unwrap().clone();
    brs.insert(Atom::Uuid(b), None);
    n.set_col(OpenVswitch::BRIDGES, &root, brs);
    n
}

#[test]
fn commit_applies_reports_port_errors_and_persists() {
    let d = Daemon::start("pc", None);
    let mut c = client(&d);
    let base = snapshot(&mut c);
    assert!(base.root().is_some(), "the daemon creates the Open_vSwitch row");
    let next = with_bridge(&base, "brp", "rvs-nodev0");
    let Response::Committed { generation, db } = commit(&mut c, &base, &next) else { panic!("not committed") };
    assert_eq!(generation, base.generation + 1);
    let db = Db::from_json(&db).unwrap();
    let i = db.find_by_name(tables::INTERFACE, "rvs-nodev0").unwrap();
    assert_eq!(db.col(Interface::ERROR, &i).and_then(Datum::as_str), Some("could not open network device rvs-nodev0 (No such device)"));
    assert_eq!(db.col(Interface::OFPORT, &i).and_then(Datum::as_int), Some(-1));
    // Durable: a restarted daemon has it.
    d.stop();
    assert!(d.try_start().status.success());
    let mut c = client(&d);
    assert!(snapshot(&mut c).find_by_name(tables::BRIDGE, "brp").is_some());
}

#[test]
fn stale_generation_is_a_conflict_and_changes_nothing() {
    let d = Daemon::start("pk", None);
    let mut c = client(&d);
    let base = snapshot(&mut c);
    assert!(matches!(commit(&mut c, &base, &with_bridge(&base, "bra", "rvs-nodev1")), Response::Committed { .. }));
    // A second client still working from the old snapshot.
    let r = commit(&mut c, &base, &with_bridge(&base, "brb", "rvs-nodev2"));
    assert!(matches!(r, Response::Conflict { generation } if generation == base.generation + 1), "{r:?}");
    let now = snapshot(&mut c);
    assert!(now.find_by_name(tables::BRIDGE, "brb").is_none());
    assert!(now.find_by_name(tables::BRIDGE, "bra").is_some());
}

#[test]
fn daemon_enforces_schema_and_collects_garbage() {
    let d = Daemon::start("ps", None);
    let mut c = client(&d);
    let base = snapshot(&mut c);
    // A dangling reference is refused with OVSDB's wording and changes nothing.
    let mut bad = with_bridge(&base, "brx", "rvs-nodev3");
    let p = bad.find_by_name(tables::PORT, "rvs-nodev3").unwrap();
    bad.set_col(Port::INTERFACES, &p, Datum::uuid(Uuid::random()));
    match commit(&mut c, &base, &bad) {
        Response::Error { message } => assert!(message.contains("referential integrity violation"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A tag out of range (a client bypassing rvsctl's checks) is refused too.
    let mut bad = with_bridge(&base, "bry", "rvs-nodev4");
    let p = bad.find_by_name(tables::PORT, "rvs-nodev4").unwrap();
    bad.set_col(Port::TAG, &p, Datum::integer(5000));
    assert!(matches!(commit(&mut c, &base, &bad), Response::Error { .. }));
    assert_eq!(snapshot(&mut c).generation, base.generation);
    // Dropping the bridge from Open_vSwitch.bridges deletes bridge, port and interface.
    let good = with_bridge(&base, "brz", "rvs-nodev5");
    let Response::Committed { .. } = commit(&mut c, &base, &good) else { panic!() };
    let cur = snapshot(&mut c);
    let mut gone = cur.clone();
    let root = gone.root().unwrap().0;
    gone.set_col(OpenVswitch::BRIDGES, &root, Datum::set(vec![]));
    // Only the root changes in the ops the client sends; the daemon collects the rest.
    let ops: Vec<RowOp> = cur.diff(&gone);
    assert_eq!(ops.len(), 1);
    let r = c.call(&Request::Commit { base_generation: cur.generation, ops, wait: true }).unwrap();
    assert!(matches!(r, Response::Committed { .. }), "{r:?}");
    let after = snapshot(&mut c);
    assert!(after.tables[tables::BRIDGE].is_empty() && after.tables[tables::PORT].is_empty() && after.tables[tables::INTERFACE].is_empty());
}

#[test]
fn appctl_answers_like_ovs_vswitchd() {
    let d = Daemon::start("pa", None);
    let mut c = client(&d);
    let base = snapshot(&mut c);
    let Response::Committed { .. } = commit(&mut c, &base, &with_bridge(&base, "brq", "rvs-nodev6")) else { panic!() };
    let ask = |c: &mut Client, cmd: &str, args: &[&str]| match c
        .call(&Request::Appctl { command: cmd.into(), args: args.iter().map(|s| s.to_string()).collect() })
        .unwrap()
    {
        Response::Appctl { ok, output } => (ok, output),
        other => panic!("{other:?}"),
    };
    assert_eq!(ask(&mut c, "fdb/show", &["brq"]), (true, " port  VLAN  MAC                Age\n".to_string()));
    assert_eq!(ask(&mut c, "fdb/show", &["nope"]), (false, "no such bridge\n".to_string()));
    assert_eq!(ask(&mut c, "fdb/show", &[]), (false, "\"fdb/show\" command requires at least 1 arguments\n".to_string()));
    assert_eq!(ask(&mut c, "fdb/flush", &[]), (true, "table successfully flushed\n".to_string()));
    assert_eq!(ask(&mut c, "fdb/stats-clear", &["brq"]), (true, "statistics successfully cleared\n".to_string()));
    let (ok, s) = ask(&mut c, "fdb/stats-show", &["brq"]);
    assert!(ok && s.starts_with("Statistics for bridge \"brq\":\n  Current/maximum MAC entries in the table: 0/8192\n"), "{s}");
    let (ok, s) = ask(&mut c, "fdb/add", &["brq", "rvs-nodev6", "10", "02:00:00:00:00:01"]);
    assert!(!ok && s == "software error, odp port is present but no ofp port\n", "a port without ofport: {s}");
    assert_eq!(ask(&mut c, "fdb/add", &["brq", "x", "10", "zz"]).1, "bad MAC address\n");
    assert_eq!(ask(&mut c, "fdb/del", &["brq", "10", "02:00:00:00:00:01"]).1, "could not find static mac entry\n");
    let (ok, s) = ask(&mut c, "dpif/show", &[]);
    assert!(ok && s.contains("  brq:\n") && s.contains("    rvs-nodev6 none/none: (system)\n"), "{s}");
    assert!(ask(&mut c, "list-commands", &[]).1.starts_with("The available commands are:\n"));
    assert!(ask(&mut c, "version", &[]).1.starts_with("rvs-vswitchd (rvs) "));
    let (ok, s) = ask(&mut c, "bogus", &[]);
    assert!(!ok && s == "\"bogus\" is not a valid command (use \"list-commands\" to see a list of valid commands)\n");
    assert!(ask(&mut c, "vlog/set", &["ANY:file:dbg"]).0);
    assert!(ask(&mut c, "vlog/list", &[]).1.contains("DBG"));
}

/// A client may write several requests at once, split anywhere: each gets its answer,
/// in order, on the same connection.
#[test]
fn requests_sent_together_are_answered_in_order() {
    use std::io::Write;
    let d = Daemon::start("pm", None);
    let reqs = [
        Request::Appctl { command: "version".into(), args: vec![] },
        Request::Appctl { command: "bogus".into(), args: vec![] },
        Request::Snapshot,
        Request::Appctl { command: "fdb/show".into(), args: vec!["nope".into()] },
    ];
    let stream: Vec<u8> = reqs.iter().flat_map(|r| rvs_ovsdb::proto::encode(r).unwrap()).collect();
    let check = |s: &mut std::os::unix::net::UnixStream| {
        let answers: Vec<Response> = (0..reqs.len()).map(|_| rvs_ovsdb::proto::decode(&rvs_ovsdb::proto::read_frame(s).expect("answer")).unwrap()).collect();
        assert!(matches!(&answers[0], Response::Appctl { ok: true, output } if output.starts_with("rvs-vswitchd")), "{answers:?}");
        assert!(matches!(&answers[1], Response::Appctl { ok: false, output } if output.contains("not a valid command")), "{answers:?}");
        assert!(matches!(&answers[2], Response::Snapshot { .. }), "{answers:?}");
        assert!(matches!(&answers[3], Response::Appctl { ok: false, output } if output == "no such bridge\n"), "{answers:?}");
    };
    let connect = || {
        let s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // All four in one write.
    let mut s = connect();
    s.write_all(&stream).unwrap();
    check(&mut s);
    // Cut in pieces that split headers and bodies, with pauses between them.
    let mut s = connect();
    for piece in stream.chunks(7) {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    check(&mut s);
}
