use super::*;
use rvs_ovsdb::view::Port;

/// Bridge `br0` with ports p1, p2, p3 and one Mirror row `m0` it lists; `other` is a
/// port of no bridge.
struct Fixture {
    db: Db,
    br: Uuid,
    ports: [Uuid; 3],
    other: Uuid,
    m: Uuid,
}

fn fixture() -> Fixture {
    let mut db = Db::default();
    let port = |db: &mut Db, name: &str| {
        let p = db.insert_new(Port::TABLE);
        db.set_col(Port::NAME, &p, Datum::string(name));
        p
    };
    let ports = [port(&mut db, "p1"), port(&mut db, "p2"), port(&mut db, "p3")];
    let other = port(&mut db, "elsewhere");
    let br = db.insert_new(Bridge::TABLE);
    db.set_col(Bridge::NAME, &br, Datum::string("br0"));
    db.set_col(Bridge::PORTS, &br, Datum::set(ports.iter().map(|p| Atom::Uuid(*p)).collect()));
    let m = db.insert_new(Mirror::TABLE);
    db.set_col(Mirror::NAME, &m, Datum::string("m0"));
    db.set_col(Bridge::MIRRORS, &br, Datum::uuid(m));
    Fixture { db, br, ports, other, m }
}

#[test]
fn select_all_takes_every_port_and_the_output_port() {
    let mut f = fixture();
    f.db.set_col(Mirror::SELECT_ALL, &f.m, Datum::boolean(true));
    f.db.set_col(Mirror::OUTPUT_PORT, &f.m, Datum::uuid(f.ports[2]));
    f.db.set_col(Mirror::SNAPLEN, &f.m, Datum::integer(100));
    let (ms, notes) = plan(&f.db, &f.br);
    assert!(notes.is_empty(), "{notes:?}");
    let mut want: Vec<Uuid> = f.ports.to_vec();
    want.sort();
    let mut srcs = ms[0].srcs.clone();
    srcs.sort();
    assert_eq!(srcs, want);
    assert_eq!((ms[0].out.clone(), ms[0].snaplen, ms[0].name.as_str()), (PlannedOut::Port(f.ports[2]), 100, "m0"));
    let key = |p: &Uuid| f.ports.iter().position(|q| q == p).map(|i| i as u32 + 1);
    let c = ms[0].core(key);
    assert_eq!(c.out, MirrorOut::Port(3));
    assert_eq!(c.snaplen, 100);
}

#[test]
fn bad_rows_are_logged_and_ignored_as_ovs_does() {
    let mut f = fixture();
    let (ms, notes) = plan(&f.db, &f.br);
    assert!(ms.is_empty());
    assert_eq!(notes, vec![(f.m, "bridge br0: mirror m0 does not specify output; ignoring".to_string())]);
    f.db.set_col(Mirror::OUTPUT_PORT, &f.m, Datum::uuid(f.other));
    let (ms, notes) = plan(&f.db, &f.br);
    assert!(ms.is_empty());
    assert_eq!(notes[0].1, "bridge br0: mirror m0 outputs to port not on bridge");
    // Both: the port wins.
    f.db.set_col(Mirror::OUTPUT_PORT, &f.m, Datum::uuid(f.ports[0]));
    f.db.set_col(Mirror::OUTPUT_VLAN, &f.m, Datum::integer(99));
    let (ms, notes) = plan(&f.db, &f.br);
    assert_eq!(ms[0].out, PlannedOut::Port(f.ports[0]));
    assert_eq!(notes[0].1, "bridge br0: mirror m0 specifies both output port and output vlan; ignoring output vlan");
    // An output port that is also a source: accepted as OVS 3.1 accepts it, and logged.
    f.db.set_col(Mirror::SELECT_SRC_PORT, &f.m, Datum::set(vec![Atom::Uuid(f.ports[0]), Atom::Uuid(f.other)]));
    f.db.set_col(Mirror::OUTPUT_VLAN, &f.m, Datum::set(vec![]));
    let (ms, notes) = plan(&f.db, &f.br);
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].1,
        "bridge br0: mirror m0 selects its output port p1 as a source: an output port takes no part in forwarding, so nothing it receives is mirrored"
    );
    assert_eq!(ms[0].srcs, vec![f.ports[0]], "ports not on the bridge are dropped");
}

#[test]
fn rspan_reads_output_vlan_select_vlan_and_flood_vlans() {
    let mut f = fixture();
    f.db.set_col(Mirror::OUTPUT_VLAN, &f.m, Datum::integer(99));
    f.db.set_col(Mirror::SELECT_VLAN, &f.m, Datum::set(vec![Atom::Integer(10), Atom::Integer(20)]));
    f.db.set_col(Mirror::SELECT_DST_PORT, &f.m, Datum::uuid(f.ports[1]));
    f.db.set_col(Bridge::FLOOD_VLANS, &f.br, Datum::integer(99));
    let (ms, _) = plan(&f.db, &f.br);
    let c = ms[0].core(|_| Some(7));
    assert_eq!(c.out, MirrorOut::Vlan(VlanId::new(99).unwrap()));
    assert_eq!((c.srcs.len(), c.dsts, c.snaplen), (0, vec![7], 0));
    let vl = c.vlans.unwrap();
    assert!(vl.contains(VlanId::new(10).unwrap()) && vl.contains(VlanId::new(20).unwrap()) && !vl.contains(VlanId::new(30).unwrap()));
    assert_eq!(flood_vlans(&f.db, &f.br), vec![VlanId::new(99).unwrap()]);
}

#[test]
fn statistics_are_kept_while_applied_and_written_as_ovs_names_them() {
    let mut f = fixture();
    let mut st = MirrorState::default();
    st.stats_for(f.m);
    st.stats(&f.m).add(60);
    st.stats(&f.m).add(40);
    st.retain(&[f.m]);
    st.write(&mut f.db);
    let m = Mirror::get(&f.db, &f.m).unwrap();
    let get = |k: &str| m.statistics().get(&Atom::String(k.into())).and_then(Atom::as_int);
    assert_eq!((get("tx_packets"), get("tx_bytes")), (Some(2), Some(100)));
    st.retain(&[]);
    assert_eq!(st.stats(&f.m).tx_packets.load(Relaxed), 0, "a mirror no longer applied starts again");
}
