//! Process-level calls: fork for `--detach`, session handling, the alarm that bounds
//! rvsctl's `--timeout`.

use std::io;

use super::cvt;

/// Result of [`fork`].
pub enum Forked {
    Parent { child: i32 },
    Child,
}

/// fork(2). Call it only while the process has a single thread (before any runtime or
/// worker starts): the child gets a copy of just the calling thread.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: called before rvs-vswitchd starts any thread (documented above), so the
    // child does not inherit locks held by threads that no longer exist.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 { Forked::Child } else { Forked::Parent { child: pid } })
}

/// Starts a new session so the daemon has no controlling terminal.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid(2) has no memory-safety preconditions.
    cvt(unsafe { libc::setsid() }).map(drop)
}

/// Arranges for SIGALRM (default action: terminate) after `secs` seconds, the way
/// ovs-vsctl implements `--timeout` (so a timed-out command ends with status 142 in a
/// shell). 0 cancels.
pub fn alarm(secs: u32) {
    // SAFETY: alarm(2) has no memory-safety preconditions.
    unsafe { libc::alarm(secs) };
}

/// Ends the process by `sig` with its default action (so a shell sees status 128 +
/// `sig`), the way OVS's fatal_signal handler ends ovs-vsctl after logging: SIGALRM for
/// `--timeout`. Returns only if the signal did not end the process.
pub fn die_by_signal(sig: i32) {
    // SAFETY: signal(2) installs the default disposition (no handler code runs) and
    // raise(3) sends the signal to this thread; neither touches memory of ours.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Whether a process with this pid exists (signal 0).
pub fn process_exists(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: i32) -> io::Result<()> {
    signal(pid, libc::SIGTERM)
}

/// Sends signal `sig` to `pid` (a positive pid: never a process group).
pub fn signal(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// Points stdin, stdout and stderr at /dev/null (a detached daemon has no terminal).
pub fn redirect_stdio_to_devnull() -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: dup2(2) onto the standard descriptors; `null` is open for the call,
        // and replacing 0..2 cannot invalidate any Rust-owned descriptor.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// Sets the file mode creation mask and returns the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail and has no memory-safety preconditions.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Moves the calling thread into the network namespace `ns` (an open `/run/netns/NAME`
/// or `/proc/PID/ns/net` file). Only this thread changes namespace.
pub fn enter_netns(ns: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns(2) with a valid open fd and a namespace type; no memory is passed.
    cvt(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) }).map(drop)
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all zeroes is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    cvt(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads the set within its size (`max` bits).
    Ok((0..max).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Lets the calling thread run only on `cpus` (`sched_setaffinity`): pins a polling
/// worker to its CPU, or gives it back the CPUs it had.
pub fn pin_thread(cpus: &[usize]) -> io::Result<()> {
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if cpus.is_empty() || cpus.iter().any(|&c| c >= max) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data; all zeroes is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `c` is below the set's size in bits (checked above).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}

/// A cycle count for measuring where a polling worker's time goes, as OVS counts
/// "cycles": the CPU's time-stamp counter on x86-64, nanoseconds of the monotonic
/// clock elsewhere.
#[inline]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86-64 CPU and has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
}

/// The NUMA node of `cpu` (from sysfs), 0 when the machine does not say.
pub fn numa_node_of(cpu: usize) -> usize {
    std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{cpu}"))
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
        .unwrap_or(0)
}
