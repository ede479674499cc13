//! `addons` (first master): the CNI and, on Azure, cloud-provider-azure, the Azure Disk CSI driver
//! with the default StorageClass, and (when a pool autoscales) cluster-autoscaler, applied
//! idempotently.
//!
//! Inputs: the NodeConfig (cluster name, pod CIDR, CNI choice, provider, autoscaler, disk
//! settings), the node's cloud config (`azure.json`, which the autoscaler and the disk driver read
//! from a Secret), the manifests embedded
//! from `agent/manifests/`, `/etc/kubernetes/admin.conf`. Outputs: the rendered manifests in
//! `/etc/kubeboot/addons/` (exactly those, stale files removed) and
//! `kubectl apply --server-side --force-conflicts --field-manager=kubeboot -f` of that directory,
//! which converges no matter how often it runs. Done-marker: `phases/addons.done`.

use anyhow::{Context as _, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kubeboot_nodeconfig::{Cni, NodeConfig, ProviderName};

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::paths;
use crate::phases::Phase;

pub struct Addons;
pub const FLANNEL_VERSION: &str = "v0.27.4";
pub const FLANNEL_CNI_PLUGIN_VERSION: &str = "v1.8.0-flannel1";
/// The Azure Disk CSI driver's release (its sidecars are pinned in the manifest, as upstream's
/// release pins them); it supports every Kubernetes minor kubeboot knows.
pub const AZURE_DISK_CSI_VERSION: &str = "v1.36.0";

/// One rendered manifest file of `/etc/kubeboot/addons/`.
pub struct Manifest {
    pub name: &'static str,
    pub text: String,
    /// 0600 for a file holding a Secret, else 0644.
    pub mode: u32,
}

/// The manifests this cluster gets, in apply order. `cloud_config` is the node's `azure.json`,
/// which cluster-autoscaler and the disk driver read from a Secret (needed only with them).
pub fn render(config: &NodeConfig, cloud_config: Option<&[u8]>) -> Result<Vec<Manifest>> {
    let mut vars = tera::Context::new();
    vars.insert("cluster_name", &config.cluster.name);
    vars.insert("pod_cidr", &config.cluster.pod_cidr.to_string());
    vars.insert("flannel_version", FLANNEL_VERSION);
    vars.insert("flannel_cni_plugin_version", FLANNEL_CNI_PLUGIN_VERSION);
    vars.insert("azure_disk_csi_version", AZURE_DISK_CSI_VERSION);
    // cloud-provider-azure is released per Kubernetes minor; its minor must match the cluster's.
    let release = config
        .cluster
        .kubernetes_version
        .release()
        .map_err(anyhow::Error::msg)?;
    vars.insert(
        "cloud_provider_azure_version",
        release.cloud_provider_azure.tag,
    );
    vars.insert("cluster_autoscaler_version", release.cluster_autoscaler);
    let mut templates: Vec<(&'static str, &'static str, u32)> = Vec::new();
    if let Some(azure) = &config.provider.azure {
        vars.insert("cloud_config_path", &azure.cloud_config_path);
        templates.push((
            "10-cloud-controller-manager.yaml",
            include_str!("../../manifests/cloud-controller-manager.yaml"),
            0o644,
        ));
        templates.push((
            "11-cloud-node-manager.yaml",
            include_str!("../../manifests/cloud-node-manager.yaml"),
            0o644,
        ));
        // cluster-autoscaler and the disk driver read the cloud config from one Secret (the
        // autoscaler's image runs as non-root and could not read the 0600 host file).
        if config.addons.cluster_autoscaler || config.addons.azure_disk.is_some() {
            let cloud_config = cloud_config.with_context(|| {
                format!(
                    "{}: missing; the cluster's addons read it from a Secret",
                    azure.cloud_config_path
                )
            })?;
            vars.insert("cloud_config_base64", &B64.encode(cloud_config));
            templates.push((
                "12-azure-cloud-provider-secret.yaml",
                include_str!("../../manifests/azure-cloud-provider-secret.yaml"),
                0o600,
            ));
        }
        if config.addons.cluster_autoscaler {
            templates.push((
                "13-cluster-autoscaler.yaml",
                include_str!("../../manifests/cluster-autoscaler.yaml"),
                0o644,
            ));
        }
        if let Some(disk) = &config.addons.azure_disk {
            vars.insert("disk_sku_name", disk.sku_name.as_str());
            vars.insert("disk_zones", &disk.zones);
            templates.push((
                "14-azuredisk-csi.yaml",
                include_str!("../../manifests/azuredisk-csi.yaml"),
                0o644,
            ));
        }
    }
    if config.addons.cni == Cni::Flannel {
        templates.push((
            "20-flannel.yaml",
            include_str!("../../manifests/flannel.yaml"),
            0o644,
        ));
    }
    templates
        .into_iter()
        .map(|(name, text, mode)| {
            Ok(Manifest {
                name,
                text: tera::Tera::one_off(text, &vars, false)?,
                mode,
            })
        })
        .collect()
}

impl Phase for Addons {
    fn name(&self) -> &'static str {
        "addons"
    }
    fn description(&self) -> &'static str {
        "apply the CNI and (on Azure) cloud-provider-azure, the Azure Disk CSI driver and cluster-autoscaler with server-side apply"
    }
    fn applies_to(&self, ctx: &Context) -> Result<bool> {
        Ok(ctx.config.addons.cni != Cni::None || ctx.config.provider.name == ProviderName::Azure)
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let addons = &ctx.config.addons;
        let needs_cloud_config = addons.cluster_autoscaler || addons.azure_disk.is_some();
        let cloud_config = match &ctx.config.provider.azure {
            Some(azure) if needs_cloud_config => {
                let path = ctx.root.path(&azure.cloud_config_path);
                Some(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
            }
            _ => None,
        };
        let manifests = render(&ctx.config, cloud_config.as_deref())?;
        ctx.root.create_dir_with_mode(paths::ADDONS_DIR, 0o755)?;
        let node_path = |name: &str| format!("{}/{name}", paths::ADDONS_DIR);
        for path in ctx.root.list_dir(paths::ADDONS_DIR)? {
            if !manifests.iter().any(|m| node_path(m.name) == path) {
                ctx.root.remove_file(&path)?;
            }
        }
        for m in &manifests {
            ctx.root
                .write_if_changed(node_path(m.name), m.text.as_bytes(), m.mode)?;
        }
        let (admin_conf, addons_dir) = (
            ctx.arg_path(paths::ADMIN_CONF),
            ctx.arg_path(paths::ADDONS_DIR),
        );
        ctx.exec(&Cmd::new(
            Program::Kube("kubectl"),
            [
                "--kubeconfig",
                admin_conf.as_str(),
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=kubeboot",
                "-f",
                addons_dir.as_str(),
            ],
            deadline::KUBECTL_APPLY,
        ))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx;
    use crate::testing::{assert_idempotent, fixture, Sandbox};
    use kubeboot_nodeconfig::{AzureDisk, AzureProvider, DiskSku, ProviderConfig};

    /// The first master's NodeConfig on Azure (public cloud).
    fn azure_first_master() -> NodeConfig {
        let mut config = fixture::first_master();
        config.provider = ProviderConfig {
            name: ProviderName::Azure,
            azure: Some(fixture::azure_provider()),
        };
        config
    }

    #[test]
    fn renders_flannel_with_the_pod_cidr() {
        let manifests = render(&fixture::first_master(), None).unwrap();
        assert_eq!(manifests.len(), 1);
        assert!(manifests[0].text.contains(r#""Network": "10.244.0.0/16""#));
        for m in &manifests {
            for doc in serde_yaml_ng::Deserializer::from_str(&m.text) {
                let v = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc).unwrap();
                assert!(v.get("kind").is_some() && v.get("apiVersion").is_some());
            }
        }
    }

    #[test]
    fn azure_adds_the_cloud_provider_and_is_idempotent() {
        let mut config = fixture::first_master();
        config.provider = ProviderConfig {
            name: ProviderName::Azure,
            azure: Some(AzureProvider {
                subscription_id: "sub".into(),
                resource_group: "rg".into(),
                location: "westeurope".into(),
                cloud_config_path: "/etc/kubernetes/azure.json".into(),
                cloud: Default::default(),
                custom_cloud: None,
            }),
        };
        let manifests = render(&config, None).unwrap();
        let names: Vec<_> = manifests.iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "10-cloud-controller-manager.yaml",
                "11-cloud-node-manager.yaml",
                "20-flannel.yaml"
            ]
        );
        assert!(manifests[0].text.contains("--cluster-name=demo"));
        assert!(manifests[0]
            .text
            .contains("oss/v2/kubernetes/azure-cloud-controller-manager:v1.35.5"));
        let sandbox = Sandbox::new("node-1");
        let ctx = sandbox.context(config);
        fsx::write_atomic(
            &sandbox
                .root()
                .path(format!("{}/stale.yaml", paths::ADDONS_DIR)),
            b"x",
            0o644,
        )
        .unwrap();
        assert_idempotent(&Addons, &ctx);
        assert_eq!(
            std::fs::read_dir(sandbox.root().path(paths::ADDONS_DIR))
                .unwrap()
                .count(),
            3
        );
    }

    #[test]
    fn the_autoscaler_matches_the_cluster_minor_and_discovers_its_pools_by_tag() {
        let mut config = azure_first_master();
        let without: Vec<_> = render(&config, None)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert!(!without.contains(&"13-cluster-autoscaler.yaml"));
        config.addons.cluster_autoscaler = true;
        let manifests = render(&config, Some(b"{}")).unwrap();
        assert!(manifests
            .iter()
            .any(|m| m.name == "12-azure-cloud-provider-secret.yaml"));
        let text = &manifests
            .iter()
            .find(|m| m.name == "13-cluster-autoscaler.yaml")
            .unwrap()
            .text;
        let tag = config
            .cluster
            .kubernetes_version
            .release()
            .unwrap()
            .cluster_autoscaler;
        assert!(text.contains(&format!(
            "registry.k8s.io/autoscaling/cluster-autoscaler:{tag}"
        )));
        assert!(text.contains(
            "--node-group-auto-discovery=label:cluster-autoscaler-enabled=true,cluster-autoscaler-name=demo\n"
        ));
        // From the Secret, mounted: the image's non-root user cannot read the 0600 host file.
        assert!(text.contains("--cloud-config=/etc/cluster-autoscaler/cloud-config\n"));
        assert!(text.contains("secretName: azure-cloud-provider"));
        assert!(!text.contains("/etc/kubernetes/azure.json"));
    }

    /// The documents of one rendered manifest, as JSON.
    fn documents(text: &str) -> Vec<serde_json::Value> {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect()
    }

    #[test]
    fn the_disk_driver_gets_the_cloud_config_as_a_secret_and_a_default_storage_class() {
        let mut config = azure_first_master();
        config.addons.azure_disk = Some(AzureDisk {
            sku_name: DiskSku::PremiumLrs,
            zones: vec!["westeurope-1".into(), "westeurope-3".into()],
        });
        let error = render(&config, None).err().unwrap().to_string();
        assert!(
            error.contains("/etc/kubernetes/azure.json: missing"),
            "{error}"
        );
        let manifests = render(&config, Some(br#"{"vmType": "vmss"}"#)).unwrap();
        let by_name = |name: &str| manifests.iter().find(|m| m.name == name).unwrap();
        let secret = by_name("12-azure-cloud-provider-secret.yaml");
        assert_eq!(secret.mode, 0o600);
        let secret = &documents(&secret.text)[0];
        assert_eq!(secret["metadata"]["name"], "azure-cloud-provider");
        assert_eq!(
            B64.decode(secret["data"]["cloud-config"].as_str().unwrap())
                .unwrap(),
            br#"{"vmType": "vmss"}"#
        );
        let driver = by_name("14-azuredisk-csi.yaml");
        assert_eq!(driver.mode, 0o644);
        let docs = documents(&driver.text);
        let class = docs.iter().find(|d| d["kind"] == "StorageClass").unwrap();
        assert_eq!(
            class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
        assert_eq!(class["parameters"]["skuName"], "Premium_LRS");
        assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
        assert_eq!(class["allowVolumeExpansion"], true);
        assert_eq!(
            class["allowedTopologies"][0]["matchLabelExpressions"][0],
            serde_json::json!({"key": "topology.disk.csi.azure.com/zone", "values": ["westeurope-1", "westeurope-3"]})
        );
        let driver_image = format!(
            "mcr.microsoft.com/oss/v2/kubernetes-csi/azuredisk-csi:{AZURE_DISK_CSI_VERSION}"
        );
        let driver_containers = docs
            .iter()
            .flat_map(|d| {
                d["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|c| c["image"] == driver_image.as_str())
            .count();
        assert_eq!(driver_containers, 2, "controller and node run the driver");
        // Regional pools: no topology restriction.
        config.addons.azure_disk.as_mut().unwrap().zones.clear();
        let manifests = render(&config, Some(b"{}")).unwrap();
        let text = &manifests
            .iter()
            .find(|m| m.name == "14-azuredisk-csi.yaml")
            .unwrap()
            .text;
        let class = documents(text)
            .into_iter()
            .find(|d| d["kind"] == "StorageClass")
            .unwrap();
        assert!(class.get("allowedTopologies").is_none(), "{class}");
    }

    #[test]
    fn nothing_to_apply_without_cni_or_cloud() {
        let mut config = fixture::first_master();
        config.addons.cni = Cni::None;
        let sandbox = Sandbox::new("node-1");
        assert!(!Addons.applies_to(&sandbox.context(config)).unwrap());
    }
}
