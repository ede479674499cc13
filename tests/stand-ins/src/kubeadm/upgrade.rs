//! `kubeadm upgrade apply VERSION` and `kubeadm upgrade node`: kubeadm's version-skew policy
//! (cmd/kubeadm/app/phases/upgrade/policy.go), then what they change on the node: the control plane's
//! static pod images (the stand-in API server restarted at the new version, as the kubelet would restart
//! the static pod), the cluster's recorded version, and the kubelet's config from the cluster.
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;

use super::{controlplane, KUBELET_CONF, KUBELET_CONFIG, MANIFESTS};
use crate::apiserver::state::State;
use crate::client::Client;
use crate::flags::Parsed;
use crate::invocation::delay;
use crate::kubeconfig::load_credentials;
use crate::version::KubeVersion;
use crate::{fsx, Root};

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// The static pods whose image follows the Kubernetes version (etcd has its own).
const VERSIONED_PODS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// `kubeadm upgrade apply VERSION`: on a control-plane node, with admin credentials.
pub fn apply(root: &Root, flags: &Parsed) -> Result<()> {
    let [target] = flags.positionals.as_slice() else {
        bail!("usage: kubeadm upgrade apply VERSION (kubeboot names the version)");
    };
    if flags.last("config").is_some() {
        bail!("the stand-in takes the version as an argument, not an UpgradeConfiguration");
    }
    let target = KubeVersion::parse(target)?;
    let kubeadm = KubeVersion::own()?
        .ok_or_else(|| anyhow!("Unable to fetch kubeadm version: this kubeadm has no version"))?;
    let kubeconfig = flags.last("kubeconfig").unwrap_or(ADMIN_CONF);
    ensure_static_apiserver(root)?;
    let client = Client::from_credentials(&load_credentials(root, kubeconfig)?)?;
    let cluster = KubeVersion::parse(
        client.get("/version")?["gitVersion"]
            .as_str()
            .unwrap_or_default(),
    )
    .context("Unable to fetch cluster version")?;
    println!("[upgrade/versions] Cluster version: {cluster}");
    println!("[upgrade/versions] kubeadm version: {kubeadm}");
    enforce_version_policies(&cluster, &kubeadm, &target, flags.is_true("force"))?;
    if !flags.is_true("yes") {
        // kubeadm asks on the terminal; the agent has none, so it must pass --yes.
        bail!("won't proceed; the user didn't answer (Y|n) in order to continue");
    }
    if flags.is_true("dry-run") {
        println!("[dryrun] Finished dryrunning successfully!");
        return Ok(());
    }
    delay();
    upgrade_static_pods(root, &target)?;
    delay();
    let state = State::new(root);
    let mut recorded = state.cluster()?.ok_or_else(|| {
        anyhow!("the kubeadm-config ConfigMap is missing: this node did not init the cluster")
    })?;
    recorded.git_version = target.to_string();
    recorded.cluster_configuration =
        with_kubernetes_version(&recorded.cluster_configuration, &target)?;
    state.set_cluster(&recorded)?;
    println!("[upgrade/upload-config] Uploaded the ClusterConfiguration for {target}");
    write_kubelet_config(root, &client)?;
    println!(
        "[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"{target}\"."
    );
    Ok(())
}

