//! Join-token rotation end to end, with the real binaries: `kubeboot-gen` renders an Azure cluster
//! whose secrets live in a Key Vault; the real agent turns machines under temporary roots into its
//! first master and workers, with the stand-ins (whose API server keeps bootstrap tokens as
//! kube-system Secrets and refuses expired or deleted ones), REAL kubectl, and Azure faked at its
//! HTTP boundary (IMDS and Key Vault over TLS, `kubeboot_stand_ins::fake_azure`).

use crate::common::checked_status;
use crate::support;

use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use kubeboot_agent::join_token::Window;
use kubeboot_stand_ins::apiserver::state::State;
use kubeboot_stand_ins::fake_azure::FakeAzure;
use kubeboot_stand_ins::Root;
use kubeboot_test_kit::output::{text, with_stdin};
use kubeboot_test_kit::port::free_port;
use serde_json::Value;
use support::fake_cloud::{in_fake_cloud, phase, through_fake_proxy, until_waiting};
use support::machine::{with_endpoint_port, Machine, Rendered};

const JOIN_SECRET: &str = "bootstrap-token";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// An Azure cluster of one master and one worker pool; its vault is the fake's.
fn spec() -> String {
    "\
apiVersion: kubeboot.io/v1alpha1
kind: Cluster
metadata: {name: rot}
spec:
  kubernetesVersion: v1.37.1
  azure:
    tenantId: 11111111-2222-4333-8444-555555555555
    subscriptionId: 66666666-7777-4888-9999-000000000000
    resourceGroup: demo-rg
    location: westeurope
    cloud: Custom
    customCloud:
      keyVaultDnsSuffix: vault.fake-azure.test
      keyVaultResource: https://vault.fake-azure.test
  network: {vnetCIDR: 10.240.0.0/16, podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}
  pools:
    - {name: master, role: master, count: 1, vmSize: Standard_D2s_v5, subnetCIDR: 10.240.0.0/24}
    - {name: workers, role: worker, count: 1, vmSize: Standard_D2s_v5, subnetCIDR: 10.240.1.0/24,
       autoscaling: {min: 1, max: 3}}
  addons: {cni: none}
"
    .into()
}

/// The rendered cluster, its first master done, and the fake cloud it lives in.
struct Cluster {
    rendered: Rendered,
    fake: FakeAzure,
    port: u16,
    master: Machine,
    /// The token the generator rendered (what the ARM deployment put in the vault).
    rendered_token: String,
}

/// The NodeConfig of `pool` in the fake cloud, the endpoint being the first master on loopback.
fn node_yaml(rendered: &Rendered, fake: &FakeAzure, pool: &str, port: u16) -> String {
    with_endpoint_port(&in_fake_cloud(&rendered.node_yaml(pool), fake), port)
}

/// A machine of `pool`, with the agent's units installed as the package does and the cloud
/// config its user data writes.
fn machine(rendered: &Rendered, pool: &str, hostname: &str, node_yaml: &str) -> Machine {
    let m = Machine::new(hostname, node_yaml);
    let cloud_config = "/etc/kubernetes/azure.json";
    std::fs::create_dir_all(m.node("/etc/kubernetes")).unwrap();
    std::fs::write(
        m.node(cloud_config),
        rendered.user_data_file(pool, cloud_config),
    )
    .unwrap();
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../units");
    for unit in ["kubeboot-join-token.service", "kubeboot-join-token.timer"] {
        std::fs::copy(
            units.join(unit),
            m.node(&format!("/lib/systemd/system/{unit}")),
        )
        .unwrap();
    }
    m
}

fn agent(m: &Machine, fake: &FakeAzure, args: &[&str]) -> Command {
    let mut cmd = m.agent_command(args);
    through_fake_proxy(&mut cmd, fake);
    cmd
}

fn status(m: &Machine) -> Value {
    checked_status(&m.agent(&["status", "--output", "json"]))
}

fn finish(child: std::process::Child) -> Output {
    child.wait_with_output().unwrap()
}

