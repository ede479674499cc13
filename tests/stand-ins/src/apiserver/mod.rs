//! The stand-in kube-apiserver: HTTPS with the cluster's serving certificate, client-certificate and
//! bootstrap-token authentication, the health/version endpoints, signed cluster-info, node registration,
//! CSR signing for TLS bootstrap, and enough discovery, server-side apply, create, get, list and delete for
//! `kubectl apply --server-side`, `create -f -`, `get` and `delete`; written objects are decoded against the
//! API of the server's own minor (`api_schema`).
// Request helpers return the ready error Reply as their Err: one per request, so its size does not matter.
#![allow(clippy::result_large_err)]
pub mod api_schema;
pub mod flags;
mod resources;
pub mod state;
pub(crate) mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::jws::{self, BootstrapToken};
use crate::kubeconfig::KubeConfig;
use crate::pki::{self, Ca};
use crate::{fsx, Root};
use state::State;

pub struct Server {
    state: State,
    client_ca: PathBuf,
    git_version: String,
    /// Paths anonymous requests may reach: None = any (then authorization decides), Some(list) = only these.
    anonymous_paths: Option<Vec<String>>,
    lock: tokio::sync::Mutex<()>,
}

/// Who is calling, after authentication.
#[derive(Clone, Debug)]
enum Identity {
    Anonymous,
    Bootstrap(String),
    User { name: String, groups: Vec<String> },
}

impl Identity {
    fn node_name(&self) -> Option<&str> {
        match self {
            Identity::User { name, groups } if groups.iter().any(|g| g == "system:nodes") => {
                name.strip_prefix("system:node:")
            }
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Identity::Anonymous => "system:anonymous".into(),
            Identity::Bootstrap(id) => format!("system:bootstrap:{id}"),
            Identity::User { name, .. } => name.clone(),
        }
    }
}

pub fn run(root: Root, args: &[String]) -> Result<()> {
    let git_version = std::env::var("STANDIN_KUBERNETES_VERSION")
        .ok()
        .or_else(|| {
            State::new(&root)
                .cluster()
                .ok()
                .flatten()
                .map(|c| c.git_version)
        })
        .ok_or_else(|| anyhow!("unknown Kubernetes version (STANDIN_KUBERNETES_VERSION)"))?;
    let minor = crate::version::KubeVersion::parse(&git_version)?.minor;
    let flags = flags::parse(&root, args, minor)?;
    let port: u16 = flags.last("secure-port").expect("checked").parse()?;
    let bind = flags.last("bind-address").unwrap_or("0.0.0.0");
    let addr: SocketAddr = format!("{bind}:{port}")
        .parse()
        .or_else(|_| format!("[{bind}]:{port}").parse())
        .context("--bind-address")?;
    let node_path = |f: &str| root.path(flags.last(f).expect("checked"));
    let tls = tls_config(
        &node_path("tls-cert-file"),
        &node_path("tls-private-key-file"),
        &node_path("client-ca-file"),
    )?;
    let server = Arc::new(Server {
        state: State::new(&root),
        client_ca: node_path("client-ca-file"),
        anonymous_paths: anonymous_paths(&root, &flags)?,
        git_version,
        lock: tokio::sync::Mutex::new(()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(server, addr, tls))
}

/// `--anonymous-auth=false` shuts anonymous access; an AuthenticationConfiguration's `anonymous` section
/// may allow it for listed paths only (how hardened clusters keep /readyz and cluster-info reachable).
fn anonymous_paths(root: &Root, flags: &crate::flags::Parsed) -> Result<Option<Vec<String>>> {
    let Some(file) = flags.last("authentication-config") else {
        return Ok((flags.last("anonymous-auth") == Some("false")).then(Vec::new));
    };
    let cfg: Value =
        serde_yaml_ng::from_str(&fsx::read(&root.path(file))?).with_context(|| file.to_string())?;
    let api_version = cfg["apiVersion"].as_str().unwrap_or_default();
    if cfg["kind"] != "AuthenticationConfiguration"
        || ![
            "apiserver.config.k8s.io/v1",
            "apiserver.config.k8s.io/v1beta1",
        ]
        .contains(&api_version)
    {
        anyhow::bail!("--authentication-config={file}: must be an apiserver.config.k8s.io AuthenticationConfiguration");
    }
    let anonymous = &cfg["anonymous"];
    if anonymous.is_null() {
        return Ok((flags.last("anonymous-auth") == Some("false")).then(Vec::new));
    }
    if flags.last("anonymous-auth").is_some() {
        anyhow::bail!("--anonymous-auth flag cannot be set when anonymous field is configured in authentication configuration file");
    }
    if anonymous["enabled"] != true {
        return Ok(Some(vec![]));
    }
    match anonymous["conditions"].as_array() {
        None => Ok(None),
        Some(conds) => Ok(Some(
            conds
                .iter()
                .filter_map(|c| c["path"].as_str().map(str::to_string))
                .collect(),
        )),
    }
}

fn tls_config(cert: &Path, key: &Path, client_ca: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    fsx::check_private(key, "serving key")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)?
        .collect::<Result<_, _>>()
        .with_context(|| cert.display().to_string())?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| key.display().to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca)? {
        roots.add(ca?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Unauthenticated connections are allowed (health checks, cluster-info); handlers decide per path.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

async fn serve(
    server: Arc<Server>,
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    eprintln!(
        "kube-apiserver: serving securely on {addr} (Kubernetes {})",
        server.git_version
    );
    kubeboot_test_kit::http::serve(listener, Some(tls), move |request, peer| {
        let server = server.clone();
        async move { server.handle(request, peer.certificate).await }
    })
    .await?;
    Ok(())
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn text(status: StatusCode, body: &str) -> Reply {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// A Kubernetes `Status` failure.
fn failure(status: StatusCode, reason: &str, message: String) -> Reply {
    reply(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": status.as_u16()}),
    )
}

/// kube-apiserver's 404 for `<resource> "<name>"`.
fn not_found(resource: &str, name: &str) -> Reply {
    status_with_details(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{resource} {name:?} not found"),
        resource,
        name,
    )
}

/// A `Status` failure about one object, with the `details` the real server adds (name, resource as kind).
fn status_with_details(
    status: StatusCode,
    reason: &str,
    message: String,
    resource: &str,
    name: &str,
) -> Reply {
    reply(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
               "reason": reason, "details": {"name": name, "kind": resource}, "code": status.as_u16()}),
    )
}

/// A request body as JSON, or kube-apiserver's 400 naming the kind it expected.
fn json_body(body: &[u8], kind: &str) -> Result<Value, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        failure(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("invalid {kind}: {e}"),
        )
    })
}

