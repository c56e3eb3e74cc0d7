//! Support code for rvs's top-level tests and benchmarks: network namespaces, daemons,
//! rvsctl invocations, bounded waits.
//!
//! Rules every namespace test follows through this module:
//! * it needs root and fails (never passes silently) with a message when not root;
//! * names are unique per test and process (`NAME_PREFIX`, the pid, a counter) and
//!   interface names stay within 15 bytes;
//! * everything created is removed by `Drop` guards, also when the test fails;
//! * every wait is bounded;
//! * addresses come from 198.18.0.0/15 (RFC 2544 benchmarking range), inside
//!   namespaces the test made.

pub mod overlay;
pub mod testkit;
