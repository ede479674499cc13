//! The real agent on the host in an Azure faked at its HTTP boundary
//! (`kubeboot_stand_ins::fake_azure`): a NodeConfig whose custom cloud is the fakes, the fake's
//! proxy as the agent's `HTTPS_PROXY` (the test's name resolution), and waiting for `status` to
//! report a wait.

use std::process::Command;
use std::time::{Duration, Instant};

use kubeboot_stand_ins::fake_azure::{FakeAzure, VAULT_RESOURCE, VAULT_SUFFIX};
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

/// `node_yaml` (provider azure) in a custom cloud whose endpoints are the fakes, trusting the
/// fake vault's test CA.
pub fn in_fake_cloud(node_yaml: &str, fake: &FakeAzure) -> String {
    let mut config: Yaml = serde_yaml_ng::from_str(node_yaml).unwrap();
    let azure = &mut config["provider"]["azure"];
    azure["cloud"] = "Custom".into();
    let mut custom = serde_yaml_ng::Mapping::new();
    for (key, value) in [
        ("keyVaultDnsSuffix", VAULT_SUFFIX.to_string()),
        ("keyVaultResource", VAULT_RESOURCE.to_string()),
        ("imdsEndpoint", fake.imds_url()),
        ("caBundle", fake.ca_pem.clone()),
    ] {
        custom.insert(key.into(), value.into());
    }
    azure["customCloud"] = Yaml::Mapping(custom);
    let yaml = serde_yaml_ng::to_string(&config).unwrap();
    kubeboot_nodeconfig::parse(&yaml).expect("a valid NodeConfig in the fake cloud");
    yaml
}

/// HTTPS through the fake's proxy, as the node's environment would have it; loopback (the
/// stand-ins' API server) is reached directly.
pub fn through_fake_proxy<'c>(cmd: &'c mut Command, fake: &FakeAzure) -> &'c mut Command {
    for var in [
        "https_proxy",
        "http_proxy",
        "all_proxy",
        "no_proxy",
        "ALL_PROXY",
        "HTTP_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HTTPS_PROXY", fake.proxy_url())
        .env("NO_PROXY", "127.0.0.1,localhost")
}

/// The phase `name` in `status --output json`.
pub fn phase(status: &Value, name: &str) -> Value {
    status["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name}: {status:#}"))
        .clone()
}

/// Polls `status` until phase `name` is waiting for a reason containing `needle`.
pub fn until_waiting(status: impl Fn() -> Value, name: &str, needle: &str) -> Value {
    let start = Instant::now();
    loop {
        let all = status();
        let p = phase(&all, name);
        if p["state"] == "waiting" && p["waiting"]["reason"].as_str().unwrap().contains(needle) {
            return p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} never waiting for {needle:?}: {all:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
