//! Assertions on one boot's evidence: secrets, registration, the pinned CA, the agent's status.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use kubeboot_nodeconfig::NodeConfig;
use serde_json::Value;

use crate::evidence::{Boot, GuestFile};
use crate::secrets::{self, Needle};

/// Where the stand-in API server records the nodes that registered (name → Node object).
pub const NODES_JSON: &str = "/var/lib/stand-ins/kube-apiserver/nodes.json";
/// Where it records the objects applied with server-side apply (`apiVersion/Kind/ns/name` → object).
pub const OBJECTS_JSON: &str = "/var/lib/stand-ins/kube-apiserver/objects.json";

/// Every secret of a rendered cluster: the generator's secret files (private keys, tokens) and
/// what each pool's NodeConfig carries.
pub fn cluster_needles(rendered: &Path, configs: &[&NodeConfig]) -> Result<Vec<Needle>> {
    let mut needles: Vec<Needle> = configs.iter().flat_map(|c| secrets::needles(c)).collect();
    let dir = rendered.join("secrets");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        // Certificates, public keys and the CA pin are public by design.
        if name.ends_with(".crt") || name.ends_with(".pub") || name == "ca-cert-hash" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text.contains("PRIVATE KEY") {
            needles.push(secrets::pem_needle(&format!("secrets/{name}"), &text));
        } else if !text.contains("-----BEGIN") && text.trim().len() >= 16 {
            needles.push(Needle {
                name: format!("secrets/{name}"),
                patterns: vec![text.trim().to_string()],
            });
        }
    }
    Ok(needles)
}

/// No secret in the logs, the journal, the process list (arguments and environments) or the
/// agent's status; any file changed since boot that holds one is readable by its owner only
/// (0600 or stricter) and is not a log.
pub fn no_secret_leaks(node: &str, boot: &Boot, needles: &[Needle]) -> Result<()> {
    for section in [
        "journal",
        "cloud-init-log",
        "cloud-init-output",
        "processes",
        "status",
        "upgrade-status",
        "upgrade-log",
    ] {
        if let Some(bytes) = boot.sections.get(section) {
            if let Some(n) = secrets::find(needles, bytes) {
                bail!(
                    "{node} boot {}: {} appears in {section}",
                    boot.number,
                    n.name
                );
            }
        }
    }
    for file in boot.files("changed-files")? {
        if let Some(n) = secrets::find(needles, &file.contents) {
            ensure!(
                file.mode & 0o077 == 0 && !file.path.starts_with("/var/log/"),
                "{node} boot {}: {} is in {} (mode {:o})",
                boot.number,
                n.name,
                file.path,
                file.mode
            );
        }
    }
    Ok(())
}

pub fn file<'a>(files: &'a [GuestFile], path: &str) -> Option<&'a GuestFile> {
    files.iter().find(|f| f.path == path)
}

/// The nodes the stand-in API server recorded, from the master's `extra-files` dump.
pub fn registered_nodes(master_boot: &Boot) -> Result<BTreeMap<String, Value>> {
    let files = master_boot.files("extra-files")?;
    let nodes =
        file(&files, NODES_JSON).ok_or_else(|| anyhow!("{NODES_JSON} not on the master"))?;
    Ok(serde_json::from_slice(&nodes.contents)?)
}

/// The Node object `name` carries the pool's labels and taints and, when given, the provider id.
pub fn node_registered(
    nodes: &BTreeMap<String, Value>,
    name: &str,
    config: &NodeConfig,
    provider_id: Option<&str>,
) -> Result<()> {
    let node = nodes.get(name).ok_or_else(|| {
        anyhow!(
            "node {name} did not register (registered: {:?})",
            nodes.keys()
        )
    })?;
    let labels = &node["metadata"]["labels"];
    for (key, value) in &config.node.labels {
        ensure!(
            labels[key].as_str() == Some(value),
            "node {name}: label {key}={value} missing (labels: {labels})"
        );
    }
    let taints = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for taint in &config.node.taints {
        ensure!(
            taints.iter().any(|t| t["key"].as_str() == Some(&taint.key)
                && t["value"].as_str().unwrap_or("") == taint.value.as_deref().unwrap_or("")
                && t["effect"].as_str() == Some(taint.effect.as_str())),
            "node {name}: taint {} missing (taints: {taints:?})",
            taint.key
        );
    }
    if let Some(id) = provider_id {
        ensure!(
            node["spec"]["providerID"].as_str() == Some(id),
            "node {name}: providerID {} is not {id}",
            node["spec"]["providerID"]
        );
    }
    Ok(())
}

