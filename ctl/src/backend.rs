//! Where the database lives: the daemon's control socket, or (for tests) memory.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rvs_ovsdb::proto::{Client, ProtoError, Request, Response};
use rvs_ovsdb::view::OpenVswitch;
use rvs_ovsdb::{Db, RowOp};

/// What a commit did.
pub enum Commit {
    /// Committed; the database after the commit (with status columns).
    Done(Db),
    /// Someone else committed first: start over.
    Conflict,
    /// Refused (schema violation and the like).
    Refused(String),
}

/// Failures talking to the daemon.
#[derive(Debug)]
pub enum BackendError {
    /// Could not connect (daemon not running, wrong path, no permission).
    Connect(io::Error),
    /// The daemon did not answer in time.
    Timeout,
    /// The connection broke or the daemon answered nonsense.
    Protocol(String),
}

/// The database as rvsctl uses it.
pub trait Backend {
    fn snapshot(&mut self) -> Result<Db, BackendError>;
    fn commit(&mut self, base: u64, ops: Vec<RowOp>, wait: bool) -> Result<Commit, BackendError>;
    /// An appctl command: (ok, output).
    fn appctl(&mut self, command: &str, args: &[String]) -> Result<(bool, String), BackendError>;
}

/// The daemon's control socket.
pub struct Socket {
    path: PathBuf,
    /// How long one request may wait for its answer.
    per_call: Duration,
    /// `--retry`: a socket that is not there yet (or refuses) is tried again until it
    /// accepts, instead of failing at once — for scripts racing the daemon's start.
    retry: bool,
    client: Option<Client>,
}

/// Least and most time between two connection attempts with `--retry`.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(1);

impl Socket {
    pub fn new(path: PathBuf, per_call: Duration) -> Socket {
        Socket { path, per_call, retry: false, client: None }
    }

    /// Keeps trying to connect (ovs-vsctl's `--retry`); only `--timeout` ends it.
    pub fn retrying(mut self) -> Socket {
        self.retry = true;
        self
    }

    fn connect(&self) -> Result<Client, BackendError> {
        let mut pause = RETRY_FIRST;
        loop {
            match Client::connect(&self.path, self.per_call.max(Duration::from_millis(10))) {
                Ok(c) => return Ok(c),
                Err(e) if self.retry && matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MOST);
                }
                Err(e) => return Err(BackendError::Connect(e)),
            }
        }
    }

    fn call(&mut self, req: &Request) -> Result<Response, BackendError> {
        if self.client.is_none() {
            self.client = Some(self.connect()?);
        }
        let c = self.client.as_mut().expect("connected");
        match c.call(req) {
            Ok(Response::Error { message }) if message.starts_with("protocol error") => Err(BackendError::Protocol(message)),
            Ok(r) => Ok(r),
            Err(ProtoError::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                self.client = None;
                Err(BackendError::Timeout)
            }
            Err(e) => {
                self.client = None;
                Err(BackendError::Protocol(e.to_string()))
            }
        }
    }
}

fn db_from(j: &serde_json::Value) -> Result<Db, BackendError> {
    Db::from_json(j).map_err(|e| BackendError::Protocol(format!("bad database from the daemon: {e}")))
}

impl Backend for Socket {
    fn snapshot(&mut self) -> Result<Db, BackendError> {
        match self.call(&Request::Snapshot)? {
            Response::Snapshot { db } => db_from(&db),
            other => Err(BackendError::Protocol(format!("unexpected answer {other:?}"))),
        }
    }

    fn commit(&mut self, base: u64, ops: Vec<RowOp>, wait: bool) -> Result<Commit, BackendError> {
        match self.call(&Request::Commit { base_generation: base, ops, wait })? {
            Response::Committed { db, .. } => Ok(Commit::Done(db_from(&db)?)),
            Response::Conflict { .. } => Ok(Commit::Conflict),
            Response::Error { message } => Ok(Commit::Refused(message)),
            other => Err(BackendError::Protocol(format!("unexpected answer {other:?}"))),
        }
    }

    fn appctl(&mut self, command: &str, args: &[String]) -> Result<(bool, String), BackendError> {
        match self.call(&Request::Appctl { command: command.into(), args: args.to_vec() })? {
            Response::Appctl { ok, output } => Ok((ok, output)),
            Response::Error { message } => Ok((false, message)),
            other => Err(BackendError::Protocol(format!("unexpected answer {other:?}"))),
        }
    }
}

/// An in-memory database with the daemon's commit rules (generation check, garbage
/// collection, schema checks), for tests of the command engine.
#[derive(Clone)]
pub struct Memory {
    pub db: Db,
    /// Appctl answers to give, by command.
    pub appctl_answers: Vec<(String, bool, String)>,
}

impl Memory {
    pub fn new() -> Memory {
        let mut db = Db::new();
        db.ensure_root();
        Memory { db, appctl_answers: Vec::new() }
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for Memory {
    fn snapshot(&mut self) -> Result<Db, BackendError> {
        Ok(self.db.clone())
    }

    fn commit(&mut self, base: u64, ops: Vec<RowOp>, _wait: bool) -> Result<Commit, BackendError> {
        if base != self.db.generation {
            return Ok(Commit::Conflict);
        }
        let mut next = self.db.clone();
        if let Err(e) = next.apply(&ops) {
            return Ok(Commit::Refused(format!("transaction error: {e}")));
        }
        next.collect_garbage();
        if let Err(e) = next.check() {
            return Ok(Commit::Refused(format!("transaction error: {e}")));
        }
        next.generation += 1;
        if let Some((root, r)) = next.root().map(|(u, r)| (u, r.clone())) {
            let cfg = r.col(OpenVswitch::NEXT_CFG).clone();
            next.set_col(OpenVswitch::CUR_CFG, &root, cfg);
        }
        self.db = next.clone();
        Ok(Commit::Done(next))
    }

    fn appctl(&mut self, command: &str, _args: &[String]) -> Result<(bool, String), BackendError> {
        match self.appctl_answers.iter().find(|(c, _, _)| c == command) {
            Some((_, ok, out)) => Ok((*ok, out.clone())),
            None => Ok((false, format!("\"{command}\" is not a valid command"))),
        }
    }
}
