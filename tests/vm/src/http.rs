//! The VM test's host services on the kit's loopback HTTP server, with what the e2e asserts on: a
//! log of every request (when it came, what it asked, the status once the answer has been sent)
//! and answers that can be paced to a byte rate (to interrupt a download on purpose).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use kubeboot_test_kit::http::LoopbackServer as KitServer;
use tokio::sync::mpsc;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub method: String,
    pub url: String,
    /// `(name, value)` as received.
    pub headers: Vec<(String, String)>,
    /// 0 while the answer is still being sent.
    pub status: u16,
}

pub type HitLog = Arc<Mutex<Vec<Hit>>>;

pub struct LoopbackServer {
    pub port: u16,
    pub hits: HitLog,
    _server: KitServer,
}

impl Hit {
    /// The value of header `name` (case-insensitive), if the request carried it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Throughput cap for the body, bytes per second.
    pub bytes_per_second: Option<u64>,
}

impl Answer {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            body,
            bytes_per_second: None,
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

impl LoopbackServer {
    /// Binds 127.0.0.1 on an ephemeral port (never another interface).
    pub fn start<H>(handler: H) -> Self
    where
        H: Fn(&Request<Incoming>) -> Answer + Send + Sync + 'static,
    {
        let hits: HitLog = Arc::default();
        let handler = Arc::new(handler);
        let log = Arc::clone(&hits);
        let server = KitServer::start(None, move |request, _| {
            let (handler, log) = (Arc::clone(&handler), Arc::clone(&log));
            async move { serve(&request, &*handler, log) }
        });
        Self {
            port: server.addr().port(),
            hits,
            _server: server,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn serve(
    request: &Request<Incoming>,
    handler: &(dyn Fn(&Request<Incoming>) -> Answer + Send + Sync),
    log: HitLog,
) -> Response<Body> {
    // Logged when it arrives (a slowed download is visible while it runs); the status is
    // filled in once the answer has been sent.
    let index = {
        let mut hits = log.lock().unwrap();
        hits.push(Hit {
            at: Instant::now(),
            method: request.method().to_string(),
            url: request.uri().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
            status: 0,
        });
        hits.len() - 1
    };
    let answer = handler(request);
    let response = Response::builder()
        .status(answer.status)
        .header("Content-Type", answer.content_type)
        .header("Content-Length", answer.body.len());
    let (frames, received) = mpsc::channel(1);
    tokio::spawn(async move {
        let status = answer.status;
        send_paced(answer, frames).await;
        log.lock().unwrap()[index].status = status;
    });
    let body = StreamBody::new(futures_util::stream::unfold(
        received,
        |mut received| async move { received.recv().await.map(|frame| (frame, received)) },
    ));
    response
        .body(BodyExt::boxed(body))
        .expect("a valid response")
}

/// Sends the body in pieces that never run ahead of its byte-rate budget, until the client goes
/// away.
async fn send_paced(answer: Answer, frames: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>) {
    let started = Instant::now();
    let piece = match answer.bytes_per_second {
        Some(rate) => (rate / 10).max(1) as usize,
        None => 64 * 1024,
    };
    let mut sent = 0;
    for chunk in answer.body.chunks(piece) {
        if let Some(rate) = answer.bytes_per_second {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let frame = Frame::data(Bytes::copy_from_slice(chunk));
        if frames.send(Ok(frame)).await.is_err() {
            return;
        }
        sent += chunk.len();
    }
}
