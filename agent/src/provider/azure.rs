//! Azure: the Instance Metadata Service (IMDS), queried with the `Metadata: true` header, never
//! through a proxy; and the cluster secrets from the Key Vault the NodeConfig names, read as this
//! VM's system-assigned identity (`key_vault`). Host names and trust come from the NodeConfig's
//! Azure environment (`environment`): the link-local IMDS and the known clouds' vault suffixes,
//! or a custom cloud's endpoints. Waiting for IMDS or the vault lasts as long as it takes.

mod environment;
mod key_vault;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use kubeboot_nodeconfig::{check_token, AzureProvider, NodeConfig, Secret, SharedPki};
use serde::Deserialize;
use tracing::info;

pub use environment::Environment;
use key_vault::KeyVault;

use super::{
    http_error, inline_pki, inline_token, not_json, AzureInstance, InstanceMetadata, Provider,
    Report,
};
use crate::retry::{Backoff, Failure};

const INSTANCE_API_VERSION: &str = "2021-02-01";

/// Waiting for IMDS and the vault: a random start within two seconds (IMDS, the first thing a
/// booted node asks), then gaps up to half a minute, for as long as it takes (a VM is no use to
/// anyone until it gets there).
pub const AZURE_WAIT: Backoff = Backoff {
    first_delay: Duration::from_secs(2),
    initial: Duration::from_secs(1),
    max_delay: Duration::from_secs(30),
    factor: 2.0,
    max_attempts: u32::MAX,
    deadline: None,
};

/// Per request; a slower answer is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Azure {
    env: Environment,
    backoff: Backoff,
    timeout: Duration,
}

impl Azure {
    pub fn new(azure: &AzureProvider) -> Self {
        Self {
            env: Environment::of(azure),
            backoff: AZURE_WAIT,
            timeout: REQUEST_TIMEOUT,
        }
    }

    #[cfg(test)]
    fn with_imds(imds: String, backoff: Backoff, timeout: Duration) -> Self {
        Self {
            env: Environment {
                imds,
                ..Environment::of(&crate::testing::fixture::azure_provider())
            },
            backoff,
            timeout,
        }
    }

    /// Vault reads start at once: nodes booted together were spread by the metadata phase's
    /// random start and by the phases since (downloads), and a random start on every read would
    /// add seconds to every node's setup.
    fn key_vault(&self) -> Result<KeyVault<'_>> {
        KeyVault::new(
            &self.env,
            Backoff {
                first_delay: Duration::ZERO,
                ..self.backoff
            },
            self.timeout,
        )
    }
}