/// The worker trusts exactly the cluster CA: the CA kubeadm wrote is the generator's, and its
/// public key hash is the pin the worker's NodeConfig gave.
pub fn worker_pinned_ca(worker_boot: &Boot, rendered: &Path, config: &NodeConfig) -> Result<()> {
    let files = worker_boot.files("changed-files")?;
    let ca = match file(&files, "/etc/kubernetes/pki/ca.crt") {
        Some(f) => f.contents.clone(),
        None => kubeconfig_ca(&files, "/etc/kubernetes/kubelet.conf")?,
    };
    let expected = std::fs::read(rendered.join("secrets/ca.crt"))?;
    ensure!(
        String::from_utf8_lossy(&ca).trim() == String::from_utf8_lossy(&expected).trim(),
        "the worker's CA is not the cluster CA"
    );
    let (_, pem) = x509_parser::pem::parse_x509_pem(&ca)?;
    let cert = pem.parse_x509()?;
    let pin = format!("sha256:{}", secrets::sha256_hex(cert.public_key().raw));
    ensure!(
        config.bootstrap.ca_cert_hashes.contains(&pin),
        "the worker's CA hash {pin} is not among its pins {:?}",
        config.bootstrap.ca_cert_hashes
    );
    Ok(())
}

/// The CA a kubeconfig trusts (`clusters[0].cluster.certificate-authority-data`).
fn kubeconfig_ca(files: &[GuestFile], path: &str) -> Result<Vec<u8>> {
    let conf = file(files, path).ok_or_else(|| anyhow!("the worker has no {path}"))?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&conf.contents)?;
    let data = doc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .ok_or_else(|| anyhow!("{path} has no certificate-authority-data"))?;
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
}

/// One phase as `kubeboot-agent status --output json` reports it.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub state: String,
    pub seconds: Option<f64>,
    pub finished: Option<String>,
    pub error: Option<String>,
    /// The phases it starts after.
    pub after: Vec<String>,
}

/// The phases that start after `phase`, directly or through others (from `status`'s `after`).
pub fn dependents<'a>(phases: &'a [Phase], phase: &str) -> Vec<&'a Phase> {
    let mut found: Vec<&Phase> = Vec::new();
    for p in phases {
        // `status` lists phases in an order that puts every phase after those it needs.
        if p.after
            .iter()
            .any(|a| a == phase || found.iter().any(|f| f.name == *a))
        {
            found.push(p);
        }
    }
    found
}

pub fn phases(boot: &Boot) -> Result<Vec<Phase>> {
    let text = boot.text("status")?;
    let status: Value =
        serde_json::from_str(&text).with_context(|| format!("status is not JSON: {text}"))?;
    let list = status["phases"]
        .as_array()
        .ok_or_else(|| anyhow!("status has no phases: {text}"))?;
    Ok(list
        .iter()
        .map(|p| Phase {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            state: p["state"].as_str().unwrap_or_default().to_string(),
            seconds: p["durationMs"].as_f64().map(|ms| ms / 1000.0),
            finished: p["finishedAt"].as_str().map(str::to_string),
            error: p["lastError"].as_str().map(str::to_string),
            after: p["after"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
        })
        .collect())
}

/// Seconds from kernel start to the agent's unit finishing (systemd's monotonic clock).
pub fn agent_exit_seconds(boot: &Boot) -> Result<f64> {
    unit_seconds(boot, "ExecMainExitTimestampMonotonic")
}

/// Seconds from kernel start to the agent's unit starting its (last) main process.
pub fn agent_start_seconds(boot: &Boot) -> Result<f64> {
    unit_seconds(boot, "ExecMainStartTimestampMonotonic")
}

fn unit_seconds(boot: &Boot, property: &str) -> Result<f64> {
    let usec: f64 = boot
        .unit()?
        .get(property)
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .ok_or_else(|| anyhow!("boot {}: the agent unit has no {property}", boot.number))?;
    Ok(usec / 1e6)
}

/// CPU seconds of a set of processes, as the guest collector sampled them.
#[derive(Clone, Copy)]
pub struct Cpu {
    pub user: f64,
    pub system: f64,
}

impl Cpu {
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// What the guest collector sampled of the setup's own cost.
pub struct OwnCost {
    /// The agent processes themselves.
    pub agent_cpu: Cpu,
    /// `curl` and `sha256sum` (the shell baseline's downloading and hashing).
    pub fetch_tools_cpu: Cpu,
    /// The highest peak resident set of any agent process, in MB (sampled: 0 without an agent).
    pub agent_peak_rss_mb: f64,
    /// The agent's CPU by thread name (each phase runs in a thread named after it), as sampled:
    /// threads that lived between two samples are missing.
    pub agent_threads: Vec<(String, Cpu)>,
    /// The machine's softirq seconds while sampling, and while something was downloading (an
    /// agent `artifact-fetch` thread or a `curl` or `sha256sum` process was alive).
    pub softirq: (f64, f64),
}

pub fn own_cost(boot: &Boot) -> Result<OwnCost> {
    let text = boot.text("agent-cpu")?;
    let words: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("agent-cpu: {text:?}"))?;
    let [agent_user, agent_system, hz, tools_user, tools_system, rss_kb] = words[..] else {
        bail!("agent-cpu: {text:?} is not user and system ticks, ticks per second, user and system ticks, kB");
    };
    let cpu = |user: f64, system: f64| Cpu {
        user: user / hz,
        system: system / hz,
    };
    let threads = boot.text("agent-threads")?;
    let agent_threads = threads
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, user, system] = fields[..] else {
                bail!("agent-threads: {line:?} is not name, user and system ticks");
            };
            Ok((name.to_string(), cpu(user.parse()?, system.parse()?)))
        })
        .collect::<Result<_>>()?;
    let softirq_text = boot.text("softirq")?;
    let softirq = match softirq_text
        .split_whitespace()
        .map(str::parse::<f64>)
        .collect::<Result<Vec<_>, _>>()
        .as_deref()
    {
        Ok([whole, fetching]) => (whole / hz, fetching / hz),
        _ => bail!("softirq: {softirq_text:?} is not two tick counts"),
    };
    Ok(OwnCost {
        agent_cpu: cpu(agent_user, agent_system),
        softirq,
        fetch_tools_cpu: cpu(tools_user, tools_system),
        agent_peak_rss_mb: rss_kb / 1024.0,
        agent_threads,
    })
}

