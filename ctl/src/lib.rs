//! `rvsctl`: the command line of rvs, speaking ovs-vsctl's language (and, through a
//! link named `ovs-appctl` or for any verb containing `/`, ovs-appctl's).
//!
//! The program name decides the personality and the prefix of messages: invoked as
//! `ovs-vsctl` it prints `ovs-vsctl: …` exactly where Open vSwitch's ovs-vsctl would,
//! so libvirt and scripts see no difference. Everything runs as one transaction
//! against rvs-vswitchd's database ([`run`]); commands live in [`commands`], one file
//! per family.
#![deny(unsafe_code)]

pub mod appctl;
pub mod backend;
pub mod cache;
pub mod commands;
pub mod context;
pub mod error;
pub mod format;
pub mod help;
pub mod names;
pub mod options;
pub mod remote;
pub mod run;
pub mod vlog;
pub mod watchdog;

use std::path::PathBuf;
use std::time::Instant;

use crate::backend::Backend;
use crate::error::CtlError;
use crate::options::Action;

/// What an invocation printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// The socket rvs-vswitchd listens on by default: `$RVS_RUNDIR/rvs.sock`, else
/// `/run/rvs/rvs.sock`.
pub fn default_socket() -> PathBuf {
    let dir = std::env::var_os("RVS_RUNDIR").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/rvs"));
    dir.join(rvs_ovsdb::proto::SOCKET_NAME)
}

/// The program name as invoked (`rvsctl`, `ovs-vsctl`, `ovs-appctl`).
pub fn program_name(argv0: &str) -> String {
    std::path::Path::new(argv0).file_name().and_then(|s| s.to_str()).unwrap_or("rvsctl").to_string()
}

/// Runs one invocation: `argv[0]` is the program, the rest its arguments.
pub fn run(argv: Vec<String>) -> Output {
    let prog = program_name(argv.first().map(String::as_str).unwrap_or("rvsctl"));
    let args = &argv[argv.len().min(1)..];
    if prog == "ovs-appctl" {
        let (stdout, stderr, code) = appctl::main(&prog, args, default_socket(), true);
        return Output { stdout, stderr, code };
    }
    vsctl(&prog, args, None)
}

/// ovs-vsctl's warnings ("module|WARN|text") as its console log prints them (by
/// default: time stamp, sequence number — the first message of an ovs-vsctl process
/// that reaches the console is 00002 —, module, level, text; `-v` may change both).
fn log_lines(warnings: &[String], vlog: &vlog::Vlog) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut seq = 1;
    let mut out = String::new();
    for w in warnings {
        let (module, text) = w.split_once("|WARN|").unwrap_or(("vsctl", w));
        seq += 1;
        out += &vlog.warning(seq, module, text, now).unwrap_or_default();
    }
    out
}

fn fail(prog: &str, e: CtlError) -> Output {
    let stderr = if e.msg.is_empty() { String::new() } else { format!("{prog}: {}\n", e.msg) };
    Output { stdout: String::new(), stderr, code: e.code }
}

/// The ovs-vsctl personality. `backend` replaces the daemon's socket (tests).
pub fn vsctl(prog: &str, args: &[String], backend: Option<&mut dyn Backend>) -> Output {
    let (opts, first) = match options::parse(args, prog) {
        Ok(x) => x,
        Err(e) => return fail(prog, e),
    };
    if backend.is_none() {
        watchdog::set_console(&opts.vlog);
    }
    match opts.action {
        Action::Help => return Output { stdout: help::vsctl(prog), ..Output::default() },
        Action::Version => return Output { stdout: help::version(prog), ..Output::default() },
        Action::Commands => return Output { stdout: help::commands() + &help::options() + &help::version(prog), ..Output::default() },
        Action::ListOptions => return Output { stdout: help::options() + &help::version(prog), ..Output::default() },
        Action::Run => {}
    }
    let rest = &args[first..];
    let (remote, db_name) = match &opts.db {
        Some(d) => (remote::parse(d), d.clone()),
        None => {
            let s = default_socket();
            (remote::Remote::Unix(s.clone()), format!("unix:{}", s.display()))
        }
    };
    // rvs extension: `rvsctl fdb/show br0` is an appctl command (so are the two
    // appctl verbs without a slash that ovs-vsctl has no use for).
    let appctl_verb = |c: &&String| (c.contains('/') && !c.starts_with('-')) || matches!(c.as_str(), "list-commands" | "version");
    if let Some(cmd) = rest.first().filter(appctl_verb) {
        let remote::Remote::Unix(sock) = remote else {
            return fail(prog, CtlError::new(format!("{db_name}: rvs answers appctl commands on its unix socket only")));
        };
        let timeout = opts.timeout.map_or(run::default_wait(), |t| std::time::Duration::from_secs(u64::from(t)));
        // The watchdog ends the process: only for a real invocation, never for a
        // caller that passed its own backend (tests, the fuzzer).
        if let Some(t) = opts.timeout.filter(|_| backend.is_none()) {
            watchdog::arm(t, Vec::new());
        }
        let (stdout, stderr, code) = appctl::call(prog, sock, cmd, &rest[1..], timeout);
        return Output { stdout, stderr, code };
    }
    let mut cmds = match commands::parse(rest, opts.local.clone()) {
        Ok(c) => c,
        Err(e) => return fail(prog, e),
    };
    let mut socket;
    let (b, deadline): (&mut dyn Backend, Option<Instant>) = match backend {
        // A test backend has nothing to wait for: a `wait-until` that does not hold
        // fails after a moment.
        Some(b) => (b, Some(Instant::now() + std::time::Duration::from_millis(200))),
        None => {
            // As ovs-vsctl: --timeout ends whatever takes longer (SIGALRM, status 142,
            // with OVS's fatal_signal line); without it, rvsctl waits as long as it
            // takes for `wait-until` and `--retry`, and each request for an answer
            // at most default_wait() (a daemon that hangs is reported).
            let per_call = match opts.timeout {
                Some(t) => std::time::Duration::from_secs(u64::from(t) + 5),
                None => run::default_wait(),
            };
            let sock = match remote {
                remote::Remote::Unix(p) => p,
                remote::Remote::Passive(l) => return fail(prog, remote::wait_passive(&l, opts.timeout)),
                remote::Remote::Fails(m) => return fail(prog, CtlError::new(format!("{db_name}: {m}"))),
            };
            if let Some(t) = opts.timeout {
                watchdog::arm(t, Vec::new());
            }
            socket = backend::Socket::new(sock, per_call);
            if opts.retry {
                socket = socket.retrying();
            }
            (&mut socket, None)
        }
    };
    match run::execute(b, &opts, &mut cmds, deadline, &db_name) {
        Ok(out) => {
            let mut stderr = log_lines(&out.warnings, &opts.vlog);
            stderr.extend(out.errors.iter().map(|e| format!("{prog}: {e}\n")));
            Output { stdout: out.stdout, stderr, code: 0 }
        }
        Err(e) => fail(prog, e),
    }
}
