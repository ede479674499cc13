//! Every Azure resource name kubeboot creates, derived from the cluster name in ONE place: the ARM
//! template, azure.json and the user data all call these, so they can never disagree.
//!
//! Length limits: validation caps the cluster name at `MAX_CLUSTER_NAME` and pool names at
//! `MAX_POOL_NAME`, so every name below stays within Azure's limits (scale set 64, Linux computer
//! name prefix 58, DNS label 63, others 80).

use sha2::{Digest, Sha256};

pub const MAX_CLUSTER_NAME: usize = 32;
pub const MAX_POOL_NAME: usize = 20;
/// Port of the API server behind the load balancer.
pub const API_SERVER_PORT: u16 = 6443;
/// The Key Vault secret holding the kubeadm join token (`<id>.<secret>`): every pool reads it.
pub const JOIN_TOKEN_SECRET: &str = "bootstrap-token";
/// The Key Vault secret holding the shared PKI (JSON of `SharedPki`): masters only.
pub const PKI_SECRET: &str = "cluster-pki";

/// The names of one cluster's Azure resources.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    cluster: &'a str,
}

impl<'a> Names<'a> {
    pub fn new(cluster: &'a str) -> Self {
        Self { cluster }
    }

    /// The standard load balancer carries the cluster name itself: cloud-provider-azure's
    /// service controller looks the load balancer up by cluster name.
    pub fn load_balancer(&self) -> String {
        self.cluster.to_string()
    }

    pub fn vnet(&self) -> String {
        format!("{}-vnet", self.cluster)
    }

    pub fn subnet(&self, pool: &str) -> String {
        format!("{}-{pool}-subnet", self.cluster)
    }

    /// NSG of the master pool's subnet (API server and SSH open).
    pub fn master_nsg(&self) -> String {
        format!("{}-master-nsg", self.cluster)
    }

    /// NSG shared by all worker subnets; the cloud provider adds service rules to it.
    pub fn worker_nsg(&self) -> String {
        format!("{}-worker-nsg", self.cluster)
    }

    pub fn route_table(&self) -> String {
        format!("{}-rt", self.cluster)
    }

    pub fn scale_set(&self, pool: &str) -> String {
        format!("{}-{pool}", self.cluster)
    }

    /// Prefix of the scale set's instance host names (Azure appends six characters).
    pub fn computer_name_prefix(&self, pool: &str) -> String {
        format!("{}-{pool}-", self.cluster)
    }

    /// Public IP of the API server load balancer frontend.
    pub fn api_public_ip(&self) -> String {
        format!("{}-api-pip", self.cluster)
    }

    /// Children of the load balancer. All carry the cluster name as a prefix so none equals the
    /// cluster name itself: cloud-provider-azure owns the backend pool named exactly like the
    /// cluster (it puts every node in it), so the masters' pool must never be that one.
    pub fn lb_frontend(&self) -> String {
        format!("{}-api", self.cluster)
    }

    pub fn lb_master_pool(&self) -> String {
        format!("{}-masters", self.cluster)
    }

    /// Every scale set is in this pool; the outbound rule gives it internet access.
    pub fn lb_outbound_pool(&self) -> String {
        format!("{}-outbound", self.cluster)
    }

    pub fn lb_api_probe(&self) -> String {
        format!("{}-apiserver", self.cluster)
    }

    pub fn lb_api_rule(&self) -> String {
        format!("{}-apiserver", self.cluster)
    }

    pub fn lb_ssh_nat_pool(&self) -> String {
        format!("{}-ssh", self.cluster)
    }

    pub fn lb_outbound_rule(&self) -> String {
        format!("{}-outbound", self.cluster)
    }

    /// Default DNS label of the API server public IP: the cluster name plus a short hash of the
    /// resource group, so two resource groups can run a cluster of the same name in one region.
    /// Resource group names are case-insensitive in Azure, hence the lowercasing.
    pub fn default_dns_label(&self, resource_group: &str) -> String {
        let digest = Sha256::digest(format!(
            "{}/{}",
            resource_group.to_lowercase(),
            self.cluster
        ));
        format!("{}-{}", self.cluster, &hex::encode(digest)[..8])
    }

