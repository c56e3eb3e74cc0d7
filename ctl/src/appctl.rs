//! ovs-appctl: `rvsctl fdb/show BR` (any verb with a `/`), or the whole program when
//! invoked as `ovs-appctl`. The daemon does the work; this prints its answer the way
//! ovs-appctl does: the output on stdout, or the error on stderr followed by
//! `PROGRAM: TARGET: server returned an error` and exit status 2.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{Backend, BackendError, Socket};

/// Result of an appctl invocation: (stdout, stderr, exit status).
pub type Out = (String, String, i32);

/// Runs `command args` against the daemon at `sock`.
pub fn call(prog: &str, sock: PathBuf, command: &str, args: &[String], timeout: Duration) -> Out {
    let target = sock.display().to_string();
    let mut b = Socket::new(sock, timeout);
    match b.appctl(command, args) {
        Ok((true, out)) => (out, String::new(), 0),
        Ok((false, err)) => {
            let mut e = err;
            if !e.is_empty() && !e.ends_with('\n') {
                e.push('\n');
            }
            (String::new(), format!("{e}{prog}: {target}: server returned an error\n"), 2)
        }
        Err(BackendError::Connect(e)) => (String::new(), format!("{prog}: cannot connect to \"{target}\" ({})\n", rvs_sys::strerror(&e)), 1),
        Err(BackendError::Timeout) => (String::new(), format!("{prog}: {target}: no answer within {} s\n", timeout.as_secs()), 1),
        Err(BackendError::Protocol(m)) => (String::new(), format!("{prog}: {target}: {m}\n"), 1),
    }
}

/// The ovs-appctl personality: `[-t TARGET] [-T SECS] [--timeout=SECS] COMMAND [ARG…]`,
/// `-h`, `-V`. A TARGET with a `/` is a socket path; a daemon name (the default,
/// `ovs-vswitchd`) means rvs-vswitchd's socket. With `watchdog`, `-T SECS` also arms
/// the alarm that ends the process (a real invocation); without, it only bounds the
/// wait for the answer (tests, the fuzzer: an alarm would end them).
pub fn main(prog: &str, args: &[String], default_sock: PathBuf, watchdog: bool) -> Out {
    let mut sock = default_sock;
    let mut timeout = crate::run::default_wait();
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let a = args[i].as_str();
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a, None),
        };
        let mut value = || -> Option<String> {
            inline.clone().or_else(|| {
                i += 1;
                args.get(i).cloned()
            })
        };
        match name {
            "-t" | "--target" => match value() {
                Some(t) if t.contains('/') => sock = PathBuf::from(t),
                Some(_) => {}
                None => return (String::new(), format!("{prog}: option '{name}' requires an argument\n"), 1),
            },
            "-T" | "--timeout" => match value().and_then(|v| v.parse::<u64>().ok()).filter(|&v| v > 0) {
                Some(v) => {
                    timeout = Duration::from_secs(v);
                    if watchdog {
                        crate::watchdog::arm(u32::try_from(v).unwrap_or(u32::MAX), Vec::new());
                    }
                }
                None => return (String::new(), format!("{prog}: value on -T or --timeout is invalid\n"), 1),
            },
            "-h" | "--help" => return (help(prog), String::new(), 0),
            "-V" | "--version" => return (format!("{prog} (Open vSwitch) 3.1.0\n"), String::new(), 0),
            "--" => {
                i += 1;
                break;
            }
            _ => return (String::new(), format!("{prog}: unrecognized option '{a}'\n"), 1),
        }
        i += 1;
    }
    let Some(command) = args.get(i) else {
        return (String::new(), format!("{prog}: at least one non-option argument is required (use --help for help)\n"), 1);
    };
    call(prog, sock, command, &args[i + 1..], timeout)
}

fn help(prog: &str) -> String {
    format!(
        "{prog}, for querying and controlling rvs-vswitchd (ovs-appctl compatible)\n\
usage: {prog} [TARGET] COMMAND [ARG...]\n\
Targets:\n  -t, --target=TARGET  daemon socket path, or a daemon name (default: rvs-vswitchd)\n\
Common commands:\n  list-commands      List commands supported by the target\n  version            Print version of the target\n  fdb/show BRIDGE    The MAC table of BRIDGE\n\
Other options:\n  --timeout=SECS     wait at most SECS seconds for a response\n  -h, --help         Print this helpful information\n  -V, --version      Display {prog} version information\n"
    )
}