/// `kubeadm upgrade node`: to the version the cluster's ClusterConfiguration names (set by `apply` on the
/// first control-plane node): the static pods on a control-plane node, the kubelet's config on every node.
pub fn node(root: &Root, flags: &Parsed) -> Result<()> {
    no_version_argument(flags)?;
    let control_plane = root
        .path(Path::new(MANIFESTS).join("kube-apiserver.yaml"))
        .exists();
    let kubeconfig = flags.last("kubeconfig").unwrap_or(if control_plane {
        ADMIN_CONF
    } else {
        KUBELET_CONF
    });
    if control_plane {
        ensure_static_apiserver(root)?;
    }
    let client = Client::from_credentials(&load_credentials(root, kubeconfig)?)?;
    let config = client.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")?;
    let cluster_configuration = config["data"]["ClusterConfiguration"]
        .as_str()
        .ok_or_else(|| anyhow!("the kubeadm-config ConfigMap has no ClusterConfiguration"))?;
    let doc: serde_json::Value = serde_yaml_ng::from_str(cluster_configuration)?;
    let cluster = KubeVersion::parse(doc["kubernetesVersion"].as_str().unwrap_or_default())
        .context("the ClusterConfiguration's kubernetesVersion")?;
    let kubeadm = KubeVersion::own()?
        .ok_or_else(|| anyhow!("Unable to fetch kubeadm version: this kubeadm has no version"))?;
    // Stricter than kubeadm, which would write the new version's manifests with its own older flags.
    if (kubeadm.minor, kubeadm.patch) < (cluster.minor, cluster.patch) {
        bail!("kubeadm {kubeadm} is older than the cluster's version {cluster}: upgrade kubeadm first");
    }
    println!("[upgrade] Upgrading this node to the cluster's version {cluster}");
    if flags.is_true("dry-run") {
        return Ok(());
    }
    delay();
    if control_plane {
        upgrade_static_pods(root, &cluster)?;
        delay();
    }
    write_kubelet_config(root, &client)?;
    println!("[upgrade] The configuration for this node was successfully upgraded!");
    Ok(())
}

fn no_version_argument(flags: &Parsed) -> Result<()> {
    match flags.positionals.first() {
        Some(extra) => bail!("unexpected argument {extra:?}: `kubeadm upgrade node` takes the version from the cluster"),
        None => Ok(()),
    }
}

/// kubeadm's EnforceVersionPolicies for released versions: mandatory errors always stop it, skippable ones
/// unless `--force`.
fn enforce_version_policies(
    cluster: &KubeVersion,
    kubeadm: &KubeVersion,
    target: &KubeVersion,
    force: bool,
) -> Result<()> {
    let mut mandatory = Vec::new();
    let mut skippable = Vec::new();
    if target.minor > cluster.minor + 1 {
        mandatory.push(format!("Specified version to upgrade to \"{target}\" is too high; kubeadm can upgrade only 1 minor version at a time"));
    }
    if target.minor + 1 < cluster.minor {
        mandatory.push(format!("Specified version to downgrade to \"{target}\" is too low; kubeadm can downgrade only 1 minor version at a time"));
    }
    if (kubeadm.minor, kubeadm.patch) < (target.minor, target.patch) {
        if target.minor > kubeadm.minor {
            mandatory.push(format!("Specified version to upgrade to \"{target}\" is at least one minor release higher than the kubeadm minor release ({} > {}). Such an upgrade is not supported", target.minor, kubeadm.minor));
        } else {
            skippable.push(format!("Specified version to upgrade to \"{target}\" is higher than the kubeadm version \"{kubeadm}\". Upgrade kubeadm first using the tool you used to install kubeadm"));
        }
    }
    if kubeadm.minor > target.minor {
        skippable.push(format!(
            "Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version 1.{}",
            kubeadm.minor
        ));
    }
    if !mandatory.is_empty() || (!skippable.is_empty() && !force) {
        let all: Vec<String> = mandatory.into_iter().chain(skippable).collect();
        bail!(
            "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n\t- {}\n\nCan be bypassed if you pass the --force flag",
            all.join("\n\t- ")
        );
    }
    Ok(())
}

/// What the kubelet does for a control-plane node: runs the API server its static pod manifest names
/// (here: when it is not running, e.g. after a kill between a manifest change and the restart); and what
/// kubeadm's client retries give a restarting one: a little time to answer.
fn ensure_static_apiserver(root: &Root) -> Result<()> {
    if !controlplane::apiserver_running(root) {
        let version = manifest_version(root, "kube-apiserver")?;
        controlplane::start_apiserver(root, &version)?;
    }
    controlplane::wait_ready(root, secure_port(root)?, Duration::from_secs(30))
}

fn image_pattern() -> Regex {
    Regex::new(r"(?m)^(\s*image:\s*\S+/(kube-[a-z-]+)):(\S+)\s*$").expect("valid regex")
}

