//! Stand-in for the kubelet (tests only): strict flags and config, then registers its Node and sends status
//! heartbeats to the API server until SIGTERM. Exits non-zero on any invalid input.
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use kubeboot_stand_ins::client::Client;
use kubeboot_stand_ins::kubeadm::{node_object, parse_labels};
use kubeboot_stand_ins::kubeconfig::load_credentials;
use kubeboot_stand_ins::version::{KubeVersion, KNOWN_MINORS};
use kubeboot_stand_ins::{flags, fsx, kubelet, releases, schema, Invocation, Root};
use reqwest::Method;
use serde_json::json;

fn main() {
    Invocation::begin("kubelet").run(|inv| run(&inv.root, &inv.args))
}

fn run(root: &Root, args: &[String]) -> Result<()> {
    let version = match KubeVersion::own()? {
        Some(v) => v,
        None => KubeVersion::parse(&format!("v1.{}.0", KNOWN_MINORS.end()))?,
    };
    let p = flags::parse(args, &kubelet::flag_spec(version.minor))
        .map_err(|e| anyhow!("failed to parse kubelet flag: {e}"))?;
    if let Some(v) = p.last("version") {
        if v != "false" {
            println!("Kubernetes {version}");
            return Ok(());
        }
    }
    if !p.positionals.is_empty() {
        bail!("unknown command {:?}", p.positionals[0]);
    }
    if let Some(cp) = p.last("cloud-provider") {
        if !cp.is_empty() && cp != "external" {
            bail!("--cloud-provider={cp}: in-tree cloud providers are removed; only \"external\" (or empty) is allowed");
        }
    }
    // The --feature-gates flag fills the same map as the config file's featureGates; the kubelet
    // applies it before reading the file.
    releases::check_feature_gates(
        version.minor,
        p.all("feature-gates")
            .into_iter()
            .flat_map(releases::feature_gate_names),
    )
    .map_err(|e| anyhow!("failed to set feature gates from initial flags-based config: {e}"))?;
    let config_path = p
        .last("config")
        .ok_or_else(|| anyhow!("--config is required (kubeadm's kubelet drop-in passes it)"))?;
    let config = check_config(root, config_path, version.minor)?;
    releases::check_feature_gates(
        version.minor,
        config["featureGates"]
            .as_object()
            .into_iter()
            .flat_map(|gates| gates.keys().map(String::as_str)),
    )
    .map_err(|e| anyhow!("failed to set feature gates from initial flags-based config: {e}"))?;
    let labels_text = p.last("node-labels").unwrap_or_default();
    let mut labels = parse_labels(labels_text);
    for k in labels.keys() {
        kubelet::check_node_label_key(k).map_err(|e| anyhow!("--node-labels: {e}"))?;
    }
    let taints = kubelet::parse_taints(p.last("register-with-taints").unwrap_or_default())
        .map_err(|e| anyhow!("--register-with-taints: {e}"))?;
    if let Some(ip) = p.last("node-ip") {
        for part in ip.split(',') {
            part.parse::<std::net::IpAddr>()
                .map_err(|_| anyhow!("--node-ip: {part:?} is not an IP address"))?;
        }
    }
    let runtime = p
        .last("container-runtime-endpoint")
        .map(str::to_string)
        .or_else(|| {
            config["containerRuntimeEndpoint"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into());
    let socket = runtime.strip_prefix("unix://").ok_or_else(|| {
        anyhow!("--container-runtime-endpoint {runtime:?}: only unix:// endpoints are supported")
    })?;
    if !root.path(socket).exists() {
        bail!("failed to run Kubelet: validate service connection: the container runtime socket {socket} does not exist");
    }
    let kubeconfig = p
        .last("kubeconfig")
        .ok_or_else(|| anyhow!("--kubeconfig is required"))?;
    if !root.path(kubeconfig).exists() {
        bail!("{kubeconfig} does not exist (the stand-in does not do the kubelet's own TLS bootstrap; kubeadm writes it)");
    }
    let creds = load_credentials(root, kubeconfig)?;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
        .to_lowercase();
    let name = p
        .last("hostname-override")
        .map(str::to_string)
        .unwrap_or(hostname);
    labels.insert("kubernetes.io/hostname".into(), name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    let provider_id = p
        .last("provider-id")
        .map(str::to_string)
        .or_else(|| config["providerID"].as_str().map(str::to_string));
    let client = Client::from_credentials(&creds)?;
    let node = node_object(&name, &labels, &taints, provider_id.as_deref());
    let interval = config["nodeStatusUpdateFrequency"]
        .as_str()
        .and_then(kubeboot_stand_ins::kubeadm::config::go_duration)
        .unwrap_or(Duration::from_secs(10));
    let mut registered = false;
    loop {
        let result = if registered {
            heartbeat(&client, &name)
        } else {
            register(&client, &node)
        };
        match result {
            Ok(()) => registered = true,
            Err(e) => eprintln!("kubelet: {e:#}"),
        }
        std::thread::sleep(interval);
    }
}

fn check_config(root: &Root, path: &str, minor: u64) -> Result<serde_json::Value> {
    let text = fsx::read(&root.path(path)).with_context(|| "failed to load kubelet config file")?;
    let docs = schema::parse_documents(&text).map_err(|e| anyhow!("{path}: {e}"))?;
    let [doc] = docs.as_slice() else {
        bail!("{path}: expected exactly one KubeletConfiguration document")
    };
    if doc.kind != "KubeletConfiguration" || doc.api_version != "kubelet.config.k8s.io/v1beta1" {
        bail!(
            "{path}: no kind {:?} is registered for version {:?}",
            doc.kind,
            doc.api_version
        );
    }
    let mut errs = schema::check(doc);
    errs.extend(schema::too_new_keys(doc, minor));
    let json = doc.to_json();
    errs.extend(kubelet::validate_config(&json));
    if let Some(ca) = json
        .pointer("/authentication/x509/clientCAFile")
        .and_then(|v| v.as_str())
    {
        if !root.path(ca).is_file() {
            errs.push(format!(
                "authentication.x509.clientCAFile: {ca} does not exist"
            ));
        }
    }
    if let Some(dir) = json["staticPodPath"].as_str() {
        if !Path::new(dir).is_absolute() {
            errs.push(format!("staticPodPath: {dir:?} must be absolute"));
        }
    }
    if !errs.is_empty() {
        bail!(
            "invalid kubelet configuration {path}:\n  {}",
            errs.join("\n  ")
        );
    }
    Ok(json)
}

fn register(client: &Client, node: &serde_json::Value) -> Result<()> {
    let (status, body) = client.call(Method::POST, "/api/v1/nodes", Some(node))?;
    match status {
        201 | 409 => {
            eprintln!("kubelet: node {} registered", node["metadata"]["name"]);
            Ok(())
        }
        _ => bail!(
            "unable to register node: HTTP {status}: {}",
            body["message"]
        ),
    }
}

fn heartbeat(client: &Client, name: &str) -> Result<()> {
    // metav1.Time: RFC 3339, whole seconds.
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)?
        .format(&time::format_description::well_known::Rfc3339)?;
    let status = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now}]}});
    let (code, body) = client.call(
        Method::PUT,
        &format!("/api/v1/nodes/{name}/status"),
        Some(&status),
    )?;
    if code != 200 {
        bail!(
            "error updating node status: HTTP {code}: {}",
            body["message"]
        );
    }
    Ok(())
}
