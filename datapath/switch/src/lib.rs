//! rvs's switching layer: everything a frame meets that is not I/O.
//!
//! Layering (each module only uses the ones above it):
//! * [`types`], [`time`]: values (MACs, VLAN ids, port numbers) and a clock that is
//!   passed in, never read;
//! * [`wire`]: one file per header, each a checked view over bytes;
//! * [`packet`]: the frame buffer with head- and tailroom;
//! * [`offload`]: checksum completion, segmentation and coalescing (GSO/GRO in
//!   software) for the virtio-net offloads;
//! * [`bridge`]: the sans-I/O switching core (frames and time in, decisions out):
//!   VLAN policies, the MAC table, the forwarding decision, policing.
//!
//! [`testing`] builds frames for tests and benchmarks.
//!
//! No `unsafe`, no libc, no threads, no allocation per frame.
#![forbid(unsafe_code)]

pub mod bond;
pub mod bridge;
pub mod offload;
pub mod packet;
pub mod testing;
pub mod time;
pub mod types;
pub mod wire;