/// The version in a static pod's image tag.
fn manifest_version(root: &Root, pod: &str) -> Result<KubeVersion> {
    let path = root.path(Path::new(MANIFESTS).join(format!("{pod}.yaml")));
    let text = fsx::read(&path)?;
    let tag = image_pattern()
        .captures(&text)
        .map(|c| c[3].to_string())
        .ok_or_else(|| anyhow!("{}: no image with a version tag", path.display()))?;
    KubeVersion::parse(&tag)
}

fn secure_port(root: &Root) -> Result<u16> {
    controlplane::manifest_args(root, "kube-apiserver")?
        .iter()
        .find_map(|a| a.strip_prefix("--secure-port=")?.parse().ok())
        .ok_or_else(|| anyhow!("the kube-apiserver manifest names no --secure-port"))
}

/// Rewrites the versioned static pods' image tags and restarts the API server at `version` when its
/// manifest changed or it is not running, then waits until it is ready.
fn upgrade_static_pods(root: &Root, version: &KubeVersion) -> Result<()> {
    let pattern = image_pattern();
    let mut apiserver_changed = false;
    for pod in VERSIONED_PODS {
        let path = root.path(Path::new(MANIFESTS).join(format!("{pod}.yaml")));
        let text = fsx::read(&path)?;
        let upgraded =
            pattern.replace_all(&text, |c: &regex::Captures| format!("{}:{version}", &c[1]));
        if upgraded != text {
            fsx::write(&path, upgraded.as_bytes(), 0o600)?;
            println!("[upgrade/staticpods] Upgraded the manifest of {pod} to {version}");
            apiserver_changed |= pod == "kube-apiserver";
        }
    }
    if apiserver_changed || !controlplane::apiserver_running(root) {
        controlplane::start_apiserver(root, version)?;
    }
    controlplane::wait_ready(root, secure_port(root)?, Duration::from_secs(60))
}

/// The ClusterConfiguration document (YAML) with `kubernetesVersion` set to `version`.
fn with_kubernetes_version(document: &str, version: &KubeVersion) -> Result<String> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(document)?;
    doc["kubernetesVersion"] = version.to_string().into();
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// kubeadm's kubelet-config phase of an upgrade: the cluster's KubeletConfiguration to the node.
fn write_kubelet_config(root: &Root, client: &Client) -> Result<()> {
    let config = client.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")?;
    let kubelet = config["data"]["kubelet"]
        .as_str()
        .ok_or_else(|| anyhow!("the kubelet-config ConfigMap has no kubelet key"))?;
    fsx::write(&root.path(KUBELET_CONFIG), kubelet, 0o644)?;
    println!("[upgrade/kubelet-config] Wrote the kubelet's configuration to {KUBELET_CONFIG}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> KubeVersion {
        KubeVersion::parse(text).unwrap()
    }

    #[test]
    fn kubeadms_version_skew_policy() {
        let check = |cluster, kubeadm, target, force| {
            enforce_version_policies(&v(cluster), &v(kubeadm), &v(target), force)
                .map_err(|e| e.to_string())
        };
        assert!(check("v1.36.2", "v1.37.1", "v1.37.1", false).is_ok());
        assert!(check("v1.37.0", "v1.37.1", "v1.37.1", false).is_ok());
        let skip = check("v1.35.2", "v1.37.1", "v1.37.1", true).unwrap_err();
        assert!(
            skip.contains("can upgrade only 1 minor version at a time"),
            "{skip}"
        );
        let old_kubeadm = check("v1.36.2", "v1.36.2", "v1.37.1", true).unwrap_err();
        assert!(
            old_kubeadm.contains("at least one minor release higher than the kubeadm"),
            "{old_kubeadm}"
        );
        // A newer patch than kubeadm is skippable: refused unless forced.
        assert!(check("v1.37.0", "v1.37.1", "v1.37.2", false).is_err());
        assert!(check("v1.37.0", "v1.37.1", "v1.37.2", true).is_ok());
    }
}
