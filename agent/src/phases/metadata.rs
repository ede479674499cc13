//! `metadata`: learn what this machine is and decide what node it becomes.
//!
//! Inputs: the NodeConfig and the provider's metadata (Azure IMDS, or the hostname for `none`).
//! Outputs: `/var/lib/kubeboot/node-facts.json` (node name, kind, provider-id, address, labels,
//! taints). Done-marker: `phases/metadata.done`.
//!
//! First master rule: `cluster.initNode`, when set, names it (any provider). Otherwise on Azure it
//! is the master scale set's instance with ordinal 0 (the template turns overprovisioning off, so
//! ordinals start at 0); if that VM dies before init, reimaging it keeps ordinal 0 and it runs init
//! again, while the other masters keep waiting for the endpoint. `provider: none` requires initNode.

use std::collections::BTreeMap;

use anyhow::Result;
use kubeboot_nodeconfig::labels::POOL_LABEL;
use kubeboot_nodeconfig::{NodeConfig, ProviderName, Taint, TaintEffect};

use crate::context::Context;
use crate::error::Stop;
use crate::facts::{NodeFacts, NodeKind};
use crate::markers;
use crate::paths::FACTS_FILE;
use crate::phases::Phase;
use crate::provider::InstanceMetadata;

pub struct Metadata;

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// The taint kubeadm gives control-plane nodes (`node-role.kubernetes.io/control-plane:NoSchedule`).
pub fn control_plane_taint() -> Taint {
    Taint {
        key: "node-role.kubernetes.io/control-plane".into(),
        value: None,
        effect: TaintEffect::NoSchedule,
    }
}

/// Derives the node facts from the NodeConfig and what the provider reported.
pub fn derive(config: &NodeConfig, md: &InstanceMetadata) -> Result<NodeFacts, Stop> {
    let node_name = md.computer_name.to_lowercase();
    if !kubeboot_nodeconfig::labels::is_dns_subdomain(&node_name) {
        return Err(Stop::Unsupported(format!(
            "hostname {:?} is not a valid Kubernetes node name",
            md.computer_name
        )));
    }
    let mut labels = BTreeMap::from([(POOL_LABEL.to_string(), config.node.pool.clone())]);
    let mut azure = None;
    if let (Some(want), Some(got)) = (&config.provider.azure, &md.azure) {
        if !want
            .subscription_id
            .eq_ignore_ascii_case(&got.subscription_id)
        {
            return Err(Stop::BadConfig(format!(
                "provider.azure.subscriptionId: {:?} but this VM is in subscription {:?}",
                want.subscription_id, got.subscription_id
            )));
        }
        if !want
            .resource_group
            .eq_ignore_ascii_case(&got.resource_group)
        {
            return Err(Stop::BadConfig(format!(
                "provider.azure.resourceGroup: {:?} but this VM is in resource group {:?}",
                want.resource_group, got.resource_group
            )));
        }
        // cloud-provider-azure's convention: <location>-<zone> in zonal scale sets, else the
        // fault domain.
        let zone = if got.zone.is_empty() {
            got.platform_fault_domain.clone()
        } else {
            format!("{}-{}", got.location, got.zone)
        };
        labels.insert(ZONE_LABEL.into(), zone);
        labels.insert(REGION_LABEL.into(), got.location.clone());
        azure = Some(got.clone());
    }
    labels.extend(config.node.labels.clone());
    let kind =
        match (&config.cluster.init_node, &azure) {
            _ if !config.is_master() => NodeKind::Worker,
            (Some(init), _) if *init == node_name => NodeKind::FirstMaster,
            (Some(_), _) => NodeKind::ExtraMaster,
            (None, Some(az)) if az.ordinal == 0 => NodeKind::FirstMaster,
            (None, Some(_)) => NodeKind::ExtraMaster,
            (None, None) => return Err(Stop::BadConfig(
                "cluster.initNode: required when the provider cannot tell which master is first"
                    .into(),
            )),
        };
    let mut taints = Vec::new();
    if config.is_master() {
        taints.push(control_plane_taint());
    }
    taints.extend(config.node.taints.iter().cloned());
    Ok(NodeFacts {
        // cloud-provider-azure and cluster-autoscaler write and compare provider IDs with the
        // resource group in lower case ("for historical reasons"); a node registered with another
        // case is one the autoscaler cannot match to its scale set.
        provider_id: azure.as_ref().map(|az| {
            format!(
                "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/{}",
                az.subscription_id,
                az.resource_group.to_lowercase(),
                az.vm_scale_set,
                az.ordinal
            )
        }),
        provider: match config.provider.name {
            ProviderName::Azure => "azure",
            ProviderName::None => "none",
        }
        .into(),
        node_name,
        kind,
        address: md.address,
        labels,
        taints,
        azure,
    })
}

