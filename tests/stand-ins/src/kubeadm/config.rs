//! kubeadm's configuration file: strict parsing against the key trees, then the semantic rules of
//! kubeadm's validation code (cmd/kubeadm/app/apis/kubeadm/validation), plus kubeboot's contract where
//! it is stricter (marked "kubeboot:").
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

use crate::schema::{self, regex, Document};
use crate::version::{KubeVersion, KNOWN_MINORS};
use crate::{fsx, jws::BootstrapToken};
use crate::{kubelet, releases};

pub const KUBEADM_API: &str = "kubeadm.k8s.io/v1beta4";
const KUBELET_API: &str = "kubelet.config.k8s.io/v1beta1";
const KUBE_PROXY_API: &str = "kubeproxy.config.k8s.io/v1alpha1";

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default)]
pub struct Arg {
    pub name: String,
    pub value: String,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeRegistration {
    pub name: String,
    pub cri_socket: String,
    pub kubelet_extra_args: Vec<Arg>,
    /// None = kubeadm's default (control-plane taint on masters); Some([]) = no taints.
    pub taints: Option<Vec<Taint>>,
    pub ignore_preflight_errors: Vec<String>,
}

impl NodeRegistration {
    pub fn kubelet_arg(&self, name: &str) -> Option<&str> {
        self.kubelet_extra_args
            .iter()
            .rev()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct ApiEndpoint {
    pub advertise_address: String,
    pub bind_port: i64,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct BootstrapTokenSpec {
    pub token: String,
    pub ttl: Option<String>,
    pub expires: Option<String>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct Timeouts {
    pub control_plane_component_health_check: Option<String>,
    pub discovery: Option<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct InitConfiguration {
    pub bootstrap_tokens: Vec<BootstrapTokenSpec>,
    pub node_registration: NodeRegistration,
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    pub certificate_key: String,
    pub skip_phases: Vec<String>,
    pub timeouts: Timeouts,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    pub read_only: bool,
    pub path_type: String,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct Component {
    pub extra_args: Vec<Arg>,
    pub extra_volumes: Vec<Volume>,
    #[serde(rename = "certSANs")]
    pub cert_sans: Vec<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct Networking {
    pub dns_domain: String,
    pub pod_subnet: String,
    pub service_subnet: String,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct LocalEtcd {
    pub data_dir: String,
    pub extra_args: Vec<Arg>,
    #[serde(rename = "serverCertSANs")]
    pub server_cert_sans: Vec<String>,
    #[serde(rename = "peerCertSANs")]
    pub peer_cert_sans: Vec<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default)]
pub struct Etcd {
    pub local: Option<LocalEtcd>,
    pub external: Option<serde_json::Value>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterConfiguration {
    pub kubernetes_version: String,
    pub control_plane_endpoint: String,
    pub certificates_dir: String,
    pub encryption_algorithm: String,
    pub cluster_name: String,
    pub networking: Networking,
    pub api_server: Component,
    pub controller_manager: Component,
    pub scheduler: Component,
    pub etcd: Etcd,
    pub feature_gates: std::collections::BTreeMap<String, bool>,
    pub image_repository: String,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenDiscovery {
    pub api_server_endpoint: String,
    pub token: String,
    pub ca_cert_hashes: Vec<String>,
    #[serde(rename = "unsafeSkipCAVerification")]
    pub unsafe_skip_ca_verification: bool,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct Discovery {
    pub bootstrap_token: Option<TokenDiscovery>,
    pub file: Option<serde_json::Value>,
    pub tls_bootstrap_token: String,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    pub certificate_key: String,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct JoinConfiguration {
    pub ca_cert_path: String,
    pub discovery: Discovery,
    pub node_registration: NodeRegistration,
    pub control_plane: Option<JoinControlPlane>,
    pub skip_phases: Vec<String>,
    pub timeouts: Timeouts,
}

/// The documents of one kubeadm config file, defaulted as kubeadm defaults them.
#[derive(Debug, Default)]
pub struct Config {
    pub init: Option<InitConfiguration>,
    pub cluster: Option<ClusterConfiguration>,
    pub join: Option<JoinConfiguration>,
    pub kubelet: Option<Document>,
    pub kube_proxy: Option<Document>,
    pub has_reset: bool,
}

/// Which command reads the file: each takes only the documents it uses (kubeadm would silently ignore others).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Purpose {
    Init,
    Join,
    Reset,
    Validate,
}

impl Purpose {
    fn command(self) -> &'static str {
        match self {
            Purpose::Init => "init",
            Purpose::Join => "join",
            Purpose::Reset => "reset",
            Purpose::Validate => "config validate",
        }
    }
}

/// Reads and validates a config file. `own` is the version this kubeadm reports (None: take the config's).
pub fn load(
    path: &Path,
    purpose: Purpose,
    own: Option<&KubeVersion>,
) -> Result<(Config, KubeVersion)> {
    fsx::check_private(path, "kubeadm config file")?;
    parse(&fsx::read(path)?, purpose, own)
}

pub fn parse(
    text: &str,
    purpose: Purpose,
    own: Option<&KubeVersion>,
) -> Result<(Config, KubeVersion)> {
    let docs = schema::parse_documents(text).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let reader = reader_minor(&docs, own);
    let mut errs: Vec<String> = Vec::new();
    let mut cfg = Config::default();
    let mut seen = std::collections::BTreeSet::new();
    for doc in &docs {
        let known = matches!(
            (doc.api_version.as_str(), doc.kind.as_str()),
            (
                KUBEADM_API,
                "InitConfiguration"
                    | "ClusterConfiguration"
                    | "JoinConfiguration"
                    | "ResetConfiguration"
                    | "UpgradeConfiguration"
            ) | (KUBELET_API, "KubeletConfiguration")
                | (KUBE_PROXY_API, "KubeProxyConfiguration")
        );
        if !known {
            errs.push(unread_document(doc, reader));
            continue;
        }
        if !seen.insert(doc.kind.clone()) {
            errs.push(format!("{}: more than one document of this kind", doc.kind));
        }
        let tree_errs = schema::check(doc);
        let clean = tree_errs.is_empty();
        errs.extend(tree_errs);
        let used = matches!(
            (purpose, doc.kind.as_str()),
            (Purpose::Validate, _)
                | (
                    Purpose::Init,
                    "InitConfiguration"
                        | "ClusterConfiguration"
                        | "KubeletConfiguration"
                        | "KubeProxyConfiguration"
                )
                | (Purpose::Join, "JoinConfiguration")
                | (Purpose::Reset, "ResetConfiguration")
        );
        if !used {
            errs.push(format!("{}: kubeadm {} ignores this document (kubeboot: a silently ignored document is a bug)", doc.kind, purpose.command()));
        }
        if !clean {
            continue;
        }
        let json = doc.to_json();
        match doc.kind.as_str() {
            "InitConfiguration" => cfg.init = serde_json::from_value(json).ok(),
            "ClusterConfiguration" => cfg.cluster = serde_json::from_value(json).ok(),
            "JoinConfiguration" => cfg.join = serde_json::from_value(json).ok(),
            "ResetConfiguration" => cfg.has_reset = true,
            "KubeletConfiguration" => cfg.kubelet = Some(doc.clone()),
            "KubeProxyConfiguration" => cfg.kube_proxy = Some(doc.clone()),
            _ => {}
        }
    }
    if !errs.is_empty() {
        bail!("invalid configuration:\n  {}", errs.join("\n  "));
    }
    match purpose {
        Purpose::Init if cfg.init.is_none() || cfg.cluster.is_none() => {
            bail!("invalid configuration: init needs an InitConfiguration and a ClusterConfiguration document (kubeboot writes both)")
        }
        Purpose::Join if cfg.join.is_none() => {
            bail!("invalid configuration: join needs a JoinConfiguration document")
        }
        _ => {}
    }
    if purpose == Purpose::Validate && cfg.init.is_some() && cfg.cluster.is_none() {
        bail!("invalid configuration: an InitConfiguration needs a ClusterConfiguration document");
    }
    default(&mut cfg);
    let version = check_version(cfg.cluster.as_ref(), own, &mut errs);
    if let Some(c) = &cfg.init {
        validate_init(c, version.minor, &mut errs);
    }
    if let Some(c) = &cfg.cluster {
        validate_cluster(c, reader, &mut errs);
    }
    if let Some(c) = &cfg.join {
        validate_join(c, version.minor, &mut errs);
    }
    for doc in cfg.kubelet.iter().chain(cfg.kube_proxy.iter()) {
        errs.extend(schema::too_new_keys(doc, version.minor));
    }
    if let Some(doc) = &cfg.kubelet {
        errs.extend(
            kubelet::validate_config(&doc.to_json())
                .into_iter()
                .map(|e| format!("KubeletConfiguration: {e}")),
        );
    }
    if !errs.is_empty() {
        bail!("invalid configuration:\n  {}", errs.join("\n  "));
    }
    Ok((cfg, version))
}

/// The release of the kubeadm reading the file: its own, else the one the file deploys (this stand-in
/// then plays it), else the newest it knows.
fn reader_minor(docs: &[Document], own: Option<&KubeVersion>) -> u64 {
    own.map(|v| v.minor)
        .or_else(|| {
            let cluster = docs.iter().find(|d| d.kind == "ClusterConfiguration")?;
            let text = cluster.value.get("kubernetesVersion")?.as_str()?;
            KubeVersion::parse(text).ok().map(|v| v.minor)
        })
        .filter(|m| KNOWN_MINORS.contains(m))
        .unwrap_or(*KNOWN_MINORS.end())
}

/// Why kubeadm 1.`reader` does not read `doc`: an API it no longer has is an error with the real
/// kubeadm's wording; an older API it still reads is one this stand-in does not implement.
fn unread_document(doc: &Document, reader: u64) -> String {
    let (api, kind) = (&doc.api_version, &doc.kind);
    if api.starts_with("kubeadm.k8s.io/") {
        if releases::minor(reader).kubeadm_api_versions.contains(api) {
            return format!("{kind}: apiVersion {api:?}: kubeadm 1.{reader} reads this deprecated API, but this stand-in reads {KUBEADM_API} only (kubeboot writes it)");
        }
        if let Some(last) = releases::last_minor_reading(api) {
            return format!("your configuration file uses an old API spec: {api:?} (kind: {kind:?}). Please use kubeadm v1.{last} instead and run 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version.");
        }
    }
    format!("{kind}: apiVersion {api:?} kind {kind:?} is not a configuration kubeadm {KUBEADM_API} reads")
}

fn default(cfg: &mut Config) {
    if let Some(c) = &mut cfg.cluster {
        set_if_empty(&mut c.certificates_dir, "/etc/kubernetes/pki");
        set_if_empty(&mut c.cluster_name, "kubernetes");
        set_if_empty(&mut c.networking.dns_domain, "cluster.local");
        set_if_empty(&mut c.networking.service_subnet, "10.96.0.0/12");
        set_if_empty(&mut c.image_repository, "registry.k8s.io");
        if c.etcd.local.is_none() && c.etcd.external.is_none() {
            c.etcd.local = Some(LocalEtcd::default());
        }
        if let Some(l) = &mut c.etcd.local {
            set_if_empty(&mut l.data_dir, "/var/lib/etcd");
        }
    }
    let defaults_nr = |nr: &mut NodeRegistration| {
        set_if_empty(
            &mut nr.cri_socket,
            "unix:///var/run/containerd/containerd.sock",
        );
        if nr.name.is_empty() {
            nr.name = hostname().to_lowercase();
        }
    };
    if let Some(c) = &mut cfg.init {
        defaults_nr(&mut c.node_registration);
        if c.local_api_endpoint.bind_port == 0 {
            c.local_api_endpoint.bind_port = 6443;
        }
        if c.local_api_endpoint.advertise_address.is_empty() {
            c.local_api_endpoint.advertise_address = default_address();
        }
    }
    if let Some(c) = &mut cfg.join {
        defaults_nr(&mut c.node_registration);
        set_if_empty(&mut c.ca_cert_path, "/etc/kubernetes/pki/ca.crt");
        if let Some(bt) = &c.discovery.bootstrap_token {
            if c.discovery.tls_bootstrap_token.is_empty() {
                c.discovery.tls_bootstrap_token = bt.token.clone();
            }
        }
        if let Some(cp) = &mut c.control_plane {
            if cp.local_api_endpoint.bind_port == 0 {
                cp.local_api_endpoint.bind_port = 6443;
            }
            if cp.local_api_endpoint.advertise_address.is_empty() {
                cp.local_api_endpoint.advertise_address = default_address();
            }
        }
    }
}

fn set_if_empty(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_string();
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// The address of the default route, as kubeadm detects it (no packet is sent by a UDP connect).
fn default_address() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

fn check_version(
    cluster: Option<&ClusterConfiguration>,
    own: Option<&KubeVersion>,
    errs: &mut Vec<String>,
) -> KubeVersion {
    let fallback = || {
        own.cloned().unwrap_or_else(|| {
            KubeVersion::parse(&format!("v1.{}.0", KNOWN_MINORS.end())).expect("valid")
        })
    };
    let Some(c) = cluster else { return fallback() };
    if c.kubernetes_version.is_empty() {
        if own.is_none() {
            errs.push("ClusterConfiguration: kubernetesVersion: required (this kubeadm has no version of its own to default to, and \"stable\" needs the internet)".into());
        }
        return fallback();
    }
    let v = match KubeVersion::parse(&c.kubernetes_version) {
        Ok(v) => v,
        Err(e) => {
            errs.push(format!("ClusterConfiguration: kubernetesVersion: {e}"));
            return fallback();
        }
    };
    let own = own.cloned().unwrap_or_else(|| v.clone());
    if !KNOWN_MINORS.contains(&own.minor) {
        errs.push(format!("ClusterConfiguration: kubernetesVersion: {v} is not a release this kubeadm knows (1.{}–1.{})", KNOWN_MINORS.start(), KNOWN_MINORS.end()));
    } else if v.minor > own.minor || (v.minor == own.minor && v.patch > own.patch) {
        errs.push(format!("ClusterConfiguration: kubernetesVersion: the specified version to deploy ({v}) is newer than this kubeadm ({own})"));
    } else if v.minor + 1 < own.minor {
        errs.push(format!("ClusterConfiguration: kubernetesVersion: this version of kubeadm only supports deploying clusters with the control plane version >= v1.{}.0. Current version: {v}", own.minor - 1));
    }
    v
}

/// k8s.io/cluster-bootstrap's ValidateBootstrapGroupName (kubeadm's config check and the API server's
/// bootstrap-token authenticator both use it).
pub fn is_bootstrap_group(g: &str) -> bool {
    static GROUP: OnceLock<Regex> = OnceLock::new();
    regex(&GROUP, r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$").is_match(g)
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    s.len() <= 253
        && regex(
            &RE,
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        )
        .is_match(s)
}

fn is_qualified_name(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain)
        && name.len() <= 63
        && regex(&RE, r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$").is_match(name)
}

fn is_label_value(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    s.is_empty()
        || (s.len() <= 63 && regex(&RE, r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$").is_match(s))
}

/// `host:port` with a valid host and port (kubeadm allows a bare host; kubeboot: always give the port).
pub fn parse_host_port(endpoint: &str) -> Result<(String, u16), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("{endpoint:?} is not host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{endpoint:?}: port is not valid"))?;
    if host.parse::<IpAddr>().is_err() && !is_dns1123_subdomain(host) {
        return Err(format!(
            "{endpoint:?}: host is neither an IP address nor a DNS name"
        ));
    }
    Ok((host.to_string(), port))
}

fn validate_init(c: &InitConfiguration, kubelet_minor: u64, errs: &mut Vec<String>) {
    let e = |errs: &mut Vec<String>, path: &str, msg: String| {
        errs.push(format!("InitConfiguration: {path}: {msg}"))
    };
    validate_node_registration(
        &c.node_registration,
        "InitConfiguration",
        kubelet_minor,
        errs,
    );
    for (i, bt) in c.bootstrap_tokens.iter().enumerate() {
        let p = format!("bootstrapTokens[{i}]");
        if let Err(err) = BootstrapToken::parse(&bt.token) {
            e(errs, &format!("{p}.token"), err.to_string());
        }
        for u in &bt.usages {
            if !["signing", "authentication"].contains(&u.as_str()) {
                e(
                    errs,
                    &format!("{p}.usages"),
                    format!("invalid bootstrap token usage {u:?} (signing, authentication)"),
                );
            }
        }
        if !bt.groups.is_empty() && !bt.usages.iter().any(|u| u == "authentication") {
            e(
                errs,
                &format!("{p}.groups"),
                "token groups cannot be specified unless usages includes \"authentication\"".into(),
            );
        }
        for g in &bt.groups {
            if !is_bootstrap_group(g) {
                e(
                    errs,
                    &format!("{p}.groups"),
                    format!("{g:?} must match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]"),
                );
            }
        }
        if bt.ttl.is_some() && bt.expires.is_some() {
            e(
                errs,
                &p,
                "the BootstrapToken .TTL and .Expires fields are mutually exclusive".into(),
            );
        }
    }
    if c.bootstrap_tokens.is_empty() {
        e(errs, "bootstrapTokens", "kubeboot: the bootstrap token kubeboot generated must be given here (kubeadm would invent one)".into());
    }
    validate_endpoint(
        &c.local_api_endpoint,
        "InitConfiguration: localAPIEndpoint",
        errs,
    );
    validate_certificate_key(
        &c.certificate_key,
        "InitConfiguration: certificateKey",
        errs,
    );
    validate_phases(
        &c.skip_phases,
        INIT_PHASES,
        "InitConfiguration: skipPhases",
        errs,
    );
}

fn validate_endpoint(ep: &ApiEndpoint, path: &str, errs: &mut Vec<String>) {
    if ep.advertise_address.parse::<IpAddr>().is_err() {
        errs.push(format!(
            "{path}.advertiseAddress: {:?}: ip address is not valid",
            ep.advertise_address
        ));
    }
    if !(1..=65535).contains(&ep.bind_port) {
        errs.push(format!(
            "{path}.bindPort: {}: port number is not valid",
            ep.bind_port
        ));
    }
}

fn validate_certificate_key(key: &str, path: &str, errs: &mut Vec<String>) {
    if key.is_empty() {
        return;
    }
    match hex::decode(key) {
        Ok(k) if k.len() == 32 => {}
        Ok(k) => errs.push(format!(
            "{path}: invalid certificate key size {}, the key must be an AES key of size 32",
            k.len()
        )),
        Err(err) => errs.push(format!("{path}: certificate key decoding error: {err}")),
    }
}

pub const INIT_PHASES: &[&str] = &[
    "preflight",
    "certs",
    "kubeconfig",
    "etcd",
    "control-plane",
    "kubelet-start",
    "wait-control-plane",
    "upload-config",
    "upload-certs",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "show-join-command",
];
pub const JOIN_PHASES: &[&str] = &[
    "preflight",
    "control-plane-prepare",
    "kubelet-start",
    "control-plane-join",
    "wait-control-plane",
];

/// Phase names, with sub-phases as `phase/sub` (any sub-phase of a known phase is accepted).
pub fn validate_phases(phases: &[String], known: &[&str], path: &str, errs: &mut Vec<String>) {
    for p in phases {
        let top = p.split('/').next().unwrap_or_default();
        if !known.contains(&top) {
            errs.push(format!(
                "{path}: {p:?} is not a phase (known: {})",
                known.join(", ")
            ));
        }
    }
}

fn validate_node_registration(
    nr: &NodeRegistration,
    kind: &str,
    kubelet_minor: u64,
    errs: &mut Vec<String>,
) {
    let p = format!("{kind}: nodeRegistration");
    if nr.name.is_empty() {
        errs.push(format!("{p}.name: required"));
    } else if !is_dns1123_subdomain(&nr.name) {
        errs.push(format!("{p}.name: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'", nr.name));
    }
    match nr.cri_socket.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => {}
        _ => errs.push(format!(
            "{p}.criSocket: {:?}: only URL scheme \"unix\" with an absolute path is supported",
            nr.cri_socket
        )),
    }
    validate_extra_args(
        &nr.kubelet_extra_args,
        &format!("{p}.kubeletExtraArgs"),
        errs,
    );
    for (i, a) in nr.kubelet_extra_args.iter().enumerate() {
        if a.name == "register-with-taints" {
            if let Err(e) = kubelet::parse_taints(&a.value) {
                errs.push(format!("{p}.kubeletExtraArgs[{i}]: {e}"));
            }
        }
        if !a.name.is_empty() && !kubelet::is_flag(&a.name, kubelet_minor) {
            errs.push(format!("{p}.kubeletExtraArgs[{i}].name: {:?} is not a kubelet flag of 1.{kubelet_minor} (the kubelet would refuse to start)", a.name));
        }
        if a.name == "node-labels" {
            for label in a.value.split(',').filter(|l| !l.is_empty()) {
                let (k, v) = label.split_once('=').unwrap_or((label, ""));
                if !is_qualified_name(k) || !is_label_value(v) {
                    errs.push(format!(
                        "{p}.kubeletExtraArgs[{i}] (node-labels): {label:?} is not a valid label"
                    ));
                } else if let Err(e) = kubelet::check_node_label_key(k) {
                    errs.push(format!("{p}.kubeletExtraArgs[{i}] (node-labels): the kubelet would refuse to start: {e}"));
                }
            }
        }
    }
    for (i, t) in nr.taints.iter().flatten().enumerate() {
        if !is_qualified_name(&t.key) {
            errs.push(format!(
                "{p}.taints[{i}].key: {:?} is not a qualified name",
                t.key
            ));
        }
        if t.effect.is_empty() {
            errs.push(format!("{p}.taints[{i}].effect: required"));
        }
        if let Some(v) = &t.value {
            if !is_label_value(v) {
                errs.push(format!(
                    "{p}.taints[{i}].value: {v:?} is not a valid label value"
                ));
            }
        }
    }
    let lower: Vec<String> = nr
        .ignore_preflight_errors
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    if lower.contains(&"all".to_string()) && lower.len() > 1 {
        errs.push(format!(
            "{p}.ignorePreflightErrors: don't specify individual checks if 'all' is used"
        ));
    }
}

fn validate_extra_args(args: &[Arg], path: &str, errs: &mut Vec<String>) {
    for (i, a) in args.iter().enumerate() {
        if a.name.is_empty() {
            errs.push(format!("{path}: index {i}: argument has no name"));
        } else if a.name.starts_with('-') {
            errs.push(format!(
                "{path}[{i}].name: {:?}: give the flag name without leading dashes",
                a.name
            ));
        }
    }
}

fn parse_cidrs(text: &str, path: &str, min_addrs: u128, errs: &mut Vec<String>) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for part in text.split(',') {
        match part.parse::<IpNet>() {
            Ok(n) if n == n.trunc() => nets.push(n),
            Ok(n) => errs.push(format!(
                "{path}: {part:?} has host bits set (did you mean {}?)",
                n.trunc()
            )),
            Err(_) => {
                errs.push(format!("{path}: {text:?}: couldn't parse subnet"));
                return vec![];
            }
        }
    }
    if nets.len() > 2
        || (nets.len() == 2
            && matches!(
                (nets[0], nets[1]),
                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
            ))
    {
        errs.push(format!("{path}: {text:?}: expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking"));
    }
    for n in &nets {
        let size: u128 = 1u128
            .checked_shl(u32::from(n.max_prefix_len() - n.prefix_len()))
            .unwrap_or(u128::MAX);
        if size < min_addrs {
            errs.push(format!("{path}: {n}: subnet with {size} address(es) is too small, the minimum is {min_addrs}"));
        }
    }
    nets
}

fn validate_cluster(c: &ClusterConfiguration, kubeadm_minor: u64, errs: &mut Vec<String>) {
    let p = "ClusterConfiguration";
    if !is_dns1123_subdomain(&c.networking.dns_domain) {
        errs.push(format!(
            "{p}: networking.dnsDomain: {:?} is not a DNS subdomain",
            c.networking.dns_domain
        ));
    }
    let services = parse_cidrs(
        &c.networking.service_subnet,
        &format!("{p}: networking.serviceSubnet"),
        10,
        errs,
    );
    for n in &services {
        if n.max_prefix_len() - n.prefix_len() > 20 {
            errs.push(format!(
                "{p}: networking.serviceSubnet: {n}: specified service subnet is too large; for {}-bit addresses, the mask must be >= {}",
                n.max_prefix_len(),
                n.max_prefix_len() - 20
            ));
        }
    }
    if c.networking.pod_subnet.is_empty() {
        errs.push(format!("{p}: networking.podSubnet: kubeboot: required (the CNI and node CIDR allocation need it)"));
    } else {
        let pods = parse_cidrs(
            &c.networking.pod_subnet,
            &format!("{p}: networking.podSubnet"),
            14,
            errs,
        );
        let arg = |name: &str| {
            c.controller_manager
                .extra_args
                .iter()
                .rev()
                .find(|a| a.name == name)
                .map(|a| a.value.clone())
        };
        if arg("allocate-node-cidrs").as_deref() != Some("false") {
            for n in &pods {
                let (flag, default) = if matches!(n, IpNet::V6(_)) {
                    ("node-cidr-mask-size-ipv6", 64)
                } else {
                    ("node-cidr-mask-size-ipv4", 24)
                };
                let node_mask = match arg(flag).map(|v| v.parse::<u8>()) {
                    None => default,
                    Some(Ok(m)) => m,
                    Some(Err(_)) => {
                        errs.push(format!(
                            "{p}: controllerManager.extraArgs: {flag} is not an integer"
                        ));
                        continue;
                    }
                };
                if n.prefix_len() > node_mask {
                    errs.push(format!("{p}: networking.podSubnet: {n}: the size of pod subnet with mask {} is smaller than the size of node subnet with mask {node_mask}", n.prefix_len()));
                } else if node_mask - n.prefix_len() > 16 {
                    errs.push(format!("{p}: networking.podSubnet: {n}: pod subnet mask ({}) and node-mask ({node_mask}) difference is greater than 16", n.prefix_len()));
                }
            }
        }
        for s in &services {
            for n in &pods {
                if s.contains(&n.network()) || n.contains(&s.network()) {
                    errs.push(format!(
                        "{p}: networking: podSubnet {n} overlaps serviceSubnet {s}"
                    ));
                }
            }
        }
    }
    for (name, comp) in [
        ("apiServer", &c.api_server),
        ("controllerManager", &c.controller_manager),
        ("scheduler", &c.scheduler),
    ] {
        validate_extra_args(&comp.extra_args, &format!("{p}: {name}.extraArgs"), errs);
        for (i, v) in comp.extra_volumes.iter().enumerate() {
            if !v.host_path.starts_with('/') || !v.mount_path.starts_with('/') {
                errs.push(format!(
                    "{p}: {name}.extraVolumes[{i}]: hostPath and mountPath must be absolute"
                ));
            }
            if v.name.is_empty() {
                errs.push(format!("{p}: {name}.extraVolumes[{i}].name: required"));
            }
        }
    }
    if let Some(l) = &c.etcd.local {
        validate_extra_args(&l.extra_args, &format!("{p}: etcd.local.extraArgs"), errs);
        if !l.data_dir.starts_with('/') {
            errs.push(format!("{p}: etcd.local.dataDir: path is not absolute"));
        }
        validate_sans(
            &l.server_cert_sans,
            &format!("{p}: etcd.local.serverCertSANs"),
            errs,
        );
        validate_sans(
            &l.peer_cert_sans,
            &format!("{p}: etcd.local.peerCertSANs"),
            errs,
        );
    }
    if c.etcd.local.is_some() && c.etcd.external.is_some() {
        errs.push(format!(
            "{p}: etcd: .Etcd.Local and .Etcd.External are mutually exclusive"
        ));
    }
    validate_sans(
        &c.api_server.cert_sans,
        &format!("{p}: apiServer.certSANs"),
        errs,
    );
    if !c.certificates_dir.starts_with('/') {
        errs.push(format!("{p}: certificatesDir: path is not absolute"));
    }
    if c.control_plane_endpoint.is_empty() {
        errs.push(format!("{p}: controlPlaneEndpoint: kubeboot: required (extra masters and workers join through it)"));
    } else if let Err(e) = parse_host_port(&c.control_plane_endpoint) {
        errs.push(format!(
            "{p}: controlPlaneEndpoint: endpoint is not valid: {e}"
        ));
    }
    // kubeadm's features.Supports(): a gate of this release that is not deprecated.
    let facts = releases::minor(kubeadm_minor);
    for k in c.feature_gates.keys() {
        if !facts.kubeadm_feature_gates.contains(k)
            || facts.kubeadm_deprecated_feature_gates.contains(k)
        {
            errs.push(format!(
                "{p}: featureGates: {k} is not a valid feature name."
            ));
        }
    }
    static REPO: OnceLock<Regex> = OnceLock::new();
    if !regex(
        &REPO,
        r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$",
    )
    .is_match(&c.image_repository)
    {
        errs.push(format!(
            "{p}: imageRepository: {:?}: invalid image repository format",
            c.image_repository
        ));
    }
}

fn validate_sans(sans: &[String], path: &str, errs: &mut Vec<String>) {
    for s in sans {
        let wildcard = s.strip_prefix("*.").is_some_and(is_dns1123_subdomain);
        if !is_dns1123_subdomain(s) && !wildcard && s.parse::<IpAddr>().is_err() {
            errs.push(format!("{path}: {s:?}: altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards"));
        }
    }
}

pub fn is_ca_pin(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^sha256:[0-9a-f]{64}$").is_match(s)
}

fn validate_join(c: &JoinConfiguration, kubelet_minor: u64, errs: &mut Vec<String>) {
    let p = "JoinConfiguration";
    let d = &c.discovery;
    match (&d.bootstrap_token, &d.file) {
        (None, None) => errs.push(format!("{p}: discovery: bootstrapToken or file must be set")),
        (Some(_), Some(_)) => errs.push(format!("{p}: discovery: bootstrapToken and file cannot both be set")),
        (None, Some(_)) => errs.push(format!("{p}: discovery.file: kubeboot: token discovery with a CA pin is the contract; file discovery is not supported by this stand-in")),
        (Some(bt), None) => {
            let bp = format!("{p}: discovery.bootstrapToken");
            if bt.api_server_endpoint.is_empty() {
                errs.push(format!("{bp}.apiServerEndpoint: APIServerEndpoint is not set"));
            } else if let Err(e) = parse_host_port(&bt.api_server_endpoint) {
                errs.push(format!("{bp}.apiServerEndpoint: {e}"));
            }
            if bt.ca_cert_hashes.is_empty() && !bt.unsafe_skip_ca_verification {
                errs.push(format!("{bp}.caCertHashes: using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"));
            }
            if bt.unsafe_skip_ca_verification {
                errs.push(format!("{bp}.unsafeSkipCAVerification: kubeboot: the CA must always be pinned"));
            }
            for h in &bt.ca_cert_hashes {
                if !is_ca_pin(h) {
                    errs.push(format!("{bp}.caCertHashes: {h:?} must be sha256:<64 lowercase hex digits>"));
                }
            }
            if let Err(e) = BootstrapToken::parse(&bt.token) {
                errs.push(format!("{bp}.token: {e}"));
            }
            if let Err(e) = BootstrapToken::parse(&d.tls_bootstrap_token) {
                errs.push(format!("{p}: discovery.tlsBootstrapToken: {e}"));
            }
        }
    }
    validate_node_registration(&c.node_registration, p, kubelet_minor, errs);
    if let Some(cp) = &c.control_plane {
        validate_endpoint(
            &cp.local_api_endpoint,
            &format!("{p}: controlPlane.localAPIEndpoint"),
            errs,
        );
        validate_certificate_key(
            &cp.certificate_key,
            &format!("{p}: controlPlane.certificateKey"),
            errs,
        );
    }
    if !c.ca_cert_path.starts_with('/') || !c.ca_cert_path.ends_with(".crt") {
        errs.push(format!(
            "{p}: caCertPath: {:?}: the ca certificate path must be an absolute path",
            c.ca_cert_path
        ));
    }
    validate_phases(
        &c.skip_phases,
        JOIN_PHASES,
        &format!("{p}: skipPhases"),
        errs,
    );
}

/// Go duration → std Duration (for timeouts; the syntax was checked by the key tree).
pub fn go_duration(text: &str) -> Option<std::time::Duration> {
    let re = Regex::new(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)").ok()?;
    let mut secs = 0f64;
    for cap in re.captures_iter(text) {
        let n: f64 = cap[1].parse().ok()?;
        secs += n * match &cap[2] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            _ => 3600.0,
        };
    }
    Some(std::time::Duration::from_secs_f64(secs))
}
