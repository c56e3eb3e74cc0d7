//! `--timeout=SECS` the way ovs-vsctl has it: when the time is up, whatever rvsctl is
//! doing (connecting, waiting in `wait-until`, waiting for an answer), it logs the line
//! OVS's `fatal_signal` module logs on stderr and ends by SIGALRM, so a shell sees
//! status 142 — what scripts written for ovs-vsctl test for.
//!
//! OVS arms alarm(2) and logs from its signal handler's deferred path; rvsctl sleeps in
//! a thread instead, which needs no handler code running in signal context. Files
//! registered with [`arm`] (a `punix:` socket rvsctl listens on) are removed first, as
//! OVS's fatal_signal hooks remove theirs.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The console log's settings the `fatal_signal` line follows (`-v`; OVS's default
/// until [`set_console`]).
static CONSOLE: std::sync::Mutex<Option<crate::vlog::Vlog>> = std::sync::Mutex::new(None);

/// Makes the `fatal_signal` line follow `vlog` (the command line's `-v` options).
pub fn set_console(vlog: &crate::vlog::Vlog) {
    *CONSOLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(vlog.clone());
}

/// Starts the countdown. Does nothing for 0 (no timeout, as in OVS).
pub fn arm(secs: u32, remove_on_fire: Vec<PathBuf>) {
    if secs == 0 {
        return;
    }
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(u64::from(secs)));
        for p in &remove_on_fire {
            let _ = std::fs::remove_file(p);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let vlog = CONSOLE.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
        let line = vlog.warning(1, "fatal_signal", "terminating with signal 14 (Alarm clock)", now).unwrap_or_default();
        let _ = std::io::stderr().write_all(line.as_bytes());
        rvs_sys::process::die_by_signal(libc::SIGALRM);
    });
}

/// `2026-12-04T19:00:21Z`: OVS's vlog time stamp (UTC) for `secs` since the epoch.
pub fn vlog_time(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::vlog_time;

    #[test]
    fn time_stamps() {
        assert_eq!(vlog_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(vlog_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(vlog_time(1_796_411_021), "2026-12-04T19:03:41Z");
    }
}
