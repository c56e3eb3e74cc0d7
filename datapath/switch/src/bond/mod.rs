//! Bonds (IEEE 802.1AX link aggregation and Open vSwitch's bond modes), sans-I/O:
//! * [`lacp`]: LACP as a state machine — LACPDUs, carrier and time in; PDUs to send
//!   and which members may carry traffic out.
//!
//! Nothing here reads a clock, opens a socket or allocates per frame; the daemon's
//! datapath feeds it and carries out what it says.

pub mod lacp;

#[cfg(test)]
mod lacp_tests;
