//! Command-line options, parsed the way ovs-vsctl's `getopt_long` does: options come
//! before the first command word; long options may be abbreviated to any unique
//! prefix (`--no-heading`); `--opt=value` or `--opt value` for options that take a
//! value; `--` ends the options. Command options (`--if-exists`, `--may-exist`,
//! `--id=@x`, `--columns=…`, …) given here apply to the first command. Error texts are
//! glibc getopt's, with the program name first.

use std::collections::BTreeMap;

use crate::error::{CtlError, Result};
use crate::format::{CellFormat, Format, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    No,
    Required,
    Optional,
}

/// (long name, argument, short letter)
const GLOBAL: &[(&str, Arg, Option<char>)] = &[
    ("db", Arg::Required, None),
    ("no-syslog", Arg::No, None),
    ("no-wait", Arg::No, None),
    ("dry-run", Arg::No, None),
    ("oneline", Arg::No, None),
    ("timeout", Arg::Required, Some('t')),
    ("retry", Arg::No, None),
    ("help", Arg::No, Some('h')),
    ("commands", Arg::No, None),
    ("options", Arg::No, None),
    ("leader-only", Arg::No, None),
    ("no-leader-only", Arg::No, None),
    ("shuffle-remotes", Arg::No, None),
    ("no-shuffle-remotes", Arg::No, None),
    ("version", Arg::No, Some('V')),
    ("verbose", Arg::Optional, Some('v')),
    ("log-file", Arg::Optional, None),
    ("syslog-method", Arg::Required, None),
    ("syslog-target", Arg::Required, None),
    ("format", Arg::Required, Some('f')),
    ("data", Arg::Required, Some('d')),
    ("no-headings", Arg::No, None),
    ("pretty", Arg::No, None),
    ("bare", Arg::No, None),
    ("max-column-width", Arg::Required, None),
    ("private-key", Arg::Required, Some('p')),
    ("certificate", Arg::Required, Some('c')),
    ("ca-cert", Arg::Required, Some('C')),
    ("ssl-protocols", Arg::Required, None),
    ("ssl-ciphers", Arg::Required, None),
    ("bootstrap-ca-cert", Arg::Required, None),
    ("peer-ca-cert", Arg::Required, None),
];

/// Options that belong to commands (the union over every command's option list).
pub const LOCAL: &[(&str, Arg)] = &[
    ("all", Arg::No),
    ("bootstrap", Arg::No),
    ("columns", Arg::Required),
    ("fake", Arg::No),
    ("fake-iface", Arg::No),
    ("id", Arg::Required),
    ("if-exists", Arg::No),
    ("inactivity-probe", Arg::Required),
    ("may-exist", Arg::No),
    ("real", Arg::No),
    ("with-iface", Arg::No),
];

/// The global settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: Option<String>,
    pub no_wait: bool,
    pub dry_run: bool,
    pub oneline: bool,
    pub timeout: Option<u32>,
    /// `--retry`: keep trying to connect until `--timeout` (or forever).
    pub retry: bool,
    pub style: Style,
    /// What to do instead of running commands.
    pub action: Action,
    /// Command options given before the first command.
    pub local: BTreeMap<String, Option<String>>,
    /// `-v`/`--verbose`: the console log's levels and format.
    pub vlog: crate::vlog::Vlog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Run,
    Help,
    Version,
    /// `--commands`: list commands, then options, then version.
    Commands,
    /// `--options`: list options, then version.
    ListOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            db: None,
            no_wait: false,
            dry_run: false,
            oneline: false,
            timeout: None,
            retry: false,
            style: Style::default(),
            action: Action::Run,
            local: BTreeMap::new(),
            vlog: crate::vlog::Vlog::default(),
        }
    }
}

/// Every long option name (for `--options`).
pub fn all_long_options() -> Vec<(&'static str, Arg)> {
    let mut v: Vec<(&str, Arg)> = GLOBAL.iter().map(|(n, a, _)| (*n, *a)).collect();
    v.extend(LOCAL.iter().copied());
    v
}

