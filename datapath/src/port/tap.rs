//! A tap device that rvs creates and owns (`type=tap`: a VM vNIC whose backend is rvs;
//! `type=internal`: a host-facing port on the bridge).
//!
//! Opened with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, a 12-byte virtio-net header
//! (`TUNSETVNETHDRSZ`), and the offloads the kernel accepts out of checksum + TSO4/6
//! (+ TSO_ECN) (`TUNSETOFFLOAD`, probed at open): the stack behind the tap then hands rvs
//! frames with partial checksums and up to 64 KiB GSO frames, which the worker forwards
//! intact to other offload-capable ports. The device may be moved into another network
//! namespace (a VM namespace in tests) and keeps working: the fd stays attached.
//! Dropping the port closes the fd, which deletes the (non-persistent) device.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use super::{PortIo, Rx};
use crate::packet::PacketBuf;
use crate::sys::tun;
use crate::wire::virtio_net_hdr::{LEN_V1, VnetHdr};

/// An open tap.
pub struct TapPort {
    file: File,
    name: String,
    offloads: u32,
}

/// Offload sets tried in order, most capable first.
const OFFLOAD_SETS: [u32; 3] = [
    tun::TUN_F_CSUM | tun::TUN_F_TSO4 | tun::TUN_F_TSO6 | tun::TUN_F_TSO_ECN,
    tun::TUN_F_CSUM | tun::TUN_F_TSO4 | tun::TUN_F_TSO6,
    tun::TUN_F_CSUM,
];

impl TapPort {
    /// Creates tap `name` (or attaches to an existing, unattached one).
    pub fn open(name: &str) -> io::Result<TapPort> {
        let (file, actual) = tun::open_tap(name, true)?;
        tun::set_vnet_hdr_size(file.as_fd(), LEN_V1 as i32)?;
        let mut offloads = 0;
        for set in OFFLOAD_SETS {
            if tun::set_offload(file.as_fd(), set).is_ok() {
                offloads = set;
                break;
            }
        }
        Ok(TapPort { file, name: actual, offloads })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `TUN_F_*` offloads in effect.
    pub fn offload_flags(&self) -> u32 {
        self.offloads
    }

    /// Whether the device still exists (it may live in another namespace).
    pub fn is_attached(&self) -> bool {
        match tun::attached_name(self.file.as_fd()) {
            Ok(_) => true,
            Err(e) => !tun::is_detached(&e),
        }
    }

    /// Keeps the device after rvs closes it (or not).
    pub fn set_persist(&self, persist: bool) -> io::Result<()> {
        tun::set_persist(self.file.as_fd(), persist)
    }
}

impl PortIo for TapPort {
    fn recv(&self, buf: &mut PacketBuf) -> io::Result<Rx> {
        let mut hdr = [0u8; LEN_V1];
        let area = buf.rx_area();
        let n = {
            let mut iov = [IoSliceMut::new(&mut hdr), IoSliceMut::new(area)];
            match (&self.file).read_vectored(&mut iov) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                    return Ok(Rx::Empty);
                }
                Err(e) => return Err(e),
            }
        };
        if n < LEN_V1 {
            return Ok(Rx::Bad);
        }
        buf.set_len(n - LEN_V1);
        buf.vnet = match VnetHdr::parse(&hdr) {
            Ok(v) => v,
            Err(_) => return Ok(Rx::Bad),
        };
        Ok(Rx::Frame)
    }

    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        let mut hdr = [0u8; LEN_V1];
        buf.vnet.emit(&mut hdr);
        match (&self.file).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(buf.frame())]) {
            Ok(_) => Ok(true),
            Err(e) if tun::is_detached(&e) => Err(e),
            Err(e) if super::is_transient_tx(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.file.as_fd())
    }

    fn offloads(&self) -> bool {
        self.offloads & tun::TUN_F_CSUM != 0
    }
}
