//! Typed row views, written once from the schema: `Port::get(&db, &u)?.vlan_mode()`
//! instead of `row.get(&TABLES[tables::PORT], "vlan_mode")`.
//!
//! Every column named here is looked up in [`crate::schema`] by a `const` evaluation, so
//! a misspelled column name fails to compile (like OVS's IDL generated from the schema,
//! `vswitchd/bridge.c`'s `cfg->vlan_mode`). Each column is declared with a [`Kind`] that
//! says how its value reads (`OptStr` for a `"min": 0, "max": 1` string, `Refs` for a
//! set of references…); the reads never panic and fall back to the column's default
//! (empty, 0, false) when a value is not of the declared kind, which [`Db::check`]
//! prevents for committed databases.
//!
//! Writes go through [`Col`], a column of a given table (`Port::TAG`), with
//! [`Db::set_col`] and [`Row::set_col`]. Generic access by a name the user typed
//! (`ovs-vsctl get Port p1 tag`) stays with [`crate::schema::TableSchema::column`].
//!
//! Only the columns rvs's code reads or writes itself are declared; add one with its
//! kind when code needs it.

use crate::schema::{self, ColumnSchema, tables};
use crate::value::{Atom, Datum, Uuid};
use crate::{Db, Row};

/// A column of a table, known at compile time: the table's index in
/// [`crate::TABLES`] and the column's index in its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Col {
    pub table: usize,
    pub index: usize,
}

impl Col {
    /// The column's schema.
    pub fn schema(self) -> &'static ColumnSchema {
        &crate::TABLES[self.table].columns[self.index]
    }
}

/// The index of column `name` in `cols`; evaluated in `const` context, where a missing
/// name is a compile error.
const fn column_index(cols: &[ColumnSchema], name: &str) -> usize {
    let mut i = 0;
    while i < cols.len() {
        if str_eq(cols[i].name, name) {
            return i;
        }
        i += 1;
    }
    panic!("column not in schema")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// How a column's value reads.
pub trait Kind {
    type Out<'a>;
    fn read(d: &Datum) -> Self::Out<'_>;
}

/// The kinds of columns, named after their schema types.
pub mod kind {
    use super::*;

    /// Iterator over the UUIDs of a set of references.
    pub type Uuids<'a> = std::iter::FilterMap<std::slice::Iter<'a, Atom>, fn(&Atom) -> Option<Uuid>>;
    /// Iterator over the integers of a set.
    pub type Ints<'a> = std::iter::FilterMap<std::slice::Iter<'a, Atom>, fn(&Atom) -> Option<i64>>;

    /// Exactly one string; `""` if absent.
    pub struct Str;
    /// Zero or one string.
    pub struct OptStr;
    /// Exactly one integer; 0 if absent.
    pub struct Int;
    /// Zero or one integer.
    pub struct OptInt;
    /// Exactly one boolean; false if absent.
    pub struct Bool;
    /// A set of references to rows of another table.
    pub struct Refs;
    /// Zero or one reference.
    pub struct OptRef;
    /// A set of integers.
    pub struct IntSet;
    /// A map (read with [`Datum::get_str`] and friends) or any other whole value.
    pub struct Whole;

    impl Kind for Str {
        type Out<'a> = &'a str;
        fn read(d: &Datum) -> &str {
            d.as_str().unwrap_or_default()
        }
    }
    impl Kind for OptStr {
        type Out<'a> = Option<&'a str>;
        fn read(d: &Datum) -> Option<&str> {
            d.as_str()
        }
    }
    impl Kind for Int {
        type Out<'a> = i64;
        fn read(d: &Datum) -> i64 {
            d.as_int().unwrap_or(0)
        }
    }
    impl Kind for OptInt {
        type Out<'a> = Option<i64>;
        fn read(d: &Datum) -> Option<i64> {
            d.as_int()
        }
    }
    impl Kind for Bool {
        type Out<'a> = bool;
        fn read(d: &Datum) -> bool {
            d.as_bool().unwrap_or(false)
        }
    }
    impl Kind for Refs {
        type Out<'a> = Uuids<'a>;
        fn read(d: &Datum) -> Uuids<'_> {
            d.keys.iter().filter_map(Atom::as_uuid as fn(&Atom) -> Option<Uuid>)
        }
    }
    impl Kind for OptRef {
        type Out<'a> = Option<Uuid>;
        fn read(d: &Datum) -> Option<Uuid> {
            d.as_uuid()
        }
    }
    impl Kind for IntSet {
        type Out<'a> = Ints<'a>;
        fn read(d: &Datum) -> Ints<'_> {
            d.keys.iter().filter_map(Atom::as_int as fn(&Atom) -> Option<i64>)
        }
    }
    impl Kind for Whole {
        type Out<'a> = &'a Datum;
        fn read(d: &Datum) -> &Datum {
            d
        }
    }
}

