//! The configuration schema: the tables and columns of Open vSwitch's `Open_vSwitch`
//! database (schema 8.3.1, ovs-vswitchd.conf.db(5)) that rvs implements.
//!
//! rvs keeps OVS's table and column names, types and constraints so that `ovs-vsctl`
//! commands, their output and their errors are the same. Every table of OVS's schema is
//! here with every column OVS has (so `list` prints the same rows). Six are acted on:
//! Open_vSwitch, Bridge, Port, Interface, QoS and Queue (QoS stored only, see
//! `plan`); the others are stored and validated but not applied
//! ([`TableSchema::applied`] is false).
//!
//! This is data, built with small `const fn` helpers; nothing here allocates.

/// An OVSDB atomic type (RFC 7047 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }
}

/// A base type with its constraints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaseType {
    pub atomic: AtomicType,
    /// Allowed values for a string enum (sorted).
    pub enum_: &'static [&'static str],
    pub min_int: i64,
    pub max_int: i64,
    /// For a uuid: the table it refers to.
    pub ref_table: Option<&'static str>,
    /// A weak reference: it does not keep its row alive, and it disappears (instead of
    /// dangling) when that row is deleted (RFC 7047 section 3.2, `refType`).
    pub weak: bool,
}

impl BaseType {
    const fn new(atomic: AtomicType) -> BaseType {
        BaseType { atomic, enum_: &[], min_int: i64::MIN, max_int: i64::MAX, ref_table: None, weak: false }
    }
}

pub const fn integer() -> BaseType {
    BaseType::new(AtomicType::Integer)
}
pub const fn int_range(min: i64, max: i64) -> BaseType {
    BaseType { min_int: min, max_int: max, ..integer() }
}
pub const fn int_min(min: i64) -> BaseType {
    BaseType { min_int: min, ..integer() }
}
pub const fn real() -> BaseType {
    BaseType::new(AtomicType::Real)
}
pub const fn boolean() -> BaseType {
    BaseType::new(AtomicType::Boolean)
}
pub const fn string() -> BaseType {
    BaseType::new(AtomicType::String)
}
pub const fn string_enum(values: &'static [&'static str]) -> BaseType {
    BaseType { enum_: values, ..string() }
}
pub const fn uuid_ref(table: &'static str) -> BaseType {
    BaseType { ref_table: Some(table), ..BaseType::new(AtomicType::Uuid) }
}
pub const fn weak_ref(table: &'static str) -> BaseType {
    BaseType { weak: true, ..uuid_ref(table) }
}

/// Marks "no upper limit" on the number of elements.
pub const UNLIMITED: u32 = u32::MAX;

/// A column type: a key type, an optional value type (maps), and element counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub n_min: u32,
    pub n_max: u32,
}

impl ColumnType {
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Exactly one value (`"type": "integer"` in a schema).
    pub fn is_scalar(&self) -> bool {
        self.n_min == 1 && self.n_max == 1
    }

    /// Sets and maps, as opposed to scalars and optional values.
    pub fn is_multi(&self) -> bool {
        self.n_max > 1
    }

    /// "set of up to 4096 integers", "map of (string, string) pairs": the phrasing
    /// ovs-vsctl uses in messages (ovsdb_type_to_english).
    pub fn english(&self) -> String {
        let key = self.key.atomic.name();
        if self.is_scalar() {
            return key.to_string();
        }
        let mut s = String::from(if self.is_map() { "map" } else { "set" });
        if self.n_max == UNLIMITED {
            if self.n_min > 0 {
                s += &format!(" of {} or more", self.n_min);
            } else {
                s += " of";
            }
        } else if self.n_min > 0 {
            s += &format!(" of {} to {}", self.n_min, self.n_max);
        } else {
            s += &format!(" of up to {}", self.n_max);
        }
        match self.value {
            None => s += &format!(" {key}s"),
            Some(v) => s += &format!(" ({key}, {}) pairs", v.atomic.name()),
        }
        s
    }
}

pub const fn scalar(key: BaseType) -> ColumnType {
    ColumnType { key, value: None, n_min: 1, n_max: 1 }
}
pub const fn optional(key: BaseType) -> ColumnType {
    ColumnType { key, value: None, n_min: 0, n_max: 1 }
}
pub const fn set(key: BaseType) -> ColumnType {
    ColumnType { key, value: None, n_min: 0, n_max: UNLIMITED }
}
pub const fn set_range(key: BaseType, n_min: u32, n_max: u32) -> ColumnType {
    ColumnType { key, value: None, n_min, n_max }
}
pub const fn map(key: BaseType, value: BaseType) -> ColumnType {
    ColumnType { key, value: Some(value), n_min: 0, n_max: UNLIMITED }
}
pub const fn smap() -> ColumnType {
    map(string(), string())
}

