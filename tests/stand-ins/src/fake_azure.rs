//! Azure faked at its HTTP boundary, for the real agent binary (agent/tests/integration/vault.rs) and the VM
//! end-to-end test (tests/vm): IMDS (instance document and identity tokens, `Metadata: true`
//! required) on plain HTTP, Key Vault's REST API over TLS with a certificate from a test CA, and
//! the HTTPS proxy through which a node on the host reaches the vault (it maps the vault's host
//! name to the fake: the test's name resolution; the agent only sees an ordinary `HTTPS_PROXY`;
//! a VM resolves the name through its seed and reaches `vault_addr` by a port forward). Faults on
//! demand: 403 until a role is granted, 404, 429 with Retry-After, 5xx, slow answers. Set Secret
//! (`PUT /secrets/<name>` with `{"value": ...}`) needs a write role of its own (`grant_write`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const VAULT_SUFFIX: &str = "vault.fake-azure.test";
pub const VAULT_RESOURCE: &str = "https://vault.fake-azure.test";
/// The access token IMDS issues to this VM's identity; the vault accepts only it.
const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-identity-token";

/// How the vault answers the next request for a secret instead of serving it.
#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    Throttle(u64),
    /// The right answer, after this long.
    Slow(Duration),
}

/// One request as a fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// IMDS identity token request: whether `Metadata: true` came, and the resource asked for.
    Token {
        metadata: bool,
        resource: String,
    },
    Instance {
        metadata: bool,
    },
    /// Key Vault: the path, and whether the bearer token was the identity's.
    Secret {
        path: String,
        bearer_ok: bool,
    },
    /// Key Vault Set Secret (`PUT`): the path, and whether the bearer token was the identity's.
    SetSecret {
        path: String,
        bearer_ok: bool,
    },
    /// The proxy was asked to CONNECT to this authority.
    Connect(String),
}

#[derive(Default)]
struct State {
    secrets: HashMap<String, String>,
    /// Secrets the VM's identity has a role on.
    granted: HashSet<String>,
    /// Secrets the VM's identity may write (Key Vault Secrets Officer).
    writable: HashSet<String>,
    faults: HashMap<String, VecDeque<Fault>>,
    seen: Vec<Seen>,
    vm_name: String,
    /// Added before every IMDS and vault answer: one round trip of a slow link per request.
    latency: Duration,
}

pub struct FakeAzure {
    state: Arc<Mutex<State>>,
    imds: SocketAddr,
    vault: SocketAddr,
    proxy: SocketAddr,
    pub ca_pem: String,
    _runtime: tokio::runtime::Runtime,
}

impl FakeAzure {
    pub fn start() -> FakeAzure {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State {
            vm_name: "demo-workers_3".into(),
            ..State::default()
        }));
        let (ca_pem, tls) = tls_config();
        let bind = || runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let (imds_listener, vault_listener, proxy_listener) = (bind(), bind(), bind());
        let imds = imds_listener.local_addr().unwrap();
        let vault = vault_listener.local_addr().unwrap();
        let proxy = proxy_listener.local_addr().unwrap();
        let shared = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = imds_listener.accept().await {
                tokio::spawn(serve_imds(stream, shared.clone()));
            }
        });
        let shared = state.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        runtime.spawn(async move {
            while let Ok((stream, _)) = vault_listener.accept().await {
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve_vault(tls, shared).await;
                    }
                });
            }
        });
        let shared = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = proxy_listener.accept().await {
                tokio::spawn(serve_proxy(stream, vault, shared.clone()));
            }
        });
        FakeAzure {
            state,
            imds,
            vault,
            proxy,
            ca_pem,
            _runtime: runtime,
        }
    }

    pub fn imds_url(&self) -> String {
        format!("http://{}", self.imds)
    }

    /// The vault's TLS listener on loopback (what `https://<vault>.<VAULT_SUFFIX>` must reach).
    pub fn vault_addr(&self) -> SocketAddr {
        self.vault
    }

    /// For the node's `HTTPS_PROXY`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// Writes a secret (readable by the VM only once `grant`ed).
    pub fn put_secret(&self, name: &str, value: &str) {
        self.state
            .lock()
            .unwrap()
            .secrets
            .insert(name.into(), value.into());
    }

    /// Gives the VM's identity the role to read `name` (what the ARM role assignment does).
    pub fn grant(&self, name: &str) {
        self.state.lock().unwrap().granted.insert(name.into());
    }

    /// Makes IMDS describe VM `name` (`<scale set>_<instance id>`) from now on: the next node.
    pub fn set_vm(&self, name: &str) {
        self.state.lock().unwrap().vm_name = name.into();
    }

    /// Gives the VM's identity the role to write `name` (the masters' Key Vault Secrets Officer).
    pub fn grant_write(&self, name: &str) {
        self.state.lock().unwrap().writable.insert(name.into());
    }

    /// The value of secret `name` now, as the vault holds it.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.state.lock().unwrap().secrets.get(name).cloned()
    }

    /// Set Secret requests for `name` so far.
    pub fn secret_writes(&self, name: &str) -> usize {
        let path = format!("/secrets/{name}");
        self.seen()
            .iter()
            .filter(|s| matches!(s, Seen::SetSecret { path: p, .. } if *p == path))
            .count()
    }

    /// The next `times` requests for `name` get `fault`.
    pub fn fault(&self, name: &str, fault: Fault, times: usize) {
        let mut state = self.state.lock().unwrap();
        let queue = state.faults.entry(name.into()).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Every IMDS and vault answer from now on waits `latency` first: a slow link, for
    /// agent/benches/vault.rs.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests for secret `name` so far.
    pub fn secret_requests(&self, name: &str) -> usize {
        let path = format!("/secrets/{name}");
        self.seen()
            .iter()
            .filter(|s| matches!(s, Seen::Secret { path: p, .. } if p.starts_with(&path)))
            .count()
    }
}