/// Declares a view per table: the struct, one `Col` constant and one accessor per
/// column, and `get`/`all`/`named` to find rows.
macro_rules! views {
    ($(
        $(#[$doc:meta])*
        $view:ident = $tid:path, $cols:path {
            $( $acc:ident / $konst:ident : $kind:ident = $name:literal; )*
        }
    )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $view<'a> {
            pub uuid: Uuid,
            pub row: &'a Row,
        }

        // Evaluated whether or not a constant is used: a misspelled name fails here.
        $( const _: usize = column_index($cols, $name); )*

        impl<'a> $view<'a> {
            /// The table's index in [`crate::TABLES`].
            pub const TABLE: usize = $tid;
            $(
                #[doc = concat!("The `", $name, "` column.")]
                pub const $konst: Col = Col { table: $tid, index: column_index($cols, $name) };
            )*

            $(
                #[doc = concat!("Column `", $name, "`.")]
                pub fn $acc(&self) -> <kind::$kind as Kind>::Out<'a> {
                    <kind::$kind as Kind>::read(&self.row.cols[Self::$konst.index])
                }
            )*

            /// The row `u` of this table, if it exists.
            pub fn get(db: &'a Db, u: &Uuid) -> Option<Self> {
                db.tables[$tid].get_key_value(u).map(|(uuid, row)| Self { uuid: *uuid, row })
            }

            /// Every row of this table, in UUID order.
            pub fn all(db: &'a Db) -> impl Iterator<Item = Self> + 'a {
                db.tables[$tid].iter().map(|(uuid, row)| Self { uuid: *uuid, row })
            }
        }
    )*};
}

views! {
    /// The Open_vSwitch row.
    OpenVswitch = tables::OPEN_VSWITCH, schema::OPEN_VSWITCH {
        bridges / BRIDGES: Refs = "bridges";
        cur_cfg / CUR_CFG: Int = "cur_cfg";
        datapath_types / DATAPATH_TYPES: Whole = "datapath_types";
        external_ids / EXTERNAL_IDS: Whole = "external_ids";
        iface_types / IFACE_TYPES: Whole = "iface_types";
        manager_options / MANAGER_OPTIONS: Refs = "manager_options";
        next_cfg / NEXT_CFG: Int = "next_cfg";
        other_config / OTHER_CONFIG: Whole = "other_config";
        ovs_version / OVS_VERSION: OptStr = "ovs_version";
    }

    /// A Bridge row.
    Bridge = tables::BRIDGE, schema::BRIDGE {
        controller / CONTROLLER: Refs = "controller";
        datapath_type / DATAPATH_TYPE: Str = "datapath_type";
        external_ids / EXTERNAL_IDS: Whole = "external_ids";
        fail_mode / FAIL_MODE: OptStr = "fail_mode";
        flood_vlans / FLOOD_VLANS: IntSet = "flood_vlans";
        mirrors / MIRRORS: Refs = "mirrors";
        name / NAME: Str = "name";
        other_config / OTHER_CONFIG: Whole = "other_config";
        ports / PORTS: Refs = "ports";
    }

    /// A Port row.
    Port = tables::PORT, schema::PORT {
        bond_active_slave / BOND_ACTIVE_SLAVE: OptStr = "bond_active_slave";
        bond_downdelay / BOND_DOWNDELAY: Int = "bond_downdelay";
        bond_fake_iface / BOND_FAKE_IFACE: Bool = "bond_fake_iface";
        bond_mode / BOND_MODE: OptStr = "bond_mode";
        bond_updelay / BOND_UPDELAY: Int = "bond_updelay";
        external_ids / EXTERNAL_IDS: Whole = "external_ids";
        fake_bridge / FAKE_BRIDGE: Bool = "fake_bridge";
        interfaces / INTERFACES: Refs = "interfaces";
        lacp / LACP: OptStr = "lacp";
        name / NAME: Str = "name";
        other_config / OTHER_CONFIG: Whole = "other_config";
        protected / PROTECTED: Bool = "protected";
        qos / QOS: OptRef = "qos";
        status / STATUS: Whole = "status";
        tag / TAG: OptInt = "tag";
        trunks / TRUNKS: IntSet = "trunks";
        vlan_mode / VLAN_MODE: OptStr = "vlan_mode";
    }

    /// An Interface row.
    Interface = tables::INTERFACE, schema::INTERFACE {
        admin_state / ADMIN_STATE: OptStr = "admin_state";
        bfd_status / BFD_STATUS: Whole = "bfd_status";
        error / ERROR: OptStr = "error";
        ifindex / IFINDEX: OptInt = "ifindex";
        ingress_policing_burst / INGRESS_POLICING_BURST: Int = "ingress_policing_burst";
        ingress_policing_kpkts_burst / INGRESS_POLICING_KPKTS_BURST: Int = "ingress_policing_kpkts_burst";
        ingress_policing_kpkts_rate / INGRESS_POLICING_KPKTS_RATE: Int = "ingress_policing_kpkts_rate";
        ingress_policing_rate / INGRESS_POLICING_RATE: Int = "ingress_policing_rate";
        link_state / LINK_STATE: OptStr = "link_state";
        mac / MAC: OptStr = "mac";
        mac_in_use / MAC_IN_USE: OptStr = "mac_in_use";
        mtu / MTU: OptInt = "mtu";
        mtu_request / MTU_REQUEST: OptInt = "mtu_request";
        name / NAME: Str = "name";
        ofport / OFPORT: OptInt = "ofport";
        ofport_request / OFPORT_REQUEST: OptInt = "ofport_request";
        options / OPTIONS: Whole = "options";
        other_config / OTHER_CONFIG: Whole = "other_config";
        statistics / STATISTICS: Whole = "statistics";
        status / STATUS: Whole = "status";
        type_ / TYPE: Str = "type";
    }

    /// A Mirror row (port mirroring on the bridge that lists it).
    Mirror = tables::MIRROR, schema::MIRROR {
        name / NAME: Str = "name";
        output_port / OUTPUT_PORT: OptRef = "output_port";
        output_vlan / OUTPUT_VLAN: OptInt = "output_vlan";
        select_all / SELECT_ALL: Bool = "select_all";
        select_dst_port / SELECT_DST_PORT: Refs = "select_dst_port";
        select_src_port / SELECT_SRC_PORT: Refs = "select_src_port";
        select_vlan / SELECT_VLAN: IntSet = "select_vlan";
        snaplen / SNAPLEN: OptInt = "snaplen";
        statistics / STATISTICS: Whole = "statistics";
    }

    /// A QoS row (egress shaping of the Port that points at it).
    Qos = tables::QOS, schema::QOS {
        other_config / OTHER_CONFIG: Whole = "other_config";
        queues / QUEUES: Whole = "queues";
        type_ / TYPE: Str = "type";
    }

    /// A Queue row (one class of a QoS).
    Queue = tables::QUEUE, schema::QUEUE {
        other_config / OTHER_CONFIG: Whole = "other_config";
    }
}

