//! The vhost-user messages of one connection, answered for a virtio-net device: the
//! `vhost` crate reads and checks each message, this handler changes the device
//! ([`Shared`]) accordingly. One handler per connection; a new connection starts
//! from a reset device.
//!
//! Refused, with an error the frontend sees: live migration (`SET_LOG_BASE`; neither
//! `LOG_SHMFD` nor `VHOST_F_LOG_ALL` is offered), memory slots added one by one,
//! in-flight tracking, device state transfer, config space, features rvs did not offer,
//! a ring larger than [`MAX_RING`] or not a power of two, ring addresses outside the
//! shared memory, a memory region larger than its file.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use rvs_sys::epoll::EventFd;
use vhost::VhostUserMemoryRegionBase;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight, VhostUserLog, VhostUserMemoryRegion,
    VhostUserProtocolFeatures, VhostUserShMemConfig, VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{Error, GpuBackend, Result, VhostUserBackendReqHandlerMut};
use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestRegionMmap};

use super::virtq::{MAX_RING, Mem, Ring};
use super::{PAIRS, Shared, feat};

/// A frontend's address range and where it is in the guest.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    user_addr: u64,
    size: u64,
    gpa: u64,
}

/// The handler of one connection.
pub struct Handler {
    shared: Arc<Shared>,
    protocol: u64,
    mappings: Vec<Mapping>,
}

/// Refused with a reason (the frontend gets an error reply; the connection goes on).
fn refuse<T>(why: &'static str) -> Result<T> {
    Err(Error::InvalidOperation(why))
}

impl Handler {
    /// A handler for a new connection (the device is reset first).
    pub fn new(shared: Arc<Shared>) -> Handler {
        shared.reset();
        Handler { shared, protocol: 0, mappings: Vec::new() }
    }

    /// Vring `index`, checked.
    fn ring_index(index: u32) -> Result<usize> {
        let i = index as usize;
        if i < 2 * PAIRS { Ok(i) } else { Err(Error::InvalidParam) }
    }

    /// The guest address of frontend address `va` (ring addresses are the frontend's).
    fn gpa(&self, va: u64) -> Result<GuestAddress> {
        self.mappings.iter().find(|m| va >= m.user_addr && va - m.user_addr < m.size).map(|m| GuestAddress(va - m.user_addr + m.gpa)).ok_or(Error::InvalidParam)
    }

    /// Starts a ring once it has what it needs (a kick fd), checking its layout
    /// against the memory.
    fn start(ring: &mut Ring) -> Result<()> {
        let Some(mem) = ring.mem.clone() else { return refuse("ring kicked before the memory table") };
        ring.queue.set_ready(true);
        if !ring.queue.is_valid(&*mem) {
            ring.queue.set_ready(false);
            return refuse("ring does not fit in the guest's memory");
        }
        ring.started = true;
        ring.broken = false;
        Ok(())
    }

    fn with_ring<T>(&self, index: u32, f: impl FnOnce(&mut Ring) -> Result<T>) -> Result<T> {
        let i = Self::ring_index(index)?;
        f(&mut self.shared.ring(i))
    }

    fn map_regions(ctx: &[VhostUserMemoryRegion], files: Vec<File>) -> Result<(Mem, Vec<Mapping>)> {
        if ctx.len() != files.len() {
            return Err(Error::InvalidParam);
        }
        let mut regions = Vec::new();
        let mut mappings = Vec::new();
        for (r, file) in ctx.iter().zip(files) {
            // A region past its file's end would fault (SIGBUS) when touched: refused.
            let len = file.metadata().map_err(Error::ReqHandlerError)?.len();
            if r.memory_size == 0 || r.mmap_offset.checked_add(r.memory_size).is_none_or(|end| end > len) {
                return refuse("memory region larger than its file");
            }
            let region = GuestRegionMmap::new(r.mmap_region(file)?, GuestAddress(r.guest_phys_addr)).ok_or(Error::InvalidParam)?;
            regions.push(region);
            mappings.push(Mapping { user_addr: r.user_addr, size: r.memory_size, gpa: r.guest_phys_addr });
        }
        regions.sort_by_key(|r| r.start_addr_raw());
        let mem = Mem::from_regions(regions).map_err(|_| Error::InvalidParam)?;
        Ok((mem, mappings))
    }
}

/// The guest address a region starts at (for sorting).
trait StartAddr {
    fn start_addr_raw(&self) -> u64;
}

impl StartAddr for GuestRegionMmap<()> {
    fn start_addr_raw(&self) -> u64 {
        use vm_memory::GuestMemoryRegion;
        self.start_addr().0
    }
}

impl VhostUserBackendReqHandlerMut for Handler {
    fn set_owner(&mut self) -> Result<()> {
        // QEMU sends it once per queue pair; every one is accepted.
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        self.shared.reset();
        self.mappings.clear();
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        self.reset_owner()
    }

    fn get_features(&mut self) -> Result<u64> {
        Ok(feat::OFFERED)
    }

    fn set_features(&mut self, features: u64) -> Result<()> {
        tracing::debug!("vhost-user port {}: SET_FEATURES {features:#x}", self.shared.name);
        if features & !feat::OFFERED != 0 {
            return Err(Error::InvalidParam);
        }
        self.shared.features.store(features, Relaxed);
        for i in 0..2 * PAIRS {
            self.shared.ring(i).queue.set_event_idx(false);
        }
        Ok(())
    }

