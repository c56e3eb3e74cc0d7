//! The commands of ovs-vsctl: their syntax (argument counts and allowed options, as in
//! OVS's command tables), parsing of a `--`-separated command line, and dispatch.
//! One file per command family.

pub mod bridge;
pub mod controller;
pub mod db;
pub mod misc;
pub mod port;
pub mod show;
pub mod zone;

use std::collections::BTreeMap;

use crate::context::{Cmd, Txn};
use crate::error::{CtlError, Result};

/// How a command runs.
pub type RunFn = fn(&mut Txn, &mut Cmd) -> Result<()>;

/// One command's syntax.
pub struct Syntax {
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
    pub usage: &'static str,
    /// Allowed options, OVS style: "--if-exists,--id=" (`=` takes a value).
    pub options: &'static str,
    /// Writes to the database.
    pub rw: bool,
    pub run: RunFn,
}

const MANY: usize = usize::MAX;

macro_rules! cmd {
    ($name:expr, $min:expr, $max:expr, $usage:expr, $opts:expr, $rw:expr, $run:expr) => {
        Syntax { name: $name, min: $min, max: $max, usage: $usage, options: $opts, rw: $rw, run: $run }
    };
}

/// Every command rvsctl knows, in OVS's order.
pub static COMMANDS: &[Syntax] = &[
    cmd!("init", 0, 0, "", "", true, misc::init),
    cmd!("show", 0, 0, "", "", false, show::show),
    cmd!("emer-reset", 0, 0, "", "", true, misc::emer_reset),
    cmd!("add-br", 1, 3, "NEW-BRIDGE [PARENT] [NEW-VLAN]", "--may-exist", true, bridge::add_br),
    cmd!("del-br", 1, 1, "BRIDGE", "--if-exists", true, bridge::del_br),
    cmd!("list-br", 0, 0, "", "--real,--fake", false, bridge::list_br),
    cmd!("br-exists", 1, 1, "BRIDGE", "", false, bridge::br_exists),
    cmd!("br-to-vlan", 1, 1, "BRIDGE", "", false, bridge::br_to_vlan),
    cmd!("br-to-parent", 1, 1, "BRIDGE", "", false, bridge::br_to_parent),
    cmd!("br-set-external-id", 2, 3, "BRIDGE KEY [VALUE]", "", true, bridge::br_set_external_id),
    cmd!("br-get-external-id", 1, 2, "BRIDGE [KEY]", "", false, bridge::br_get_external_id),
    cmd!("list-ports", 1, 1, "BRIDGE", "", false, port::list_ports),
    cmd!("add-port", 2, MANY, "BRIDGE NEW-PORT [COLUMN[:KEY]=VALUE]...", "--may-exist", true, port::add_port),
    cmd!("del-port", 1, 2, "[BRIDGE] PORT|IFACE", "--if-exists,--with-iface", true, port::del_port),
    cmd!("port-to-br", 1, 1, "PORT", "", false, port::port_to_br),
    cmd!("add-bond", 4, MANY, "BRIDGE BOND IFACE... [COLUMN[:KEY]=VALUE]...", "--may-exist,--fake-iface", true, port::add_bond),
    cmd!("add-bond-iface", 2, 2, "BOND IFACE", "--may-exist", true, port::add_bond_iface),
    cmd!("del-bond-iface", 1, 2, "[BOND] IFACE", "--if-exists", true, port::del_bond_iface),
    cmd!("list-ifaces", 1, 1, "BRIDGE", "", false, port::list_ifaces),
    cmd!("iface-to-br", 1, 1, "IFACE", "", false, port::iface_to_br),
    cmd!("get-controller", 1, 1, "BRIDGE", "", false, controller::get_controller),
    cmd!("del-controller", 1, 1, "BRIDGE", "", true, controller::del_controller),
    cmd!("set-controller", 1, MANY, "BRIDGE TARGET...", "--inactivity-probe=", true, controller::set_controller),
    cmd!("get-fail-mode", 1, 1, "BRIDGE", "", false, misc::get_fail_mode),
    cmd!("del-fail-mode", 1, 1, "BRIDGE", "", true, misc::del_fail_mode),
    cmd!("set-fail-mode", 2, 2, "BRIDGE MODE", "", true, misc::set_fail_mode),
    cmd!("get-manager", 0, 0, "", "", false, controller::get_manager),
    cmd!("del-manager", 0, 0, "", "", true, controller::del_manager),
    cmd!("set-manager", 1, MANY, "TARGET...", "--inactivity-probe=", true, controller::set_manager),
    cmd!("get-ssl", 0, 0, "", "", false, misc::get_ssl),
    cmd!("del-ssl", 0, 0, "", "", true, misc::del_ssl),
    cmd!("set-ssl", 3, 3, "PRIVATE-KEY CERTIFICATE CA-CERT", "--bootstrap", true, misc::unsupported_ssl),
    cmd!("add-aa-mapping", 3, 3, "BRIDGE ARG ARG", "", true, misc::unsupported_other),
    cmd!("del-aa-mapping", 3, 3, "BRIDGE ARG ARG", "", true, misc::unsupported_other),
    cmd!("get-aa-mapping", 1, 1, "BRIDGE", "", false, misc::unsupported_other),
    cmd!("add-zone-tp", 3, MANY, "", "--may-exist", true, zone::add_zone_tp),
    cmd!("del-zone-tp", 2, 2, "", "--if-exists", true, zone::del_zone_tp),
    cmd!("list-zone-tp", 1, 1, "", "", false, zone::list_zone_tp),
    cmd!("list-dp-cap", 1, 1, "", "", false, zone::list_dp_cap),
    cmd!("comment", 0, MANY, "[ARG]...", "", false, misc::comment),
    cmd!("get", 2, MANY, "TABLE RECORD [COLUMN[:KEY]]...", "--if-exists,--id=", false, db::get),
    cmd!("list", 1, MANY, "TABLE [RECORD]...", "--if-exists,--columns=", false, db::list),
    cmd!("find", 1, MANY, "TABLE [COLUMN[:KEY]=VALUE]...", "--columns=", false, db::find),
    cmd!("set", 3, MANY, "TABLE RECORD COLUMN[:KEY]=VALUE...", "--if-exists", true, db::set),
    cmd!("add", 4, MANY, "TABLE RECORD COLUMN [KEY=]VALUE...", "--if-exists", true, db::add),
    cmd!("remove", 4, MANY, "TABLE RECORD COLUMN KEY|VALUE|KEY=VALUE...", "--if-exists", true, db::remove),
    cmd!("clear", 3, MANY, "TABLE RECORD COLUMN...", "--if-exists", true, db::clear),
    cmd!("create", 2, MANY, "TABLE COLUMN[:KEY]=VALUE...", "--id=", true, db::create),
    cmd!("destroy", 1, MANY, "TABLE [RECORD]...", "--if-exists,--all", true, db::destroy),
    cmd!("wait-until", 2, MANY, "TABLE RECORD [COLUMN[:KEY]=VALUE]...", "", false, db::wait_until),
];

