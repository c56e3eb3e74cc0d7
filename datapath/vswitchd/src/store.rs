//! Durable configuration: the database file `DBDIR/conf.db`.
//!
//! Every committed transaction is written crash-safely before the client hears "done":
//! the whole database goes to `conf.db.tmp`, which is fsynced, renamed over `conf.db`,
//! and the directory is fsynced so the rename itself survives a power cut. A reader
//! therefore sees either the old or the new file, never a mix.
//!
//! A file that exists but cannot be read or parsed is a startup error naming the file:
//! rvs never silently replaces an operator's configuration with an empty one.
//!
//! One daemon per database: [`Store::open`] takes an exclusive lock on
//! `DBDIR/conf.db.lock` (holding the pid of its owner) for as long as the store lives,
//! so a second daemon on the same directory — even with another run directory —
//! refuses to start and names the first. The database and its temporary file are
//! mode 0640 (external_ids carry VM and port identities). A temporary file left by a
//! daemon killed in the middle of a save is removed at startup ([`Store::remove_leftovers`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use rvs_ovsdb::Db;

/// Format marker in the file, so a future rvs can tell versions apart.
const FORMAT: &str = "rvs-conf-db";
const VERSION: u64 = 1;

/// Why the database could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read configuration database {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("configuration database {path} is corrupt: {reason} (rvs will not start over an unreadable configuration; restore the file or move it away)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write configuration database {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot create database directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("configuration database {path} is in use by another rvs-vswitchd{holder} (one daemon per database directory)")]
    Locked { path: PathBuf, holder: String },
    #[error("cannot lock configuration database {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    /// A save before the lock was had (during a takeover).
    #[error("configuration database {path} is not this daemon's to write while a takeover is under way; not saved")]
    NotLocked { path: PathBuf },
}

/// What was loaded besides the rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The kernel boot id when the file was last written (to spot node reboots).
    pub boot_id: Option<String>,
    /// Static MAC entries (`fdb/add`). OVS forgets them on restart; rvs keeps them.
    pub static_fdb: Vec<StaticMac>,
}

/// One `fdb/add BRIDGE PORT VLAN MAC` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaticMac {
    pub bridge: String,
    pub port: String,
    pub vlan: u16,
    pub mac: String,
}

/// Mode of the database and its temporary file.
const FILE_MODE: u32 = 0o640;

/// The database file.
pub struct Store {
    path: PathBuf,
    dir: PathBuf,
    /// Locked exclusively while the store lives (released when the process ends).
    lock: File,
    /// Whether this process holds the lock yet (see [`Store::open_shared`]).
    locked: bool,
    /// Handing over to a new daemon: nothing is saved (see [`Store::hold`]).
    held: bool,
}

