//! epoll and eventfd: how the datapath worker sleeps when nothing arrives and how the
//! control plane wakes it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::{cvt, owned};

/// An epoll instance.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

/// One ready fd: the token it was registered with and whether it is readable or in
/// an error/hang-up state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub token: u64,
    pub readable: bool,
    pub error: bool,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain epoll_create1(2); the result is checked and owned at once.
        let fd = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)] })
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32, u64: token };
        // SAFETY: `ev` is a live epoll_event; both fds are open for the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) }).map(drop)
    }

    /// Watches `fd` for input (level-triggered), reporting it as `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits up to `timeout` (forever if `None`) and returns the ready fds.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<impl Iterator<Item = Ready> + '_> {
        let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: `events` is a live buffer of `len` epoll_events the kernel may fill.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), self.events.len() as i32, ms) };
        let n = match cvt(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        Ok(self.events[..n].iter().map(|e| {
            let ev = e.events;
            Ready { token: e.u64, readable: ev & libc::EPOLLIN as u32 != 0, error: ev & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 }
        }))
    }
}

/// A counter fd used as a doorbell.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain eventfd(2); the result is checked and owned at once.
        Ok(EventFd(owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?))
    }

    /// An eventfd another process made and handed over (a vhost-user frontend's kick
    /// or call fd), made non-blocking so that [`EventFd::drain`] never waits.
    pub fn from_owned(fd: OwnedFd) -> io::Result<EventFd> {
        // SAFETY: fcntl(2) on an fd this function owns; flags are read, then set.
        let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
        Ok(EventFd(fd))
    }

    /// Rings the bell (never blocks; a full counter already means "ring").
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64, as eventfd requires.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// An epoll instance is itself pollable: readable while any fd it watches is. A device
/// whose wake-up fds change while it runs (a vhost-user ring's kick) gives the worker
/// one such fd that stays, and swaps what it watches inside.
impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doorbell_wakes_epoll() {
        let mut ep = Epoll::new(4).unwrap();
        let ev = EventFd::new().unwrap();
        ep.add(ev.as_fd(), 7).unwrap();
        assert_eq!(ep.wait(Some(Duration::from_millis(0))).unwrap().count(), 0);
        ev.notify();
        let r: Vec<_> = ep.wait(Some(Duration::from_millis(100))).unwrap().collect();
        assert_eq!(r, vec![Ready { token: 7, readable: true, error: false }]);
        ev.drain();
        assert_eq!(ep.wait(Some(Duration::from_millis(0))).unwrap().count(), 0);
        ep.delete(ev.as_fd()).unwrap();
    }
}