/// One column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnSchema {
    pub name: &'static str,
    pub ty: ColumnType,
    /// `false` for columns that cannot change after the row is inserted (`name`).
    pub mutable: bool,
    /// Ephemeral columns are not persisted (status written by the daemon).
    pub ephemeral: bool,
}

const fn col(name: &'static str, ty: ColumnType) -> ColumnSchema {
    ColumnSchema { name, ty, mutable: true, ephemeral: false }
}
const fn immutable(name: &'static str, ty: ColumnType) -> ColumnSchema {
    ColumnSchema { name, ty, mutable: false, ephemeral: false }
}
const fn eph(name: &'static str, ty: ColumnType) -> ColumnSchema {
    ColumnSchema { name, ty, mutable: true, ephemeral: true }
}

/// One table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableSchema {
    pub name: &'static str,
    /// Columns in alphabetical order (the order `list` prints them in).
    pub columns: &'static [ColumnSchema],
    /// Root rows live on their own; other rows are deleted when nothing refers to them.
    pub is_root: bool,
    /// Columns whose values together are unique per row (`name`; Flow_Sample_Collector_Set's
    /// `id` and `bridge`), empty if none.
    pub index: &'static [&'static str],
    /// Stored and checked by rvs (every table of the schema now).
    pub supported: bool,
    /// Whether rvs-vswitchd acts on the table's rows. The others (OpenFlow
    /// controllers, managers, SSL, flow export, conntrack, Auto Attach) are
    /// kept, validated and shown for the database commands, as OVS keeps them, but
    /// change nothing in forwarding; README says so.
    pub applied: bool,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<(usize, &'static ColumnSchema)> {
        self.columns.iter().enumerate().find(|(_, c)| c.name == name)
    }

    /// The index columns as ovsdb-server names them in a duplicate's error:
    /// `column "name"`, `columns "id" and "bridge"` (English list).
    pub fn index_phrase(&self) -> String {
        let cols: Vec<String> = self.index.iter().map(|c| format!("\"{c}\"")).collect();
        match cols.len() {
            0 => "no columns".into(),
            1 => format!("column {}", cols[0]),
            _ => format!("columns {}", english_list(&cols)),
        }
    }

    pub fn column_index(&self, name: &str) -> usize {
        self.column(name).map(|(i, _)| i).unwrap_or_else(|| panic!("{}.{name} not in schema", self.name))
    }
}

/// "a", "a and b", "a, b, and c": how ovsdb-server lists columns and values.
pub fn english_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [first @ .., last] => format!("{}, and {last}", first.join(", ")),
    }
}