impl Server {
    async fn handle(&self, req: Request<Incoming>, peer: Option<Vec<u8>>) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = kubeboot_test_kit::http::query(req.uri());
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("reading body: {e}"),
                )
            }
        };
        let identity = match self.authenticate(peer.as_deref(), bearer.as_deref()) {
            Ok(id) => id,
            Err(e) => return failure(StatusCode::UNAUTHORIZED, "Unauthorized", format!("{e:#}")),
        };
        let _guard = self.lock.lock().await;
        let r = self.route(&method, &path, &query, &content_type, &body, &identity);
        let r = r.unwrap_or_else(|e| {
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("{e:#}"),
            )
        });
        eprintln!(
            "kube-apiserver: {} {method} {path} -> {}",
            identity.describe(),
            r.status().as_u16()
        );
        r
    }

    fn authenticate(&self, peer: Option<&[u8]>, bearer: Option<&str>) -> Result<Identity> {
        if let Some(der) = peer {
            let (name, groups) = pki::subject_der(der)?;
            return Ok(Identity::User { name, groups });
        }
        if let Some(token) = bearer {
            let t = BootstrapToken::parse(token).map_err(|_| anyhow!("invalid bearer token"))?;
            let now = time::OffsetDateTime::now_utc();
            if tokens::authenticate(&self.state.objects()?, &t, now).is_some() {
                return Ok(Identity::Bootstrap(t.id));
            }
            anyhow::bail!("invalid bearer token");
        }
        Ok(Identity::Anonymous)
    }

    fn forbidden(&self, identity: &Identity, what: &str) -> Reply {
        failure(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("User {:?} cannot {what}", identity.describe()),
        )
    }

    fn route(
        &self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        content_type: &str,
        body: &[u8],
        id: &Identity,
    ) -> Result<Reply> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        if matches!(id, Identity::Anonymous)
            && self
                .anonymous_paths
                .as_ref()
                .is_some_and(|paths| !paths.iter().any(|p| p == path))
        {
            return Ok(failure(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized".into(),
            ));
        }
        // Paths RBAC's defaults open to everyone (system:public-info-viewer, cluster-info for bootstrap).
        match (method, segs.as_slice()) {
            (&Method::GET, ["healthz" | "livez" | "readyz"]) => {
                return Ok(text(StatusCode::OK, "ok"))
            }
            (&Method::GET, ["version"]) => return Ok(reply(StatusCode::OK, self.version())),
            (
                &Method::GET,
                ["api", "v1", "namespaces", "kube-public", "configmaps", "cluster-info"],
            ) => return self.cluster_info(),
            _ => {}
        }
        if let Identity::Bootstrap(_) = id {
            return match (method, segs.as_slice()) {
                (
                    &Method::POST,
                    ["apis", "certificates.k8s.io", "v1", "certificatesigningrequests"],
                ) => self.sign_csr(body),
                (
                    &Method::GET,
                    ["api", "v1", "namespaces", "kube-system", "configmaps", name @ ("kubeadm-config" | "kubelet-config")],
                ) => self.kube_system_configmap(name),
                _ => Ok(self.forbidden(id, &format!("{method} {path}"))),
            };
        }
        if matches!(id, Identity::Anonymous) {
            return Ok(self.forbidden(id, &format!("{method} {path}")));
        }
        if let Some(node) = id.node_name() {
            // The Node authorizer + NodeRestriction: a kubelet may only touch its own Node object.
            let own = match segs.as_slice() {
                // system:discovery, bound to every authenticated user.
                ["api"] | ["apis"] | ["api", "v1"] | ["apis", _, _] | ["openapi", ..] => {
                    method == Method::GET
                }
                ["api", "v1", "nodes"] => {
                    method == Method::POST && json_name(body).as_deref() == Some(node)
                }
                ["api", "v1", "nodes", name, ..] => *name == node,
                // RBAC that kubeadm creates: nodes read the kubelet's config and the cluster's
                // (`kubeadm upgrade node` on a worker).
                ["api", "v1", "namespaces", "kube-system", "configmaps", "kubelet-config" | "kubeadm-config"] => {
                    method == Method::GET
                }
                _ => false,
            };
            if !own {
                return Ok(self.forbidden(
                    id,
                    &format!("{method} {path} (nodes may only manage their own Node)"),
                ));
            }
        }
        match (method, segs.as_slice()) {
            (&Method::GET, ["api"]) => Ok(reply(
                StatusCode::OK,
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
            )),
            (&Method::GET, ["apis"]) => Ok(reply(StatusCode::OK, resources::group_list())),
            (&Method::GET, ["api", "v1"]) => {
                Ok(reply(StatusCode::OK, resources::resource_list("", "v1")))
            }
            (&Method::GET, ["apis", group, version]) => Ok(reply(
                StatusCode::OK,
                resources::resource_list(group, version),
            )),
            (&Method::GET, ["openapi", "v3"]) => {
                Ok(reply(StatusCode::OK, resources::openapi_index()))
            }
            (&Method::GET, ["openapi", "v3", gv @ ..]) => {
                Ok(match resources::openapi_group_version(&gv.join("/")) {
                    Some(doc) => reply(StatusCode::OK, doc),
                    None => failure(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("no OpenAPI document for {}", gv.join("/")),
                    ),
                })
            }
            (
                &Method::POST,
                ["apis", "certificates.k8s.io", "v1", "certificatesigningrequests"],
            ) => self.sign_csr(body),
            (
                &Method::GET,
                ["api", "v1", "namespaces", "kube-system", "configmaps", name @ ("kubeadm-config" | "kubelet-config")],
            ) => self.kube_system_configmap(name),
            (&Method::POST, ["api", "v1", "namespaces", namespace, "pods", name, "eviction"]) => {
                self.evict(namespace, name, body)
            }
            (&Method::POST, ["api", "v1", "nodes"]) => self.create_node(body),
            (&Method::PATCH, ["api", "v1", "nodes", name]) => self.merge_node(name, body),
            (&Method::PUT, ["api", "v1", "nodes", name, "status"]) => {
                self.update_node_status(name, body)
            }
            _ => self.objects(method, &segs, query, content_type, body),
        }
    }

    /// The minor this server plays (its version is checked at start).
    fn minor(&self) -> u64 {
        crate::version::KubeVersion::parse(&self.git_version).map_or(0, |v| v.minor)
    }

    fn version(&self) -> Value {
        let v = crate::version::KubeVersion::parse(&self.git_version).ok();
        json!({
            "major": "1",
            "minor": v.map(|v| v.minor.to_string()).unwrap_or_default(),
            "gitVersion": self.git_version,
            "platform": "linux/amd64",
            "goVersion": "stand-in",
            "compiler": "gc",
        })
    }

    fn ca_pem(&self) -> Result<String> {
        fsx::read(&self.client_ca)
    }

    /// cluster-info: the cluster CA and endpoint, signed (detached JWS) with every bootstrap token that may sign
    /// now (the bootstrapsigner keeps one `jws-kubeconfig-<id>` per such token and drops the others).
    fn cluster_info(&self) -> Result<Reply> {
        let Some(cluster) = self.state.cluster()? else {
            return Ok(not_found("configmaps", "cluster-info"));
        };
        let kubeconfig = KubeConfig::cluster_only(
            &format!("https://{}", cluster.control_plane_endpoint),
            &self.ca_pem()?,
        )
        .to_yaml();
        let mut data = serde_json::Map::new();
        for t in tokens::signing_tokens(&self.state.objects()?, time::OffsetDateTime::now_utc()) {
            data.insert(
                format!("jws-kubeconfig-{}", t.id),
                json!(jws::sign(&kubeconfig, &t)),
            );
        }
        data.insert("kubeconfig".into(), json!(kubeconfig));
        Ok(reply(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": data}),
        ))
    }

    fn kube_system_configmap(&self, name: &str) -> Result<Reply> {
        let data = match name {
            "kubelet-config" => self.state.kubelet_config()?.map(|k| json!({"kubelet": k})),
            _ => self
                .state
                .cluster()?
                .map(|c| json!({"ClusterConfiguration": c.cluster_configuration})),
        };
        Ok(match data {
            Some(data) => reply(
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "kube-system"}, "data": data}),
            ),
            None => not_found("configmaps", name),
        })
    }

    /// TLS bootstrap, with approval and signing done at once (the controller-manager's job in a real cluster):
    /// only kubelet client CSRs for `system:node:<name>` in `system:nodes` are signed, with the CA key
    /// beside `--client-ca-file`.
    fn sign_csr(&self, body: &[u8]) -> Result<Reply> {
        let csr = match json_body(body, "CertificateSigningRequest") {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        };
        if csr["spec"]["signerName"] != "kubernetes.io/kube-apiserver-client-kubelet" {
            return Ok(failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "spec.signerName: only kubernetes.io/kube-apiserver-client-kubelet is served"
                    .into(),
            ));
        }
        let Some(pem) = csr["spec"]["request"]
            .as_str()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| String::from_utf8(r).ok())
        else {
            return Ok(failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "spec.request: must be a base64 PEM CSR".into(),
            ));
        };
        let ca = Ca::load(&self.client_ca, &self.client_ca.with_file_name("ca.key"))?;
        let cert = match ca.sign_client_csr(&pem) {
            Ok(c) => c,
            Err(e) => {
                return Ok(failure(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("spec.request: {e:#}"),
                ))
            }
        };
        let (cn, orgs) = pki::subject(&cert)?;
        if !cn.starts_with("system:node:") || orgs != ["system:nodes"] {
            return Ok(failure(StatusCode::FORBIDDEN, "Forbidden", format!("CSR subject {cn:?} {orgs:?} is not a kubelet client (system:node:<name>, O=system:nodes)")));
        }
        let mut out = csr.clone();
        out["metadata"]["name"] = json!(format!(
            "csr-{}",
            &hex::encode(sha2::Digest::finalize(
                <sha2::Sha256 as sha2::Digest>::new_with_prefix(pem.as_bytes())
            ))[..8]
        ));
        out["status"] = json!({"conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved"}], "certificate": B64.encode(cert)});
        Ok(reply(StatusCode::CREATED, out))
    }

    fn create_node(&self, body: &[u8]) -> Result<Reply> {
        let node = match json_body(body, "Node") {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        };
        if let Err(e) = resources::validate_node(&node) {
            return Ok(failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e));
        }
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut nodes = self.state.nodes()?;
        if nodes.contains_key(&name) {
            return Ok(failure(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("nodes {name:?} already exists"),
            ));
        }
        let mut stored = node.clone();
        resources::stamp(&mut stored);
        nodes.insert(name, stored.clone());
        self.state.set_nodes(&nodes)?;
        Ok(reply(StatusCode::CREATED, stored))
    }

    /// kubeadm's mark-control-plane patch and kubectl's cordon/uncordon (strategic merge): labels merge,
    /// taints are added by key and effect, a provider ID is set once, `unschedulable` is set or removed.
    fn merge_node(&self, name: &str, body: &[u8]) -> Result<Reply> {
        let patch = match json_body(body, "patch") {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        };
        let mut nodes = self.state.nodes()?;
        let Some(node) = nodes.get_mut(name) else {
            return Ok(not_found("nodes", name));
        };
        for (k, v) in patch["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
        {
            node["metadata"]["labels"][k] = v.clone();
        }
        for t in patch["spec"]["taints"].as_array().into_iter().flatten() {
            let taints = node["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !taints
                .iter()
                .any(|o| o["key"] == t["key"] && o["effect"] == t["effect"])
            {
                let mut taints = taints;
                taints.push(t.clone());
                node["spec"]["taints"] = Value::Array(taints);
            }
        }
        if node["spec"]["providerID"].is_null() && !patch["spec"]["providerID"].is_null() {
            node["spec"]["providerID"] = patch["spec"]["providerID"].clone();
        }
        // kubectl cordon sets it; uncordon's two-way merge patch sends null (the field is omitempty).
        if let Some(unschedulable) = patch["spec"].get("unschedulable") {
            match unschedulable {
                Value::Bool(true) => node["spec"]["unschedulable"] = Value::Bool(true),
                Value::Bool(false) | Value::Null => {
                    if let Some(spec) = node["spec"].as_object_mut() {
                        spec.remove("unschedulable");
                    }
                }
                other => {
                    return Ok(failure(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!("spec.unschedulable: {other} is not a boolean"),
                    ))
                }
            }
        }
        if let Err(e) = resources::validate_node(node) {
            return Ok(failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e));
        }
        let out = node.clone();
        self.state.set_nodes(&nodes)?;
        Ok(reply(StatusCode::OK, out))
    }

    /// `kubectl drain`'s eviction (policy/v1 Eviction): the pod is deleted at once (no disruption
    /// budget here, no graceful termination without a kubelet running it).
    fn evict(&self, namespace: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let eviction = match json_body(body, "Eviction") {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        };
        if eviction["apiVersion"] != "policy/v1" || eviction["metadata"]["name"] != name {
            return Ok(failure(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("not a policy/v1 Eviction of pod {name:?}: {eviction}"),
            ));
        }
        let mut objects = self.state.objects()?;
        if objects
            .remove(&format!("v1/Pod/{namespace}/{name}"))
            .is_none()
        {
            return Ok(not_found("pods", name));
        }
        self.state.set_objects(&objects)?;
        Ok(reply(
            StatusCode::CREATED,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ))
    }

    /// A kubelet's status update: conditions/addresses replace the old status; metadata and spec stay.
    fn update_node_status(&self, name: &str, body: &[u8]) -> Result<Reply> {
        let update = match json_body(body, "Node") {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        };
        // What decoding into a Node refuses: a metav1.Time is an RFC 3339 string (or null).
        for condition in update["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for field in ["lastHeartbeatTime", "lastTransitionTime"] {
                let ok = match &condition[field] {
                    Value::Null => true,
                    Value::String(t) => time::OffsetDateTime::parse(
                        t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .is_ok(),
                    _ => false,
                };
                if !ok {
                    return Ok(failure(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!(
                            "status.conditions.{field}: {} is not an RFC 3339 time",
                            condition[field]
                        ),
                    ));
                }
            }
        }
        if update["metadata"]["name"] != name {
            return Ok(failure(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "metadata.name does not match the URL".into(),
            ));
        }
        let mut nodes = self.state.nodes()?;
        let Some(node) = nodes.get_mut(name) else {
            return Ok(not_found("nodes", name));
        };
        node["status"] = update["status"].clone();
        let beats = node["metadata"]["annotations"]["stand-in/heartbeats"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        node["metadata"]["annotations"]["stand-in/heartbeats"] = json!(beats.to_string());
        let out = node.clone();
        self.state.set_nodes(&nodes)?;
        Ok(reply(StatusCode::OK, out))
    }

    /// Generic objects: GET (one or a list) and server-side apply (PATCH application/apply-patch+yaml).
    fn objects(
        &self,
        method: &Method,
        segs: &[&str],
        query: &BTreeMap<String, String>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Reply> {
        let Some(target) = resources::parse_path(segs) else {
            return Ok(failure(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({})",
                    segs.join("/")
                ),
            ));
        };
        let mut objects = self.state.objects()?;
        if target.resource.name == "nodes" {
            let nodes = self.state.nodes()?;
            return Ok(match (method, target.name) {
                (&Method::GET, None) => reply(
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": nodes.values().collect::<Vec<_>>()}),
                ),
                (&Method::GET, Some(n)) => match nodes.get(n) {
                    Some(node) => reply(StatusCode::OK, node.clone()),
                    None => not_found("nodes", n),
                },
                _ => failure(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "nodes: only GET, POST and PUT status are served".into(),
                ),
            });
        }
        match (method, target.name) {
            (&Method::GET, None) => Ok(list_objects(&objects, &target, query)),
            (&Method::GET, Some(name)) => Ok(match objects.get(&target.key(name)) {
                Some(o) => reply(StatusCode::OK, o.clone()),
                // kubectl looks up the namespace when an object in it is not found.
                None if target.resource.kind == "Namespace"
                    && resources::namespace_exists(&objects, name) =>
                {
                    reply(
                        StatusCode::OK,
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}),
                    )
                }
                None => not_found(target.resource.name, name),
            }),
            (&Method::POST, None) => {
                let (status, obj) =
                    match create_object(&mut objects, &target, query, body, self.minor()) {
                        Ok(created) => created,
                        Err(refused) => return Ok(refused),
                    };
                self.state.set_objects(&objects)?;
                Ok(reply(status, obj))
            }
            (&Method::DELETE, Some(name)) => {
                let Some(gone) = objects.remove(&target.key(name)) else {
                    return Ok(not_found(target.resource.name, name));
                };
                self.state.set_objects(&objects)?;
                // What the generic registry answers for a synchronous delete (no finalizers).
                Ok(reply(
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                           "details": {"name": name, "kind": target.resource.name, "uid": gone["metadata"]["uid"]}}),
                ))
            }
            (&Method::PATCH, Some(name)) => {
                if !content_type.starts_with("application/apply-patch+yaml") {
                    return Ok(failure(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("the stand-in serves only server-side apply, not {content_type:?}"),
                    ));
                }
                let validation = match field_validation(query) {
                    Ok(v) => v,
                    Err(refused) => return Ok(refused),
                };
                if query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                    return Ok(failure(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "fieldManager is required for apply requests".into(),
                    ));
                }
                let mut obj: Value = match serde_yaml_ng::from_slice::<Value>(body) {
                    Ok(v) => v,
                    Err(e) => {
                        return Ok(failure(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!("error decoding YAML: {e}"),
                        ))
                    }
                };
                if let Err(e) = target.check_object(&obj, name) {
                    return Ok(failure(StatusCode::BAD_REQUEST, "BadRequest", e));
                }
                if let Err(refused) = decode(self.minor(), &mut obj, &target, validation) {
                    return Ok(refused);
                }
                if let Some(ns) = target.namespace {
                    if !resources::namespace_exists(&objects, ns) {
                        return Ok(not_found("namespaces", ns));
                    }
                }
                if target.resource.kind == "Secret" {
                    if let Err((status, reason, message)) = resources::normalize_secret(&mut obj) {
                        return Ok(failure(status, reason, message));
                    }
                }
                let key = target.key(name);
                let created = !objects.contains_key(&key);
                if let Some(old) = objects.get(&key) {
                    let owner = old["metadata"]["annotations"]["stand-in/field-manager"]
                        .as_str()
                        .unwrap_or_default();
                    if owner != query["fieldManager"]
                        && query.get("force").map(String::as_str) != Some("true")
                    {
                        return Ok(failure(
                            StatusCode::CONFLICT,
                            "Conflict",
                            format!("Apply failed with 1 conflict: conflict with {owner:?}"),
                        ));
                    }
                }
                let mut stored = obj;
                resources::stamp(&mut stored);
                stored["metadata"]["annotations"]["stand-in/field-manager"] =
                    json!(query["fieldManager"]);
                if target.resource.namespaced {
                    stored["metadata"]["namespace"] = json!(target.namespace);
                }
                objects.insert(key, stored.clone());
                self.state.set_objects(&objects)?;
                Ok(reply(
                    if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    stored,
                ))
            }
            _ => Ok(failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not served for {}", target.resource.name),
            )),
        }
    }
}