/// The machine's kubectl, with every `create` held back 2 s before the real kubectl runs.
fn slow_creates(m: &Machine) {
    use std::os::unix::fs::PermissionsExt;
    let path = m.node("/usr/local/bin/kubectl");
    std::fs::remove_file(&path).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *\" create \"*) sleep 2 ;; esac\nexec {} \"$@\"\n",
        kubeboot_stand_ins::test_kubectl().display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What the ARM deployment puts in the vault: the rendered `clusterSecrets`.
fn cluster_secrets(rendered: &Rendered) -> Vec<(String, String)> {
    let path = rendered.out().join("arm/azuredeploy.parameters.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["parameters"]["clusterSecrets"]["value"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// The cluster as the stand-in API server keeps it (token Secrets, nodes).
fn cluster_state(master: &Machine) -> State {
    State::new(&Root::new(master.root()))
}

/// The ids of kubeboot's token Secrets (by label).
fn kubeboot_token_ids(master: &Machine) -> Vec<String> {
    cluster_state(master)
        .bootstrap_tokens()
        .unwrap()
        .into_iter()
        .filter(|t| t.labels.get(MANAGED_BY).map(String::as_str) == Some("kubeboot"))
        .map(|t| t.id)
        .collect()
}

/// The token ids of the windows this test ran in (a window may end while it runs).
fn current_ids(since: SystemTime) -> Vec<String> {
    let (first, last) = (Window::at(since).0, Window::at(SystemTime::now()).0);
    (first..=last).map(|i| Window(i).token_id()).collect()
}

fn id_of(token: &str) -> String {
    token.split_once('.').unwrap().0.to_string()
}

/// The first master's `addons` phase applied cloud-provider-azure, the Azure Disk CSI driver and, the
/// workers' pool being autoscaled, cluster-autoscaler of the cluster's minor, with the real kubectl, through the
/// stand-in API server's strict decoding of the 1.37 API.
fn azure_addons_were_applied(master: &Machine) {
    let objects = cluster_state(master).objects().unwrap();
    for key in [
        "apps/v1/Deployment/kube-system/cloud-controller-manager",
        "apps/v1/DaemonSet/kube-system/cloud-node-manager",
        "rbac.authorization.k8s.io/v1/Role/kube-system/cluster-autoscaler",
        "storage.k8s.io/v1/CSIDriver//disk.csi.azure.com",
        "apps/v1/Deployment/kube-system/csi-azuredisk-controller",
        "apps/v1/DaemonSet/kube-system/csi-azuredisk-node",
    ] {
        assert!(
            objects.contains_key(key),
            "{key} not applied: {:?}",
            objects.keys()
        );
    }
    let autoscaler = &objects["apps/v1/Deployment/kube-system/cluster-autoscaler"];
    let container = &autoscaler["spec"]["template"]["spec"]["containers"][0];
    let tag = kubeboot_nodeconfig::releases::release(37)
        .unwrap()
        .cluster_autoscaler;
    assert_eq!(
        container["image"],
        format!("registry.k8s.io/autoscaling/cluster-autoscaler:{tag}")
    );
    assert!(container["command"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(
            "--node-group-auto-discovery=label:cluster-autoscaler-enabled=true,cluster-autoscaler-name=rot"
        )));
    // On Azure the disk driver comes by default: its Secret is the node's azure.json, and the
    // default StorageClass has the spec's default disk kind (the pools are regional: no zones).
    let secret = &objects["v1/Secret/kube-system/azure-cloud-provider"];
    use base64::Engine;
    let cloud_config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["cloud-config"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        cloud_config,
        std::fs::read(master.node("/etc/kubernetes/azure.json")).unwrap()
    );
    let class = &objects["storage.k8s.io/v1/StorageClass//managed-csi"];
    assert_eq!(class["parameters"]["skuName"], "StandardSSD_LRS");
    assert_eq!(
        class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert!(class.get("allowedTopologies").is_none());
}

/// Renders the cluster and brings its first master to done; the master's identity gets the
/// write role on the join secret only once `status` shows the rotation waiting for it.
fn first_master() -> Cluster {
    let rendered = Rendered::new(&spec());
    let fake = FakeAzure::start();
    let secrets = cluster_secrets(&rendered);
    for (name, value) in &secrets {
        fake.put_secret(name, value);
        fake.grant(name);
    }
    let rendered_token = secrets
        .iter()
        .find(|(n, _)| n == JOIN_SECRET)
        .unwrap()
        .1
        .clone();
    let port = free_port();
    fake.set_vm("rot-master_0");
    let master = machine(
        &rendered,
        "master",
        "rot-master000000",
        &node_yaml(&rendered, &fake, "master", port),
    );
    let run = agent(&master, &fake, &["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // (d) Without the write role the master waits in join-token and says why, having written
    // nothing to the vault; once granted it goes on.
    let waiting = until_waiting(|| status(&master), "join-token", "403");
    let reason = waiting["waiting"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("lacks the role to write") && reason.contains(JOIN_SECRET),
        "{waiting:#}"
    );
    assert_eq!(
        fake.secret(JOIN_SECRET).as_deref(),
        Some(rendered_token.as_str())
    );
    fake.grant_write(JOIN_SECRET);
    let out = finish(run);
    assert!(out.status.success(), "{}", text(&out));
    azure_addons_were_applied(&master);
    Cluster {
        rendered,
        fake,
        port,
        master,
        rendered_token,
    }
}

#[test]
fn a_first_master_keeps_the_windows_token_in_the_vault_even_when_deleted_or_raced() {
    let started = SystemTime::now();
    let c = first_master();
    let out_status = status(&c.master);
    assert_eq!(out_status["done"], true, "{out_status:#}");
    let join_token = phase(&out_status, "join-token");
    assert_eq!(
        (join_token["state"].as_str(), &join_token["waiting"]),
        (Some("done"), &Value::Null),
        "{join_token:#}"
    );

    // (a) The vault holds the window's token, not the rendered one, and it is the cluster's only
    // kubeboot token, valid, expiring at the end of the next window.
    let in_vault = c.fake.secret(JOIN_SECRET).unwrap();
    assert_ne!(in_vault, c.rendered_token);
    let id = id_of(&in_vault);
    assert!(current_ids(started).contains(&id), "{id}");
    assert_eq!(kubeboot_token_ids(&c.master), std::slice::from_ref(&id));
    let token = cluster_state(&c.master)
        .bootstrap_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .unwrap();
    assert!(token.authenticates && token.signs, "{token:?}");
    let window = Window(
        (0..)
            .map(|d| Window::at(started).0 + d)
            .find(|i| Window(*i).token_id() == id)
            .unwrap(),
    );
    let expiration = humantime::format_rfc3339_seconds(window.expiration()).to_string();
    assert_eq!(token.expiration.as_deref(), Some(expiration.as_str()));
    // Writes so far: the refused ones while the role was missing, then the one that worked.
    let writes = c.fake.secret_writes(JOIN_SECRET);
    // The timer that repeats it is enabled and started.
    let systemd: Value = serde_json::from_str(
        &std::fs::read_to_string(c.master.node("/var/lib/stand-ins/systemd.json")).unwrap(),
    )
    .unwrap();
    let timer = &systemd["units"]["kubeboot-join-token.timer"];
    assert_eq!(
        (timer["enabled"].as_bool(), timer["active"].as_bool()),
        (Some(true), Some(true)),
        "{systemd:#}"
    );

    // Rotating again within the window changes nothing: no new token, no vault write.
    let again = agent(&c.master, &c.fake, &["rotate-join-token"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    if Window::at(SystemTime::now()) == window {
        assert_eq!(c.fake.secret(JOIN_SECRET).unwrap(), in_vault);
        assert_eq!(c.fake.secret_writes(JOIN_SECRET), writes);
    }
    assert!(
        !text(&again).contains(&in_vault[7..]),
        "the token is logged: {}",
        text(&again)
    );

    // (e) An operator deletes the window's token from the cluster; (c) two rotations start at
    // once (two masters' timers): both succeed, exactly one creates the new token, and the
    // cluster has exactly one kubeboot token, the one in the vault.
    let kubectl = c.master.node("/usr/local/bin/kubectl");
    let admin_conf = c.master.node("/etc/kubernetes/admin.conf");
    let deleted = c
        .master
        .command(&kubectl)
        .arg("--kubeconfig")
        .arg(&admin_conf)
        .args(["delete", "secret", "--namespace", "kube-system"])
        .arg(format!("bootstrap-token-{id}"))
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", text(&deleted));
    assert!(kubeboot_token_ids(&c.master).is_empty());
    // A slow API server: every create arrives 2 s late, so both racers have found no token
    // before either creates one, and one create must lose (still the real kubectl).
    slow_creates(&c.master);
    let racers: Vec<_> = (0..2)
        .map(|_| {
            agent(&c.master, &c.fake, &["rotate-join-token"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = racers.into_iter().map(finish).collect();
    for out in &outs {
        assert!(out.status.success(), "{}", text(out));
    }
    let created = outs
        .iter()
        .filter(|o| text(o).contains(": created, vault"))
        .count();
    assert_eq!(created, 1, "{}\n{}", text(&outs[0]), text(&outs[1]));
    let republished = c.fake.secret(JOIN_SECRET).unwrap();
    assert_ne!(
        republished, in_vault,
        "the deleted token is still in the vault"
    );
    let ids = kubeboot_token_ids(&c.master);
    assert_eq!(ids, [id_of(&republished)]);
    assert!(current_ids(started).contains(&ids[0]));
    let token = cluster_state(&c.master)
        .bootstrap_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.id == ids[0])
        .unwrap();
    assert!(token.authenticates, "{token:?}");

    // Expired tokens: kubeboot's own (by label) are deleted at the next rotation, others are not.
    let expired = |id: &str, labels: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bootstrap-token-{id}\n  namespace: kube-system\n  labels: {{{labels}}}\ntype: bootstrap.kubernetes.io/token\nstringData:\n  token-id: {id}\n  token-secret: 0123456789abcdef\n  expiration: \"2020-01-01T00:00:00Z\"\n  usage-bootstrap-authentication: \"true\"\n"
        )
    };
    for manifest in [
        expired("old001", "app.kubernetes.io/managed-by: kubeboot"),
        expired("old002", ""),
    ] {
        let out = with_stdin(
            c.master
                .command(&kubeboot_stand_ins::test_kubectl())
                .arg("--kubeconfig")
                .arg(&admin_conf)
                .args(["create", "--filename", "-"]),
            &manifest,
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let cleanup = agent(&c.master, &c.fake, &["rotate-join-token"])
        .output()
        .unwrap();
    assert!(cleanup.status.success(), "{}", text(&cleanup));
    let left: Vec<String> = cluster_state(&c.master)
        .bootstrap_tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert!(!left.contains(&"old001".to_string()), "{left:?}");
    assert!(left.contains(&"old002".to_string()), "{left:?}");
    assert_eq!(kubeboot_token_ids(&c.master), [id_of(&republished)]);
}

#[test]
fn a_worker_of_a_pool_rendered_long_ago_joins_with_the_rotated_token_only() {
    let c = first_master();
    // The pool was rendered "long ago": the rendered token has expired.
    let rendered_id = id_of(&c.rendered_token);
    cluster_state(&c.master)
        .set_token_expiration(
            &rendered_id,
            time::OffsetDateTime::now_utc() - time::Duration::days(400),
        )
        .unwrap();
    let rendered = cluster_state(&c.master)
        .bootstrap_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.id == rendered_id)
        .unwrap();
    assert!(!rendered.authenticates && !rendered.signs, "{rendered:?}");

    // A worker created now reads the vault's token (the rotated one) and joins.
    let worker_yaml = node_yaml(&c.rendered, &c.fake, "workers", c.port);
    c.fake.set_vm("rot-workers_0");
    let worker = machine(&c.rendered, "workers", "rot-workers000000", &worker_yaml);
    let out = agent(&worker, &c.fake, &["run"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status(&worker)["done"], true);
    let nodes = cluster_state(&c.master).nodes().unwrap();
    assert!(nodes.contains_key("rot-workers000000"), "{nodes:#?}");

    // A worker handed the expired token directly is refused by the cluster.
    c.fake.put_secret(JOIN_SECRET, &c.rendered_token);
    c.fake.set_vm("rot-workers_1");
    let late = machine(&c.rendered, "workers", "rot-workers000001", &worker_yaml);
    let out = agent(&late, &c.fake, &["run"]).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let join = phase(&status(&late), "join");
    assert_eq!(join["state"], "failed", "{join:#}");
    let error = join["lastError"].as_str().unwrap();
    assert!(error.contains(&rendered_id), "{error}");
    let nodes = cluster_state(&c.master).nodes().unwrap();
    assert!(!nodes.contains_key("rot-workers000001"), "{nodes:#?}");
}
