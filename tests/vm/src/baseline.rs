//! The shell baseline (`tests/baseline/node.sh`) as the user data of one node: a conventional
//! bootstrap script has its values inlined, so the rendered script starts with them (taken from
//! the same rendered cluster the agent's nodes get) and, on a master, writes the cluster's shared
//! PKI with heredocs before the steps. Secrets stay out of command lines: `cat` writes them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use kubeboot_nodeconfig::NodeConfig;

use crate::workspace_root;

/// Done-line the script prints last (to the console and cloud-init's output log).
pub const DONE_LINE: &str = "baseline: node is done";

/// Writes the baseline script for `config`'s node called `node_name` to `out`.
pub fn write_user_data(
    config: &NodeConfig,
    node_name: &str,
    advertise_address: &str,
    out: &Path,
) -> Result<()> {
    let steps = std::fs::read_to_string(workspace_root().join("tests/baseline/node.sh"))
        .context("tests/baseline/node.sh")?;
    let labels: Vec<String> = config
        .node
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let taints: Vec<String> = config
        .node
        .taints
        .iter()
        .map(|t| {
            let value = t
                .value
                .as_ref()
                .map(|v| format!(", value: {v}"))
                .unwrap_or_default();
            format!("{{key: {}{value}, effect: {}}}", t.key, t.effect.as_str())
        })
        .collect();
    // The pause image kubeadm of this minor expects, from the same table the agent uses.
    let release = config
        .cluster
        .kubernetes_version
        .release()
        .map_err(anyhow::Error::msg)?;
    let values = [
        (
            "ROLE",
            if config.is_master() {
                "master"
            } else {
                "worker"
            }
            .to_string(),
        ),
        ("NODE_NAME", node_name.to_string()),
        ("ADVERTISE_ADDRESS", advertise_address.to_string()),
        (
            "ENDPOINT",
            config.cluster.control_plane_endpoint.to_string(),
        ),
        ("MIRROR", config.artifacts.release_base_url.clone()),
        (
            "KUBERNETES_VERSION",
            config.cluster.kubernetes_version.to_string(),
        ),
        ("PAUSE_IMAGE", release.pause_image.to_string()),
        ("CLUSTER_NAME", config.cluster.name.clone()),
        ("POD_CIDR", config.cluster.pod_cidr.to_string()),
        ("SERVICE_CIDR", config.cluster.service_cidr.to_string()),
        ("NODE_LABELS", labels.join(",")),
        ("TAINTS", format!("[{}]", taints.join(", "))),
        (
            "TOKEN",
            config
                .bootstrap
                .token
                .as_ref()
                .context("the shell baseline reads the bootstrap token inline")?
                .expose()
                .to_string(),
        ),
        (
            "CA_CERT_HASH",
            config
                .bootstrap
                .ca_cert_hashes
                .first()
                .cloned()
                .unwrap_or_default(),
        ),
    ];
    let mut script = String::from("#!/bin/bash\nset -euo pipefail\n");
    for (name, value) in values {
        ensure!(!value.contains('\''), "{name}: a quote in {value:?}");
        writeln!(script, "{name}='{value}'")?;
    }
    if let Some(pki) = &config.pki {
        script += "umask 077\nmkdir -p /etc/kubernetes/pki/etcd\n";
        for (_, stem, public_part, pair) in pki.pairs() {
            let public = public_part.extension();
            for (ext, text) in [
                (public, pair.public.as_str()),
                ("key", pair.private.expose()),
            ] {
                writeln!(
                    script,
                    "cat > /etc/kubernetes/pki/{stem}.{ext} <<'PKI'\n{}\nPKI",
                    text.trim_end()
                )?;
            }
            writeln!(script, "chmod 0644 /etc/kubernetes/pki/{stem}.{public}")?;
        }
    }
    script += &steps;
    // It holds the cluster's secrets, as the rendered user data does.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)?;
    file.write_all(script.as_bytes())?;
    Ok(())
}