/// A test CA and a certificate for `*.<VAULT_SUFFIX>` signed by it.
fn tls_config() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fake Azure test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![format!("*.{VAULT_SUFFIX}")])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca.pem(), Arc::new(cfg))
}

/// The request line and headers (lowercased names) of one request.
async fn read_head<S: AsyncReadExt + Unpin>(
    stream: &mut S,
) -> Option<(String, Vec<(String, String)>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8(buf).ok()?;
    let mut lines = text.split("\r\n");
    let request = lines.next()?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((request, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn respond<S: AsyncWriteExt + Unpin>(stream: &mut S, code: u16, extra: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {code} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// IMDS's answer to an identity token request (`target`: path and query): 400 without
/// `Metadata: true`, or for another api-version or resource than the vault's; else a token the
/// fake vault accepts.
pub fn identity_token_answer(metadata: bool, target: &str) -> (u16, String) {
    let resource = query_param(target, "resource").unwrap_or_default();
    if !metadata {
        (
            400,
            r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#
                .to_string(),
        )
    } else if query_param(target, "api-version").as_deref() != Some("2018-02-01")
        || resource != VAULT_RESOURCE
    {
        (400, r#"{"error":"invalid_resource"}"#.to_string())
    } else {
        (
            200,
            serde_json::json!({
                "access_token": ACCESS_TOKEN, "expires_in": "86399",
                "expires_on": "1900000000", "resource": resource, "token_type": "Bearer"
            })
            .to_string(),
        )
    }
}

async fn serve_imds(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let Some((request, headers)) = read_head(&mut stream).await else {
        return;
    };
    let latency = state.lock().unwrap().latency;
    tokio::time::sleep(latency).await;
    let target = request.split(' ').nth(1).unwrap_or("").to_string();
    let metadata = header(&headers, "metadata") == Some("true");
    let path = target.split('?').next().unwrap_or("");
    let (code, body) = match path {
        "/metadata/identity/oauth2/token" => {
            let resource = query_param(&target, "resource").unwrap_or_default();
            state
                .lock()
                .unwrap()
                .seen
                .push(Seen::Token { metadata, resource });
            identity_token_answer(metadata, &target)
        }
        "/metadata/instance" => {
            state.lock().unwrap().seen.push(Seen::Instance { metadata });
            let vm = state.lock().unwrap().vm_name.clone();
            let (set, ordinal) = vm.rsplit_once('_').unwrap();
            match metadata {
                false => (400, r#"{"error":"Bad request. Required metadata header not specified"}"#.to_string()),
                true => (200, serde_json::json!({
                    "compute": {"name": vm, "osProfile": {"computerName": format!("{set}00000{ordinal}")},
                        "vmScaleSetName": set, "subscriptionId": "66666666-7777-4888-9999-000000000000",
                        "resourceGroupName": "demo-rg", "location": "local", "zone": "", "platformFaultDomain": "1"},
                    "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": "10.240.0.7"}]}}]}
                }).to_string()),
            }
        }
        _ => (404, "{}".to_string()),
    };
    respond(&mut stream, code, "", &body).await;
}

