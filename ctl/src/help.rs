//! `--help`, `--version`, `--commands`, `--options`: what rvsctl really supports.

use crate::commands::COMMANDS;
use crate::options::{Arg, all_long_options};

/// `--version`. Invoked as `ovs-vsctl`, the first line is the one Open vSwitch 3.1.0
/// prints (scripts parse it), since that is the interface rvsctl implements.
pub fn version(prog: &str) -> String {
    let schema = rvs_ovsdb::schema::SCHEMA_VERSION;
    if prog == "rvsctl" {
        format!("rvsctl (rvs) {}\nDB Schema {schema}\nCompatible with ovs-vsctl of Open vSwitch 3.1.0\n", env!("CARGO_PKG_VERSION"))
    } else {
        format!("{prog} (Open vSwitch) 3.1.0\nDB Schema {schema}\n")
    }
}

/// `--commands`: one line per command, OVS's format.
pub fn commands() -> String {
    let mut s = String::new();
    for c in COMMANDS {
        for o in c.options.split(',').filter(|o| !o.is_empty()) {
            s += &format!("[{o}] ");
        }
        s += &format!(",{},{}\n", c.name, c.usage);
    }
    s
}

/// `--options`: every long option.
pub fn options() -> String {
    let mut s = String::new();
    for (n, a) in all_long_options() {
        s += &format!("--{n}{}\n", if a == Arg::No { "" } else { "=ARG" });
    }
    s
}

