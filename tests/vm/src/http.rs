//! A loopback-only HTTP server running a handler on its own thread per request, so a slowed
//! download never blocks another request. Every request is logged for the assertions.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, Result};

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
    server: Arc<tiny_http::Server>,
    acceptor: Option<JoinHandle<()>>,
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

impl LoopbackServer {
    /// Binds 127.0.0.1 on an ephemeral port (never another interface). The handler answers one
    /// request and returns the status it sent.
    pub fn start<H>(handler: H) -> Result<Self>
    where
        H: Fn(tiny_http::Request) -> u16 + Send + Sync + 'static,
    {
        let server = Arc::new(
            tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow!("bind loopback: {e}"))?,
        );
        let port = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("loopback server has no IP address"))?
            .port();
        let hits: HitLog = Arc::default();
        let handler = Arc::new(handler);
        let acceptor = {
            let server = Arc::clone(&server);
            let hits = Arc::clone(&hits);
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let handler = Arc::clone(&handler);
                    let hits = Arc::clone(&hits);
                    std::thread::spawn(move || {
                        // Logged when it arrives (a slowed download is visible while it runs);
                        // the status is filled in once the answer has been sent.
                        let index = {
                            let mut hits = hits.lock().unwrap();
                            hits.push(Hit {
                                at: Instant::now(),
                                method: request.method().to_string(),
                                url: request.url().to_string(),
                                headers: request
                                    .headers()
                                    .iter()
                                    .map(|h| (h.field.to_string(), h.value.to_string()))
                                    .collect(),
                                status: 0,
                            });
                            hits.len() - 1
                        };
                        let status = handler(request);
                        hits.lock().unwrap()[index].status = status;
                    });
                }
            })
        };
        Ok(Self {
            port,
            hits,
            server,
            acceptor: Some(acceptor),
        })
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Answers with a small body; errors writing to a client that went away are irrelevant here.
pub fn respond(request: tiny_http::Request, status: u16, content_type: &str, body: Vec<u8>) -> u16 {
    let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("valid header");
    let _ = request.respond(
        tiny_http::Response::from_data(body)
            .with_status_code(status)
            .with_header(header),
    );
    status
}
