use super::*;
use rvs_ovsdb::view::Port;
use rvs_ovsdb::{Atom, Datum, Db};

fn smap(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A veth as the kernels here report it: MTU 1500, 10 Gbit/s, psched 15.625 MHz.
const VETH: DevFacts = DevFacts { mtu: 1500, speed_mbps: Some(10_000), ticks_per_s: 15_625_000.0, buffer_hz: 1_000_000_000 };

/// What libvirt makes of `<inbound average='12500' peak='12500' burst='128'/>`: QoS and
/// queue 0 with min-rate, max-rate and burst in bits.
fn libvirt_spec() -> QosSpec {
    let q = smap(&[("min-rate", "100000000"), ("max-rate", "100000000"), ("burst", "1048576")]);
    QosSpec { ty: "linux-htb".into(), other_config: q.clone(), queues: [(0, q)].into() }
}

#[test]
fn spec_is_read_from_the_port_qos_and_queues() {
    let mut db = Db::default();
    let port = db.insert_new(Port::TABLE);
    let qos = db.insert_new(Qos::TABLE);
    let queue = db.insert_new(Queue::TABLE);
    db.set_col(Port::QOS, &port, Datum::uuid(qos));
    db.set_col(Qos::TYPE, &qos, Datum::string("linux-htb"));
    db.set_col(Qos::OTHER_CONFIG, &qos, Datum::smap([("max-rate", "100000000")]));
    db.set_col(Qos::QUEUES, &qos, Datum::map([(Atom::Integer(0), Atom::Uuid(queue))]));
    db.set_col(Queue::OTHER_CONFIG, &queue, Datum::smap([("min-rate", "1000000")]));
    let s = spec_for(&db, &port).unwrap();
    assert_eq!(s.ty, "linux-htb");
    assert_eq!(s.other_config, smap(&[("max-rate", "100000000")]));
    assert_eq!(s.queues, [(0, smap(&[("min-rate", "1000000")]))].into());
    // An empty type is no QoS, as in OVS.
    db.set_col(Qos::TYPE, &qos, Datum::string(""));
    assert_eq!(spec_for(&db, &port), None);
}

#[test]
fn htb_as_ovs_computes_it() {
    let p = qdisc_plan(&libvirt_spec(), &VETH).unwrap();
    assert_eq!((p.ty, p.max_rate, p.root), ("linux-htb", 12_500_000, RootQdisc::Htb { defcls: 1 }));
    let root = &p.classes[0];
    assert_eq!((root.queue, root.handle, root.parent), (None, 0x1_fffe, 0x1_0000));
    let q0 = &p.classes[1];
    assert_eq!((q0.queue, q0.handle, q0.parent), (Some(0), 0x1_0001, 0x1_fffe));
    let ClassOpt::Htb { opt, .. } = q0.opt else { panic!("{:?}", q0.opt) };
    assert_eq!((opt.rate.rate, opt.ceil.rate, opt.rate.cell_log, opt.rate.mpu), (12_500_000, 12_500_000, 3, 60));
    // burst 131072 bytes at 12.5 MB/s: 10.48576 ms of 15.625 MHz ticks.
    assert_eq!(opt.buffer, 163_840);
    assert_eq!(opt.quantum, 0, "rate/r2q is above the MTU");
    assert_eq!(q0.details, vec![("burst", 1_048_576), ("min-rate", 100_000_000)]);
}

#[test]
fn htb_defaults_and_clamps() {
    // No max-rate: the link speed; no queue 0: one with OVS's defaults (min-rate the
    // MTU, ceil the QoS's, burst MTU + 64).
    let spec = QosSpec {
        ty: "linux-htb".into(),
        queues: [(3, smap(&[("min-rate", "1"), ("max-rate", "99999999999999"), ("priority", "2")]))].into(),
        ..Default::default()
    };
    let tap = DevFacts { speed_mbps: Some(10), ..VETH };
    let p = qdisc_plan(&spec, &tap).unwrap();
    assert_eq!(p.max_rate, 1_250_000, "a tap reports 10 Mbit/s");
    let by_queue: Vec<_> = p.classes.iter().map(|c| (c.queue, c.handle, c.details.clone())).collect();
    assert_eq!(
        by_queue[1..],
        [
            (Some(0), 0x1_0001, vec![("burst", 12_512), ("min-rate", 12_000), ("max-rate", 10_000_000)]),
            (Some(3), 0x1_0004, vec![("burst", 12_512), ("priority", 2), ("min-rate", 12_000), ("max-rate", 10_000_000)]),
        ]
    );
    let ClassOpt::Htb { opt, .. } = p.classes[1].opt else { panic!() };
    assert_eq!(opt.quantum, 1500, "a slow class gets a quantum of one MTU");
    assert_eq!(qdisc_plan(&spec, &DevFacts { speed_mbps: Some(2500), ..VETH }).unwrap().max_rate, 1_250_000_000, "a speed OVS does not know: 10 Gbit/s");
}

#[test]
fn hfsc_as_ovs_computes_it() {
    let spec = QosSpec { ty: "linux-hfsc".into(), other_config: smap(&[("max-rate", "80000000")]), queues: [(1, smap(&[("min-rate", "8000000")]))].into() };
    let p = qdisc_plan(&spec, &VETH).unwrap();
    assert_eq!(p.root, RootQdisc::Hfsc { defcls: 1 });
    let opts: Vec<_> = p.classes.iter().map(|c| (c.handle, c.opt)).collect();
    assert_eq!(
        opts,
        vec![
            (0x1_fffe, ClassOpt::Hfsc { min: 10_000_000, max: 10_000_000 }),
            (0x1_0001, ClassOpt::Hfsc { min: 1, max: 10_000_000 }),
            (0x1_0002, ClassOpt::Hfsc { min: 1_000_000, max: 10_000_000 }),
        ]
    );
}

#[test]
fn outcomes_by_port_kind() {
    let htb = libvirt_spec();
    assert_eq!(outcome(&htb, QosHome::Kernel), Outcome::Qdisc);
    assert_eq!(outcome(&htb, QosHome::Rvs), Outcome::Shaper(ShaperConfig { rate: 12_500_000, burst: 131_072 }));
    assert_eq!(outcome(&htb, QosHome::None), Outcome::Unsupported);
    let no_rate = QosSpec { ty: "linux-htb".into(), ..Default::default() };
    assert_eq!(outcome(&no_rate, QosHome::Rvs), Outcome::Unsupported);
    let pol = QosSpec { ty: "egress-policer".into(), other_config: smap(&[("cir", "1250000"), ("cbs", "2048")]), ..Default::default() };
    for home in [QosHome::Kernel, QosHome::Rvs, QosHome::None] {
        assert_eq!(outcome(&pol, home), Outcome::Shaper(ShaperConfig { rate: 1_250_000, burst: 2048 }));
    }
    let codel = QosSpec { ty: "linux-codel".into(), ..Default::default() };
    assert_eq!(outcome(&codel, QosHome::Kernel), Outcome::Unsupported);
    assert_eq!(
        unsupported_note(&codel, QosHome::Kernel),
        "not applied: QoS type linux-codel is not supported on this port (rvs applies linux-hfsc, linux-noop, linux-htb, egress-policer)"
    );
}

#[test]
fn show_texts() {
    use show::{Shown, show, show_types};
    let plan = qdisc_plan(&libvirt_spec(), &VETH).unwrap();
    let i = kernel::Installed { name: "vm1".into(), ifindex: 7, spec: libvirt_spec(), facts: VETH, plan };
    let class = rvs_sys::tc::Class { handle: 0x1_0001, stats: rvs_sys::tc::ClassStats { packets: 5, bytes: 600, drops: 1 }, ..Default::default() };
    assert_eq!(
        show("vm1", &Shown::Kernel(&i, Ok(vec![class]))),
        "QoS: vm1 linux-htb\nmax-rate: 100000000\n\nDefault:\n  burst: 1048576\n  min-rate: 100000000\n  tx_packets: 5\n  tx_bytes: 600\n  tx_errors: 1\n"
    );
    assert_eq!(
        show("vm1", &Shown::Kernel(&i, Ok(vec![]))),
        "QoS: vm1 linux-htb\nmax-rate: 100000000\n\nDefault:\n  burst: 1048576\n  min-rate: 100000000\n  Failed to get statistics for queue 0: No such file or directory"
    );
    assert_eq!(show("vm1", &Shown::None), "QoS not configured on vm1\n");
    assert_eq!(show_types("t", &["a", "b"]), "QoS type: a\nQoS type: b\n");
    assert_eq!(show_types("t", &[]), "No QoS types supported for interface: t\n");
}
