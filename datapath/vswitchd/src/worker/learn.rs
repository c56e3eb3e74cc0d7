//! Learning replication: every worker holds a replica of every bridge's MAC table, and
//! what one learns reaches the others as [`LearnMsg`]s.
//!
//! A worker's core journals what it learns (new address, move, refresh at most once a
//! second per address) when there are other workers; after servicing an input the
//! worker sends the journal to each peer through a bounded queue ([`LEARN_QUEUE`]),
//! never blocking: a note that does not fit is dropped and counted
//! ([`super::Worker::learn_lost`]). Notes are applied when the receiving worker next
//! wakes, newest news winning; a replica that has not heard yet floods, which is always
//! correct. Notes name bridges by index within one configuration generation, so notes
//! from an older configuration are ignored rather than applied to the wrong bridge.

use crossbeam_channel::Sender;

use rvs_switch::bridge::LearnNote;

use super::Worker;

/// Learning notes queued for one worker before further ones are dropped (and counted).
pub(super) const LEARN_QUEUE: usize = 8192;

/// A learning note on its way to another worker. Bridges are named by index within
/// the configuration of generation `generation`, ports by their stable key.
#[derive(Debug, Clone, Copy)]
pub(super) struct LearnMsg {
    generation: u64,
    bridge: usize,
    port_key: u32,
    note: LearnNote,
}

/// A worker's place among the others.
#[derive(Clone)]
pub struct Crew {
    pub(super) id: usize,
    pub(super) n: usize,
    /// The other workers' learning queues.
    pub(super) peers: Vec<Sender<LearnMsg>>,
    /// Generation of the configuration this came with.
    pub(super) generation: u64,
}

impl Crew {
    pub(super) fn alone() -> Crew {
        Crew { id: 0, n: 1, peers: Vec::new(), generation: 0 }
    }
}

impl Worker {
    /// Applies the learning notes other workers sent.
    pub(super) fn receive_notes(&mut self) {
        while let Ok(m) = self.inbox.try_recv() {
            if m.generation != self.crew.generation {
                continue;
            }
            if let Some(b) = self.bridges.get_mut(m.bridge) {
                b.core.apply_note(m.port_key, m.note);
            }
        }
    }

    /// Sends what this worker learned to the others.
    pub(super) fn publish_notes(&mut self) {
        if self.crew.peers.is_empty() {
            return;
        }
        let generation = self.crew.generation;
        for (bi, b) in self.bridges.iter_mut().enumerate() {
            let ports = &b.ports;
            for note in b.core.drain_journal() {
                let Some(p) = ports.get(note.port as usize) else { continue };
                let m = LearnMsg { generation, bridge: bi, port_key: p.core.key, note };
                for peer in &self.crew.peers {
                    if peer.try_send(m).is_err() {
                        self.learn_lost += 1;
                    }
                }
            }
        }
    }

    /// Logs the MAC flaps the bridges detected since the last call (each address at
    /// most once per detection window: the core queues it so).
    pub(super) fn log_flaps(&mut self) {
        for b in &mut self.bridges {
            if !b.core.flaps().has_pending() {
                continue;
            }
            let name = |key: u32| b.ports.iter().find(|p| p.core.key == key).map_or_else(|| format!("ofport {key}"), |p| p.name.clone());
            let flaps: Vec<_> = b.core.flaps_mut().drain_pending().collect();
            for f in flaps {
                tracing::warn!(
                    "bridge {}: MAC {} in VLAN {} is flapping between ports {} and {} ({} moves within the detection window): a loop, or the same MAC on two hosts?",
                    b.name,
                    f.mac,
                    f.vlan.get(),
                    name(f.from),
                    name(f.to),
                    f.moves
                );
            }
        }
    }
}
