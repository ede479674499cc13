//! Azure: the Instance Metadata Service (IMDS) on the link-local address, queried with the
//! `Metadata: true` header, never through a proxy, with bounded retries. The URL is fixed in the
//! product; only test builds point it at a local mock server.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use tracing::info;

use super::{AzureInstance, InstanceMetadata, MetadataProvider};
use crate::retry::Backoff;

const IMDS_INSTANCE_URL: &str = "http://169.254.169.254/metadata/instance?api-version=2021-02-01";

pub struct Azure {
    url: String,
    backoff: Backoff,
    timeout: Duration,
}

impl Azure {
    pub fn new() -> Self {
        Self {
            url: IMDS_INSTANCE_URL.to_string(),
            // IMDS can be briefly unavailable right after boot; two minutes covers that.
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                factor: 2.0,
                jitter: 0.3,
                max_attempts: 20,
                deadline: Duration::from_secs(120),
            },
            timeout: Duration::from_secs(5),
        }
    }

    #[cfg(test)]
    fn with_url(url: String, backoff: Backoff, timeout: Duration) -> Self {
        Self {
            url,
            backoff,
            timeout,
        }
    }
}

impl Default for Azure {
    fn default() -> Self {
        Self::new()
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

impl MetadataProvider for Azure {
    fn fetch(&self) -> Result<InstanceMetadata> {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .build()
            .context("building the IMDS HTTP client")?;
        let instance: Instance = self
            .backoff
            .retry(|attempt| {
                info!(
                    phase = "metadata",
                    "querying Azure IMDS (attempt {attempt})"
                );
                let response = client.get(&self.url).header("Metadata", "true").send()?;
                let status = response.status();
                if !status.is_success() {
                    bail!("IMDS answered {status}");
                }
                Ok(response.json()?)
            })
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
}

#[cfg(test)]
mod mock_tests {
    //! Against a scripted HTTP server on loopback that, like IMDS, refuses requests without the
    //! `Metadata: true` header.
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
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

    /// Serves the replies in order (the last one repeats); returns the URL and a request counter.
    fn serve(replies: Vec<Reply>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/metadata/instance?api-version=2021-02-01",
            listener.local_addr().unwrap()
        );
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let replies = Arc::new(replies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let replies = replies.clone();
                // One thread per connection: a slow reply must not hold up the retry.
                std::thread::spawn(move || answer(stream, &replies[n.min(replies.len() - 1)]));
            }
        });
        (url, count)
    }

    fn answer(mut stream: std::net::TcpStream, reply: &Reply) {
        let mut has_header = false;
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            has_header |= line.to_ascii_lowercase().trim() == "metadata: true";
            line.clear();
        }
        std::thread::sleep(reply.delay);
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
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    fn backoff(max_attempts: u32) -> Backoff {
        Backoff {
            initial: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            factor: 2.0,
            jitter: 0.2,
            max_attempts,
            deadline: Duration::from_secs(20),
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
        let (url, count) = serve(vec![ok(0)]);
        let md = Azure::with_url(url, backoff(1), Duration::from_secs(5))
            .fetch()
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
        let (url, count) = serve(vec![ok(300)]);
        let md = Azure::with_url(url, backoff(1), Duration::from_secs(5)).fetch();
        assert!(md.is_ok(), "{md:?}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn too_slow_answer_times_out_and_is_retried() {
        let (url, count) = serve(vec![ok(1500), ok(0)]);
        let md = Azure::with_url(url, backoff(3), Duration::from_millis(400)).fetch();
        assert!(md.is_ok(), "{md:?}");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn server_errors_then_success() {
        let (url, count) = serve(vec![error(500), error(500), ok(0)]);
        let md = Azure::with_url(url, backoff(5), Duration::from_secs(5)).fetch();
        assert!(md.is_ok(), "{md:?}");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn server_errors_with_retries_off_fail() {
        let (url, count) = serve(vec![error(500)]);
        let err = Azure::with_url(url, backoff(1), Duration::from_secs(5))
            .fetch()
            .unwrap_err();
        assert!(format!("{err:#}").contains("500"), "{err:#}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn mock_rejects_requests_without_the_metadata_header() {
        let (url, _) = serve(vec![ok(0)]);
        let plain = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(&url)
            .send()
            .unwrap();
        assert_eq!(plain.status().as_u16(), 400);
    }
}