/// `fieldValidation`: absent, or one of the three values the server knows.
fn field_validation(query: &BTreeMap<String, String>) -> Result<&str, Reply> {
    match query.get("fieldValidation").map(String::as_str) {
        None => Ok("Ignore"),
        Some(v @ ("Strict" | "Warn" | "Ignore")) => Ok(v),
        Some(v) => Err(failure(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("fieldValidation: {v:?} is not Strict, Warn or Ignore"),
        )),
    }
}

/// A list, filtered by `labelSelector` and `fieldSelector`.
fn list_objects(
    objects: &BTreeMap<String, Value>,
    target: &resources::Target,
    query: &BTreeMap<String, String>,
) -> Reply {
    let selector = |name: &str, labels: bool| {
        resources::parse_selector(query.get(name).map_or("", String::as_str), labels)
    };
    let (labels, fields) = match (
        selector("labelSelector", true),
        selector("fieldSelector", false),
    ) {
        (Ok(l), Ok(f)) => (l, f),
        (Err(e), _) | (_, Err(e)) => return failure(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let prefix = target.key_prefix();
    let mut items = Vec::new();
    for (_, o) in objects.iter().filter(|(k, _)| k.starts_with(&prefix)) {
        match resources::fields_match(o, &fields) {
            Ok(true) if resources::labels_match(o, &labels) => items.push(o),
            Ok(_) => {}
            Err(e) => return failure(StatusCode::BAD_REQUEST, "BadRequest", e),
        }
    }
    reply(
        StatusCode::OK,
        json!({"apiVersion": target.api_version(), "kind": format!("{}List", target.resource.kind),
               "metadata": {"resourceVersion": time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string()}, "items": items}),
    )
}

/// POST to a collection: the object (JSON) is decoded (strictly when asked), checked against the URL,
/// refused with AlreadyExists when its name is taken, stamped and stored.
fn create_object(
    objects: &mut BTreeMap<String, Value>,
    target: &resources::Target,
    query: &BTreeMap<String, String>,
    body: &[u8],
    minor: u64,
) -> Result<(StatusCode, Value), Reply> {
    let validation = field_validation(query)?;
    let kind = target.resource.kind;
    let mut obj = json_body(body, kind)?;
    decode(minor, &mut obj, target, validation)?;
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"),
        ));
    }
    if !crate::kubeadm::config::is_dns1123_subdomain(&name) {
        return Err(failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} {name:?} is invalid: metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    if let Err(e) = target.check_object(&obj, &name) {
        return Err(failure(StatusCode::BAD_REQUEST, "BadRequest", e));
    }
    if let Some(ns) = target.namespace {
        if !resources::namespace_exists(objects, ns) {
            return Err(not_found("namespaces", ns));
        }
    }
    if kind == "Secret" {
        resources::normalize_secret(&mut obj).map_err(|(s, r, m)| failure(s, r, m))?;
    }
    let key = target.key(&name);
    if objects.contains_key(&key) {
        return Err(status_with_details(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} {name:?} already exists", target.resource.name),
            target.resource.name,
            &name,
        ));
    }
    resources::stamp(&mut obj);
    if target.resource.namespaced {
        obj["metadata"]["namespace"] = json!(target.namespace);
    }
    objects.insert(key, obj.clone());
    Ok((StatusCode::CREATED, obj))
}

/// What the server's decoder and validation do to a written object, by the API of its own minor:
/// a value of the wrong type or a missing required field is refused; unknown fields are refused under
/// `fieldValidation=Strict` and dropped otherwise (the stand-in sends no warning header).
fn decode(
    minor: u64,
    obj: &mut Value,
    target: &resources::Target,
    validation: &str,
) -> Result<(), Reply> {
    let kind = target.resource.kind;
    let findings = api_schema::check(minor, obj, validation != "Strict")
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e))?;
    if !findings.invalid.is_empty() {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        return Err(failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "{kind} {name:?} is invalid: {}",
                findings.invalid.join(", ")
            ),
        ));
    }
    if validation == "Strict" && !findings.unknown.is_empty() {
        let list: Vec<String> = findings
            .unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "{kind} in version {:?} cannot be handled as a {kind}: strict decoding error: {}",
                target.resource.version,
                list.join(", ")
            ),
        ));
    }
    Ok(())
}

fn json_name(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body).ok()?["metadata"]["name"]
        .as_str()
        .map(str::to_string)
}
