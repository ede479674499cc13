//! A release mirror for tests and the install benchmark, on the kit's loopback HTTP server: serves
//! files from memory, honours `Range: bytes=N-`, counts requests, and misbehaves on demand (status
//! codes, truncated bodies, resets, stalls, redirects, added latency).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use kubeboot_test_kit::http::{LoopbackServer, Peer};
use tokio::sync::mpsc;

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
    server: LoopbackServer,
    state: Arc<Mutex<State>>,
}

impl ReleaseServer {
    pub fn start() -> ReleaseServer {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = LoopbackServer::start(None, move |request, peer| {
            serve(request, peer, shared.clone())
        });
        ReleaseServer { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn port(&self) -> u16 {
        self.server.addr().port()
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

type Body = BoxBody<Bytes, std::io::Error>;

async fn serve(request: Request<Incoming>, peer: Peer, state: Arc<Mutex<State>>) -> Response<Body> {
    let uri = request.uri();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    // An absolute-form target (`GET http://host/path`): asked as a proxy.
    let proxied_for = uri.authority().map(|a| a.to_string());
    let range_from = request
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
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
    respond(file, fault, range_from, latency, peer)
}

/// Sleeps unless `latency` is zero (a zero sleep still waits for the next timer tick).
async fn pause(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

fn status(code: u16, location: Option<&str>) -> Response<Body> {
    let mut response = Response::builder().status(code);
    if let Some(location) = location {
        response = response.header("Location", location);
    }
    response
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .expect("a valid response")
}

fn respond(
    file: Option<Arc<Vec<u8>>>,
    fault: Option<Fault>,
    range_from: Option<u64>,
    latency: Duration,
    peer: Peer,
) -> Response<Body> {
    if let Some(Fault::Status(code)) = fault {
        return status(code, None);
    }
    if let Some(Fault::Redirect(location)) = &fault {
        return status(302, Some(location));
    }
    let Some(file) = file else {
        return status(404, None);
    };
    let start = range_from.unwrap_or(0).min(file.len() as u64) as usize;
    let length = file.len() - start;
    let response = match range_from {
        Some(_) => Response::builder().status(206).header(
            "Content-Range",
            format!(
                "bytes {start}-{}/{}",
                file.len().saturating_sub(1),
                file.len()
            ),
        ),
        None => Response::builder()
            .status(200)
            .header("Accept-Ranges", "bytes"),
    };
    // The body is written by a task of its own, so faults can pace it, cut it or reset the link.
    let (frames, received) = mpsc::channel(1);
    tokio::spawn(send_body(file, start, fault, latency, peer, frames));
    let body = StreamBody::new(futures_util::stream::unfold(
        received,
        |mut received| async move { received.recv().await.map(|frame| (frame, received)) },
    ));
    response
        .header("Content-Length", length)
        .body(BodyExt::boxed(body))
        .expect("a valid response")
}

type FrameSender = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

async fn send_body(
    file: Arc<Vec<u8>>,
    start: usize,
    fault: Option<Fault>,
    latency: Duration,
    peer: Peer,
    frames: FrameSender,
) {
    let body = &file[start..];
    let data = |bytes: &[u8]| Ok(Frame::data(Bytes::copy_from_slice(bytes)));
    match fault {
        // Fewer bytes than announced: the connection closes after them.
        Some(Fault::Truncate(n)) => {
            let _ = frames.send(data(&body[..n.min(body.len())])).await;
        }
        Some(Fault::Reset(n)) => {
            let _ = frames.send(data(&body[..n.min(body.len())])).await;
            // Let the bytes leave before the reset discards the send queue.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if peer.reset_on_close().is_ok() {
                let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
                let _ = frames.send(Err(reset)).await;
            }
        }
        Some(Fault::Trickle { chunk, interval }) => {
            for piece in body.chunks(chunk.max(1)) {
                tokio::time::sleep(interval).await;
                if frames.send(data(piece)).await.is_err() {
                    return;
                }
            }
        }
        _ => {
            // A link with `latency` round trips moves at most one window per round trip.
            for window in body.chunks(LINK_WINDOW) {
                if frames.send(data(window)).await.is_err() {
                    return;
                }
                pause(latency).await;
            }
        }
    }
}