impl Phase for Metadata {
    fn name(&self) -> &'static str {
        "metadata"
    }
    fn description(&self) -> &'static str {
        "read the cloud's instance metadata; derive node name, kind, provider-id, labels and taints"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let md = ctx.waiting_on(|report| ctx.provider().fetch(report))?;
        let facts = derive(&ctx.config, &md)?;
        tracing::info!(
            phase = self.name(),
            "this node is {} ({}), provider-id {}",
            facts.node_name,
            facts.kind,
            facts
                .provider_id
                .as_deref()
                .unwrap_or("none (provider none)")
        );
        markers::write_json(&ctx.root, FACTS_FILE, &facts)
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        ctx.facts().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::AzureInstance;
    use crate::testing::{assert_idempotent, fixture, Sandbox};
    use kubeboot_nodeconfig::{AzureProvider, ProviderConfig};

    fn azure_config(ordinal_zero_decides: bool) -> NodeConfig {
        let mut c = fixture::first_master();
        c.provider = ProviderConfig {
            name: ProviderName::Azure,
            azure: Some(AzureProvider {
                subscription_id: "SUB-1".into(),
                resource_group: "rg-demo".into(),
                location: "westeurope".into(),
                cloud_config_path: "/etc/kubernetes/azure.json".into(),
                cloud: Default::default(),
                custom_cloud: None,
            }),
        };
        if ordinal_zero_decides {
            c.cluster.init_node = None;
        }
        c
    }

    fn imds(ordinal: u32, zone: &str, rg: &str) -> InstanceMetadata {
        InstanceMetadata {
            computer_name: format!("DEMO-MASTER00000{ordinal}"),
            address: Some("10.0.0.5".parse().unwrap()),
            azure: Some(AzureInstance {
                subscription_id: "sub-1".into(),
                resource_group: rg.into(),
                location: "westeurope".into(),
                vm_scale_set: "demo-master".into(),
                ordinal,
                zone: zone.into(),
                platform_fault_domain: "1".into(),
            }),
        }
    }

    #[test]
    fn azure_ordinal_zero_is_the_first_master() {
        let c = azure_config(true);
        let f = derive(&c, &imds(0, "2", "RG-Demo")).unwrap();
        assert_eq!(f.kind, NodeKind::FirstMaster);
        assert_eq!(f.node_name, "demo-master000000");
        assert_eq!(
            f.provider_id.as_deref(),
            Some("azure:///subscriptions/sub-1/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachineScaleSets/demo-master/virtualMachines/0")
        );
        assert_eq!(f.labels[ZONE_LABEL], "westeurope-2");
        assert_eq!(f.labels[POOL_LABEL], "master");
        assert_eq!(f.labels["workload"], "general");
        assert_eq!(
            f.taints,
            vec![
                control_plane_taint(),
                "dedicated=infra:NoSchedule".parse().unwrap()
            ]
        );
        assert_eq!(
            derive(&c, &imds(1, "", "rg-demo")).unwrap().kind,
            NodeKind::ExtraMaster
        );
        assert_eq!(
            derive(&c, &imds(1, "", "rg-demo")).unwrap().labels[ZONE_LABEL],
            "1"
        );
    }

    #[test]
    fn init_node_wins_over_the_ordinal() {
        let mut c = azure_config(false);
        c.cluster.init_node = Some("demo-master000001".into());
        assert_eq!(
            derive(&c, &imds(0, "", "rg-demo")).unwrap().kind,
            NodeKind::ExtraMaster
        );
        assert_eq!(
            derive(&c, &imds(1, "", "rg-demo")).unwrap().kind,
            NodeKind::FirstMaster
        );
    }

    #[test]
    fn a_vm_in_another_resource_group_is_refused() {
        let err = derive(&azure_config(true), &imds(0, "", "rg-other")).unwrap_err();
        assert!(
            matches!(&err, Stop::BadConfig(m) if m.contains("provider.azure.resourceGroup")),
            "{err}"
        );
    }

    #[test]
    fn no_cloud_uses_the_hostname_and_is_idempotent() {
        let sandbox = Sandbox::new("Node-1");
        let ctx = sandbox.context(fixture::first_master());
        assert_idempotent(&Metadata, &ctx);
        let facts = ctx.facts().unwrap();
        assert_eq!(
            (facts.node_name.as_str(), facts.kind),
            ("node-1", NodeKind::FirstMaster)
        );
        assert_eq!(facts.provider_id, None);
        let worker = Sandbox::new("node-7");
        let ctx = worker.context(fixture::worker());
        Metadata.run(&ctx).unwrap();
        assert_eq!(ctx.facts().unwrap().kind, NodeKind::Worker);
        assert!(ctx.facts().unwrap().taints == vec!["dedicated=infra:NoSchedule".parse().unwrap()]);
    }
}
