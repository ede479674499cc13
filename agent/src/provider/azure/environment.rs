//! Azure environments: where Key Vault lives, which audience its tokens name, where IMDS answers
//! and which certificates the agent trusts for them. The known clouds' values are those Azure
//! PowerShell's and go-autorest's environment tables give (`AzureKeyVaultDnsSuffix`,
//! `AzureKeyVaultServiceEndpointResourceId`); a `Custom` cloud (Azure Stack Hub, or test fakes)
//! brings its own from the NodeConfig.

use std::time::Duration;

use anyhow::{Context as _, Result};
use kubeboot_nodeconfig::{AzureCloud, AzureProvider};

/// IMDS on every Azure VM: link-local, plain HTTP, never through a proxy.
pub const LINK_LOCAL_IMDS: &str = "http://169.254.169.254";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// IMDS base URL, without a trailing slash.
    pub imds: String,
    /// A vault is `https://<name>.<suffix>`.
    pub key_vault_dns_suffix: String,
    /// The `resource` (audience) of tokens Key Vault accepts.
    pub key_vault_resource: String,
    /// PEM certificates trusted in addition to the system roots.
    pub ca_bundle: Option<String>,
}

impl Environment {
    pub fn of(azure: &AzureProvider) -> Self {
        let known = |suffix: &str| Self {
            imds: LINK_LOCAL_IMDS.into(),
            key_vault_dns_suffix: suffix.into(),
            key_vault_resource: format!("https://{suffix}"),
            ca_bundle: None,
        };
        match (azure.cloud, &azure.custom_cloud) {
            (AzureCloud::AzurePublicCloud, _) => known("vault.azure.net"),
            (AzureCloud::AzureUsGovernmentCloud, _) => known("vault.usgovcloudapi.net"),
            (AzureCloud::AzureChinaCloud, _) => known("vault.azure.cn"),
            (AzureCloud::Custom, Some(custom)) => Self {
                imds: custom
                    .imds_endpoint
                    .as_deref()
                    .unwrap_or(LINK_LOCAL_IMDS)
                    .trim_end_matches('/')
                    .into(),
                key_vault_dns_suffix: custom.key_vault_dns_suffix.clone(),
                key_vault_resource: custom.key_vault_resource.clone(),
                ca_bundle: custom.ca_bundle.clone(),
            },
            // Validation requires customCloud with Custom; without it, the public cloud's values
            // are the only ones that can be right.
            (AzureCloud::Custom, None) => known("vault.azure.net"),
        }
    }

    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.{}", self.key_vault_dns_suffix)
    }

    /// The client for IMDS: no proxy (it is link-local), short timeouts.
    pub fn imds_client(&self, timeout: Duration) -> Result<reqwest::blocking::Client> {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .context("building the IMDS HTTP client")
    }

    /// The HTTPS client for Key Vault: system roots plus the environment's CA bundle; the usual
    /// proxy variables apply (a node may reach Azure only through a proxy).
    pub fn https_client(&self, timeout: Duration) -> Result<reqwest::blocking::Client> {
        let mut builder = reqwest::blocking::Client::builder()
            .https_only(true)
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(pem) = &self.ca_bundle {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .ok()
                .filter(|certs| !certs.is_empty())
                .context("provider.azure.customCloud.caBundle holds no PEM certificate")?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .context("building the Key Vault HTTPS client")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeboot_nodeconfig::CustomCloud;

    fn azure(cloud: AzureCloud, custom_cloud: Option<CustomCloud>) -> AzureProvider {
        AzureProvider {
            subscription_id: "sub".into(),
            resource_group: "rg".into(),
            location: "loc".into(),
            cloud_config_path: "/etc/kubernetes/azure.json".into(),
            cloud,
            custom_cloud,
        }
    }

    #[test]
    fn known_clouds_have_their_vault_endpoints() {
        for (cloud, suffix) in [
            (AzureCloud::AzurePublicCloud, "vault.azure.net"),
            (
                AzureCloud::AzureUsGovernmentCloud,
                "vault.usgovcloudapi.net",
            ),
            (AzureCloud::AzureChinaCloud, "vault.azure.cn"),
        ] {
            let env = Environment::of(&azure(cloud, None));
            assert_eq!(env.vault_url("kv1"), format!("https://kv1.{suffix}"));
            assert_eq!(env.key_vault_resource, format!("https://{suffix}"));
            assert_eq!(env.imds, LINK_LOCAL_IMDS);
        }
    }

    #[test]
    fn a_custom_cloud_brings_its_endpoints_and_trust() {
        let env = Environment::of(&azure(
            AzureCloud::Custom,
            Some(CustomCloud {
                key_vault_dns_suffix: "vault.stack.test".into(),
                key_vault_resource: "https://vault.stack.test".into(),
                imds_endpoint: Some("http://127.0.0.1:9/".into()),
                ca_bundle: Some("not PEM".into()),
            }),
        ));
        assert_eq!(env.vault_url("kv1"), "https://kv1.vault.stack.test");
        assert_eq!(env.imds, "http://127.0.0.1:9");
        assert!(env.https_client(Duration::from_secs(1)).is_err());
    }
}