/// `--help`.
pub fn vsctl(prog: &str) -> String {
    format!(
        "{prog}: rvs configuration utility (ovs-vsctl compatible)
usage: {prog} [OPTIONS] COMMAND [ARG...] [-- [OPTIONS] COMMAND [ARG...]]...

Open vSwitch commands:
  init                        initialize database, if not yet initialized
  show                        print overview of database contents
  emer-reset                  reset configuration to clean state

Bridge commands:
  add-br BRIDGE               create a new bridge named BRIDGE
  add-br BRIDGE PARENT VLAN   create new fake BRIDGE in PARENT on VLAN
  del-br BRIDGE               delete BRIDGE and all of its ports
  list-br                     print the names of all the bridges
  br-exists BRIDGE            exit 2 if BRIDGE does not exist
  br-to-vlan BRIDGE           print the VLAN which BRIDGE is on
  br-to-parent BRIDGE         print the parent of BRIDGE
  br-set-external-id BRIDGE KEY [VALUE]  set (or unset) KEY on BRIDGE
  br-get-external-id BRIDGE [KEY]  print KEY (or all key-value pairs) on BRIDGE

Port commands:
  list-ports BRIDGE           print the names of all the ports on BRIDGE
  add-port BRIDGE PORT [COLUMN[:KEY]=VALUE]...  add network device PORT to BRIDGE
  add-bond BRIDGE PORT IFACE...  add bonded port PORT in BRIDGE from IFACES
  del-port [BRIDGE] PORT      delete PORT (which may be bonded) from BRIDGE
  port-to-br PORT             print name of bridge that contains PORT

Interface commands:
  list-ifaces BRIDGE          print the names of all interfaces on BRIDGE
  iface-to-br IFACE           print name of bridge that contains IFACE
  add-bond-iface BOND IFACE   add IFACE to BOND
  del-bond-iface [BOND] IFACE delete IFACE from BOND

Fail mode:
  get-fail-mode BRIDGE / del-fail-mode BRIDGE / set-fail-mode BRIDGE MODE

Database commands:
  list TBL [REC]              list RECord (or all records) in TBL
  find TBL CONDITION...       list records satisfying CONDITION in TBL
  get TBL REC COL[:KEY]       print values of COLumns in RECord in TBL
  set TBL REC COL[:KEY]=VALUE set COLumn values in RECord in TBL
  add TBL REC COL [KEY=]VALUE add (KEY=)VALUE to COLumn in RECord in TBL
  remove TBL REC COL [KEY=]VALUE  remove (KEY=)VALUE from COLumn
  clear TBL REC COL           clear values from COLumn in RECord in TBL
  create TBL COL[:KEY]=VALUE  create and initialize new record
  destroy TBL REC             delete RECord from TBL
  wait-until TBL REC [COL[:KEY]=VALUE]  wait until condition is true
Tables: Open_vSwitch (as \".\"), Bridge, Port, Interface (by name), QoS (via the
Port's \"qos\"; applied: see qos/show), Queue (by UUID), Mirror (by name;
applied: copies counted in its statistics). Names may be abbreviated to a unique
prefix.

Switch commands (ovs-appctl style, answered by rvs-vswitchd):
  fdb/show BRIDGE [--format=json]  MAC table: port, VLAN, MAC, age
  fdb/flush [BRIDGE]          forget learned MACs
  fdb/stats-show BRIDGE       MAC table counters
  fdb/stats-clear [BRIDGE]    reset them
  fdb/add BRIDGE PORT VLAN MAC  static entry (kept across restarts)
  fdb/del BRIDGE VLAN MAC     remove a static entry
  fdb/flaps BRIDGE            MACs moving between ports again and again
  dpif/show                   ports and their numbers
  rvs/drops [BRIDGE]          dropped frames by reason
  rvs/workers                 datapath threads: inputs, frames, wake-ups, time, I/O
  rvs/workers-clear           reset the figures of rvs/workers
  bond/show [PORT]            bonds: mode, members, active member, load
  lacp/show [PORT]            LACP state of each bond member and its partner
  lacp/show-stats [PORT]      LACPDUs sent and received per member
  bond/set-active-member PORT MEMBER  make an enabled MEMBER the active one
  bond/enable-member PORT MEMBER  enable MEMBER now (until its link says otherwise)
  bond/disable-member PORT MEMBER  disable MEMBER now (likewise)
  bond/hash MAC [VLAN] [BASIS]  the balance-slb bucket of MAC
  bond/list                   bonds: mode and members
  bond/migrate PORT HASH MEMBER  move a balance-slb hash bucket to MEMBER
  dpif-netdev/pmd-stats-show [-pmd CORE]  polling workers (pmd-cpu-mask): frames, cycles
  dpif-netdev/pmd-stats-clear [-pmd CORE]  reset them
  dpif-netdev/pmd-rxq-show [-pmd CORE] [-secs SECS]  queues per polling worker, usage
  qos/show IFACE              egress QoS applied there: type, queues, their counters
  qos/show-types IFACE        the QoS types rvs applies on that interface
  rvs/capture PORT FILE [COUNT|SECONDSs]  write the port's frames to a pcap file
  rvs/capture-stop PORT       end that capture
  ofproto/trace BRIDGE FLOW [PACKET]  why a frame goes where it goes (nothing learned)
  rvs/metrics                 counters in Prometheus text format
  list-commands, version, vlog/list, vlog/set SPEC

Not supported by rvs (these commands fail with an error saying so): SSL
(set-ssl) and Auto Attach commands.
Stored as ovs-vsctl stores them but not applied (rvs-vswitchd logs so): OpenFlow
controllers and managers (set-controller, set-manager), conntrack zone timeout
policies (add-zone-tp, del-zone-tp, list-zone-tp; list-dp-cap reads a datapath's
capabilities). The tables of those features are stored and shown by the database
commands but not applied.

Options:
  --db=unix:FILE              rvs-vswitchd's control socket
                              (default: $RVS_RUNDIR/rvs.sock, else /run/rvs/rvs.sock)
  --no-wait                   do not wait for rvs-vswitchd to apply the change
  -t, --timeout=SECS          give up (SIGALRM) after SECS seconds; without it,
                              {prog} waits at most 30 seconds for each answer
                              ($RVSCTL_WAIT seconds if set); wait-until and
                              --retry wait as long as it takes
  --retry                     keep trying to connect until the timeout
  --dry-run                   do not commit changes to database
  --oneline                   print exactly one line of output per command
  --if-exists, --may-exist, --id=@NAME, --columns=COL,...  per-command options
  -v, --verbose=SPEC          console log: [MODULE][:console][:LEVEL] (a level
                              below warn silences MODULE's warnings), or
                              PATTERN:console:FORMAT (%c %p %m %N %D ...)

Output formatting options:
  -f, --format=FORMAT         \"list\" (default), \"table\", \"html\", \"csv\" or \"json\"
  -d, --data=FORMAT           \"string\" (default), \"bare\" or \"json\"
  --no-headings               omit table heading row
  --pretty                    pretty-print JSON in output
  --bare                      same as --format=list --data=bare --no-headings

Other options:
  -h, --help                  display this help message
  -V, --version               display version information
"
    )
}
