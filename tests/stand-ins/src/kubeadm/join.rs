//! `kubeadm join --config F`: token discovery with the CA pin and JWS check, TLS bootstrap, node registration;
//! for a control-plane join also the control-plane files and its own API server.
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::Method;
use serde_json::json;

use super::config::{
    self, ClusterConfiguration, JoinConfiguration, Purpose, Taint, TokenDiscovery,
};
use super::controlplane::{self, Node};
use super::{node_object, parse_labels, Preflight, CONTROL_PLANE_TAINT, KUBELET_CONF};
use crate::apiserver::state::{ClusterState, State};
use crate::client::{Auth, Client, Trust};
use crate::flags::Parsed;
use crate::invocation::delay;
use crate::jws::{self, BootstrapToken};
use crate::kubeconfig::{load_credentials, KubeConfig, UserBody};
use crate::pki;
use crate::version::KubeVersion;
use crate::{fsx, Root};

pub const KUBELET_CLIENT_PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

pub fn run(root: &Root, flags: &Parsed) -> Result<()> {
    let path = flags
        .last("config")
        .ok_or_else(|| anyhow!("kubeboot always passes --config"))?;
    let own = KubeVersion::own()?;
    let (cfg, _) = config::load(&root.arg_path(path), Purpose::Join, own.as_ref())?;
    let join = cfg.join.expect("load checked it");
    let discovery = join.discovery.bootstrap_token.clone().expect("validated");
    let control_plane = join.control_plane.is_some();
    let skipped = |p: &str| {
        join.skip_phases.iter().any(|s| s == p)
            || flags
                .all("skip-phases")
                .iter()
                .flat_map(|s| s.split(','))
                .any(|s| s == p)
    };

    if !skipped("preflight") {
        println!("[preflight] Running pre-flight checks");
        let from_flags = flags.all("ignore-preflight-errors");
        let mut pf = Preflight::new(
            root,
            &join.node_registration.ignore_preflight_errors,
            &from_flags,
        );
        pf.privileged();
        pf.file_available(KUBELET_CONF);
        if let Some(cp) = &join.control_plane {
            pf.static_pods_available();
            pf.port_available(u16::try_from(cp.local_api_endpoint.bind_port).expect("validated"));
        } else {
            pf.file_available(&join.ca_cert_path);
        }
        pf.finish()?;
    }
    if control_plane {
        let cert_dir = Path::new(&join.ca_cert_path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        controlplane::check_shared_pki(root, &cert_dir)?;
    }
    let timeout = join
        .timeouts
        .discovery
        .as_deref()
        .and_then(config::go_duration)
        .unwrap_or(Duration::from_secs(300));
    let info = discover(&discovery, timeout)?;
    delay();
    let tls_token = BootstrapToken::parse(&join.discovery.tls_bootstrap_token)?;
    let bootstrap = Client::new(
        &info.server,
        Trust::Ca(&info.ca_pem),
        Auth::Bearer(&tls_token.full()),
    )?;
    if control_plane {
        join_control_plane(root, &join, &info, &bootstrap)?;
    } else {
        tls_bootstrap(root, &join, &info, &bootstrap)?;
        let kubelet = fetch_configmap(&bootstrap, "kubelet-config", "kubelet")?;
        super::write_kubelet_files(root, &kubelet, &join.node_registration)?;
        fsx::write(&root.path(&join.ca_cert_path), &info.ca_pem, 0o644)?;
        super::restart_kubelet();
        delay();
        register_node(root, &join, KUBELET_CONF)?;
    }
    println!("\nThis node has joined the cluster.");
    Ok(())
}

/// The cluster, as discovery established it: its API server URL and the pinned CA.
pub struct ClusterInfo {
    pub server: String,
    pub ca_pem: String,
}

/// kubeadm's token discovery: fetch cluster-info without trusting TLS, verify its JWS signature with the
/// token and the CA against the pins, then fetch it again over TLS verified by that CA. Retries until `timeout`.
pub fn discover(d: &TokenDiscovery, timeout: Duration) -> Result<ClusterInfo> {
    let token = BootstrapToken::parse(&d.token)?;
    let deadline = Instant::now() + timeout;
    loop {
        match discover_once(d, &token) {
            Ok(info) => return Ok(info),
            // A wrong pin or signature will not fix itself: fail at once, as kubeadm does.
            Err(e) if e.downcast_ref::<Fatal>().is_some() => return Err(e),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("discovery did not succeed within {timeout:?}")))
            }
            Err(e) => {
                println!("[discovery] Failed to request cluster-info, will try again: {e:#}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[derive(Debug)]
struct Fatal(String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

fn discover_once(d: &TokenDiscovery, token: &BootstrapToken) -> Result<ClusterInfo> {
    let insecure = Client::new(&d.api_server_endpoint, Trust::Insecure, Auth::None)?;
    let cm = insecure.get(CLUSTER_INFO)?;
    let kubeconfig = cm
        .pointer("/data/kubeconfig")
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow!("cluster-info has no kubeconfig"))?;
    let signature = cm
        .pointer(&format!("/data/jws-kubeconfig-{}", token.id))
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow!("there is no JWS signed token in the cluster-info ConfigMap. This token id {:?} is invalid for this cluster, can't connect", token.id))?;
    jws::verify(signature, kubeconfig, token).map_err(|e| Fatal(format!("failed to verify JWS signature of received cluster info object, can't trust this API Server: {e:#}")))?;
    let kc = KubeConfig::parse(kubeconfig)?;
    let (server, ca_pem) = kc
        .cluster(&Root::new("/"), Path::new("/"))
        .context("cluster-info kubeconfig")?;
    let pin = pki::ca_pin(&pki::first_cert_der(&ca_pem)?)?;
    if !d.ca_cert_hashes.contains(&pin) {
        return Err(Fatal(format!("cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{pin}\" are pinned")).into());
    }
    println!("[discovery] Cluster info signature and contents are valid and TLS certificate validates against pinned roots, will use API Server {:?}", d.api_server_endpoint);
    let secure = Client::new(&d.api_server_endpoint, Trust::Ca(&ca_pem), Auth::None)?;
    let again = secure.get(CLUSTER_INFO).map_err(|e| {
        Fatal(format!(
            "the API server's TLS certificate does not validate against the pinned CA: {e:#}"
        ))
    })?;
    if again.pointer("/data/kubeconfig").and_then(|v| v.as_str()) != Some(kubeconfig) {
        return Err(
            Fatal("cluster-info changed between the insecure and the secure fetch".into()).into(),
        );
    }
    Ok(ClusterInfo { server, ca_pem })
}

/// TLS bootstrap: a CSR for `system:node:<name>` authenticated with the bootstrap token; the signed
/// client certificate goes to the kubelet's pki dir and kubelet.conf points at it.
fn tls_bootstrap(
    root: &Root,
    join: &JoinConfiguration,
    info: &ClusterInfo,
    bootstrap: &Client,
) -> Result<()> {
    let name = &join.node_registration.name;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{name}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let csr = params.serialize_request(&key)?.pem()?;
    let request = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &csr),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    });
    let (status, body) = bootstrap.call(
        Method::POST,
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        Some(&request),
    )?;
    if status != 201 {
        bail!(
            "TLS bootstrap: the CSR was refused: HTTP {status}: {}",
            body.get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
        );
    }
    let cert_b64 = body
        .pointer("/status/certificate")
        .and_then(|c| c.as_str())
        .ok_or_else(|| anyhow!("TLS bootstrap: CSR not signed"))?;
    let cert = String::from_utf8(base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        cert_b64,
    )?)?;
    fsx::write(
        &root.path(KUBELET_CLIENT_PEM),
        format!("{cert}{}", key.serialize_pem()),
        0o600,
    )?;
    let user = UserBody {
        client_certificate: Some(KUBELET_CLIENT_PEM.into()),
        client_key: Some(KUBELET_CLIENT_PEM.into()),
        ..Default::default()
    };
    let kc = KubeConfig::with_user(
        "default-cluster",
        &info.server,
        &info.ca_pem,
        "default-auth",
        user,
    );
    fsx::write(&root.path(KUBELET_CONF), kc.to_yaml(), 0o600)?;
    println!(
        "[kubelet-start] Writing kubelet configuration; TLS bootstrap done for system:node:{name}"
    );
    Ok(())
}