/// On a master the control-plane endpoint's name resolves, through /etc/hosts, to the master's
/// own address (Azure load balancers do not hairpin).
pub fn endpoint_mapped_locally(boot: &Boot, config: &NodeConfig, address: &str) -> Result<()> {
    let name = config.cluster.control_plane_endpoint.host().to_string();
    let files = boot.files("changed-files")?;
    let hosts = file(&files, "/etc/hosts").ok_or_else(|| anyhow!("/etc/hosts was not written"))?;
    let text = String::from_utf8_lossy(&hosts.contents);
    ensure!(
        text.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(address) && words.any(|w| w == name)
        }),
        "/etc/hosts does not map {name} to {address}:\n{text}"
    );
    Ok(())
}

/// The addons phase applied cloud-provider-azure (its controller manager Deployment and node
/// manager DaemonSet) and the Azure Disk CSI driver (controller, node plugin, default
/// StorageClass): they reached the API server with their images.
pub fn azure_addons_applied(master_boot: &Boot) -> Result<()> {
    let files = master_boot.files("extra-files")?;
    let objects = file(&files, OBJECTS_JSON)
        .ok_or_else(|| anyhow!("{OBJECTS_JSON} not on the master: nothing was applied"))?;
    let objects: BTreeMap<String, Value> = serde_json::from_slice(&objects.contents)?;
    for (key, image) in [
        (
            "apps/v1/Deployment/kube-system/cloud-controller-manager",
            "azure-cloud-controller-manager:",
        ),
        (
            "apps/v1/DaemonSet/kube-system/cloud-node-manager",
            "azure-cloud-node-manager:",
        ),
        (
            "apps/v1/Deployment/kube-system/csi-azuredisk-controller",
            "azuredisk-csi:",
        ),
        (
            "apps/v1/DaemonSet/kube-system/csi-azuredisk-node",
            "azuredisk-csi:",
        ),
    ] {
        let object = objects
            .get(key)
            .ok_or_else(|| anyhow!("{key} was not applied (applied: {:?})", objects.keys()))?;
        let images: Vec<&str> = object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str())
            .collect();
        ensure!(
            images.iter().any(|i| i.contains(image)),
            "{key}: images {images:?} are not {image}*"
        );
    }
    let class = "storage.k8s.io/v1/StorageClass//managed-csi";
    ensure!(
        objects[class]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
            == "true",
        "{class} is not the default StorageClass: {}",
        objects
            .get(class)
            .map_or("not applied".into(), Value::to_string)
    );
    Ok(())
}

/// Seconds after boot (journal monotonic time) of each attempt the agent logged while waiting
/// for the control-plane endpoint.
pub fn endpoint_wait_attempts(boot: &Boot) -> Result<Vec<f64>> {
    Ok(boot
        .text("journal")?
        .lines()
        // The agent's wait report (`Context::report_waiting`) with the endpoint probe's reason.
        .filter(|l| l.contains("waiting (attempt") && l.contains("does not accept connections yet"))
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix('[')?
                .split(']')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect())
}
