//! The one HTTP server of the tests and stand-ins, on hyper: the accept loop (plain or TLS, with the
//! client's certificate for the handler), HTTP/1.1 with keep-alive and CONNECT upgrades, and a
//! loopback server that owns its runtime and stops when dropped. Each fake brings its own handler.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// The client's side of a connection, as far as a handler needs it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client certificate (DER) of a TLS connection that presented one.
    pub certificate: Option<Vec<u8>>,
    /// The connection's socket (a duplicate: the socket closes when hyper and every clone of
    /// this are done with it).
    socket: Arc<OwnedFd>,
}

impl Peer {
    /// Makes the connection end with a reset (RST) instead of a clean close, as a broken link
    /// does; unsent bytes are discarded then, so let the last ones leave first.
    pub fn reset_on_close(&self) -> std::io::Result<()> {
        let linger = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        nix::sys::socket::setsockopt(&*self.socket, nix::sys::socket::sockopt::Linger, &linger)
            .map_err(std::io::Error::from)
    }
}

/// What a handler returns: a future of a response whose body hyper can send.
pub trait HandlerFuture: Future<Output = Response<Self::Body>> + Send + 'static {
    type Body: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
}

impl<F, B> HandlerFuture for F
where
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
{
    type Body = B;
}

/// Serves every connection `listener` accepts (through `tls` when given) with `handler`, until
/// the listener fails. Runs inside a tokio runtime.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
    F: HandlerFuture,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, _) = listener.accept().await?;
        let Ok(socket) = tcp.as_fd().try_clone_to_owned() else {
            continue; // out of file descriptors: the client sees its connection closed
        };
        let socket = Arc::new(socket);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let peer = Peer {
                        certificate: None,
                        socket,
                    };
                    serve_connection(tcp, peer, handler).await
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec());
                    let peer = Peer {
                        certificate,
                        socket,
                    };
                    serve_connection(stream, peer, handler).await
                }
            }
        });
    }
}

async fn serve_connection<S, H, F>(stream: S, peer: Peer, handler: H)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Peer) -> F + Send + Sync + 'static,
    F: HandlerFuture,
{
    let service = hyper::service::service_fn(move |request| {
        let answer = handler(request, peer.clone());
        async move { Ok::<_, Infallible>(answer.await) }
    });
    // A failed connection concerns only its client, which sees it.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// A server on an ephemeral port of 127.0.0.1 (never another interface), on a runtime of its own:
/// dropping it stops the server and every connection.
pub struct LoopbackServer {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl LoopbackServer {
    pub fn start<H, F>(tls: Option<Arc<rustls::ServerConfig>>, handler: H) -> Self
    where
        H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
        F: HandlerFuture,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for a test server");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind an ephemeral port on loopback");
        let addr = listener.local_addr().expect("a bound listener's address");
        runtime.spawn(serve(listener, tls, handler));
        Self {
            addr,
            _runtime: runtime,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The query of `uri` as decoded `name → value` pairs (the last of repeated names).
pub fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` in a query component; a `%` without two hex digits stays.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        let uri: Uri = "/token?resource=https%3A%2F%2Fvault.test&a=b+c&bad=%zz&end=%4"
            .parse()
            .unwrap();
        let pairs = query(&uri);
        assert_eq!(pairs["resource"], "https://vault.test");
        assert_eq!(pairs["a"], "b c");
        assert_eq!(pairs["bad"], "%zz");
        assert_eq!(pairs["end"], "%4");
    }
}