fn fetch_configmap(client: &Client, name: &str, key: &str) -> Result<String> {
    let cm = client.get(&format!("/api/v1/namespaces/kube-system/configmaps/{name}"))?;
    cm.pointer(&format!("/data/{key}"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("ConfigMap {name} has no {key}"))
}

/// Registers the Node (name, labels from --node-labels, taints, provider ID) with the node's own credentials.
fn register_node(root: &Root, join: &JoinConfiguration, kubeconfig: &str) -> Result<()> {
    let nr = &join.node_registration;
    let creds = load_credentials(root, kubeconfig)?;
    let client = Client::from_credentials(&creds)?;
    let mut labels = parse_labels(nr.kubelet_arg("node-labels").unwrap_or_default());
    let mut taints = nr.taints.clone().unwrap_or_default();
    if join.control_plane.is_some() {
        labels.insert(CONTROL_PLANE_TAINT.into(), String::new());
        labels.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".into(),
            String::new(),
        );
        if nr.taints.is_none() {
            taints.push(Taint {
                key: CONTROL_PLANE_TAINT.into(),
                value: None,
                effect: "NoSchedule".into(),
            });
        }
    }
    let node = node_object(&nr.name, &labels, &taints, nr.kubelet_arg("provider-id"));
    super::register_node(&client, &node)?;
    Ok(())
}

