//! Ports for the servers tests start.

use std::sync::atomic::{AtomicU32, Ordering};

/// A port for a server: free now, never handed out twice in this process, and below the
/// kernel's ephemeral range (32768+), from which bind(0) and every client's local port come, so
/// that nothing else takes it before the server binds it (tests run side by side).
pub fn free_port() -> u16 {
    const FIRST: u32 = 20000;
    const COUNT: u32 = 12000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test binaries of other worktrees may run at the same time: start at a per-process offset.
    let offset = std::process::id() * 389;
    loop {
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}