pub fn find(name: &str) -> Option<&'static Syntax> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// One command as parsed.
pub struct Parsed {
    pub syntax: &'static Syntax,
    pub cmd: Cmd,
}

/// Splits `args` at `--` and parses each command (db-ctl-base's ctl_parse_commands and
/// parse_command). `first_options` are command options that came before the first
/// command among the global options.
pub fn parse(args: &[String], mut first_options: BTreeMap<String, Option<String>>) -> Result<Vec<Parsed>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..=args.len() {
        if i == args.len() || args[i] == "--" {
            if i > start {
                out.push(parse_one(&args[start..i], std::mem::take(&mut first_options))?);
            } else if !first_options.is_empty() {
                return Err(CtlError::new("missing command name (use --help for help)"));
            }
            start = i + 1;
        }
    }
    if out.is_empty() {
        return Err(CtlError::new("missing command name (use --help for help)"));
    }
    Ok(out)
}

fn parse_one(argv: &[String], mut options: BTreeMap<String, Option<String>>) -> Result<Parsed> {
    let mut i = 0;
    while i < argv.len() && argv[i].starts_with('-') {
        let (k, v) = match argv[i].split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (argv[i].clone(), None),
        };
        if options.contains_key(&k) {
            return Err(CtlError::new(format!("'{}' option specified multiple times", argv[i])));
        }
        options.insert(k, v);
        i += 1;
    }
    if i == argv.len() {
        return Err(CtlError::new("missing command name (use --help for help)"));
    }
    let name = &argv[i];
    let Some(syntax) = find(name) else {
        return Err(CtlError::new(format!("unknown command '{name}'; use --help for help")));
    };
    for (k, v) in &options {
        let end = syntax.options.find(k.as_str()).map(|p| syntax.options.as_bytes().get(p + k.len()).copied().unwrap_or(b' '));
        let Some(end) = end.filter(|e| matches!(e, b'=' | b',' | b'?' | b' ')) else {
            return Err(CtlError::new(format!("'{name}' command has no '{k}' option")));
        };
        if end != b'?' && (end == b'=') != v.is_some() {
            return Err(CtlError::new(if end == b'=' {
                format!("missing argument to '{k}' option on '{name}' command")
            } else {
                format!("'{k}' option on '{name}' does not accept an argument")
            }));
        }
    }
    let n = argv.len() - i - 1;
    if n < syntax.min {
        return Err(CtlError::new(format!("'{}' command requires at least {} arguments", syntax.name, syntax.min)));
    }
    if n > syntax.max {
        let hint = argv[i + 1..].iter().any(|a| a.starts_with('-'));
        return Err(CtlError::new(if hint {
            format!(
                "'{}' command takes at most {} arguments (note that options must precede command names and follow a \"--\" argument)",
                syntax.name, syntax.max
            )
        } else {
            format!("'{}' command takes at most {} arguments", syntax.name, syntax.max)
        }));
    }
    Ok(Parsed { syntax, cmd: Cmd { argv: argv[i..].to_vec(), options, output: String::new(), table: None } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Vec<Parsed>> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), BTreeMap::new())
    }

    #[test]
    fn chains_and_errors() {
        let c = p(&["--if-exists", "del-port", "vnet0", "--", "add-port", "br0", "vnet0", "tag=5"]).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c[0].cmd.has("--if-exists"));
        assert_eq!(c[1].cmd.argv, vec!["add-port", "br0", "vnet0", "tag=5"]);
        assert_eq!(p(&["nosuchverb"]).err().unwrap().msg, "unknown command 'nosuchverb'; use --help for help");
        assert_eq!(p(&[]).err().unwrap().msg, "missing command name (use --help for help)");
        assert_eq!(p(&["--if-exists"]).err().unwrap().msg, "missing command name (use --help for help)");
        assert_eq!(p(&["--may-exist", "del-br", "x"]).err().unwrap().msg, "'del-br' command has no '--may-exist' option");
        assert_eq!(p(&["--id", "create", "QoS"]).err().unwrap().msg, "missing argument to '--id' option on 'create' command");
        assert_eq!(p(&["--if-exists=1", "del-br", "x"]).err().unwrap().msg, "'--if-exists' option on 'del-br' does not accept an argument");
        assert_eq!(p(&["del-br"]).err().unwrap().msg, "'del-br' command requires at least 1 arguments");
        assert_eq!(p(&["del-br", "a", "b"]).err().unwrap().msg, "'del-br' command takes at most 1 arguments");
        assert!(p(&["del-br", "a", "--if-exists"]).err().unwrap().msg.contains("options must precede command names"));
    }
}
