//! Azure nodes get their cluster secrets from Key Vault, with Azure faked at its HTTP boundary
//! only (`kubeboot_stand_ins::fake_azure`, shared with the VM test): the real agent binary reads
//! the NodeConfig a vault-backed pool carries (custom cloud: the fakes' endpoints and test CA),
//! asks IMDS for an identity token and the vault for the secrets over TLS, through the proxy the
//! test sets. Each fault case checks what the node does (waits and says why in `status`, or fails
//! without retrying) and that nothing is half-written.

use crate::common;
use crate::support::fake_cloud;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;
use fake_cloud::{in_fake_cloud, through_fake_proxy};
use kubeboot_stand_ins::fake_azure::{FakeAzure, Fault, Seen, VAULT_RESOURCE, VAULT_SUFFIX};
use kubeboot_test_kit::output::text;
use serde_json::Value;

const WORKER: &str = include_str!("../../../nodeconfig/tests/corpus/azure-vault-worker.yaml");
const MASTER: &str = include_str!("../../../nodeconfig/tests/corpus/azure-vault-master.yaml");
const MASTER_FIXTURE: &str = include_str!("../fixtures/master.yaml");
const TOKEN: &str = "k7q2zd.8n4c0x9w3b5v1m6p";
const NEXT_TOKEN: &str = "p3x8aa.0c2e4g6i8k1m3o5q";
const KUBEADM_YAML: &str = "/etc/kubeboot/kubeadm.yaml";

/// The NodeConfig of a vault-backed pool in a custom cloud whose endpoints are the fakes.
fn node_yaml(fake: &FakeAzure, template: &str) -> String {
    in_fake_cloud(template, fake)
}

/// The agent as the node runs it: HTTPS through the proxy (the fake's name resolution).
fn agent(node: &Node, fake: &FakeAzure, args: &[&str]) -> Command {
    let mut cmd = node.agent(args);
    through_fake_proxy(&mut cmd, fake);
    cmd
}

fn run(node: &Node, fake: &FakeAzure, args: &[&str]) -> std::process::Output {
    agent(node, fake, args).output().unwrap()
}

/// A node of the pool whose metadata phase has run (IMDS's instance document).
fn node(fake: &FakeAzure, template: &str) -> Node {
    let node = Node::new("demo-workers000003", &node_yaml(fake, template));
    let out = run(&node, fake, &["run", "--only", "metadata"]);
    assert!(out.status.success(), "{}", text(&out));
    node
}

