//! NodeConfigs for unit tests (provider none), shared with the integration tests. The PEM blocks
//! are placeholders: unit tests only check where and how they are written. Which master is first
//! is decided by the hostname (`cluster.initNode: node-1`).

use kubeboot_nodeconfig::{parse, NodeConfig};

pub const MASTER_YAML: &str = include_str!("../../tests/fixtures/master.yaml");
pub const WORKER_YAML: &str = include_str!("../../tests/fixtures/worker.yaml");

pub fn first_master() -> NodeConfig {
    parse(MASTER_YAML).unwrap()
}

pub fn worker() -> NodeConfig {
    parse(WORKER_YAML).unwrap()
}

/// Azure settings for unit tests of the Azure provider (public cloud).
pub fn azure_provider() -> kubeboot_nodeconfig::AzureProvider {
    kubeboot_nodeconfig::AzureProvider {
        subscription_id: "sub-1".into(),
        resource_group: "rg-demo".into(),
        location: "westeurope".into(),
        cloud_config_path: kubeboot_nodeconfig::default_cloud_config_path(),
        cloud: Default::default(),
        custom_cloud: None,
    }
}
