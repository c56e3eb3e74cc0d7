//! The control plane's state and its request handlers: the database, the open ports,
//! the store and the workers' handle, owned by one task so that commits are serialized.
//!
//! A commit is plan → save → apply: check the base generation (else `Conflict`), apply
//! the ops to a copy, collect garbage, check the schema rules, make the [`Plan`] for the
//! copy (pure: no device is touched), write the file durably, swap the copy in; only
//! then apply the plan (open and close devices, assign ofports, record errors), save
//! again if that changed the persistent status columns (`error`, `ofport`), hand the
//! workers their new configuration, answer. A commit that cannot be saved is refused
//! before any device is touched, so there is nothing to undo.
//!
//! The answer carries the database after the apply, so a device that could not be
//! opened is reported to the client (its `error` column, `ofport` -1) as before, even
//! though the transaction was made durable first: that is what ovs-vsctl waits for
//! (`Error detected while setting up …`). Should the second save fail, the commit
//! stands (its configuration is durable) and the status columns are derived again on
//! the next start.
//!
//! The datapath never waits for any of this: it keeps forwarding with the old
//! configuration until the new one arrives.

use serde_json::Value as Json;

use crate::plan::{self, Plan};
use crate::reconcile::OpenIfaces;
use crate::status;
use crate::store::{Meta, Store};
use crate::takeover::Successor;
use crate::worker::WorkerHandle;
use rvs_ovsdb::proto::Response;
use rvs_ovsdb::view::{Bridge, Interface, OpenVswitch, Port};
use rvs_ovsdb::{Atom, Db, RowOp, Uuid};

/// Everything the control plane owns.
pub struct Control {
    pub db: Db,
    pub meta: Meta,
    pub store: Store,
    pub ports: OpenIfaces,
    pub worker: WorkerHandle,
    /// Set by `exit`: the server stops after answering.
    pub exit_requested: bool,
    /// The run directory (where the MAC tables are left for a successor); `None` in
    /// tests and fuzzing, which refuses `rvs/takeover`.
    pub rundir: Option<std::path::PathBuf>,
    /// The daemon this one is handing over to (`rvs/takeover`, see [`crate::takeover`]).
    pub successor: Option<Successor>,
    /// The metrics listener's state, for `rvs/metrics` (the listener itself belongs to
    /// the control loop).
    pub metrics_status: crate::metrics::http::ListenerStatus,
}

impl Control {
    pub fn new(db: Db, meta: Meta, store: Store, worker: WorkerHandle) -> Control {
        Control {
            db,
            meta,
            store,
            ports: OpenIfaces::default(),
            worker,
            exit_requested: false,
            rundir: None,
            successor: None,
            metrics_status: Default::default(),
        }
    }

    /// The daemon this one hands over to, while the handover is under way. A
    /// successor that died before taking over is forgotten: saving resumes.
    pub fn handing_over(&mut self) -> Option<Successor> {
        let s = self.successor?;
        if s.active() {
            return Some(s);
        }
        tracing::warn!("takeover: pid {} ended before taking over; carrying on", s.pid);
        self.successor = None;
        self.store.hold(false);
        None
    }

    /// Reconciles ports with the database (plans it and applies the plan), sends the
    /// worker its configuration if it changed, and saves the file if persistent status
    /// columns changed.
    pub fn reconcile(&mut self) {
        let plan = plan::plan(&self.db, &plan::available_cpus());
        self.apply(&plan);
    }

    /// Applies `plan`, made from the saved database, and saves the outcome.
    fn apply(&mut self, plan: &Plan) {
        let out = self.ports.apply(plan, &mut self.db, &self.meta.static_fdb);
        if let Some(cfg) = out.config {
            self.worker.reconfigure(cfg);
        }
        if out.db_changed
            && self.store.writable()
            && let Err(e) = self.store.save(&self.db, &self.meta)
        {
            tracing::error!("{e}");
        }
    }

    /// The database with fresh status columns, as JSON. A read: the status is written
    /// into the copy that is sent, not into the daemon's database.
    pub fn snapshot(&self) -> Json {
        let mut db = self.db.clone();
        status::read(&self.db, &self.ports).write(&mut db);
        self.ports.mirrors.write(&mut db);
        db.to_json(true)
    }

    /// Handles a commit request (see the module docs).
    pub fn commit(&mut self, base: u64, ops: &[RowOp]) -> Response {
        // While handing over, the save below refuses the commit.
        self.handing_over();
        if base != self.db.generation {
            return Response::Conflict { generation: self.db.generation };
        }
        let mut next = self.db.clone();
        if let Err(message) = next.apply(ops) {
            return Response::Error { message: format!("transaction error: {message}") };
        }
        next.collect_garbage();
        if let Err(message) = next.check() {
            return Response::Error { message: format!("transaction error: {message}") };
        }
        next.generation += 1;
        if let Some(cfg) = next.root_view().map(|r| r.row.col(OpenVswitch::NEXT_CFG).clone()) {
            let root = next.ensure_root();
            next.set_col(OpenVswitch::CUR_CFG, &root, cfg);
        }
        let plan: Plan = plan::plan(&next, &plan::available_cpus());
        if let Err(e) = self.store.save(&next, &self.meta) {
            // Not durable, so not committed; no device was touched.
            tracing::error!("{e}");
            return Response::Error { message: e.to_string() };
        }
        self.db = next;
        self.apply(&plan);
        Response::Committed { generation: self.db.generation, db: self.snapshot() }
    }

    /// Deletes ports marked `other_config:transient=true` (libvirt's ports) when the
    /// node has rebooted since the file was written, as OVS's start script does.
    pub fn drop_transient_ports_after_reboot(&mut self, boot_id: Option<String>) -> usize {
        let rebooted = boot_id.is_some() && self.meta.boot_id.is_some() && boot_id != self.meta.boot_id;
        self.meta.boot_id = boot_id;
        if !rebooted {
            return 0;
        }
        let transient: Vec<Uuid> = Port::all(&self.db).filter(|p| p.other_config().get_str("transient") == Some("true")).map(|p| p.uuid).collect();
        for b in self.db.tables[Bridge::TABLE].values_mut() {
            let mut ports = b.col(Bridge::PORTS).clone();
            for u in &transient {
                ports.remove(&Atom::Uuid(*u), None);
            }
            b.set_col(Bridge::PORTS, ports);
        }
        self.db.collect_garbage();
        transient.len()
    }

    /// Every interface of bridge `name`: (name, ofport, type).
    pub fn bridge_ports(&self, bridge: &str) -> Option<Vec<(String, i64, String)>> {
        let db = &self.db;
        let b = Bridge::get(db, &db.find_by_name(Bridge::TABLE, bridge)?)?;
        let mut out = Vec::new();
        for p in b.ports().filter_map(|p| Port::get(db, &p)) {
            for i in p.interfaces().filter_map(|i| Interface::get(db, &i)) {
                out.push((i.name().to_string(), i.ofport().unwrap_or(-1), i.type_().to_string()));
            }
        }
        Some(out)
    }

    /// The `options` of interface `name` as `k=v, …` (for `dpif/show`).
    pub fn iface_options(&self, name: &str) -> String {
        let Some(i) = self.db.find_by_name(Interface::TABLE, name).and_then(|u| Interface::get(&self.db, &u)) else { return String::new() };
        i.option_pairs().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }
}