async fn serve_vault<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    mut stream: S,
    state: Arc<Mutex<State>>,
) {
    let Some((request, headers)) = read_head(&mut stream).await else {
        return;
    };
    let latency = state.lock().unwrap().latency;
    tokio::time::sleep(latency).await;
    let target = request.split(' ').nth(1).unwrap_or("").to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    let bearer_ok = header(&headers, "authorization") == Some(&format!("Bearer {ACCESS_TOKEN}"));
    let name = path.strip_prefix("/secrets/").unwrap_or("").to_string();
    let write = request.starts_with("PUT ");
    // Set Secret's body: `{"value": ...}` (Content-Length bytes after the head).
    let value = match write {
        false => None,
        true => {
            let length = header(&headers, "content-length")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0)
                .min(64 * 1024);
            let mut body = vec![0u8; length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["value"].as_str().map(str::to_string))
        }
    };
    let (fault, answer) = {
        let mut s = state.lock().unwrap();
        s.seen.push(match write {
            false => Seen::Secret {
                path: path.clone(),
                bearer_ok,
            },
            true => Seen::SetSecret {
                path: path.clone(),
                bearer_ok,
            },
        });
        let fault = s.faults.get_mut(&name).and_then(VecDeque::pop_front);
        let allowed = match write {
            false => s.granted.contains(&name),
            true => s.writable.contains(&name),
        };
        let answer = if query_param(&target, "api-version").as_deref() != Some("7.4") {
            (400, r#"{"error":{"code":"BadParameter"}}"#.to_string())
        } else if !bearer_ok {
            (401, r#"{"error":{"code":"Unauthorized"}}"#.to_string())
        } else if !allowed {
            (
                403,
                r#"{"error":{"code":"Forbidden","innererror":{"code":"ForbiddenByRbac"}}}"#
                    .to_string(),
            )
        } else if write && value.is_none() {
            (400, r#"{"error":{"code":"BadParameter"}}"#.to_string())
        } else {
            // A write answered with a fault status is not applied.
            let refused = matches!(fault, Some(Fault::Status(_) | Fault::Throttle(_)));
            if let (false, Some(value)) = (refused, &value) {
                s.secrets.insert(name.clone(), value.clone());
            }
            match s.secrets.get(&name) {
                None => (404, r#"{"error":{"code":"SecretNotFound"}}"#.to_string()),
                Some(value) => (
                    200,
                    serde_json::json!({
                        "value": value,
                        "id": format!("https://kv.{VAULT_SUFFIX}/secrets/{name}/0123456789abcdef"),
                        "attributes": {"enabled": true}
                    })
                    .to_string(),
                ),
            }
        };
        (fault, answer)
    };
    match fault {
        Some(Fault::Status(code)) => respond(&mut stream, code, "", "{}").await,
        Some(Fault::Throttle(secs)) => {
            respond(&mut stream, 429, &format!("Retry-After: {secs}\r\n"), "{}").await
        }
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            respond(&mut stream, answer.0, "", &answer.1).await
        }
        None => respond(&mut stream, answer.0, "", &answer.1).await,
    }
}

/// `CONNECT <host>:443`: hosts under the fake vault suffix go to the fake vault.
async fn serve_proxy(mut stream: TcpStream, vault: SocketAddr, state: Arc<Mutex<State>>) {
    let Some((request, _)) = read_head(&mut stream).await else {
        return;
    };
    let mut parts = request.split(' ');
    let (method, authority) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    state
        .lock()
        .unwrap()
        .seen
        .push(Seen::Connect(authority.to_string()));
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority);
    if method != "CONNECT" || !host.ends_with(&format!(".{VAULT_SUFFIX}")) {
        respond(&mut stream, 502, "", "").await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(vault).await else {
        return;
    };
    if stream
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
    }
}