    fn set_mem_table(&mut self, ctx: &[VhostUserMemoryRegion], files: Vec<File>, postcopy: Option<bool>) -> Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        if postcopy.is_some() {
            return refuse("postcopy migration is not supported");
        }
        let (mem, mappings) = Self::map_regions(ctx, files)?;
        let mem = Arc::new(mem);
        for i in 0..2 * PAIRS {
            self.shared.ring(i).mem = Some(mem.clone());
        }
        self.mappings = mappings;
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        let num = u16::try_from(num).ok().filter(|n| *n <= MAX_RING).ok_or(Error::InvalidParam)?;
        self.with_ring(index, |r| r.queue.try_set_size(num).map_err(|_| Error::InvalidParam))
    }

    fn set_vring_addr(&mut self, index: u32, _flags: VhostUserVringAddrFlags, desc: u64, used: u64, avail: u64, _log: u64) -> Result<()> {
        let (d, u, a) = (self.gpa(desc)?, self.gpa(used)?, self.gpa(avail)?);
        self.with_ring(index, |r| {
            let bad = |_| Error::InvalidParam;
            r.queue.try_set_desc_table_address(d).map_err(bad)?;
            r.queue.try_set_used_ring_address(u).map_err(bad)?;
            r.queue.try_set_avail_ring_address(a).map_err(bad)
        })
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        let base = u16::try_from(base).map_err(|_| Error::InvalidParam)?;
        self.with_ring(index, |r| {
            r.queue.set_next_avail(base);
            r.queue.set_next_used(base);
            Ok(())
        })
    }

    /// Stops the ring and tells where it stopped (QEMU asks before it stops the guest
    /// or when the driver resets the device).
    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        tracing::debug!("vhost-user port {}: GET_VRING_BASE {index}", self.shared.name);
        let wakes = &self.shared.wakes;
        self.with_ring(index, |r| {
            let next = r.queue.next_avail();
            if index % 2 == 1
                && let Some(kick) = r.kick.take()
            {
                let _ = wakes[index as usize / 2].delete(std::os::fd::AsFd::as_fd(&kick));
            }
            // The memory, the call fd and the enable state stay; the frontend sets the
            // rest again before it starts the ring again.
            let (mem, call, enabled) = (r.mem.take(), r.call.take(), r.enabled);
            r.reset();
            (r.mem, r.call, r.enabled) = (mem, call, enabled);
            Ok(VhostUserVringState::new(index, u32::from(next)))
        })
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        tracing::debug!("vhost-user port {}: SET_VRING_KICK {index} {}", self.shared.name, fd.is_some());
        let i = Self::ring_index(u32::from(index))?;
        let kick = fd.map(|f| EventFd::from_owned(OwnedFd::from(f))).transpose().map_err(Error::ReqHandlerError)?;
        let wake = &self.shared.wakes[i / 2];
        let mut r = self.shared.ring(i);
        if i % 2 == 1 {
            if let Some(old) = &r.kick {
                let _ = wake.delete(std::os::fd::AsFd::as_fd(old));
            }
            if let Some(k) = &kick {
                wake.add(std::os::fd::AsFd::as_fd(k), 0).map_err(Error::ReqHandlerError)?;
            }
        }
        r.kick = kick;
        Self::start(&mut r)
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        let call = fd.map(|f| EventFd::from_owned(OwnedFd::from(f))).transpose().map_err(Error::ReqHandlerError)?;
        self.with_ring(u32::from(index), |r| {
            r.call = call;
            Ok(())
        })
    }

    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        Self::ring_index(u32::from(index)).map(drop)
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        // No LOG_SHMFD: no live migration. (REPLY_ACK is added by the crate.)
        Ok(VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::RESET_DEVICE)
    }

    fn set_protocol_features(&mut self, features: u64) -> Result<()> {
        self.protocol = features;
        Ok(())
    }

    fn get_queue_num(&mut self) -> Result<u64> {
        Ok(PAIRS as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        tracing::debug!("vhost-user port {}: SET_VRING_ENABLE {index} {enable}", self.shared.name);
        self.with_ring(index, |r| {
            r.enabled = enable;
            Ok(())
        })
    }

    fn get_config(&mut self, _: u32, _: u32, _: VhostUserConfigFlags) -> Result<Vec<u8>> {
        refuse("no config space")
    }

    fn set_config(&mut self, _: u32, _: &[u8], _: VhostUserConfigFlags) -> Result<()> {
        refuse("no config space")
    }

    fn set_gpu_socket(&mut self, _: GpuBackend) -> Result<()> {
        refuse("not a GPU")
    }

    fn get_shared_object(&mut self, _: VhostUserSharedMsg) -> Result<File> {
        refuse("no shared objects")
    }

    fn get_inflight_fd(&mut self, _: &VhostUserInflight) -> Result<(VhostUserInflight, File)> {
        refuse("no in-flight tracking")
    }

    fn set_inflight_fd(&mut self, _: &VhostUserInflight, _: File) -> Result<()> {
        refuse("no in-flight tracking")
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        refuse("memory slots are not configurable")
    }

    fn add_mem_region(&mut self, _: &VhostUserSingleMemoryRegion, _: File, _: Option<bool>) -> Result<Option<VhostUserMemoryRegionBase>> {
        refuse("memory slots are not configurable")
    }

    fn remove_mem_region(&mut self, _: &VhostUserSingleMemoryRegion) -> Result<()> {
        refuse("memory slots are not configurable")
    }

    fn set_device_state_fd(&mut self, _: VhostTransferStateDirection, _: VhostTransferStatePhase, _: File) -> Result<Option<File>> {
        refuse("live migration is not supported by rvs")
    }

    fn check_device_state(&mut self) -> Result<()> {
        refuse("live migration is not supported by rvs")
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        refuse("no shared memory regions")
    }

    fn set_log_base(&mut self, _: &VhostUserLog, _: File) -> Result<()> {
        refuse("live migration is not supported by rvs (no dirty-page logging)")
    }
}
