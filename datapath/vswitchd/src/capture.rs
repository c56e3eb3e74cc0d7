//! Capture on any port (`rvsctl rvs/capture PORT FILE [COUNT|SECONDSs]`): the frames a
//! port receives and sends, as the switch sees them — with the VLAN tag the port
//! carries, and for a tunnel port the inner frames — written to a pcap file, where no
//! tcpdump could reach (a tap moved into a VM's namespace, a VXLAN tunnel).
//!
//! Every port's counters carry a [`Slot`]. With no capture, a worker pays one relaxed
//! load of its flag per frame and per output. With one, the worker copies each frame
//! (clipped to [`SNAPLEN`]) into a bounded queue — a full queue loses the frame for the
//! capture, counted, never delays forwarding — and a thread of the capture's own writes
//! the file (pcap with nanosecond timestamps, link type Ethernet) until COUNT frames,
//! SECONDS or [`MAX_BYTES`] are reached, or `rvs/capture-stop PORT`, whichever first.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

/// Bytes of a frame kept (a GSO frame may be 64 KiB and more).
pub const SNAPLEN: usize = 262_144;
/// Largest capture file.
pub const MAX_BYTES: u64 = 64 << 20;
/// Frames waiting for the writer.
const QUEUE: usize = 4096;
/// Default limits: frames, and time.
pub const DEFAULT_COUNT: u64 = 1000;
pub const DEFAULT_SECONDS: u64 = 60;

/// pcap's nanosecond-resolution magic, version 2.4, link type 1 (Ethernet).
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;

/// A port's place for a capture.
#[derive(Debug, Default)]
pub struct Slot {
    on: AtomicBool,
    capture: Mutex<Option<Arc<Capture>>>,
}

impl Slot {
    /// Offers a frame the port received or sends (worker side).
    #[inline]
    pub fn frame(&self, data: &[u8]) {
        if self.on.load(Relaxed) {
            self.offer(data);
        }
    }

    #[cold]
    fn offer(&self, data: &[u8]) {
        let c = self.capture.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(c) = c {
            c.offer(data);
        }
    }

    /// Whether a capture runs on the port.
    pub fn busy(&self) -> bool {
        self.on.load(Relaxed)
    }

    fn start(&self, c: Arc<Capture>) {
        *self.capture.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
        self.on.store(true, Relaxed);
    }

    /// Ends the port's capture, if any (its writer finishes the file).
    pub fn stop(&self) {
        self.on.store(false, Relaxed);
        self.capture.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// One running capture: the queue to its writer.
#[derive(Debug)]
pub struct Capture {
    tx: Sender<(u64, Vec<u8>)>,
    /// Frames the writer could not keep up with (shared with the writer, which holds
    /// no `Capture`: once the slot lets its capture go, the queue disconnects and the
    /// writer ends).
    lost: Arc<AtomicU64>,
}

impl Capture {
    fn offer(&self, data: &[u8]) {
        let ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        match self.tx.try_send((ns, data[..data.len().min(SNAPLEN)].to_vec())) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.lost.fetch_add(1, Relaxed);
            }
        }
    }
}

/// When a capture ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub frames: u64,
    pub time: Duration,
}

impl Limits {
    /// `COUNT` (frames) or `SECONDSs` (time); the other limit keeps its default.
    pub fn parse(arg: Option<&str>) -> Result<Limits, String> {
        let mut l = Limits { frames: DEFAULT_COUNT, time: Duration::from_secs(DEFAULT_SECONDS) };
        let Some(a) = arg else { return Ok(l) };
        let bad = || format!("{a:?}: a number of frames (COUNT) or of seconds (SECONDSs, e.g. 30s) expected");
        match a.strip_suffix('s') {
            Some(secs) => {
                let s: u64 = secs.parse().map_err(|_| bad())?;
                l.time = Duration::from_secs(s.clamp(1, 24 * 3600));
                l.frames = u64::MAX;
            }
            None => l.frames = a.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(bad)?,
        }
        Ok(l)
    }
}

/// Starts capturing on `slot` (port `port`) into `path`: creates the file (mode 0600,
/// refusing to follow a symbolic link or replace a file), writes the pcap header,
/// and starts the writer thread. Returns what the operator is told.
pub fn start(slot: Arc<impl AsRef<Slot> + Send + Sync + 'static>, port: &str, path: &Path, limits: Limits) -> io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    if slot.as_ref().as_ref().busy() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("a capture already runs on port {port} (rvs/capture-stop {port})")));
    }
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)?;
    let mut out = BufWriter::new(file);
    for v in [MAGIC_NS.to_le_bytes(), [2, 0, 4, 0], 0u32.to_le_bytes(), 0u32.to_le_bytes(), (SNAPLEN as u32).to_le_bytes(), LINKTYPE_ETHERNET.to_le_bytes()] {
        out.write_all(&v)?;
    }
    out.flush()?;
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let lost = Arc::new(AtomicU64::new(0));
    slot.as_ref().as_ref().start(Arc::new(Capture { tx, lost: lost.clone() }));
    let (port_name, file_name, held) = (port.to_string(), path.to_path_buf(), slot.clone());
    let spawned = std::thread::Builder::new().name("rvs-capture".into()).spawn(move || {
        let (frames, bytes, why) = write_frames(&rx, &mut out, limits);
        let _ = out.flush();
        held.as_ref().as_ref().stop();
        let lost = lost.load(Relaxed);
        tracing::info!(
            "capture of port {port_name} finished ({why}): {frames} frame(s), {bytes} bytes in {}{}",
            file_name.display(),
            if lost > 0 { format!(", {lost} lost (the writer fell behind)") } else { String::new() }
        );
    });
    if let Err(e) = spawned {
        slot.as_ref().as_ref().stop();
        return Err(e);
    }
    let limit =
        if limits.frames == u64::MAX { format!("{} s", limits.time.as_secs()) } else { format!("{} frames or {} s", limits.frames, limits.time.as_secs()) };
    Ok(format!("capturing port {port} to {} (up to {limit}, {} MiB)\n", path.display(), MAX_BYTES >> 20))
}

