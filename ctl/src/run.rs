//! Running a chain of commands as one transaction (ovs-vsctl's do_vsctl): read a
//! snapshot, run every command against a copy, check the result, send the difference,
//! start over if someone committed first, print the outputs, then report interfaces
//! that failed to come up.

use std::time::{Duration, Instant};

use rvs_ovsdb::view::{Interface, OpenVswitch};
use rvs_ovsdb::{Datum, Db, TABLES, Uuid};

use crate::backend::{Backend, BackendError, Commit};
use crate::commands::Parsed;
use crate::context::Txn;
use crate::error::{CtlError, Result};
use crate::format::Printer;
use crate::options::Options;

/// What running the commands produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    /// Messages for stderr (without the program name), e.g. setup errors.
    pub errors: Vec<String>,
    /// ovs-vsctl's logged warnings, "module|WARN|text" (printed first, time-stamped).
    pub warnings: Vec<String>,
}

/// How long to wait when the user did not say (`--timeout`): 30 s, or
/// `$RVSCTL_WAIT` seconds.
pub fn default_wait() -> Duration {
    let secs = std::env::var("RVSCTL_WAIT").ok().and_then(|v| v.parse::<u64>().ok()).filter(|&v| v > 0).unwrap_or(30);
    Duration::from_secs(secs)
}

/// Least and most time between two looks at the database while `wait-until` waits: a
/// condition that comes true soon is seen soon, one that takes minutes costs the
/// daemon one snapshot a second (which also keeps the connection from going idle).
const WAIT_FIRST: Duration = Duration::from_millis(50);
const WAIT_MOST: Duration = Duration::from_secs(1);