fn spawn(node: &Node, fake: &FakeAzure, args: &[&str]) -> Child {
    agent(node, fake, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn phase(node: &Node, name: &str) -> Value {
    fake_cloud::phase(&node.status_json(), name)
}

/// Polls `status` until `phase` is waiting for a reason containing `needle`.
fn until_waiting(node: &Node, name: &str, needle: &str) -> Value {
    fake_cloud::until_waiting(|| node.status_json(), name, needle)
}

fn finish(child: Child) -> std::process::Output {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    out
}

fn assert_private_with(node: &Node, path: &str, needle: &str) {
    assert_private_under(node.root(), path, needle);
}

/// `assert_private_with` for the node path `path` under the directory `root`.
fn assert_private_under(root: &Path, path: &str, needle: &str) {
    use std::os::unix::fs::PermissionsExt;
    let file = root.join(path.trim_start_matches('/'));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(needle), "{path}: {text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{path}");
}

/// `run --only join --dry-run`, keeping the files the join would write: the returned directory
/// holds them at their node paths.
fn dry_run_join(node: &Node, fake: &FakeAzure) -> tempfile::TempDir {
    let kept = tempfile::tempdir().unwrap();
    let dir = kept.path().to_str().unwrap();
    let out = run(
        node,
        fake,
        &["run", "--only", "join", "--dry-run", "--dry-run-dir", dir],
    );
    assert!(out.status.success(), "{}", text(&out));
    kept
}

/// The PKI secret as the generator writes it: `SharedPki` as JSON, encryption key included.
fn pki_json() -> String {
    let config = kubeboot_nodeconfig::parse(MASTER_FIXTURE).unwrap();
    let mut pki = config.pki.unwrap();
    pki.encryption_key = Some(kubeboot_nodeconfig::Secret::new(format!(
        "{}=",
        "Q".repeat(43)
    )));
    serde_json::to_string(&pki).unwrap()
}

#[test]
fn a_worker_reads_its_token_from_the_vault_as_its_identity() {
    let fake = FakeAzure::start();
    fake.put_secret("bootstrap-token", TOKEN);
    fake.grant("bootstrap-token");
    let node = node(&fake, WORKER);
    assert!(!node.read("/etc/kubeboot/node.yaml").contains(TOKEN));
    let out = run(&node, &fake, &["run", "--only", "kubeadm-config"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_private_with(&node, KUBEADM_YAML, TOKEN);
    assert!(
        !text(&out).contains(TOKEN),
        "the token is logged: {}",
        text(&out)
    );
    let seen = fake.seen();
    assert!(
        seen.contains(&Seen::Token {
            metadata: true,
            resource: VAULT_RESOURCE.into()
        }),
        "{seen:?}"
    );
    assert!(
        seen.contains(&Seen::Secret {
            path: "/secrets/bootstrap-token".into(),
            bearer_ok: true
        }),
        "{seen:?}"
    );
    assert!(
        seen.contains(&Seen::Connect(format!(
            "demo-kv-1a2b3c4d.{VAULT_SUFFIX}:443"
        ))),
        "{seen:?}"
    );
    assert_eq!(phase(&node, "kubeadm-config")["state"], "done");
}

#[test]
fn without_the_role_the_node_waits_says_why_and_writes_nothing_until_granted() {
    let fake = FakeAzure::start();
    fake.put_secret("bootstrap-token", TOKEN);
    let node = node(&fake, WORKER);
    let child = spawn(&node, &fake, &["run", "--only", "kubeadm-config"]);
    let waiting = until_waiting(&node, "kubeadm-config", "403");
    assert!(
        waiting["waiting"]["reason"]
            .as_str()
            .unwrap()
            .contains("lacks the role"),
        "{waiting:#}"
    );
    assert!(
        !node.path(KUBEADM_YAML).exists(),
        "written before the secret was read"
    );
    fake.grant("bootstrap-token");
    finish(child);
    assert_private_with(&node, KUBEADM_YAML, TOKEN);
    let done = phase(&node, "kubeadm-config");
    assert_eq!(
        (done["state"].as_str(), &done["waiting"]),
        (Some("done"), &Value::Null)
    );
}

#[test]
fn a_secret_not_written_yet_is_waited_for() {
    let fake = FakeAzure::start();
    fake.grant("bootstrap-token");
    let node = node(&fake, WORKER);
    let child = spawn(&node, &fake, &["run", "--only", "kubeadm-config"]);
    until_waiting(&node, "kubeadm-config", "404");
    assert!(!node.path(KUBEADM_YAML).exists());
    fake.put_secret("bootstrap-token", TOKEN);
    finish(child);
    assert_private_with(&node, KUBEADM_YAML, TOKEN);
}

#[test]
fn throttling_and_server_errors_are_retried_honouring_retry_after() {
    let fake = FakeAzure::start();
    fake.put_secret("bootstrap-token", TOKEN);
    fake.grant("bootstrap-token");
    fake.fault("bootstrap-token", Fault::Throttle(3), 1);
    fake.fault("bootstrap-token", Fault::Status(503), 1);
    let node = node(&fake, WORKER);
    let start = Instant::now();
    let out = run(&node, &fake, &["run", "--only", "kubeadm-config"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "Retry-After not honoured: {:?}",
        start.elapsed()
    );
    assert_eq!(fake.secret_requests("bootstrap-token"), 3);
    assert_private_with(&node, KUBEADM_YAML, TOKEN);
}

#[test]
fn a_slow_vault_is_waited_for_not_asked_twice() {
    let fake = FakeAzure::start();
    fake.put_secret("bootstrap-token", TOKEN);
    fake.grant("bootstrap-token");
    fake.fault("bootstrap-token", Fault::Slow(Duration::from_secs(3)), 1);
    let node = node(&fake, WORKER);
    let out = run(&node, &fake, &["run", "--only", "kubeadm-config"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fake.secret_requests("bootstrap-token"), 1);
    assert_private_with(&node, KUBEADM_YAML, TOKEN);
}

#[test]
fn a_value_that_can_never_parse_fails_at_once_without_leaking_it() {
    let fake = FakeAzure::start();
    let bad = "Not-A-Token-But-Secret";
    fake.put_secret("bootstrap-token", bad);
    fake.grant("bootstrap-token");
    let node = node(&fake, WORKER);
    let out = run(&node, &fake, &["run", "--only", "kubeadm-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(fake.secret_requests("bootstrap-token"), 1);
    assert!(!node.path(KUBEADM_YAML).exists());
    let failed = phase(&node, "kubeadm-config");
    assert_eq!(failed["state"], "failed");
    let message = failed["lastError"].as_str().unwrap();
    assert!(
        message.contains("must match") && message.contains("not retried"),
        "{message}"
    );
    assert!(
        !text(&out).contains(bad) && !message.contains(bad),
        "{}",
        text(&out)
    );
}

#[test]
fn join_uses_the_token_the_vault_has_at_join_time() {
    let fake = FakeAzure::start();
    fake.put_secret("bootstrap-token", TOKEN);
    fake.grant("bootstrap-token");
    let node = node(&fake, WORKER);
    let out = run(&node, &fake, &["run", "--only", "kubeadm-config"]);
    assert!(out.status.success(), "{}", text(&out));
    // The masters put a new token in the vault; a worker created now joins with it.
    fake.put_secret("bootstrap-token", NEXT_TOKEN);
    let kept = dry_run_join(&node, &fake);
    assert_private_under(kept.path(), KUBEADM_YAML, NEXT_TOKEN);
    let written = std::fs::read_to_string(kept.path().join(&KUBEADM_YAML[1..])).unwrap();
    assert!(!written.contains(TOKEN));
}

#[test]
fn a_master_reads_the_pki_and_encryption_key_from_the_vault() {
    let fake = FakeAzure::start();
    fake.put_secret("bootstrap-token", TOKEN);
    fake.put_secret("cluster-pki", &pki_json());
    fake.grant("bootstrap-token");
    let node = node(&fake, MASTER);
    // The PKI secret is not readable yet: the master waits, having written nothing.
    let child = spawn(&node, &fake, &["run", "--only", "kubeadm-config"]);
    until_waiting(&node, "kubeadm-config", "cluster-pki");
    assert!(!node.path(KUBEADM_YAML).exists());
    assert!(!node
        .path(kubeboot_agent::paths::ENCRYPTION_CONFIG_FILE)
        .exists());
    fake.grant("cluster-pki");
    finish(child);
    let pki: Value = serde_json::from_str(&pki_json()).unwrap();
    let key = pki["encryptionKey"].as_str().unwrap();
    assert_private_with(&node, kubeboot_agent::paths::ENCRYPTION_CONFIG_FILE, key);
    assert_private_with(&node, KUBEADM_YAML, TOKEN);
    // This is an extra master (ordinal 3): join writes the shared CA keys from the vault.
    let kept = dry_run_join(&node, &fake);
    let ca_key = pki["ca"]["private"].as_str().unwrap();
    assert_private_under(kept.path(), "/etc/kubernetes/pki/ca.key", ca_key.trim());
}
