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

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, Uri};
use kubeboot_test_kit::http::{query, LoopbackServer};
use tokio::net::TcpStream;

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
    imds: LoopbackServer,
    vault: LoopbackServer,
    proxy: LoopbackServer,
    pub ca_pem: String,
}

impl FakeAzure {
    pub fn start() -> FakeAzure {
        let state = Arc::new(Mutex::new(State {
            vm_name: "demo-workers_3".into(),
            ..State::default()
        }));
        let (ca_pem, tls) = tls_config();
        let shared = state.clone();
        let imds =
            LoopbackServer::start(None, move |request, _| serve_imds(request, shared.clone()));
        let shared = state.clone();
        let vault = LoopbackServer::start(Some(tls), move |request, _| {
            serve_vault(request, shared.clone())
        });
        let (shared, vault_addr) = (state.clone(), vault.addr());
        let proxy = LoopbackServer::start(None, move |request, _| {
            serve_proxy(request, vault_addr, shared.clone())
        });
        FakeAzure {
            state,
            imds,
            vault,
            proxy,
            ca_pem,
        }
    }

    pub fn imds_url(&self) -> String {
        self.imds.url()
    }

    /// The vault's TLS listener on loopback (what `https://<vault>.<VAULT_SUFFIX>` must reach).
    pub fn vault_addr(&self) -> SocketAddr {
        self.vault.addr()
    }

    /// For the node's `HTTPS_PROXY`.
    pub fn proxy_url(&self) -> String {
        self.proxy.url()
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

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

type Reply = Response<Full<Bytes>>;

fn respond(code: u16, retry_after: Option<u64>, body: String) -> Reply {
    let mut reply = Response::builder()
        .status(code)
        .header("Content-Type", "application/json");
    if let Some(seconds) = retry_after {
        reply = reply.header("Retry-After", seconds);
    }
    reply
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// IMDS's answer to an identity token request (`target`: path and query): 400 without
/// `Metadata: true`, or for another api-version or resource than the vault's; else a token the
/// fake vault accepts.
pub fn identity_token_answer(metadata: bool, target: &str) -> (u16, String) {
    let query = target
        .parse::<Uri>()
        .map_or_else(|_| Default::default(), |uri| query(&uri));
    let resource = query.get("resource").cloned().unwrap_or_default();
    if !metadata {
        (
            400,
            r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#
                .to_string(),
        )
    } else if query.get("api-version").map(String::as_str) != Some("2018-02-01")
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

async fn serve_imds(request: Request<Incoming>, state: Arc<Mutex<State>>) -> Reply {
    let latency = state.lock().unwrap().latency;
    tokio::time::sleep(latency).await;
    let target = request.uri().to_string();
    let metadata = header(&request, "metadata") == Some("true");
    let (code, body) = match request.uri().path() {
        "/metadata/identity/oauth2/token" => {
            let resource = query(request.uri()).remove("resource").unwrap_or_default();
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
    respond(code, None, body)
}

async fn serve_vault(request: Request<Incoming>, state: Arc<Mutex<State>>) -> Reply {
    let latency = state.lock().unwrap().latency;
    tokio::time::sleep(latency).await;
    let path = request.uri().path().to_string();
    let api_version = query(request.uri()).remove("api-version");
    let bearer_ok = header(&request, "authorization") == Some(&format!("Bearer {ACCESS_TOKEN}"));
    let name = path.strip_prefix("/secrets/").unwrap_or("").to_string();
    let write = request.method() == Method::PUT;
    // Set Secret's body: `{"value": ...}`.
    let value = match write {
        false => None,
        true => {
            let Ok(body) = request.into_body().collect().await else {
                return respond(400, None, "{}".into());
            };
            serde_json::from_slice::<serde_json::Value>(&body.to_bytes())
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
        let answer = if api_version.as_deref() != Some("7.4") {
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
        Some(Fault::Status(code)) => respond(code, None, "{}".into()),
        Some(Fault::Throttle(secs)) => respond(429, Some(secs), "{}".into()),
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            respond(answer.0, None, answer.1)
        }
        None => respond(answer.0, None, answer.1),
    }
}

/// `CONNECT <host>:443`: hosts under the fake vault suffix go to the fake vault.
async fn serve_proxy(
    mut request: Request<Incoming>,
    vault: SocketAddr,
    state: Arc<Mutex<State>>,
) -> Reply {
    // Absolute-form targets (a proxied GET) are logged as the authority they name, as CONNECT's are.
    let authority = request
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    state
        .lock()
        .unwrap()
        .seen
        .push(Seen::Connect(authority.clone()));
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&authority);
    if request.method() != Method::CONNECT || !host.ends_with(&format!(".{VAULT_SUFFIX}")) {
        return respond(502, None, String::new());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let (Ok(upgraded), Ok(mut upstream)) = (upgrade.await, TcpStream::connect(vault).await)
        else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    respond(200, None, String::new())
}