/// Runs `cmds` against `backend`. `wait-until` and commit conflicts run them again
/// until they succeed, or until `deadline` if there is one (ovs-vsctl has none:
/// `--timeout` ends the process instead).
pub fn execute(backend: &mut dyn Backend, opts: &Options, cmds: &mut [Parsed], deadline: Option<Instant>, db_name: &str) -> Result<Outcome> {
    let mut pause = WAIT_FIRST;
    let past = |d: Option<Instant>| d.is_some_and(|d| Instant::now() >= d);
    loop {
        let snapshot = backend.snapshot().map_err(|e| backend_error(e, db_name))?;
        let mut txn = Txn::new(snapshot.clone());
        for c in cmds.iter_mut() {
            c.cmd.output.clear();
            c.cmd.table = None;
        }
        let n = cmds.len();
        for (i, c) in cmds.iter_mut().enumerate() {
            txn.last_command = i + 1 == n;
            (c.syntax.run)(&mut txn, &mut c.cmd)?;
            if txn.try_again {
                break;
            }
        }
        if txn.try_again {
            if past(deadline) {
                return Err(timeout_error(opts, db_name));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(WAIT_MOST);
            continue;
        }
        for (name, s) in &txn.symbols {
            if !s.created {
                return Err(CtlError::new(format!("row id \"{name}\" is referenced but never created (e.g. with \"-- --id={name} create ...\")")));
            }
        }
        unreferenced_symbols(&mut txn);
        check_deletions(&snapshot, &mut txn.db)?;
        check_new_uuids(&snapshot, &txn.inserted)?;
        check_indexes(&snapshot, &txn.db, &txn.inserted)?;
        let mut ops = snapshot.diff(&txn.db);
        if !ops.is_empty() && !opts.no_wait {
            let root = txn.root();
            let next = txn.db.col(OpenVswitch::NEXT_CFG, &root).and_then(Datum::as_int).unwrap_or(0) + 1;
            txn.db.set_col(OpenVswitch::NEXT_CFG, &root, Datum::integer(next));
            ops = snapshot.diff(&txn.db);
        }
        let after = if ops.is_empty() || opts.dry_run {
            None
        } else {
            match backend.commit(snapshot.generation, ops, !opts.no_wait).map_err(|e| backend_error(e, db_name))? {
                Commit::Done(db) => Some(db),
                Commit::Conflict => {
                    if past(deadline) {
                        return Err(timeout_error(opts, db_name));
                    }
                    continue;
                }
                Commit::Refused(msg) => return Err(CtlError::new(msg)),
            }
        };
        let mut out = Outcome { stdout: print(opts, cmds), errors: vec![], warnings: std::mem::take(&mut txn.warnings) };
        if let (Some(db), false) = (after, opts.no_wait) {
            out.errors = setup_errors(&db, &txn.new_ifaces);
        }
        return Ok(out);
    }
}

fn print(opts: &Options, cmds: &[Parsed]) -> String {
    let mut printer = Printer::default();
    let mut s = String::new();
    for c in cmds {
        if let Some(t) = &c.cmd.table {
            s += &printer.format(t, &opts.style);
        } else if opts.oneline {
            let o = c.cmd.output.strip_suffix('\n').unwrap_or(&c.cmd.output);
            s += &o.replace('\\', "\\\\").replace('\n', "\\n");
            s.push('\n');
        } else {
            s += &c.cmd.output;
        }
    }
    s
}

/// Whether some row refers to row `u` of table `ti` through a weak reference (which
/// does not keep it).
fn weakly_referred(db: &Db, ti: usize, u: &Uuid) -> bool {
    let tname = TABLES[ti].name;
    db.tables.iter().enumerate().any(|(t, rows)| {
        TABLES[t].columns.iter().enumerate().any(|(ci, c)| {
            let key = c.ty.key.weak && c.ty.key.ref_table == Some(tname);
            let value = c.ty.value.is_some_and(|v| v.weak && v.ref_table == Some(tname));
            (key || value)
                && rows.values().any(|r| {
                    let d = &r.cols[ci];
                    (key && d.keys.iter().any(|a| a.as_uuid() == Some(*u))) || (value && d.values.iter().flatten().any(|a| a.as_uuid() == Some(*u)))
                })
        })
    })
}

/// ovs-vsctl's warning for `--id=@name create` of a row in a non-root table that
/// nothing refers to: the server drops it at once.
fn unreferenced_symbols(txn: &mut Txn) {
    let mut names: Vec<&String> = txn.symbols.keys().collect();
    names.sort();
    let mut warn = Vec::new();
    for name in names {
        let u = txn.symbols[name].uuid;
        let Some(ti) = txn.db.tables.iter().position(|rows| rows.contains_key(&u)) else { continue };
        if !TABLES[ti].is_root && txn.inserted.contains(&u) && txn.db.referrers(ti, &u).is_empty() {
            let only = if weakly_referred(&txn.db, ti, &u) { "only a weak reference" } else { "no reference" };
            warn.push(format!("row id \"{name}\" was created but {only} to it was inserted, so it will not actually appear in the database"));
        }
    }
    for w in warn {
        txn.warn("vsctl", w);
    }
}

/// OVSDB refuses to delete a row of a root table that another row still refers to.
/// A referenced row of a non-root table is not deleted at all: ovs-vsctl's `destroy
/// Manager X` while Open_vSwitch still lists X changes nothing and exits 0 (the IDL
/// leaves such rows to the server's garbage collection).
fn check_deletions(before: &Db, after: &mut Db) -> Result<()> {
    for (ti, rows) in before.tables.iter().enumerate() {
        let gone: Vec<_> = rows.iter().filter(|(u, _)| !after.tables[ti].contains_key(u)).collect();
        for (u, row) in gone {
            let refs: usize = after.referrers(ti, u).iter().map(|(_, _, n)| n).sum();
            if refs == 0 {
                continue;
            }
            if !TABLES[ti].is_root {
                after.tables[ti].insert(*u, row.clone());
                continue;
            }
            return Err(CtlError::new(format!(
                "transaction error: {{\"details\":\"cannot delete {} row {u} because of {refs} remaining reference(s)\",\"error\":\"referential integrity violation\"}}",
                TABLES[ti].name
            )));
        }
    }
    Ok(())
}

/// OVSDB refuses an insert whose UUID (`create --id=UUID`) already names a row of the
/// table in the database the transaction started from, even one it deletes.
fn check_new_uuids(before: &Db, inserted: &std::collections::HashSet<Uuid>) -> Result<()> {
    for u in inserted {
        if before.tables.iter().any(|rows| rows.contains_key(u)) {
            return Err(CtlError::new(format!(
                "transaction error: {{\"details\":\"This UUID would duplicate a UUID already present within the table or deleted within the same transaction.\",\"error\":\"duplicate uuid\",\"syntax\":\"\\\"{u}\\\"\"}}"
            )));
        }
    }
    Ok(())
}

/// ovsdb-server's unique index check (the names, Manager's `target`,
/// Flow_Sample_Collector_Set's `id` and `bridge`), worded as it words it: a row this
/// transaction inserted or modified first, then the other (ovsdb-server orders the two
/// by comparing their columns in hash order, so either way round from run to run),
/// each described by what the transaction did to it. Rows that garbage collection
/// removes at commit do not count.
fn check_indexes(before: &Db, db: &Db, inserted: &std::collections::HashSet<Uuid>) -> Result<()> {
    let mut db = db.clone();
    db.collect_garbage();
    for (ti, ts) in TABLES.iter().enumerate() {
        if ts.index.is_empty() {
            continue;
        }
        let values = |r: &rvs_ovsdb::Row| r.index_values(ts);
        let touched = |u: &Uuid| before.tables[ti].get(u).is_none_or(|old| Some(old) != db.tables[ti].get(u));
        let mut seen: std::collections::HashMap<String, Uuid> = std::collections::HashMap::new();
        // The rows this transaction touched last, so a clash names one of them first.
        let mut rows: Vec<(&Uuid, &rvs_ovsdb::Row)> = db.tables[ti].iter().collect();
        rows.sort_by_key(|(u, _)| touched(u));
        for (u, r) in rows {
            let key = values(r);
            let Some(other) = seen.insert(key.clone(), *u) else { continue };
            let how = |x: &Uuid| match (before.tables[ti].get(x), db.tables[ti].get(x)) {
                (None, _) if inserted.contains(x) => "was inserted by this transaction.".to_string(),
                (Some(old), Some(new)) if old != new && values(old) == values(new) => {
                    "existed in the database before this transaction, which modified some of the row's columns but not any columns in this index.".to_string()
                }
                (Some(old), Some(new)) if old != new => format!("had the following index values before the transaction: {}.", values(old)),
                _ => "existed in the database before this transaction and was not modified by the transaction.".to_string(),
            };
            let details = format!(
                "Transaction causes multiple rows in \"{}\" table to have identical values ({key}) for index on {}.  First row, with UUID {u}, {}  Second row, with UUID {other}, {}",
                ts.name,
                ts.index_phrase(),
                how(u),
                how(&other)
            );
            let err = serde_json::json!({"details": details, "error": "constraint violation"});
            return Err(CtlError::new(format!("transaction error: {err}")));
        }
    }
    Ok(())
}

/// "Error detected while setting up …" for each new interface without an OpenFlow
/// port number, as ovs-vsctl reports after ovs-vswitchd applied the change.
fn setup_errors(db: &Db, new_ifaces: &[Uuid]) -> Vec<String> {
    let mut out = Vec::new();
    for u in new_ifaces {
        let Some(i) = Interface::get(db, u) else { continue };
        let ofport = i.ofport();
        if ofport.is_none() || ofport == Some(-1) {
            let name = i.name();
            match i.error().filter(|e| !e.is_empty()) {
                Some(e) => out.push(format!("Error detected while setting up '{name}': {e}.  See ovs-vswitchd log for details.")),
                None => out.push(format!("Error detected while setting up '{name}'.  See ovs-vswitchd log for details.")),
            }
        }
    }
    if !out.is_empty() {
        out.push("The default log directory is \"/var/log/rvs\".".into());
    }
    out
}

pub fn backend_error(e: BackendError, db_name: &str) -> CtlError {
    match e {
        BackendError::Connect(err) => CtlError::new(format!("{db_name}: database connection failed ({})", rvs_sys::strerror(&err))),
        BackendError::Timeout => {
            CtlError::new(format!("{db_name}: no answer from rvs-vswitchd within {} s (use --timeout=SECS to wait longer)", default_wait().as_secs()))
        }
        BackendError::Protocol(m) => CtlError::new(format!("{db_name}: {m}")),
    }
}

fn timeout_error(opts: &Options, db_name: &str) -> CtlError {
    match opts.timeout {
        // With --timeout, SIGALRM ends the process first (as in ovs-vsctl).
        Some(t) => CtlError::new(format!("{db_name}: timed out after {t} s")),
        None => backend_error(BackendError::Timeout, db_name),
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::{Backend, BackendError, Commit, Memory};
    use rvs_ovsdb::{Db, RowOp};

    fn run(mem: &mut dyn Backend, args: &[&str]) -> crate::Output {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        crate::vsctl("rvsctl", &a, Some(mem))
    }

    #[test]
    fn a_failing_command_rolls_back_the_chain() {
        let mut m = Memory::new();
        assert_eq!(run(&mut m, &["add-br", "br0"]).code, 0);
        let before = m.db.generation;
        let out = run(&mut m, &["add-port", "br0", "p1", "--", "set", "Port", "p1", "tag=9999"]);
        assert_eq!(out.code, 1);
        assert_eq!(out.stderr, "rvsctl: constraint violation: 9999 is not in the valid range 0 to 4095 (inclusive)\n");
        assert_eq!(m.db.generation, before, "nothing committed");
        assert_eq!(run(&mut m, &["list-ports", "br0"]).stdout, "");
    }

    #[test]
    fn index_clashes_are_worded_as_ovsdb_server_words_them() {
        let mut m = Memory::new();
        assert_eq!(run(&mut m, &["add-br", "br0", "--", "add-br", "br1"]).code, 0);
        let uuid = |m: &mut Memory, args: &[&str]| run(m, args).stdout.trim().to_string();
        let b0 = uuid(&mut m, &["get", "Bridge", "br0", "_uuid"]);
        // A Manager's target changed into another's: the changed row first, with its old value.
        for t in ["ptcp:6641", "ptcp:6642"] {
            let target = format!("target=\"{t}\"");
            assert_eq!(run(&mut m, &["--", "--id=@m", "create", "Manager", &target, "--", "add", "Open_vSwitch", ".", "manager_options", "@m"]).code, 0);
        }
        let (m1, m2) = (uuid(&mut m, &["get", "Manager", "ptcp:6641", "_uuid"]), uuid(&mut m, &["get", "Manager", "ptcp:6642", "_uuid"]));
        let out = run(&mut m, &["set", "Manager", "ptcp:6642", "target=\"ptcp:6641\""]);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr.contains(&format!(
                "identical values (\\\"ptcp:6641\\\") for index on column \\\"target\\\".  First row, with UUID {m2}, had the following index values before the transaction: \\\"ptcp:6642\\\".  Second row, with UUID {m1}, existed in the database before this transaction and was not modified by the transaction."
            )),
            "{}",
            out.stderr
        );
        // Flow_Sample_Collector_Set: (id, bridge) together.
        let c0 =
            run(&mut m, &["--", "--id=@b", "get", "Bridge", "br0", "--", "create", "Flow_Sample_Collector_Set", "id=1", "bridge=@b"]).stdout.trim().to_string();
        assert_eq!(c0.len(), 36, "{c0}");
        assert_eq!(run(&mut m, &["--", "--id=@b", "get", "Bridge", "br1", "--", "create", "Flow_Sample_Collector_Set", "id=1", "bridge=@b"]).code, 0);
        let out = run(&mut m, &["--", "--id=@b", "get", "Bridge", "br0", "--", "create", "Flow_Sample_Collector_Set", "id=1", "bridge=@b", "external_ids:k=v"]);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr.contains(&format!("identical values (1 and {b0}) for index on columns \\\"id\\\" and \\\"bridge\\\".  First row, with UUID ")),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(", was inserted by this transaction.  Second row, with UUID "), "{}", out.stderr);
        // A change to another column of a row in the index is described as such.
        let out = run(
            &mut m,
            &[
                "set",
                "Flow_Sample_Collector_Set",
                &c0,
                "external_ids:k=v",
                "--",
                "--id=@b",
                "get",
                "Bridge",
                "br0",
                "--",
                "create",
                "Flow_Sample_Collector_Set",
                "id=1",
                "bridge=@b",
            ],
        );
        assert_eq!(out.code, 1);
        assert!(
            out.stderr.contains("existed in the database before this transaction, which modified some of the row's columns but not any columns in this index."),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("was inserted by this transaction."), "{}", out.stderr);
    }

    #[test]
    fn a_uuid_that_names_a_row_is_not_reused_by_create() {
        let mut m = Memory::new();
        let id = "5a70be5b-1a4e-4c8c-9fb0-c3c7d1b6e3ab";
        assert_eq!(run(&mut m, &[&format!("--id={id}"), "create", "QoS", "type=linux-htb"]).stdout, format!("{id}\n"));
        let before = m.db.generation;
        for args in [
            vec![format!("--id={id}"), "create".into(), "QoS".into(), "type=linux-hfsc".into()],
            vec!["destroy".into(), "QoS".into(), id.into(), "--".into(), format!("--id={id}"), "create".into(), "QoS".into(), "type=linux-hfsc".into()],
        ] {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run(&mut m, &a);
            assert_eq!(out.code, 1, "{args:?}");
            assert!(out.stderr.contains("\"error\":\"duplicate uuid\""), "{}", out.stderr);
        }
        assert_eq!(m.db.generation, before, "nothing committed");
        assert!(run(&mut m, &["get", "QoS", id, "type"]).stdout.contains("linux-htb"));
    }

    /// A backend that reports a conflict on the first commit, as when another client
    /// committed in between.
    struct Busy {
        inner: Memory,
        conflicts: usize,
    }

    impl Backend for Busy {
        fn snapshot(&mut self) -> Result<Db, BackendError> {
            self.inner.snapshot()
        }
        fn commit(&mut self, base: u64, ops: Vec<RowOp>, wait: bool) -> Result<Commit, BackendError> {
            if self.conflicts > 0 {
                self.conflicts -= 1;
                // Someone else added a bridge meanwhile.
                let _ = run(&mut self.inner, &["add-br", "other"]);
                return Ok(Commit::Conflict);
            }
            self.inner.commit(base, ops, wait)
        }
        fn appctl(&mut self, c: &str, a: &[String]) -> Result<(bool, String), BackendError> {
            self.inner.appctl(c, a)
        }
    }

    #[test]
    fn conflicts_rerun_on_a_fresh_snapshot_without_lost_updates() {
        let mut b = Busy { inner: Memory::new(), conflicts: 2 };
        let out = run(&mut b, &["add-br", "mine"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(run(&mut b.inner, &["list-br"]).stdout, "mine\nother\n");
        // The retry saw "other" and a second conflict made it run a third time.
        assert_eq!(b.conflicts, 0);
    }

    #[test]
    fn symbols_must_be_created() {
        let mut m = Memory::new();
        run(&mut m, &["add-br", "br0"]);
        run(&mut m, &["add-port", "br0", "p1"]);
        let out = run(&mut m, &["set", "Port", "p1", "qos=@q"]);
        assert_eq!(out.stderr, "rvsctl: row id \"@q\" is referenced but never created (e.g. with \"-- --id=@q create ...\")\n");
        let out = run(&mut m, &["--", "--id=@q", "create", "QoS", "type=linux-htb", "--", "set", "Port", "p1", "qos=@q"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout.len(), 37, "the new row's UUID: {}", out.stdout);
        assert_eq!(run(&mut m, &["get", "QoS", "p1", "type"]).stdout, "linux-htb\n");
    }

    #[test]
    fn oneline_and_dry_run() {
        let mut m = Memory::new();
        run(&mut m, &["add-br", "br0"]);
        run(&mut m, &["add-br", "br1"]);
        assert_eq!(run(&mut m, &["--oneline", "list-br", "--", "br-exists", "br0"]).stdout, "br0\\nbr1\n\n");
        assert_eq!(run(&mut m, &["--dry-run", "del-br", "br0"]).code, 0);
        assert_eq!(run(&mut m, &["list-br"]).stdout, "br0\nbr1\n");
    }
}
