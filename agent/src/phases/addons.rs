//! `addons` (first master): the CNI and, on Azure, cloud-provider-azure and (when a pool
//! autoscales) cluster-autoscaler, applied idempotently.
//!
//! Inputs: the NodeConfig (cluster name, pod CIDR, CNI choice, provider, autoscaler), the manifests embedded
//! from `agent/manifests/`, `/etc/kubernetes/admin.conf`. Outputs: the rendered manifests in
//! `/etc/kubeboot/addons/` (exactly those, stale files removed) and
//! `kubectl apply --server-side --force-conflicts --field-manager=kubeboot -f` of that directory,
//! which converges no matter how often it runs. Done-marker: `phases/addons.done`.

use anyhow::Result;
use kubeboot_nodeconfig::{Cni, NodeConfig, ProviderName};

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::paths;
use crate::phases::Phase;

pub struct Addons;
pub const FLANNEL_VERSION: &str = "v0.27.4";
pub const FLANNEL_CNI_PLUGIN_VERSION: &str = "v1.8.0-flannel1";

/// The manifests this cluster gets, as (file name, rendered text), in apply order.
pub fn render(config: &NodeConfig) -> Result<Vec<(&'static str, String)>> {
    let mut vars = tera::Context::new();
    vars.insert("cluster_name", &config.cluster.name);
    vars.insert("pod_cidr", &config.cluster.pod_cidr.to_string());
    vars.insert("flannel_version", FLANNEL_VERSION);
    vars.insert("flannel_cni_plugin_version", FLANNEL_CNI_PLUGIN_VERSION);
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
    let mut templates: Vec<(&'static str, &'static str)> = Vec::new();
    if let Some(azure) = &config.provider.azure {
        vars.insert("cloud_config_path", &azure.cloud_config_path);
        templates.push((
            "10-cloud-controller-manager.yaml",
            include_str!("../../manifests/cloud-controller-manager.yaml"),
        ));
        templates.push((
            "11-cloud-node-manager.yaml",
            include_str!("../../manifests/cloud-node-manager.yaml"),
        ));
        if config.addons.cluster_autoscaler {
            templates.push((
                "12-cluster-autoscaler.yaml",
                include_str!("../../manifests/cluster-autoscaler.yaml"),
            ));
        }
    }
    if config.addons.cni == Cni::Flannel {
        templates.push((
            "20-flannel.yaml",
            include_str!("../../manifests/flannel.yaml"),
        ));
    }
    templates
        .into_iter()
        .map(|(name, text)| Ok((name, tera::Tera::one_off(text, &vars, false)?)))
        .collect()
}

impl Phase for Addons {
    fn name(&self) -> &'static str {
        "addons"
    }
    fn description(&self) -> &'static str {
        "apply the CNI and (on Azure) cloud-provider-azure and cluster-autoscaler with server-side apply"
    }
    fn applies_to(&self, ctx: &Context) -> Result<bool> {
        Ok(ctx.config.addons.cni != Cni::None || ctx.config.provider.name == ProviderName::Azure)
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let manifests = render(&ctx.config)?;
        ctx.root.create_dir_with_mode(paths::ADDONS_DIR, 0o755)?;
        let node_path = |name: &str| format!("{}/{name}", paths::ADDONS_DIR);
        for path in ctx.root.list_dir(paths::ADDONS_DIR)? {
            if !manifests.iter().any(|(name, _)| node_path(name) == path) {
                ctx.root.remove_file(&path)?;
            }
        }
        for (name, text) in &manifests {
            ctx.root
                .write_if_changed(node_path(name), text.as_bytes(), 0o644)?;
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
    use kubeboot_nodeconfig::{AzureProvider, ProviderConfig};

    #[test]
    fn renders_flannel_with_the_pod_cidr() {
        let manifests = render(&fixture::first_master()).unwrap();
        assert_eq!(manifests.len(), 1);
        assert!(manifests[0].1.contains(r#""Network": "10.244.0.0/16""#));
        for (_, text) in &manifests {
            for doc in serde_yaml_ng::Deserializer::from_str(text) {
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
        let manifests = render(&config).unwrap();
        let names: Vec<_> = manifests.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "10-cloud-controller-manager.yaml",
                "11-cloud-node-manager.yaml",
                "20-flannel.yaml"
            ]
        );
        assert!(manifests[0].1.contains("--cluster-name=demo"));
        assert!(manifests[0]
            .1
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

    /// Every manifest, as rendered for each minor kubeboot knows, against that minor's API (field
    /// trees from the upstream OpenAPI documents, as the stand-in API server checks them): no unknown
    /// field, no value of the wrong type, no required field missing.
    #[test]
    fn every_manifest_matches_the_api_of_every_known_minor() {
        use kubeboot_nodeconfig::releases::RELEASES;
        use kubeboot_stand_ins::apiserver::api_schema;
        for release in RELEASES {
            assert!(
                api_schema::minors().contains(&release.minor),
                "no API field trees for 1.{} in tests/data/upstream/k8s-api",
                release.minor
            );
            let mut config = fixture::first_master();
            config.provider = ProviderConfig {
                name: ProviderName::Azure,
                azure: Some(fixture::azure_provider()),
            };
            config.cluster.kubernetes_version = format!("v1.{}.0", release.minor).parse().unwrap();
            config.addons.cluster_autoscaler = true;
            for (name, text) in render(&config).unwrap() {
                for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                    let mut object: serde_json::Value =
                        serde::Deserialize::deserialize(doc).unwrap();
                    let found = api_schema::check(release.minor, &mut object, false)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(
                        found.unknown.is_empty() && found.invalid.is_empty(),
                        "{name} ({} {}) in 1.{}: {found:?}",
                        object["kind"],
                        object["metadata"]["name"],
                        release.minor
                    );
                }
            }
        }
    }

    #[test]
    fn the_autoscaler_matches_the_cluster_minor_and_discovers_its_pools_by_tag() {
        let mut config = fixture::first_master();
        config.provider = ProviderConfig {
            name: ProviderName::Azure,
            azure: Some(fixture::azure_provider()),
        };
        let without: Vec<_> = render(&config)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(!without.contains(&"12-cluster-autoscaler.yaml"));
        config.addons.cluster_autoscaler = true;
        let manifests = render(&config).unwrap();
        let (_, text) = manifests
            .iter()
            .find(|(n, _)| *n == "12-cluster-autoscaler.yaml")
            .unwrap();
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
        assert!(text.contains("--cloud-config=/etc/kubernetes/azure.json\n"));
    }

    #[test]
    fn nothing_to_apply_without_cni_or_cloud() {
        let mut config = fixture::first_master();
        config.addons.cni = Cni::None;
        let sandbox = Sandbox::new("node-1");
        assert!(!Addons.applies_to(&sandbox.context(config)).unwrap());
    }
}