    /// The cluster's Key Vault. Vault names are global (`<name>.vault.azure.net`), so like the DNS
    /// label it carries a hash, here of subscription, resource group and cluster; the cluster name
    /// is cut to fit Azure's 24 characters, with `--` collapsed (Key Vault refuses it).
    pub fn key_vault(&self, subscription_id: &str, resource_group: &str) -> String {
        let digest = Sha256::digest(format!(
            "{}/{}/{}",
            subscription_id.to_lowercase(),
            resource_group.to_lowercase(),
            self.cluster
        ));
        let mut prefix = String::new();
        for c in self.cluster.chars().take(KEY_VAULT_CLUSTER_PREFIX) {
            if !(c == '-' && prefix.ends_with('-')) {
                prefix.push(c);
            }
        }
        format!(
            "{}-kv-{}",
            prefix.trim_end_matches('-'),
            &hex::encode(digest)[..8]
        )
    }
}

/// Key Vault names: 3-24 of `[a-zA-Z0-9-]`, starting with a letter, no `--` (Azure's rule).
pub const MAX_KEY_VAULT_NAME: usize = 24;
/// Characters of the cluster name kept in the Key Vault name: with `-kv-` and 8 hex of hash the
/// name stays within `MAX_KEY_VAULT_NAME`.
const KEY_VAULT_CLUSTER_PREFIX: usize = MAX_KEY_VAULT_NAME - "-kv-".len() - 8;

/// `<label>.<location>.cloudapp.azure.com:6443`: known before anything exists in Azure.
pub fn azure_api_endpoint(dns_label: &str, location: &str) -> String {
    format!("{dns_label}.{location}.cloudapp.azure.com:{API_SERVER_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_derived_from_the_cluster() {
        let n = Names::new("demo");
        assert_eq!(n.load_balancer(), "demo");
        assert_eq!(n.vnet(), "demo-vnet");
        assert_eq!(n.subnet("gpu"), "demo-gpu-subnet");
        assert_eq!(n.worker_nsg(), "demo-worker-nsg");
        assert_eq!(n.scale_set("general"), "demo-general");
    }

    #[test]
    fn key_vault_names_fit_azure_rules_and_depend_on_where_the_cluster_lives() {
        let sub = "66666666-7777-4888-9999-000000000000";
        let demo = Names::new("demo").key_vault(sub, "demo-rg");
        assert!(demo.starts_with("demo-kv-") && demo.len() == "demo-kv-".len() + 8);
        assert_eq!(
            demo,
            Names::new("demo").key_vault(&sub.to_uppercase(), "DEMO-RG")
        );
        assert_ne!(demo, Names::new("demo").key_vault(sub, "other-rg"));
        assert_ne!(
            demo,
            Names::new("demo").key_vault("77777777-7777-4888-9999-000000000000", "demo-rg")
        );
        // The longest cluster name, and one whose cut ends in `-` or holds `--`.
        for cluster in [
            "a".repeat(MAX_CLUSTER_NAME),
            "abcdefghijk-lmn".into(),
            "a--b".into(),
        ] {
            let name = Names::new(&cluster).key_vault(sub, "rg");
            assert!(
                name.len() <= MAX_KEY_VAULT_NAME && name.len() >= 3,
                "{name}"
            );
            assert!(
                name.starts_with(|c: char| c.is_ascii_alphabetic()),
                "{name}"
            );
            assert!(!name.contains("--"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{name}"
            );
        }
    }

    #[test]
    fn dns_label_is_deterministic_and_depends_on_the_resource_group() {
        let n = Names::new("demo");
        let a = n.default_dns_label("demo-rg");
        assert_eq!(a, n.default_dns_label("Demo-RG"));
        assert_ne!(a, n.default_dns_label("other-rg"));
        assert!(a.starts_with("demo-") && a.len() == "demo-".len() + 8);
        assert_eq!(
            azure_api_endpoint(&a, "westeurope"),
            format!("{a}.westeurope.cloudapp.azure.com:6443")
        );
    }
}
