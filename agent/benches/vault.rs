//! `cargo bench -p kubeboot-agent --bench vault`: the time the Key Vault adds to a node's setup
//! (issue #12's goal: under 1 s over a 50 ms-latency link). The agent's own provider code fetches
//! what each node needs — a worker its identity token and the join token, a master those and the
//! cluster PKI (a second identity token and secret) — from the fake IMDS and Key Vault
//! (`kubeboot_stand_ins::fake_azure`, TLS with a test CA, through its proxy as in the tests), with
//! no added latency and with 50 ms added before every answer; the baseline is the same secrets
//! inline (provider none), measured in the same run. Prints medians, the absolute extra time and
//! ratios; asserts no timing.
//!
//! What the latency knob models: one round trip per HTTP request. A real link also costs the TCP
//! and TLS handshakes of each new connection (the agent opens one per request: the vault client
//! is built per read), which the fake, on loopback, does not delay.

use std::time::{Duration, Instant};

use kubeboot_agent::provider;
use kubeboot_agent::retry::Waiting;
use kubeboot_agent::root::Root;
use kubeboot_nodeconfig::{AzureCloud, CustomCloud, NodeConfig, Secret};
use kubeboot_stand_ins::fake_azure::{FakeAzure, Seen, VAULT_RESOURCE, VAULT_SUFFIX};

const RUNS: usize = 15;
const LATENCY: Duration = Duration::from_millis(50);
const GOAL: Duration = Duration::from_secs(1);

const INLINE_MASTER: &str = include_str!("../tests/fixtures/master.yaml");
const INLINE_WORKER: &str = include_str!("../tests/fixtures/worker.yaml");
const VAULT_MASTER: &str = include_str!("../../nodeconfig/tests/corpus/azure-vault-master.yaml");
const VAULT_WORKER: &str = include_str!("../../nodeconfig/tests/corpus/azure-vault-worker.yaml");

/// A vault-backed pool's NodeConfig, moved into a custom cloud whose endpoints are the fake's.
fn vault_config(yaml: &str, fake: &FakeAzure) -> NodeConfig {
    let mut config = kubeboot_nodeconfig::parse(yaml).unwrap();
    let azure = config.provider.azure.as_mut().unwrap();
    azure.cloud = AzureCloud::Custom;
    azure.custom_cloud = Some(CustomCloud {
        key_vault_dns_suffix: VAULT_SUFFIX.into(),
        key_vault_resource: VAULT_RESOURCE.into(),
        imds_endpoint: Some(fake.imds_url()),
        ca_bundle: Some(fake.ca_pem.clone()),
    });
    config
}

/// What the node's phases get from `secrets`: the token, and on a master the PKI.
fn fetch(config: &NodeConfig, root: &Root, token: &str) -> Duration {
    let never_waits = |w: &Waiting| panic!("the fetch had to wait: {:#}", w.reason);
    let started = Instant::now();
    let provider = provider::for_config(config, root);
    let got = provider.join_token(config, &never_waits).unwrap();
    if config.is_master() {
        let pki = provider.shared_pki(config, &never_waits).unwrap();
        assert!(pki.encryption_key.is_some());
    }
    let elapsed = started.elapsed();
    assert_eq!(got.expose(), token);
    elapsed
}

/// The median of `RUNS` runs, after one warm-up.
fn median(mut run: impl FnMut() -> Duration) -> Duration {
    run();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
    times.sort();
    times[RUNS / 2]
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn main() {
    let fake = FakeAzure::start();
    // The agent reaches the vault's host name through the fake's proxy, as in agent/tests/integration/vault.rs
    // (IMDS is never proxied). Set before any client exists; the fake's threads read no environment.
    for var in [
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "ALL_PROXY",
        "NO_PROXY",
    ] {
        std::env::remove_var(var);
    }
    std::env::set_var("HTTPS_PROXY", fake.proxy_url());

    let mut inline_master = kubeboot_nodeconfig::parse(INLINE_MASTER).unwrap();
    let inline_worker = kubeboot_nodeconfig::parse(INLINE_WORKER).unwrap();
    let token = inline_master.bootstrap.token.clone().unwrap();
    let pki = inline_master.pki.as_mut().unwrap();
    pki.encryption_key = Some(Secret::new(format!("{}=", "Q".repeat(43))));
    fake.put_secret("bootstrap-token", token.expose());
    fake.put_secret("cluster-pki", &serde_json::to_string(pki).unwrap());
    fake.grant("bootstrap-token");
    fake.grant("cluster-pki");

    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    println!(
        "Key Vault cost of a node's secrets (agent provider code, fake IMDS + Key Vault over TLS on loopback), median of {RUNS} runs:"
    );
    for (role, inline, vault) in [
        (
            "worker (identity token + join token)",
            &inline_worker,
            vault_config(VAULT_WORKER, &fake),
        ),
        (
            "master (identity token + join token, identity token + PKI)",
            &inline_master,
            vault_config(VAULT_MASTER, &fake),
        ),
    ] {
        let inline_time = median(|| fetch(inline, &root, token.expose()));
        fake.set_latency(Duration::ZERO);
        let before = fake.seen().len();
        fetch(&vault, &root, token.expose());
        let requests = fake.seen()[before..]
            .iter()
            .filter(|s| matches!(s, Seen::Token { .. } | Seen::Secret { .. }))
            .count();
        let vault_time = median(|| fetch(&vault, &root, token.expose()));
        fake.set_latency(LATENCY);
        let slow_time = median(|| fetch(&vault, &root, token.expose()));
        let extra = slow_time.saturating_sub(inline_time);
        let floor = LATENCY * requests as u32;
        println!("  {role}: {requests} HTTP requests");
        println!("    inline (provider none):       {:>10}", ms(inline_time));
        println!(
            "    vault, no added latency:      {:>10}  ({:.0}x inline)",
            ms(vault_time),
            vault_time.as_secs_f64() / inline_time.as_secs_f64()
        );
        println!(
            "    vault, +{:<8} per answer:   {:>10}  ({:.0}x inline; {:.2}x the latency floor of {})",
            ms(LATENCY),
            ms(slow_time),
            slow_time.as_secs_f64() / inline_time.as_secs_f64(),
            slow_time.as_secs_f64() / floor.as_secs_f64(),
            ms(floor)
        );
        println!(
            "    extra time over inline:       {:>10}  ({:.2} of the {} goal)",
            ms(extra),
            extra.as_secs_f64() / GOAL.as_secs_f64(),
            ms(GOAL)
        );
        fake.set_latency(Duration::ZERO);
    }
}