impl<'a> Interface<'a> {
    /// The `options` as (key, value) string pairs.
    pub fn option_pairs(self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.options().str_pairs()
    }
}

impl Row {
    /// The value of a typed column; `col` must be of this row's table.
    pub fn col(&self, col: Col) -> &Datum {
        &self.cols[col.index]
    }

    /// Sets a typed column; `col` must be of this row's table.
    pub fn set_col(&mut self, col: Col, d: Datum) {
        self.cols[col.index] = d;
    }
}

impl Db {
    /// Column `col` of row `u` of its table.
    pub fn col(&self, col: Col, u: &Uuid) -> Option<&Datum> {
        self.tables[col.table].get(u).map(|r| &r.cols[col.index])
    }

    /// Sets column `col` of row `u` of its table; `false` if there is no such row.
    pub fn set_col(&mut self, col: Col, u: &Uuid, d: Datum) -> bool {
        match self.tables[col.table].get_mut(u) {
            Some(r) => {
                r.cols[col.index] = d;
                true
            }
            None => false,
        }
    }

    /// The Open_vSwitch row's view, if the row exists.
    pub fn root_view(&self) -> Option<OpenVswitch<'_>> {
        OpenVswitch::all(self).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TABLES;

    #[test]
    fn columns_point_at_their_names() {
        assert_eq!(Port::VLAN_MODE.schema().name, "vlan_mode");
        assert_eq!(Interface::TYPE.schema().name, "type");
        assert_eq!(Bridge::PORTS.schema().name, "ports");
        assert_eq!(OpenVswitch::NEXT_CFG.schema().name, "next_cfg");
        assert_eq!(TABLES[Port::TABLE].name, "Port");
        assert_eq!(TABLES[Interface::TABLE].columns, schema::INTERFACE);
        assert_eq!(TABLES[Bridge::TABLE].columns, schema::BRIDGE);
        assert_eq!(TABLES[Port::TABLE].columns, schema::PORT);
        assert_eq!(TABLES[OpenVswitch::TABLE].columns, schema::OPEN_VSWITCH);
    }

    #[test]
    fn reads_and_writes() {
        let mut db = Db::new();
        let p = db.insert_new(Port::TABLE);
        db.set_col(Port::NAME, &p, Datum::string("p1"));
        db.set_col(Port::TRUNKS, &p, Datum::set(vec![Atom::Integer(20), Atom::Integer(10)]));
        db.set_col(Port::VLAN_MODE, &p, Datum::string("trunk"));
        let v = Port::get(&db, &p).unwrap();
        assert_eq!(v.name(), "p1");
        assert_eq!(v.trunks().collect::<Vec<_>>(), [10, 20]);
        assert_eq!(v.vlan_mode(), Some("trunk"));
        assert_eq!(v.tag(), None);
        assert!(!v.protected());
        assert_eq!(Port::all(&db).count(), 1);
        assert!(Port::get(&db, &Uuid::random()).is_none());
    }
}
