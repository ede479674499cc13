//! A loopback HTTP/1.1 server for tests and the install benchmark: serves files from memory,
//! honours `Range: bytes=N-`, counts requests, and misbehaves on demand (status codes, truncated
//! bodies, resets, stalls, redirects, added latency). One request per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes a simulated link moves per round trip (a large TCP window).
pub const LINK_WINDOW: usize = 4 << 20;

/// How the server answers a request instead of serving the file.
#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// Announces the full length, sends this many body bytes, then closes cleanly.
    Truncate(usize),
    /// Sends this many body bytes, then resets the connection (RST).
    Reset(usize),
    /// Sends the body `chunk` bytes at a time, one chunk per `interval`.
    Trickle {
        chunk: usize,
        interval: Duration,
    },
    /// `302` to this location.
    Redirect(String),
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    /// Start of a `Range: bytes=N-` request.
    pub range_from: Option<u64>,
    /// The host of an absolute-form request (`GET http://host/path`): the server was asked as a
    /// proxy, and answers as if it were that host.
    pub proxied_for: Option<String>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Arc<Vec<u8>>>,
    /// Faults per path, with how many requests they still apply to.
    faults: HashMap<String, (Fault, usize)>,
    seen: Vec<Seen>,
    latency: Duration,
}

pub struct ReleaseServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl ReleaseServer {
    pub fn start() -> ReleaseServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        ReleaseServer {
            addr,
            state,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn put(&self, path: &str, body: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        state.files.insert(path.to_string(), Arc::new(body));
    }

    /// Makes the next `times` requests for `path` fail with `fault` (`usize::MAX`: all of them).
    pub fn fault(&self, path: &str, fault: Fault, times: usize) {
        let mut state = self.state.lock().unwrap();
        state.faults.insert(path.to_string(), (fault, times));
    }

    /// Simulates a link with this round-trip time: a delay before every response, and one after
    /// every `LINK_WINDOW` bytes of a body (a TCP window's worth per round trip), so a single
    /// connection is slow the way a distant server is.
    #[allow(dead_code)] // only the install benchmark simulates a slow link
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn requests_for(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    pub fn forget_requests(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let Some(request) = read_head(&mut stream).await else {
        return;
    };
    let mut lines = request.lines();
    let target = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/");
    let (proxied_for, path) = match target.strip_prefix("http://") {
        Some(rest) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (Some(host.to_string()), path.to_string())
        }
        None => (None, target.to_string()),
    };
    let range_from = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("range"))
        .and_then(|(_, v)| v.trim().strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<u64>().ok());
    let (file, fault, latency) = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen {
            path: path.clone(),
            range_from,
            proxied_for,
        });
        let fault = match state.faults.get_mut(&path) {
            Some((fault, times)) if *times > 0 => {
                *times = times.saturating_sub(1);
                Some(fault.clone())
            }
            _ => None,
        };
        (state.files.get(&path).cloned(), fault, state.latency)
    };
    pause(latency).await;
    let _ = respond(&mut stream, file, fault, range_from, latency).await;
}

/// Sleeps unless `latency` is zero (a zero sleep still waits for the next timer tick).
async fn pause(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}

async fn respond(
    stream: &mut TcpStream,
    file: Option<Arc<Vec<u8>>>,
    fault: Option<Fault>,
    range_from: Option<u64>,
    latency: Duration,
) -> std::io::Result<()> {
    if let Some(Fault::Status(code)) = fault {
        return write_status(stream, code, "").await;
    }
    if let Some(Fault::Redirect(location)) = &fault {
        return write_status(stream, 302, &format!("Location: {location}\r\n")).await;
    }
    let Some(file) = file else {
        return write_status(stream, 404, "").await;
    };
    let start = range_from.unwrap_or(0).min(file.len() as u64) as usize;
    let body = &file[start..];
    let head = match range_from {
        Some(_) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len(),
            file.len().saturating_sub(1),
            file.len()
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            body.len()
        ),
    };
    stream.write_all(head.as_bytes()).await?;
    match fault {
        Some(Fault::Truncate(n)) => {
            stream.write_all(&body[..n.min(body.len())]).await?;
            stream.shutdown().await
        }
        Some(Fault::Reset(n)) => {
            stream.write_all(&body[..n.min(body.len())]).await?;
            stream.flush().await?;
            // Let the bytes leave before the reset discards the send queue.
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.set_zero_linger()
        }
        Some(Fault::Trickle { chunk, interval }) => {
            for piece in body.chunks(chunk.max(1)) {
                tokio::time::sleep(interval).await;
                stream.write_all(piece).await?;
            }
            Ok(())
        }
        _ => {
            // A link with `latency` round trips moves at most one window per round trip.
            for window in body.chunks(LINK_WINDOW) {
                stream.write_all(window).await?;
                pause(latency).await;
            }
            stream.shutdown().await
        }
    }
}

async fn write_status(stream: &mut TcpStream, code: u16, headers: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} Status {code}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.shutdown().await
}