const fn table(name: &'static str, is_root: bool, index: &'static [&'static str], columns: &'static [ColumnSchema]) -> TableSchema {
    TableSchema { name, columns, is_root, index, supported: true, applied: true }
}
/// A table rvs stores but does not act on.
const fn stored(name: &'static str, is_root: bool, index: &'static [&'static str], columns: &'static [ColumnSchema]) -> TableSchema {
    TableSchema { applied: false, ..table(name, is_root, index, columns) }
}

const VLAN: BaseType = int_range(0, 4095);

pub(crate) const OPEN_VSWITCH: &[ColumnSchema] = &[
    col("bridges", set(uuid_ref("Bridge"))),
    col("cur_cfg", scalar(integer())),
    col("datapath_types", set(string())),
    col("datapaths", map(string(), uuid_ref("Datapath"))),
    col("db_version", optional(string())),
    col("dpdk_initialized", scalar(boolean())),
    col("dpdk_version", optional(string())),
    col("external_ids", smap()),
    col("iface_types", set(string())),
    col("manager_options", set(uuid_ref("Manager"))),
    col("next_cfg", scalar(integer())),
    col("other_config", smap()),
    col("ovs_version", optional(string())),
    col("ssl", optional(uuid_ref("SSL"))),
    eph("statistics", smap()),
    col("system_type", optional(string())),
    col("system_version", optional(string())),
];

pub(crate) const BRIDGE: &[ColumnSchema] = &[
    col("auto_attach", optional(uuid_ref("AutoAttach"))),
    col("controller", set(uuid_ref("Controller"))),
    eph("datapath_id", optional(string())),
    col("datapath_type", scalar(string())),
    col("datapath_version", scalar(string())),
    col("external_ids", smap()),
    col("fail_mode", optional(string_enum(&["secure", "standalone"]))),
    col("flood_vlans", set_range(VLAN, 0, 4096)),
    col("flow_tables", map(int_range(0, 254), uuid_ref("Flow_Table"))),
    col("ipfix", optional(uuid_ref("IPFIX"))),
    col("mcast_snooping_enable", scalar(boolean())),
    col("mirrors", set(uuid_ref("Mirror"))),
    immutable("name", scalar(string())),
    col("netflow", optional(uuid_ref("NetFlow"))),
    col("other_config", smap()),
    col("ports", set(uuid_ref("Port"))),
    col("protocols", set(string_enum(&["OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14", "OpenFlow15"]))),
    col("rstp_enable", scalar(boolean())),
    eph("rstp_status", smap()),
    col("sflow", optional(uuid_ref("sFlow"))),
    eph("status", smap()),
    col("stp_enable", scalar(boolean())),
];

pub(crate) const PORT: &[ColumnSchema] = &[
    col("bond_active_slave", optional(string())),
    col("bond_downdelay", scalar(integer())),
    col("bond_fake_iface", scalar(boolean())),
    col("bond_mode", optional(string_enum(&["active-backup", "balance-slb", "balance-tcp"]))),
    col("bond_updelay", scalar(integer())),
    col("cvlans", set_range(VLAN, 0, 4096)),
    col("external_ids", smap()),
    col("fake_bridge", scalar(boolean())),
    col("interfaces", set_range(uuid_ref("Interface"), 1, UNLIMITED)),
    col("lacp", optional(string_enum(&["active", "off", "passive"]))),
    col("mac", optional(string())),
    immutable("name", scalar(string())),
    col("other_config", smap()),
    col("protected", scalar(boolean())),
    col("qos", optional(uuid_ref("QoS"))),
    eph("rstp_statistics", map(string(), integer())),
    eph("rstp_status", smap()),
    eph("statistics", map(string(), integer())),
    eph("status", smap()),
    col("tag", optional(VLAN)),
    col("trunks", set_range(VLAN, 0, 4096)),
    col("vlan_mode", optional(string_enum(&["access", "dot1q-tunnel", "native-tagged", "native-untagged", "trunk"]))),
];

const UP_DOWN: &[&str] = &["down", "up"];

pub(crate) const INTERFACE: &[ColumnSchema] = &[
    eph("admin_state", optional(string_enum(UP_DOWN))),
    col("bfd", smap()),
    eph("bfd_status", smap()),
    eph("cfm_fault", optional(boolean())),
    eph("cfm_fault_status", set(string())),
    col("cfm_flap_count", optional(integer())),
    eph("cfm_health", optional(int_range(0, 100))),
    col("cfm_mpid", optional(integer())),
    eph("cfm_remote_mpids", set(integer())),
    eph("cfm_remote_opstate", optional(string_enum(UP_DOWN))),
    eph("duplex", optional(string_enum(&["full", "half"]))),
    col("error", optional(string())),
    col("external_ids", smap()),
    eph("ifindex", optional(int_range(0, 4294967295))),
    col("ingress_policing_burst", scalar(int_min(0))),
    col("ingress_policing_kpkts_burst", scalar(int_min(0))),
    col("ingress_policing_kpkts_rate", scalar(int_min(0))),
    col("ingress_policing_rate", scalar(int_min(0))),
    eph("lacp_current", optional(boolean())),
    eph("link_resets", optional(integer())),
    eph("link_speed", optional(integer())),
    eph("link_state", optional(string_enum(UP_DOWN))),
    col("lldp", smap()),
    col("mac", optional(string())),
    eph("mac_in_use", optional(string())),
    eph("mtu", optional(integer())),
    col("mtu_request", optional(int_min(1))),
    immutable("name", scalar(string())),
    col("ofport", optional(integer())),
    col("ofport_request", optional(int_range(1, 65279))),
    col("options", smap()),
    col("other_config", smap()),
    eph("statistics", map(string(), integer())),
    eph("status", smap()),
    col("type", scalar(string())),
];

pub(crate) const QOS: &[ColumnSchema] =
    &[col("external_ids", smap()), col("other_config", smap()), col("queues", map(int_range(0, 4294967295), uuid_ref("Queue"))), col("type", scalar(string()))];

pub(crate) const QUEUE: &[ColumnSchema] = &[col("dscp", optional(int_range(0, 63))), col("external_ids", smap()), col("other_config", smap())];

// The tables rvs stores without acting on them, generated from OVS's
// vswitch.ovsschema 8.3.1 (names, types, constraints, mutability, ephemerality).
const FLOW_TABLE: &[ColumnSchema] = &[
    col("external_ids", smap()),
    col("flow_limit", optional(int_min(0))),
    col("groups", set(string())),
    col("name", optional(string())),
    col("overflow_policy", optional(string_enum(&["evict", "refuse"]))),
    col("prefixes", set_range(string(), 0, 3)),
];
pub(crate) const MIRROR: &[ColumnSchema] = &[
    col("external_ids", smap()),
    col("name", scalar(string())),
    col("output_port", optional(weak_ref("Port"))),
    col("output_vlan", optional(int_range(1, 4095))),
    col("select_all", scalar(boolean())),
    col("select_dst_port", set(weak_ref("Port"))),
    col("select_src_port", set(weak_ref("Port"))),
    col("select_vlan", set_range(int_range(0, 4095), 0, 4096)),
    col("snaplen", optional(int_range(14, 65535))),
    eph("statistics", map(string(), integer())),
];
const NETFLOW: &[ColumnSchema] = &[
    col("active_timeout", scalar(int_min(-1))),
    col("add_id_to_interface", scalar(boolean())),
    col("engine_id", optional(int_range(0, 255))),
    col("engine_type", optional(int_range(0, 255))),
    col("external_ids", smap()),
    col("targets", set_range(string(), 1, UNLIMITED)),
];
const SFLOW: &[ColumnSchema] = &[
    col("agent", optional(string())),
    col("external_ids", smap()),
    col("header", optional(integer())),
    col("polling", optional(integer())),
    col("sampling", optional(integer())),
    col("targets", set_range(string(), 1, UNLIMITED)),
];
const IPFIX: &[ColumnSchema] = &[
    col("cache_active_timeout", optional(int_range(0, 4200))),
    col("cache_max_flows", optional(int_range(0, 4294967295))),
    col("external_ids", smap()),
    col("obs_domain_id", optional(int_range(0, 4294967295))),
    col("obs_point_id", optional(int_range(0, 4294967295))),
    col("other_config", smap()),
    col("sampling", optional(int_range(1, 4294967295))),
    col("targets", set(string())),
];
const FLOW_SAMPLE_COLLECTOR_SET: &[ColumnSchema] = &[
    col("bridge", scalar(uuid_ref("Bridge"))),
    col("external_ids", smap()),
    col("id", scalar(int_range(0, 4294967295))),
    col("ipfix", optional(uuid_ref("IPFIX"))),
];
const CONTROLLER: &[ColumnSchema] = &[
    col("connection_mode", optional(string_enum(&["in-band", "out-of-band"]))),
    col("controller_burst_limit", optional(int_min(25))),
    col("controller_queue_size", optional(int_range(1, 512))),
    col("controller_rate_limit", optional(int_min(100))),
    col("enable_async_messages", optional(boolean())),
    col("external_ids", smap()),
    col("inactivity_probe", optional(integer())),
    eph("is_connected", scalar(boolean())),
    col("local_gateway", optional(string())),
    col("local_ip", optional(string())),
    col("local_netmask", optional(string())),
    col("max_backoff", optional(int_min(1000))),
    col("other_config", smap()),
    eph("role", optional(string_enum(&["master", "other", "slave"]))),
    eph("status", smap()),
    col("target", scalar(string())),
    col("type", optional(string_enum(&["primary", "service"]))),
];
const MANAGER: &[ColumnSchema] = &[
    col("connection_mode", optional(string_enum(&["in-band", "out-of-band"]))),
    col("external_ids", smap()),
    col("inactivity_probe", optional(integer())),
    eph("is_connected", scalar(boolean())),
    col("max_backoff", optional(int_min(1000))),
    col("other_config", smap()),
    eph("status", smap()),
    col("target", scalar(string())),
];
const DATAPATH: &[ColumnSchema] = &[
    col("capabilities", smap()),
    col("ct_zones", map(int_range(0, 65535), uuid_ref("CT_Zone"))),
    col("datapath_version", scalar(string())),
    col("external_ids", smap()),
];
const CT_ZONE: &[ColumnSchema] = &[col("external_ids", smap()), col("timeout_policy", optional(uuid_ref("CT_Timeout_Policy")))];
const CT_TIMEOUT_POLICY: &[ColumnSchema] = &[
    col("external_ids", smap()),
    col(
        "timeouts",
        map(
            string_enum(&[
                "icmp_first",
                "icmp_reply",
                "tcp_close",
                "tcp_close_wait",
                "tcp_established",
                "tcp_fin_wait",
                "tcp_last_ack",
                "tcp_retransmit",
                "tcp_syn_recv",
                "tcp_syn_sent",
                "tcp_syn_sent2",
                "tcp_time_wait",
                "tcp_unack",
                "udp_first",
                "udp_multiple",
                "udp_single",
            ]),
            int_range(0, 4294967295),
        ),
    ),
];
const SSL: &[ColumnSchema] = &[
    col("bootstrap_ca_cert", scalar(boolean())),
    col("ca_cert", scalar(string())),
    col("certificate", scalar(string())),
    col("external_ids", smap()),
    col("private_key", scalar(string())),
];
const AUTOATTACH: &[ColumnSchema] =
    &[col("mappings", map(int_range(0, 16777215), int_range(0, 4095))), col("system_description", scalar(string())), col("system_name", scalar(string()))];

/// Every table, in the order OVS's schema lists them in `--help`.
pub static TABLES: &[TableSchema] = &[
    table("Open_vSwitch", true, &[], OPEN_VSWITCH),
    table("Bridge", false, &["name"], BRIDGE),
    table("Port", false, &["name"], PORT),
    table("Interface", false, &["name"], INTERFACE),
    stored("Flow_Table", false, &[], FLOW_TABLE),
    table("QoS", true, &[], QOS),
    table("Queue", true, &[], QUEUE),
    table("Mirror", false, &[], MIRROR),
    stored("NetFlow", false, &[], NETFLOW),
    stored("sFlow", false, &[], SFLOW),
    stored("IPFIX", false, &[], IPFIX),
    stored("Flow_Sample_Collector_Set", true, &["id", "bridge"], FLOW_SAMPLE_COLLECTOR_SET),
    stored("Controller", false, &[], CONTROLLER),
    stored("Manager", false, &["target"], MANAGER),
    stored("Datapath", false, &[], DATAPATH),
    stored("CT_Zone", false, &[], CT_ZONE),
    stored("CT_Timeout_Policy", false, &[], CT_TIMEOUT_POLICY),
    stored("SSL", false, &[], SSL),
    stored("AutoAttach", false, &[], AUTOATTACH),
];

/// The schema version rvs's tables follow.
pub const SCHEMA_VERSION: &str = "8.3.1";

/// Index of table `name` in [`TABLES`] (exact name).
pub fn table_index(name: &str) -> Option<usize> {
    TABLES.iter().position(|t| t.name == name)
}

/// Table ids of the implemented tables, for code that names them directly.
pub mod tables {
    pub const OPEN_VSWITCH: usize = 0;
    pub const BRIDGE: usize = 1;
    pub const PORT: usize = 2;
    pub const INTERFACE: usize = 3;
    pub const QOS: usize = 5;
    pub const QUEUE: usize = 6;
    pub const MIRROR: usize = 7;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_names() {
        assert_eq!(TABLES[tables::OPEN_VSWITCH].name, "Open_vSwitch");
        assert_eq!(TABLES[tables::BRIDGE].name, "Bridge");
        assert_eq!(TABLES[tables::PORT].name, "Port");
        assert_eq!(TABLES[tables::INTERFACE].name, "Interface");
        assert_eq!(TABLES[tables::QOS].name, "QoS");
        assert_eq!(TABLES[tables::QUEUE].name, "Queue");
        assert_eq!(TABLES[tables::MIRROR].name, "Mirror");
    }

    #[test]
    fn columns_are_sorted_and_refs_resolve() {
        for t in TABLES {
            let names: Vec<_> = t.columns.iter().map(|c| c.name).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{} columns out of order", t.name);
            for c in t.columns {
                for b in [Some(c.ty.key), c.ty.value].into_iter().flatten() {
                    if let Some(r) = b.ref_table {
                        assert!(table_index(r).is_some(), "{}.{} refers to unknown {r}", t.name, c.name);
                    }
                    let mut e = b.enum_.to_vec();
                    e.sort();
                    assert_eq!(e, b.enum_);
                }
            }
        }
    }

    #[test]
    fn english() {
        assert_eq!(TABLES[tables::PORT].column("trunks").unwrap().1.ty.english(), "set of up to 4096 integers");
        assert_eq!(TABLES[tables::PORT].column("tag").unwrap().1.ty.english(), "set of up to 1 integers");
        assert_eq!(smap().english(), "map of (string, string) pairs");
        assert_eq!(scalar(boolean()).english(), "boolean");
    }
}
