//! rvs: a userspace virtual switch that speaks Open vSwitch. This package owns the
//! top-level tests (`tests/`) and benchmarks (`benches/`); the code is in its crates,
//! named here by layer (ARCHITECTURE.md):
//! * [`switch`]: values, wire formats, packet buffers, offloads, the sans-I/O bridge;
//! * [`ovsdb`]: the configuration database, its schema and the control protocol;
//! * [`sys`]: every `unsafe` line (ioctls, sockets, rings, epoll, io_uring);
//! * [`vswitchd`]: the daemon (ports, workers, control plane);
//! * [`ctl`]: `rvsctl`, the ovs-vsctl / ovs-appctl command line.
#![forbid(unsafe_code)]

pub use rvs_ovsdb as ovsdb;
pub use rvs_switch as switch;
pub use rvs_sys as sys;
pub use rvs_vswitchd as vswitchd;
pub use rvsctl as ctl;
