//! The control plane's end of the workers: starting and stopping the threads, sending
//! them configurations and closures ([`WorkerHandle`]).
//!
//! Everything reaches a worker as a [`WorkerMsg`] on its queue followed by a ring of its
//! doorbell (an eventfd in its poll set), so a sleeping worker wakes for it; the worker
//! handles messages between batches, never in the middle of one. Nothing here touches a
//! worker's state: answers come back owned, through oneshot channels. Changing the
//! number of workers happens here, before the new configuration (with each worker's
//! [`Crew`]) goes out.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use rvs_switch::time::Clock;
use rvs_sys::epoll::EventFd;

use super::learn::{Crew, LEARN_QUEUE, LearnMsg};
use super::{DpConfig, MAX_WORKERS, Worker, WorkerEvent, WorkerMsg};

/// One worker thread as the control plane holds it.
struct Thread {
    tx: Sender<WorkerMsg>,
    bell: Arc<EventFd>,
    learn: Sender<LearnMsg>,
    join: Option<JoinHandle<()>>,
}

impl Thread {
    fn send(&self, m: WorkerMsg) {
        // The worker only goes away at Stop; a send error then is harmless.
        let _ = self.tx.send(m);
        self.bell.notify();
    }

    fn join(&mut self) {
        if let Some(t) = self.join.take() {
            let _ = t.join();
        }
    }
}

/// The control plane's end: the worker threads.
pub struct WorkerHandle {
    clock: Clock,
    events: Arc<dyn Fn(WorkerEvent) + Send + Sync>,
    threads: Vec<Thread>,
    generation: u64,
}

impl WorkerHandle {
    /// Starts one worker thread (more follow a configuration that asks for them).
    /// `events` is called on the worker threads.
    pub fn spawn(clock: Clock, events: impl Fn(WorkerEvent) + Send + Sync + 'static) -> io::Result<WorkerHandle> {
        let mut h = WorkerHandle { clock, events: Arc::new(events), threads: Vec::new(), generation: 0 };
        let t = h.spawn_one(0)?;
        h.threads.push(t);
        Ok(h)
    }

    fn spawn_one(&self, id: usize) -> io::Result<Thread> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (learn, inbox) = crossbeam_channel::bounded(LEARN_QUEUE);
        let bell = Arc::new(EventFd::new()?);
        let mut w = Worker::new(self.clock, self.events.clone(), inbox, &bell)?;
        let b = bell.clone();
        let join = std::thread::Builder::new().name(format!("rvs-datapath{id}")).spawn(move || w.run(&rx, &b))?;
        Ok(Thread { tx, bell, learn, join: Some(join) })
    }

    /// Number of worker threads running.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Replaces the configuration (applied by each worker between batches), starting or
    /// stopping workers first if `cfg.workers` asks for another number.
    pub fn reconfigure(&mut self, cfg: DpConfig) {
        let want = cfg.workers.clamp(1, MAX_WORKERS);
        while self.threads.len() < want {
            match self.spawn_one(self.threads.len()) {
                Ok(t) => self.threads.push(t),
                Err(e) => {
                    tracing::error!("cannot start datapath worker {}: {e}; running {}", self.threads.len(), self.threads.len());
                    break;
                }
            }
        }
        let mut gone: Vec<Thread> = self.threads.drain(want.min(self.threads.len())..).collect();
        for t in &gone {
            t.send(WorkerMsg::Stop);
        }
        for t in &mut gone {
            t.join();
        }
        self.generation += 1;
        let n = self.threads.len();
        let learns: Vec<Sender<LearnMsg>> = self.threads.iter().map(|t| t.learn.clone()).collect();
        for (id, t) in self.threads.iter().enumerate() {
            let peers = learns.iter().enumerate().filter(|&(i, _)| i != id).map(|(_, s)| s.clone()).collect();
            t.send(WorkerMsg::Reconfigure(cfg.clone(), Crew { id, n, peers, generation: self.generation }));
        }
    }

    /// Runs `f` on the first worker between batches; the answer arrives on the
    /// receiver. Every worker holds every bridge and port, so this is the view of the
    /// MAC tables and the configuration `fdb/show` and the like print.
    pub fn query<R: Send + 'static>(&self, f: impl FnOnce(&mut Worker) -> R + Send + 'static) -> tokio::sync::oneshot::Receiver<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.threads[0].send(WorkerMsg::Run(Box::new(move |w| {
            let _ = tx.send(f(w));
        })));
        rx
    }

    /// Runs `f` on every worker (to change every replica, or to sum counters).
    pub fn query_all<R: Send + 'static>(&self, f: impl Fn(&mut Worker) -> R + Send + Sync + 'static) -> Vec<tokio::sync::oneshot::Receiver<R>> {
        let f = Arc::new(f);
        self.threads
            .iter()
            .map(|t| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let f = f.clone();
                t.send(WorkerMsg::Run(Box::new(move |w| {
                    let _ = tx.send(f(w));
                })));
                rx
            })
            .collect()
    }

    /// Stops the threads and waits for them; the configuration (and every port) is
    /// dropped.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for t in &self.threads {
            t.send(WorkerMsg::Stop);
        }
        for t in &mut self.threads {
            t.join();
        }
        self.threads.clear();
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop_all();
    }
}
