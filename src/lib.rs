//! Support code for rvs's top-level tests and benchmarks (network namespaces, daemons).