enum Opt {
    Global(&'static str),
    Local(&'static str),
}

/// Finds a long option by exact name or unique prefix (glibc semantics).
fn lookup_long(name: &str, prog: &str, shown: &str) -> Result<(Opt, Arg)> {
    let all: Vec<(Opt, Arg, &str)> =
        GLOBAL.iter().map(|(n, a, _)| (Opt::Global(n), *a, *n)).chain(LOCAL.iter().map(|(n, a)| (Opt::Local(n), *a, *n))).collect();
    if let Some(i) = all.iter().position(|(_, _, n)| *n == name) {
        let (o, a, _) = all.into_iter().nth(i).expect("found");
        return Ok((o, a));
    }
    let matches: Vec<usize> = (0..all.len()).filter(|&i| all[i].2.starts_with(name)).collect();
    match matches.len() {
        0 => Err(CtlError::new(format!("unrecognized option '{shown}'"))),
        1 => {
            let (o, a, _) = all.into_iter().nth(matches[0]).expect("found");
            Ok((o, a))
        }
        _ => {
            let list: Vec<String> = matches.iter().map(|&i| format!(" '--{}'", all[i].2)).collect();
            let _ = prog;
            Err(CtlError::new(format!("option '{shown}' is ambiguous; possibilities:{}", list.join(""))))
        }
    }
}

/// Parses the options; returns them and the index of the first argument that is not
/// an option (after a `--`, if that ended the options).
pub fn parse(args: &[String], prog: &str) -> Result<(Options, usize)> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return Ok((o, i + 1));
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let shown = format!("--{name}");
            let (opt, arg) = lookup_long(name, prog, &shown)?;
            let full = match &opt {
                Opt::Global(n) | Opt::Local(n) => *n,
            };
            let value = match arg {
                Arg::No => {
                    if inline.is_some() {
                        return Err(CtlError::new(format!("option '--{full}' doesn't allow an argument")));
                    }
                    None
                }
                Arg::Optional => inline,
                Arg::Required => match inline {
                    Some(v) => Some(v),
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => Some(v.clone()),
                            None => return Err(CtlError::new(format!("option '--{full}' requires an argument"))),
                        }
                    }
                },
            };
            match opt {
                Opt::Global(n) => apply_global(&mut o, n, value)?,
                Opt::Local(n) => {
                    if o.local.contains_key(&format!("--{n}")) {
                        return Err(CtlError::new(format!("'{n}' option specified multiple times")));
                    }
                    o.local.insert(format!("--{n}"), value);
                }
            }
            if o.action != Action::Run {
                return Ok((o, args.len()));
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let Some((n, arg, _)) = GLOBAL.iter().find(|(_, _, s)| *s == Some(c)) else {
                    return Err(CtlError::new(format!("invalid option -- '{c}'")));
                };
                let rest: String = chars[k + 1..].iter().collect();
                let value = match arg {
                    Arg::No => None,
                    Arg::Optional => {
                        k = chars.len();
                        (!rest.is_empty()).then_some(rest)
                    }
                    Arg::Required => {
                        k = chars.len();
                        if !rest.is_empty() {
                            Some(rest)
                        } else {
                            i += 1;
                            match args.get(i) {
                                Some(v) => Some(v.clone()),
                                None => return Err(CtlError::new(format!("option requires an argument -- '{c}'"))),
                            }
                        }
                    }
                };
                apply_global(&mut o, n, value)?;
                if o.action != Action::Run {
                    return Ok((o, args.len()));
                }
                k += 1;
            }
        } else {
            return Ok((o, i));
        }
        i += 1;
    }
    Ok((o, i))
}

fn apply_global(o: &mut Options, name: &str, value: Option<String>) -> Result<()> {
    if name == "verbose" {
        o.vlog.apply(value.as_deref());
        return Ok(());
    }
    let v = value.unwrap_or_default();
    match name {
        "db" => o.db = Some(v),
        "no-wait" => o.no_wait = true,
        "dry-run" => o.dry_run = true,
        "oneline" => o.oneline = true,
        "retry" => o.retry = true,
        "timeout" => match v.parse::<u32>() {
            Ok(n) if n > 0 => o.timeout = Some(n),
            _ => return Err(CtlError::new(format!("value {v} on -t or --timeout is invalid"))),
        },
        "help" => o.action = Action::Help,
        "version" => o.action = Action::Version,
        "commands" => o.action = Action::Commands,
        "options" => o.action = Action::ListOptions,
        "format" => o.style.format = Format::parse(&v).ok_or_else(|| CtlError::new(format!("unknown output format \"{v}\"")))?,
        "data" => o.style.cell = CellFormat::parse(&v).ok_or_else(|| CtlError::new(format!("unknown data format \"{v}\"")))?,
        "no-headings" => o.style.headings = false,
        "pretty" => o.style.pretty = true,
        "bare" => {
            o.style.format = Format::List;
            o.style.cell = CellFormat::Bare;
            o.style.headings = false;
        }
        "max-column-width" => o.style.max_column_width = v.trim().parse().unwrap_or(0),
        // Logging, SSL, clustering and reconnection options have no meaning for rvs's
        // local socket; they are accepted so that scripts passing them keep working.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<(Options, usize)> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "rvsctl")
    }

    #[test]
    fn libvirt_style() {
        let (o, i) = p(&["--timeout=5", "--", "--if-exists", "del-port", "vnet0"]).unwrap();
        assert_eq!((o.timeout, i), (Some(5), 2));
        let (o, i) =
            p(&["--timeout=5", "--if-exists", "--format=list", "--data=json", "--no-heading", "--columns=statistics", "list", "Interface", "x"]).unwrap();
        assert_eq!(i, 6);
        assert_eq!(o.style.format, Format::List);
        assert_eq!(o.style.cell, CellFormat::Json);
        assert!(!o.style.headings);
        assert_eq!(o.local.get("--columns"), Some(&Some("statistics".to_string())));
        assert!(o.local.contains_key("--if-exists"));
    }

    #[test]
    fn short_and_errors() {
        assert_eq!(p(&["-t", "7", "show"]).unwrap().0.timeout, Some(7));
        assert_eq!(p(&["-t7", "show"]).unwrap().0.timeout, Some(7));
        assert_eq!(p(&["--timeout=0", "show"]).unwrap_err().msg, "value 0 on -t or --timeout is invalid");
        assert_eq!(p(&["--bogus", "show"]).unwrap_err().msg, "unrecognized option '--bogus'");
        assert!(p(&["--no", "show"]).unwrap_err().msg.starts_with("option '--no' is ambiguous; possibilities:"));
        assert_eq!(p(&["--dry-run=1", "show"]).unwrap_err().msg, "option '--dry-run' doesn't allow an argument");
        assert_eq!(p(&["--db"]).unwrap_err().msg, "option '--db' requires an argument");
        assert_eq!(p(&["-x"]).unwrap_err().msg, "invalid option -- 'x'");
        assert_eq!(p(&["--format=xml", "list", "Bridge"]).unwrap_err().msg, "unknown output format \"xml\"");
        assert_eq!(p(&["--version"]).unwrap().0.action, Action::Version);
        assert_eq!(p(&["-v", "--log-file", "show"]).unwrap().1, 2);
    }
}
