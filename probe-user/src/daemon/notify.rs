//! systemd's readiness protocol (sd_notify(3)): `READY=1` on `$NOTIFY_SOCKET` once pinwatch
//! observes with every hook, so `Type=notify` units (and whatever is ordered after them) start
//! only when observation is complete. Without `NOTIFY_SOCKET` it does nothing.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=value` lines) to the service manager, if any.
pub fn notify(state: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    // `@name` is an abstract socket (Linux): the leading byte of its address is NUL.
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_the_socket_named_by_notify_socket() {
        let dir = std::env::temp_dir().join(format!("pinwatch-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        // SAFETY: this test is the only one that touches NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        notify("READY=1\nSTATUS=observing").unwrap();
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=observing");
        assert!(notify("READY=1").is_ok(), "no socket: nothing to do");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