impl Store {
    /// A store in `dir` (created if missing, mode 0700 for a new directory), locked
    /// for this process; temporary files a killed daemon left are removed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let mut store = Store::open_shared(dir)?;
        store.try_lock()?;
        Ok(store)
    }

    /// A store in `dir` that another daemon may still hold (a takeover, see
    /// [`crate::takeover`]): it loads, but refuses to save until [`Store::lock_wait`]
    /// has the lock.
    pub fn open_shared(dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.into(), source })?;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
        let path = dir.join("conf.db");
        let lock_path = dir.join("conf.db.lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&lock_path)
            .map_err(|source| StoreError::Lock { path: lock_path.clone(), source })?;
        Ok(Store { path, dir: dir.into(), lock, locked: false, held: false })
    }

    fn try_lock(&mut self) -> Result<(), StoreError> {
        match self.lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(self.dir.join("conf.db.lock")).ok().and_then(|s| s.trim().parse::<u32>().ok());
                return Err(StoreError::Locked { path: self.path.clone(), holder: pid.map(|p| format!(" (pid {p})")).unwrap_or_default() });
            }
            Err(fs::TryLockError::Error(source)) => return Err(StoreError::Lock { path: self.dir.join("conf.db.lock"), source }),
        }
        self.locked = true;
        self.note_owner();
        Ok(())
    }

    /// Whether saves are possible (the lock is had, and not [`Store::hold`]).
    pub fn writable(&self) -> bool {
        self.locked && !self.held
    }

    /// Stops (`true`) or resumes saving: a daemon handing over to a new one leaves the
    /// file to it (see [`crate::takeover`]).
    pub fn hold(&mut self, hold: bool) {
        self.held = hold;
    }

    /// Takes the lock, waiting up to `timeout` for the daemon that holds it to end.
    pub fn lock_wait(&mut self, timeout: std::time::Duration) -> Result<(), StoreError> {
        let start = std::time::Instant::now();
        loop {
            match self.try_lock() {
                Err(StoreError::Locked { .. }) if start.elapsed() < timeout => std::thread::sleep(std::time::Duration::from_millis(5)),
                r => return r,
            }
        }
    }

    /// Writes this process's pid into the lock file (again after `--detach` forked).
    pub fn note_owner(&self) {
        if !self.locked {
            return;
        }
        use std::io::{Seek, SeekFrom};
        let mut f = &self.lock;
        let _ = f.set_len(0).and_then(|()| f.seek(SeekFrom::Start(0))).and_then(|_| writeln!(f, "{}", std::process::id()));
    }

    /// Removes `conf.db.tmp*` files: a save that a kill interrupted (the database itself
    /// is whole: the rename is the commit point). Returns how many (to be logged).
    pub fn remove_leftovers(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else { return 0 };
        entries.flatten().filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("conf.db.tmp"))).filter(|e| fs::remove_file(e.path()).is_ok()).count()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the database; `Ok(None)` when there is no file yet.
    pub fn load(&self) -> Result<Option<(Db, Meta)>, StoreError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { path: self.path.clone(), source }),
        };
        let corrupt = |reason: String| StoreError::Corrupt { path: self.path.clone(), reason };
        let j: Json = serde_json::from_slice(&text).map_err(|e| corrupt(format!("not valid JSON ({e})")))?;
        if j.get("format").and_then(Json::as_str) != Some(FORMAT) {
            return Err(corrupt(format!("missing \"format\": \"{FORMAT}\"")));
        }
        let v = j.get("version").and_then(Json::as_u64).unwrap_or(0);
        if v != VERSION {
            return Err(corrupt(format!("unsupported version {v} (this rvs reads version {VERSION})")));
        }
        let db = Db::from_json(j.get("db").unwrap_or(&Json::Null)).map_err(|e| corrupt(e.to_string()))?;
        db.check().map_err(|e| corrupt(format!("inconsistent contents: {e}")))?;
        let boot_id = j.get("boot_id").and_then(Json::as_str).map(String::from);
        let static_fdb = match j.get("static_fdb") {
            None | Some(Json::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| corrupt(format!("bad \"static_fdb\" ({e})")))?,
        };
        Ok(Some((db, Meta { boot_id, static_fdb })))
    }

    /// Writes the database durably (see the module docs).
    pub fn save(&self, db: &Db, meta: &Meta) -> Result<(), StoreError> {
        if !self.locked || self.held {
            return Err(StoreError::NotLocked { path: self.path.clone() });
        }
        let doc = json!({
            "format": FORMAT,
            "version": VERSION,
            "boot_id": meta.boot_id,
            "static_fdb": meta.static_fdb,
            "db": db.to_json(false),
        });
        let mut text = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        text.push(b'\n');
        let err = |source| StoreError::Write { path: self.path.clone(), source };
        let tmp = self.path.with_extension("db.tmp");
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(&tmp).map_err(err)?;
            // A file left by an older rvs keeps its mode through truncation: set it.
            f.set_permissions(fs::Permissions::from_mode(FILE_MODE)).map_err(err)?;
            f.write_all(&text).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        fs::rename(&tmp, &self.path).map_err(err)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(err)?;
        Ok(())
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), if readable.
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ovsdb::Datum;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn save_load_round_trip() {
        let d = tmpdir("rt");
        let s = Store::open(&d).unwrap();
        assert!(s.load().unwrap().is_none());
        let mut db = Db::new();
        let root = db.ensure_root();
        db.set_col(rvs_ovsdb::view::OpenVswitch::EXTERNAL_IDS, &root, Datum::smap([("system-id", "node1")]));
        db.generation = 3;
        let meta = Meta {
            boot_id: Some("b".into()),
            static_fdb: vec![StaticMac { bridge: "br0".into(), port: "p1".into(), vlan: 10, mac: "02:00:00:00:00:01".into() }],
        };
        s.save(&db, &meta).unwrap();
        let (back, m) = s.load().unwrap().unwrap();
        assert_eq!(back, db);
        assert_eq!(m, meta);
        assert!(!d.join("conf.db.tmp").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let d = tmpdir("bad");
        let s = Store::open(&d).unwrap();
        fs::write(s.path(), b"{not json").unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("conf.db") && e.contains("corrupt"), "{e}");
        fs::write(s.path(), b"{\"format\": \"other\"}").unwrap();
        assert!(s.load().is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
