//! Bonds (IEEE 802.1AX link aggregation and Open vSwitch's bond modes), sans-I/O:
//! * [`config`]: the settings from the Port/Interface columns, read as OVS reads them;
//! * [`lacp`]: LACP as a state machine — LACPDUs, carrier and time in; PDUs to send
//!   and which members may carry traffic out;
//! * [`select`]: the bond's members — enabled after up/down delays, the active member,
//!   buckets for balance-slb/balance-tcp and which member sends a frame;
//! * [`hash`]: the bucket of a frame (source MAC + VLAN, L3+L4, rvs's L2+L3);
//! * [`rebalance`]: moving buckets by load;
//! * [`admit`]: whether a frame received on a member is accepted (OVS's rules against
//!   duplicates and learning loops);
//! * [`show`]: `bond/show`, `lacp/show` and `lacp/show-stats` as OVS prints them.
//!
//! How the daemon drives a bond: per received frame on a member, slow-protocols
//! frames (ethertype 0x8809) go to [`lacp::Lacp::rx`] and are never forwarded;
//! other frames pass [`select::Bond::admit`] (and [`admit::slb_accept`] against the
//! MAC table); the bond is one port to the bridge. Per frame sent to the bond,
//! [`select::Bond::output`] names the member. Off the packet path, on a timer
//! ([`lacp::Lacp::poll_timeout`], [`select::Bond::poll_timeout`]) and on carrier
//! events: [`lacp::Lacp::tick`] (sending its PDUs), then each member's
//! [`lacp::Lacp::may_enable`] into [`select::Bond::set_may_enable`], then
//! [`select::Bond::run`] with [`lacp::Lacp::status`]; every rebalance interval
//! [`select::Bond::rebalance`] with what [`select::Bond::account`] counted.
//!
//! Nothing here reads a clock, opens a socket or allocates per frame.

pub mod admit;
pub mod config;
pub mod hash;
pub mod lacp;
pub mod rebalance;
pub mod select;
pub mod show;

#[cfg(test)]
mod lacp_tests;
#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod select_tests;