/// An extra master: the cluster's configuration from the kubeadm-config ConfigMap, the control-plane files
/// from the shared PKI, its own API server (with the cluster's state), then registration.
fn join_control_plane(
    root: &Root,
    join: &JoinConfiguration,
    info: &ClusterInfo,
    bootstrap: &Client,
) -> Result<()> {
    let cp = join.control_plane.as_ref().expect("control-plane join");
    let cluster_yaml = fetch_configmap(bootstrap, "kubeadm-config", "ClusterConfiguration")?;
    let (cfg, version) = config::parse(
        &format!(
            "apiVersion: {}\nkind: ClusterConfiguration\n{}",
            config::KUBEADM_API,
            strip_type_meta(&cluster_yaml)?
        ),
        Purpose::Validate,
        KubeVersion::own()?.as_ref(),
    )
    .context("the cluster's kubeadm-config")?;
    let cluster: ClusterConfiguration = cfg
        .cluster
        .ok_or_else(|| anyhow!("kubeadm-config has no ClusterConfiguration"))?;
    let port = u16::try_from(cp.local_api_endpoint.bind_port).expect("validated");
    let address: IpAddr = cp
        .local_api_endpoint
        .advertise_address
        .parse()
        .expect("validated");
    let node = Node {
        root,
        cluster: &cluster,
        registration: &join.node_registration,
        advertise_address: address,
        bind_port: port,
        version: &version,
    };
    node.write_certs()?;
    node.write_kubeconfigs(false)?;
    node.write_manifests()?;
    let kubelet = fetch_configmap(bootstrap, "kubelet-config", "kubelet")?;
    super::write_kubelet_files(root, &kubelet, &join.node_registration)?;
    super::restart_kubelet();
    // The cluster's state (shared etcd in a real cluster) is copied from the first API server.
    let admin = load_credentials(root, "/etc/kubernetes/admin.conf")?;
    let client = Client::new(
        &info.server,
        Trust::Ca(&info.ca_pem),
        Auth::ClientCert {
            cert_pem: &admin.client_cert_pem,
            key_pem: &admin.client_key_pem,
        },
    )?;
    // kube-system's Secrets (bootstrap tokens among them) are part of the shared store.
    let secrets = client.get("/api/v1/namespaces/kube-system/secrets")?;
    let state = State::new(root);
    let mut objects = state.objects()?;
    for s in secrets["items"].as_array().into_iter().flatten() {
        let name = s["metadata"]["name"].as_str().unwrap_or_default();
        objects.insert(format!("v1/Secret/kube-system/{name}"), s.clone());
    }
    state.set_objects(&objects)?;
    state.set_kubelet_config(&kubelet)?;
    state.set_cluster(&ClusterState {
        git_version: version.to_string(),
        cluster_name: cluster.cluster_name.clone(),
        control_plane_endpoint: cluster.control_plane_endpoint.clone(),
        cluster_configuration: cluster_yaml,
    })?;
    controlplane::start_apiserver(root, &version)?;
    controlplane::wait_ready(root, port, Duration::from_secs(240))?;
    register_node(root, join, "/etc/kubernetes/admin.conf")?;
    println!(
        "[control-plane-join] The new control-plane instance {} is running",
        join.node_registration.name
    );
    Ok(())
}

/// kubeadm-config holds the ClusterConfiguration without apiVersion/kind being required; drop them if present.
fn strip_type_meta(yaml: &str) -> Result<String> {
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml)?;
    if let Some(m) = v.as_mapping_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    Ok(serde_yaml_ng::to_string(&v)?)
}