/// Writes records until a limit is reached or the capture is stopped; returns the
/// frames and bytes written and why it ended.
fn write_frames(rx: &Receiver<(u64, Vec<u8>)>, out: &mut impl Write, limits: Limits) -> (u64, u64, &'static str) {
    let deadline = Instant::now() + limits.time;
    let (mut frames, mut bytes) = (0u64, 24u64);
    loop {
        if frames >= limits.frames {
            return (frames, bytes, "frame count reached");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let (ns, data) = match rx.recv_timeout(left) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => return (frames, bytes, "time is up"),
            Err(RecvTimeoutError::Disconnected) => return (frames, bytes, "stopped"),
        };
        let rec = 16 + data.len() as u64;
        if bytes + rec > MAX_BYTES {
            return (frames, bytes, "file size limit reached");
        }
        let hdr = [
            ((ns / 1_000_000_000) as u32).to_le_bytes(),
            ((ns % 1_000_000_000) as u32).to_le_bytes(),
            (data.len() as u32).to_le_bytes(),
            (data.len() as u32).to_le_bytes(),
        ];
        if hdr.iter().try_for_each(|h| out.write_all(h)).and_then(|()| out.write_all(&data)).is_err() {
            return (frames, bytes, "write error");
        }
        frames += 1;
        bytes += rec;
    }
}

/// A capture file's path as given (relative paths are the daemon's working directory's:
/// say so by making it absolute in messages).
pub fn absolute(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() { p } else { std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(Limits::parse(None).unwrap(), Limits { frames: 1000, time: Duration::from_secs(60) });
        assert_eq!(Limits::parse(Some("20")).unwrap(), Limits { frames: 20, time: Duration::from_secs(60) });
        assert_eq!(Limits::parse(Some("5s")).unwrap(), Limits { frames: u64::MAX, time: Duration::from_secs(5) });
        for bad in ["0", "x", "5m", "-1", "s"] {
            assert!(Limits::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    struct Holder(Slot);
    impl AsRef<Slot> for Holder {
        fn as_ref(&self) -> &Slot {
            &self.0
        }
    }

    #[test]
    fn writes_a_pcap_and_stops_at_the_count() {
        let dir = std::env::temp_dir().join(format!("rvs-capture-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.pcap");
        let slot = Arc::new(Holder(Slot::default()));
        slot.0.frame(&[9; 60]);
        start(slot.clone(), "p1", &path, Limits { frames: 2, time: Duration::from_secs(10) }).unwrap();
        assert!(start(slot.clone(), "p1", &dir.join("d.pcap"), Limits::parse(None).unwrap()).is_err(), "two captures on one port");
        assert!(start(Arc::new(Holder(Slot::default())), "p2", &path, Limits::parse(None).unwrap()).is_err(), "an existing file replaced");
        for n in [60, 70, 80] {
            slot.0.frame(&vec![n as u8; n]);
        }
        let t = Instant::now();
        while slot.0.busy() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!slot.0.busy(), "the capture did not end at its count");
        // Stopped by hand: the writer ends at once, not at its time limit.
        let other = dir.join("e.pcap");
        start(slot.clone(), "p1", &other, Limits { frames: 100, time: Duration::from_secs(3600) }).unwrap();
        slot.0.frame(&[1; 64]);
        slot.0.stop();
        let t = Instant::now();
        while std::fs::metadata(&other).map_or(0, |m| m.len()) < 24 + 16 + 64 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(std::fs::metadata(&other).unwrap().len(), 24 + 16 + 64, "a stopped capture's frames are written");
        let f = std::fs::read(&path).unwrap();
        assert_eq!(&f[..4], &MAGIC_NS.to_le_bytes());
        assert_eq!(u32::from_le_bytes(f[20..24].try_into().unwrap()), 1);
        // Two records of 60 and 70 bytes; the third frame came after the count.
        assert_eq!(f.len(), 24 + 16 + 60 + 16 + 70);
        assert_eq!(u32::from_le_bytes(f[24 + 8..24 + 12].try_into().unwrap()), 60);
        assert!(f[24 + 16..24 + 16 + 60].iter().all(|&b| b == 60));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
