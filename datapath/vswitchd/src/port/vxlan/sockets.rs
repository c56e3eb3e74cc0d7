//! The VXLAN sockets open, so that tunnels share them: one [`Endpoint`] per (local
//! address, UDP port, family) and number of receive queues, one [`SendPool`] per
//! socket settings.
//!
//! Only weak references are kept: a socket closes when the last tunnel that uses it
//! (and the last worker configuration holding that tunnel) lets it go, and the next
//! tunnel that needs it opens a new one. An endpoint reopened with another number of
//! queues can be bound while the old one is still read (they are in one
//! `SO_REUSEPORT` group, see [`Endpoint::open`]).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Weak};

use super::{Endpoint, SendPool, TxSettings};
use crate::port::Input;

/// Key of a shared receive endpoint: (local address, UDP port, IPv6).
type EndpointKey = (Option<IpAddr>, u16, bool);

/// The endpoints and send pools in use.
#[derive(Default)]
pub struct Sockets {
    endpoints: HashMap<EndpointKey, Weak<Endpoint>>,
    pools: HashMap<TxSettings, Weak<SendPool>>,
}

impl Sockets {
    /// The endpoint for `local`:`port` with `queues` receive queues: the one in use,
    /// or a new one.
    pub fn endpoint(&mut self, local: Option<IpAddr>, port: u16, v6: bool, queues: usize) -> io::Result<Arc<Endpoint>> {
        self.endpoints.retain(|_, e| e.strong_count() > 0);
        let key = (local, port, v6);
        if let Some(e) = self.endpoints.get(&key).and_then(Weak::upgrade).filter(|e| e.queues() == queues) {
            return Ok(e);
        }
        let e = Arc::new(Endpoint::open(local, port, v6, queues)?);
        self.endpoints.insert(key, Arc::downgrade(&e));
        Ok(e)
    }

    /// The send pool for `settings`: the one in use, or a new one.
    pub fn pool(&mut self, settings: &TxSettings) -> io::Result<Arc<SendPool>> {
        self.pools.retain(|_, p| p.strong_count() > 0);
        if let Some(p) = self.pools.get(settings).and_then(Weak::upgrade) {
            return Ok(p);
        }
        let p = Arc::new(SendPool::open(settings)?);
        self.pools.insert(settings.clone(), Arc::downgrade(&p));
        Ok(p)
    }

    /// The endpoints in use, by address and port.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        let mut all: Vec<(EndpointKey, Arc<Endpoint>)> = self.endpoints.iter().filter_map(|(k, e)| Some((*k, e.upgrade()?))).collect();
        all.sort_by_key(|(k, _)| *k);
        all.into_iter().map(|(_, e)| e).collect()
    }
}
