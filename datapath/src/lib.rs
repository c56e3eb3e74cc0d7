//! rvs datapath: the switching core, wire formats, port backends, the configuration
//! database shared with `rvsctl`, the control protocol, and the `rvs-vswitchd` daemon.
//!
//! Layering (each layer only uses the ones above it):
//! * [`types`], [`time`], [`wire`], [`packet`]: values, wire formats and buffers;
//! * [`core`]: the sans-I/O switching core (frames and time in, decisions out);
//! * [`db`], [`proto`]: the OVSDB-like configuration model and the control protocol,
//!   shared with the `ctl` crate;
//! * [`sys`]: every `unsafe` line of rvs (ioctls, sockets, epoll) behind safe functions;
//! * [`port`]: thin I/O backends behind one trait;
//! * [`daemon`]: the worker loop and the control plane of `rvs-vswitchd`.
#![deny(unsafe_code)]

pub mod core;
pub mod daemon;
pub mod db;
pub mod offload;
pub mod packet;
pub mod port;
pub mod proto;
pub mod sys;
pub mod time;
pub mod types;
pub mod wire;