/// The parts of IMDS's `instance` document the agent uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instance {
    compute: Compute,
    network: Network,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Compute {
    /// `<scale set>_<instance id>` for a uniform scale-set instance.
    name: String,
    os_profile: OsProfile,
    vm_scale_set_name: String,
    subscription_id: String,
    resource_group_name: String,
    location: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    platform_fault_domain: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsProfile {
    computer_name: String,
}

#[derive(Debug, Deserialize)]
struct Network {
    interface: Vec<Interface>,
}

#[derive(Debug, Deserialize)]
struct Interface {
    ipv4: Ipv4,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ipv4 {
    ip_address: Vec<IpAddress>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpAddress {
    private_ip_address: IpAddr,
}

impl Provider for Azure {
    fn fetch(&self, report: Report) -> Result<InstanceMetadata> {
        let client = self.env.imds_client(self.timeout)?;
        let url = format!(
            "{}/metadata/instance?api-version={INSTANCE_API_VERSION}",
            self.env.imds
        );
        let instance: Instance = self
            .backoff
            .retry_reporting(
                |attempt| -> Result<Instance, Failure> {
                    info!(
                        phase = "metadata",
                        "querying Azure IMDS (attempt {attempt})"
                    );
                    let response = client
                        .get(&url)
                        .header("Metadata", "true")
                        .send()
                        .map_err(|e| http_error("IMDS", &e))?;
                    let status = response.status();
                    if !status.is_success() {
                        return Err(anyhow!("IMDS answered {status}").into());
                    }
                    let body = response.bytes().map_err(|e| http_error("IMDS", &e))?;
                    serde_json::from_slice(&body)
                        .map_err(|e| Failure::permanent(not_json("IMDS instance document", &e)))
                },
                report,
            )
            .context("reading Azure instance metadata")?;
        let compute = instance.compute;
        if compute.vm_scale_set_name.is_empty() {
            bail!("this VM ({}) is not a scale-set instance", compute.name);
        }
        let ordinal = compute
            .name
            .rsplit_once('_')
            .and_then(|(_, n)| n.parse().ok())
            .with_context(|| {
                format!(
                    "IMDS compute.name {:?} is not <scale set>_<instance id>",
                    compute.name
                )
            })?;
        let address = instance
            .network
            .interface
            .first()
            .and_then(|i| i.ipv4.ip_address.first())
            .map(|a| a.private_ip_address);
        Ok(InstanceMetadata {
            computer_name: compute.os_profile.computer_name,
            address,
            azure: Some(AzureInstance {
                subscription_id: compute.subscription_id,
                resource_group: compute.resource_group_name,
                location: compute.location,
                vm_scale_set: compute.vm_scale_set_name,
                ordinal,
                zone: compute.zone,
                platform_fault_domain: compute.platform_fault_domain,
            }),
        })
    }

    fn join_token(&self, config: &NodeConfig, report: Report) -> Result<Secret> {
        let Some(secrets) = &config.secrets else {
            return inline_token(config);
        };
        let vault = &secrets.key_vault;
        self.key_vault()?.get(
            &vault.name,
            &vault.join_token_secret,
            |value| {
                check_token(value.expose().trim())
                    .map_err(|m| anyhow!("the bootstrap token {m}"))?;
                Ok(Secret::new(value.expose().trim()))
            },
            report,
        )
    }

    fn publish_join_token(
        &self,
        config: &NodeConfig,
        token: &Secret,
        report: Report,
    ) -> Result<()> {
        let vault = &config
            .secrets
            .as_ref()
            .context(
                "no Key Vault in the NodeConfig (secrets.keyVault) to publish the join token to",
            )?
            .key_vault;
        self.key_vault()?
            .set(&vault.name, &vault.join_token_secret, token, report)
    }

    fn shared_pki(&self, config: &NodeConfig, report: Report) -> Result<SharedPki> {
        let Some(secrets) = &config.secrets else {
            return inline_pki(config);
        };
        let vault = &secrets.key_vault;
        let name = vault
            .pki_secret
            .as_deref()
            .context("secrets.keyVault.pkiSecret: required on a master")?;
        self.key_vault()?.get(
            &vault.name,
            name,
            |value| {
                let pki: SharedPki = serde_json::from_str(value.expose())
                    .map_err(|e| not_json("cluster PKI", &e))?;
                pki.validate(name)?;
                Ok(pki)
            },
            report,
        )
    }
}

#[cfg(test)]
mod mock_tests {
    //! Against a scripted HTTP server on loopback that, like IMDS, refuses requests without the
    //! `Metadata: true` header.
    use super::*;
    use http_body_util::Full;
    use hyper::body::Bytes;
    use kubeboot_test_kit::http::LoopbackServer;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const BODY: &str = r#"{
      "compute": {"name": "demo-master_2", "osProfile": {"computerName": "DEMO-MASTER000002"},
        "vmScaleSetName": "demo-master", "subscriptionId": "sub-1", "resourceGroupName": "rg-demo",
        "location": "westeurope", "zone": "3", "platformFaultDomain": "0", "vmSize": "Standard_D2s_v5"},
      "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": "10.0.0.6"}]}}]}
    }"#;

    struct Reply {
        delay: Duration,
        status: u16,
    }

    /// Serves the replies in order (the last one repeats); returns the server (stopped when
    /// dropped) and a request counter.
    fn serve(replies: Vec<Reply>) -> (LoopbackServer, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let replies = Arc::new(replies);
        let server = LoopbackServer::start(None, move |request, _| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let replies = replies.clone();
            let has_header = request
                .headers()
                .get("metadata")
                .is_some_and(|v| v.as_bytes() == b"true");
            async move { answer(has_header, &replies[n.min(replies.len() - 1)]).await }
        });
        (server, count)
    }

    async fn answer(has_header: bool, reply: &Reply) -> hyper::Response<Full<Bytes>> {
        tokio::time::sleep(reply.delay).await;
        let (status, body) = if !has_header {
            (
                400,
                r#"{"error":"Bad request. Required metadata header not specified"}"#,
            )
        } else if reply.status == 200 {
            (200, BODY)
        } else {
            (reply.status, "{}")
        };
        hyper::Response::builder()
            .status(status)
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    }

    fn backoff(max_attempts: u32) -> Backoff {
        Backoff {
            first_delay: Duration::ZERO,
            initial: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            factor: 2.0,
            max_attempts,
            deadline: Some(Duration::from_secs(20)),
        }
    }

    fn ok(delay_ms: u64) -> Reply {
        Reply {
            delay: Duration::from_millis(delay_ms),
            status: 200,
        }
    }

    fn error(status: u16) -> Reply {
        Reply {
            delay: Duration::ZERO,
            status,
        }
    }

    #[test]
    fn normal_answer() {
        let (server, count) = serve(vec![ok(0)]);
        let md = Azure::with_imds(server.url(), backoff(1), Duration::from_secs(5))
            .fetch(&|_| {})
            .unwrap();
        assert_eq!(md.computer_name, "DEMO-MASTER000002");
        assert_eq!(md.address, Some("10.0.0.6".parse().unwrap()));
        let az = md.azure.unwrap();
        assert_eq!(
            (az.ordinal, az.zone.as_str(), az.vm_scale_set.as_str()),
            (2, "3", "demo-master")
        );
        assert_eq!(az.resource_group, "rg-demo");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn slow_answer_within_the_timeout() {
        let (server, count) = serve(vec![ok(300)]);
        let md = Azure::with_imds(server.url(), backoff(1), Duration::from_secs(5)).fetch(&|_| {});
        assert!(md.is_ok(), "{md:?}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn too_slow_answer_times_out_and_is_retried() {
        let (server, count) = serve(vec![ok(1500), ok(0)]);
        let md =
            Azure::with_imds(server.url(), backoff(3), Duration::from_millis(400)).fetch(&|_| {});
        assert!(md.is_ok(), "{md:?}");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn server_errors_then_success() {
        let (server, count) = serve(vec![error(500), error(500), ok(0)]);
        let md = Azure::with_imds(server.url(), backoff(5), Duration::from_secs(5)).fetch(&|_| {});
        assert!(md.is_ok(), "{md:?}");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn server_errors_with_retries_off_fail() {
        let (server, count) = serve(vec![error(500)]);
        let err = Azure::with_imds(server.url(), backoff(1), Duration::from_secs(5))
            .fetch(&|_| {})
            .unwrap_err();
        assert!(format!("{err:#}").contains("500"), "{err:#}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn mock_rejects_requests_without_the_metadata_header() {
        let (server, _) = serve(vec![ok(0)]);
        let plain = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/metadata/instance", server.url()))
            .send()
            .unwrap();
        assert_eq!(plain.status().as_u16(), 400);
    }
}
