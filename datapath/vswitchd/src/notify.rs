//! Readiness for systemd (`Type=notify`): when `$NOTIFY_SOCKET` names a datagram
//! socket (a path, or an abstract name written with a leading `@`), [`ready`] sends it
//! `READY=1` once the control socket accepts commands and [`stopping`] `STOPPING=1`.
//! Without the variable both do nothing; a failure to send is logged, never fatal.

use std::os::unix::net::UnixDatagram;

/// Tells the service manager that the daemon accepts commands.
pub fn ready() {
    send(&format!("READY=1\nMAINPID={}\nSTATUS=control socket accepts commands", std::process::id()));
}

/// Tells the service manager that the daemon is stopping.
pub fn stopping() {
    send("STOPPING=1");
}

fn send(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = send_to(&path, msg) {
        tracing::warn!("cannot notify the service manager at {}: {e}", path.to_string_lossy());
    }
}

fn send_to(path: &std::ffi::OsStr, msg: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::SocketAddr;
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    sock.send_to_addr(msg.as_bytes(), &addr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&p).unwrap();
        send_to(p.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();

        use std::os::linux::net::SocketAddrExt;
        let name = format!("rvs-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        send_to(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
