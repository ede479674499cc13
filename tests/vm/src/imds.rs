//! A fake Azure Instance Metadata Service on loopback. The guest reaches it as
//! 169.254.169.254:80 through QEMU's `guestfwd` (see `qemu.rs`), so no packet to that address
//! ever leaves the host. It behaves like IMDS where the agent could get it wrong: the
//! `Metadata: true` header and an `api-version` are required, and a request that went through a
//! proxy (`X-Forwarded-For`) is refused. It also issues the instance's identity token for the
//! fake Key Vault (`kubeboot_stand_ins::fake_azure`, whose rules it answers with).

use kubeboot_stand_ins::fake_azure;
use serde_json::json;

use crate::http::{Answer, LoopbackServer};

/// What IMDS says about one scale-set instance.
#[derive(Debug, Clone)]
pub struct Instance {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub vm_scale_set: String,
    /// The scale set's `computerNamePrefix` (the ARM template's, e.g. `<cluster>-<pool>-`).
    pub computer_name_prefix: String,
    pub ordinal: u32,
    pub zone: String,
    /// The address the guest gets from QEMU's user-mode DHCP.
    pub private_ip: String,
}

impl Instance {
    /// Scale-set instances are named `<vmss>_<ordinal>`; the computer name is the scale set's
    /// computer name prefix plus a six-digit ordinal (base 36 upstream; identical for the small
    /// ordinals used here).
    pub fn name(&self) -> String {
        format!("{}_{}", self.vm_scale_set, self.ordinal)
    }

    pub fn computer_name(&self) -> String {
        format!("{}{:06}", self.computer_name_prefix, self.ordinal)
    }

    /// The provider ID cloud-provider-azure expects of this instance (resource group in lower case).
    pub fn provider_id(&self) -> String {
        format!(
            "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/{}",
            self.subscription_id,
            self.resource_group.to_lowercase(),
            self.vm_scale_set,
            self.ordinal
        )
    }

    fn network(&self) -> serde_json::Value {
        json!({"interface": [{
            "ipv4": {"ipAddress": [{"privateIpAddress": self.private_ip, "publicIpAddress": ""}],
                     "subnet": [{"address": "169.254.169.0", "prefix": "24"}]},
            "ipv6": {"ipAddress": []},
            "macAddress": "525400000001",
        }]})
    }

    fn compute(&self) -> serde_json::Value {
        json!({
            "azEnvironment": "AzurePublicCloud",
            "location": self.location,
            "name": self.name(),
            "osProfile": {"adminUsername": "azureuser", "computerName": self.computer_name()},
            "osType": "Linux",
            "provider": "Microsoft.Compute",
            "resourceGroupName": self.resource_group,
            "resourceId": self.provider_id().trim_start_matches("azure://"),
            "subscriptionId": self.subscription_id,
            "tagsList": [],
            "vmId": format!("00000000-0000-4000-8000-{:012}", self.ordinal),
            "vmScaleSetName": self.vm_scale_set,
            "vmSize": "Standard_D2s_v5",
            "zone": self.zone,
        })
    }
}

pub fn start(instance: Instance) -> LoopbackServer {
    LoopbackServer::start(move |request| {
        let has = |name: &str, value: Option<&str>| {
            request.headers().get_all(name).iter().any(|v| {
                value.is_none_or(|value| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
            })
        };
        let json = |status, body: serde_json::Value| {
            Answer::new(status, "application/json", body.to_string().into_bytes())
        };
        if has("X-Forwarded-For", None) {
            return Answer::new(400, "text/plain", b"Bad request: proxied".to_vec());
        }
        if !has("Metadata", Some("true")) {
            return json(
                400,
                json!({"error": "Bad request. Required metadata header not specified"}),
            );
        }
        let url = request.uri().to_string();
        let query = request.uri().query().unwrap_or_default();
        if !query.split('&').any(|kv| kv.starts_with("api-version=")) {
            return json(
                400,
                json!({"error": "Bad request. api-version was not specified in the request"}),
            );
        }
        let body = match request.uri().path().trim_end_matches('/') {
            "/metadata/instance" => {
                json!({"compute": instance.compute(), "network": instance.network()})
            }
            "/metadata/instance/compute" => instance.compute(),
            "/metadata/identity/oauth2/token" => {
                let (status, body) = fake_azure::identity_token_answer(true, &url);
                return Answer::new(status, "application/json", body.into_bytes());
            }
            _ => return Answer::new(404, "text/plain", b"not found".to_vec()),
        };
        json(200, body)
    })
}
