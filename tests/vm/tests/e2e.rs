//! End to end, in QEMU VMs, the way kubeboot runs on Azure: the VM knows nothing but its user data.
//! `kubeboot-gen` renders a cluster; each VM boots the test image (the agent's .deb installed as
//! Packer would) from a NoCloud seed whose user data is exactly the rendered
//! `pools/<pool>/user-data.yaml`; the host serves the artifact mirror (stand-in kubeadm/kubelet,
//! real kubectl) and a fake IMDS on loopback only. kubeadm, kubelet and the API server are the
//! stand-ins of `tests/stand-ins` because their real binaries are not available here.
//!
//! One test, so the VM runs never overlap (two cores): master and worker with a reboot; an Azure
//! master that learns who it is from the fake IMDS and reads the cluster's secrets from a fake Key
//! Vault over TLS, then an Azure worker that joins with the token the master rotated into it; a
//! master and worker booted at the previous minor and upgraded with `kubeboot-agent upgrade`; then
//! the timings table. Evidence (consoles, what
//! each guest sent back) stays in `target/vm-e2e/` for a failing run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use kubeboot_nodeconfig::NodeConfig;
use kubeboot_stand_ins::fake_azure::{FakeAzure, Seen, VAULT_RESOURCE, VAULT_SUFFIX};
use kubeboot_test_kit::binaries::binaries;
use kubeboot_vm_e2e::checks::{self, Phase};
use kubeboot_vm_e2e::cluster::{
    self, Node, NodeSpec, AGENT_UNIT, KUBERNETES_VERSION, UPGRADE_FROM,
};
use kubeboot_vm_e2e::evidence::Boot;
use kubeboot_vm_e2e::imds;
use kubeboot_vm_e2e::qemu::{self, Image};
use kubeboot_vm_e2e::secrets::{node_config_from_user_data, Needle};
use kubeboot_vm_e2e::seed::Instrumentation;
use kubeboot_vm_e2e::{baseline, capture};
use kubeboot_vm_e2e::{mirror, workspace_root};

/// Upper bounds only (a loaded CI machine is slow under TCG); nothing is asserted on time.
const VM_TIMEOUT: Duration = Duration::from_secs(1500);
const BOOT_WAIT: Duration = Duration::from_secs(1200);

struct Env {
    work: PathBuf,
    bin: PathBuf,
    image: Image,
    mirror_tree: PathBuf,
    payload: Vec<(String, PathBuf)>,
}

struct Rendered {
    dir: PathBuf,
    configs: BTreeMap<String, NodeConfig>,
    needles: Vec<Needle>,
}

impl Rendered {
    /// Renders `specs/<spec>` into `target/vm-e2e/<run>/` (each run has its own secrets).
    fn new(env: &Env, run: &str, spec: &str, pools: &[&str]) -> Result<Self> {
        Self::render(
            env,
            run,
            &workspace_root().join("tests/vm/specs").join(spec),
            pools,
        )
    }

    fn render(env: &Env, run: &str, spec_path: &Path, pools: &[&str]) -> Result<Self> {
        let dir = env.work.join(run);
        cluster::render(&env.bin, spec_path, &dir)?;
        let mut configs = BTreeMap::new();
        for pool in pools {
            let config = node_config_from_user_data(&cluster::user_data(&dir, pool))?;
            configs.insert(pool.to_string(), config);
        }
        let needles = checks::cluster_needles(&dir, &configs.values().collect::<Vec<_>>())?;
        Ok(Self {
            dir,
            configs,
            needles,
        })
    }

    fn config(&self, pool: &str) -> &NodeConfig {
        &self.configs[pool]
    }
}

impl Env {
    fn prepare() -> Result<Self> {
        let work = workspace_root().join("target/vm-e2e");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let started = Instant::now();
        let bin = binaries().to_path_buf();
        let image = cluster::build_image(&work.join("image"))?;
        println!("binaries and image ready in {:.0?}", started.elapsed());
        let stripped = work.join("stripped");
        std::fs::create_dir_all(&stripped)?;
        let strip = |name: &str| cluster::stripped(&bin.join(name), &stripped);
        let mirror_tree = work.join("mirror");
        let (kubeadm, kubelet) = (strip("kubeadm")?, strip("kubelet")?);
        // Each release's kubeadm and kubelet report that release, as real ones do.
        for version in [KUBERNETES_VERSION, UPGRADE_FROM] {
            let stamped = |binary: &Path| -> Result<PathBuf> {
                let dir = stripped.join(version);
                std::fs::create_dir_all(&dir)?;
                let out = dir.join(binary.file_name().unwrap_or_default());
                std::fs::write(
                    &out,
                    kubeboot_stand_ins::version::stamped(&std::fs::read(binary)?, version),
                )?;
                Ok(out)
            };
            mirror::build_release_tree(
                &mirror_tree,
                version,
                &[
                    ("kubeadm", stamped(&kubeadm)?),
                    ("kubelet", stamped(&kubelet)?),
                    ("kubectl", kubeboot_stand_ins::test_kubectl()),
                ],
            )?;
        }
        let payload = vec![
            (
                "kubeboot-e2e-sampler".to_string(),
                cluster::stripped(
                    Path::new(env!("CARGO_BIN_EXE_kubeboot-e2e-sampler")),
                    &stripped,
                )?,
            ),
            ("kube-apiserver".to_string(), strip("kube-apiserver")?),
        ];
        Ok(Self {
            work,
            bin,
            image,
            mirror_tree,
            payload,
        })
    }

    fn node_spec(&self, hostname: &str, pool: &str, index: u8, master: bool) -> NodeSpec {
        NodeSpec {
            hostname: hostname.into(),
            pool: pool.into(),
            // kubeadm's minimum for a control-plane node is 2 CPUs and 1700 MB; workers get 2
            // vCPUs too (a 1-vCPU guest hung in early boot under TCG on a loaded host).
            cpus: 2,
            memory_mb: if master { 2048 } else { 1536 },
            index,
            link: None,
            mirror: mirror::Behaviour::default(),
            imds: None,
            forwards: vec![],
            instrumentation: Instrumentation {
                baseline: false,
                agent_unit: AGENT_UNIT.into(),
                deadline_seconds: BOOT_WAIT.as_secs(),
                kill_agent_during_kubeadm_init: false,
                extra_files: if master {
                    vec![checks::NODES_JSON.into()]
                } else {
                    vec![]
                },
                hosts: vec![],
                upgrade_to: None,
                drain_after_upgrade: None,
            },
            payload: self.payload.clone(),
            timeout: VM_TIMEOUT,
        }
    }

    /// Starts a node; its files (seed, disk, consoles, evidence) go beside the rendered cluster.
    fn start(&self, rendered: &Rendered, spec: NodeSpec) -> Result<Node> {
        let user_data = cluster::user_data(&rendered.dir, &spec.pool);
        self.boot(rendered, spec, &user_data)
    }

    fn boot(&self, rendered: &Rendered, spec: NodeSpec, user_data: &Path) -> Result<Node> {
        Node::start(
            &self.image,
            user_data,
            &self.mirror_tree,
            spec,
            &rendered.dir,
        )
    }

    /// Starts a node whose user data is the shell baseline instead of the rendered file.
    fn start_baseline(
        &self,
        rendered: &Rendered,
        mut spec: NodeSpec,
        address: &str,
    ) -> Result<Node> {
        let user_data = rendered.dir.join(format!("{}.baseline.sh", spec.hostname));
        baseline::write_user_data(
            rendered.config(&spec.pool),
            &spec.hostname,
            address,
            &user_data,
        )?;
        spec.instrumentation.baseline = true;
        // The node is done when cloud-final (which runs the script) is.
        spec.instrumentation.agent_unit = "cloud-final.service".into();
        self.boot(rendered, spec, &user_data)
    }
}

/// The two-node layout of `specs/none.yaml`, rendered for `run`: master-0 and worker-0 on a
/// private link (master 192.168.100.10, worker 192.168.100.20).
fn two_nodes(env: &Env, run: &str) -> Result<(Rendered, NodeSpec, NodeSpec)> {
    let rendered = Rendered::new(env, run, "none.yaml", &["master", "worker"])?;
    let (master, worker) = two_node_specs(env)?;
    Ok((rendered, master, worker))
}

/// master-0 and worker-0 of `specs/none.yaml`'s layout, on their private link.
fn two_node_specs(env: &Env) -> Result<(NodeSpec, NodeSpec)> {
    let mut master = env.node_spec("master-0", "master", 1, true);
    let mut worker = env.node_spec("worker-0", "worker", 2, false);
    let (a, b) = cluster::udp_port_pair()?;
    master.link = Some(("192.168.100.10/24".into(), a, b));
    worker.link = Some(("192.168.100.20/24".into(), b, a));
    Ok((master, worker))
}

/// The upgrade: `specs/none.yaml` at UPGRADE_FROM, master and worker booted, then each node runs
/// `kubeboot-agent upgrade --to KUBERNETES_VERSION` from its evidence collector (the worker's
/// retried until the master's control plane is at the target and the master drained it for the
/// operator). Both must finish every step, run the new kubelet (restarted: its process's
/// executable is the new file) and kubeadm, be schedulable again, the API server must say the
/// new version, no unit may have failed and no secret may show in the upgrade's status or log.
fn upgrade(env: &Env, _timings: &mut Vec<Timing>) -> Result<()> {
    let spec = env.work.join("upgrade-spec.yaml");
    let none = std::fs::read_to_string(workspace_root().join("tests/vm/specs/none.yaml"))?;
    let from = format!("kubernetesVersion: {KUBERNETES_VERSION}");
    ensure!(
        none.contains(&from),
        "specs/none.yaml is not at {KUBERNETES_VERSION}"
    );
    std::fs::write(
        &spec,
        none.replace(&from, &format!("kubernetesVersion: {UPGRADE_FROM}")),
    )?;
    let rendered = Rendered::render(env, "upgrade", &spec, &["master", "worker"])?;
    let (mut master_spec, mut worker_spec) = two_node_specs(env)?;
    for spec in [&mut master_spec, &mut worker_spec] {
        spec.instrumentation.upgrade_to = Some(KUBERNETES_VERSION.into());
    }
    master_spec.instrumentation.drain_after_upgrade = Some(worker_spec.hostname.clone());
    let mut master = env.start(&rendered, master_spec)?;
    let mut worker = env.start(&rendered, worker_spec)?;
    for node in [&mut master, &mut worker] {
        let name = node.spec.hostname.clone();
        let boot = node.wait_dumped(1, BOOT_WAIT)?;
        done(&name, &boot)?;
    }
    let mut upgraded = Vec::new();
    for node in [&mut master, &mut worker] {
        let name = node.spec.hostname.clone();
        let boot = node.wait_event(1, "upgrade-dumped", BOOT_WAIT)?;
        ensure!(
            boot.event("upgrade-deadline-passed").is_none(),
            "{name}: the upgrade did not finish: {}",
            boot.text("upgrade-log")?
        );
        let status: serde_json::Value = serde_json::from_str(&boot.text("upgrade-status")?)?;
        let record = &status["upgrade"];
        ensure!(
            record["from"] == UPGRADE_FROM
                && record["to"] == KUBERNETES_VERSION
                && record["finishedAt"].is_string(),
            "{name}: {record:#}"
        );
        let mut seconds = 0.0;
        for step in record["steps"].as_array().context("upgrade steps")? {
            ensure!(
                step["state"] == "done" || step["state"] == "skipped",
                "{name}: {step:#}"
            );
            seconds += step["durationMs"].as_f64().unwrap_or(0.0) / 1000.0;
        }
        let versions = boot.text("upgrade-versions")?;
        ensure!(
            versions.contains(&format!("Kubernetes {KUBERNETES_VERSION}"))
                && versions.lines().any(|l| l.trim() == KUBERNETES_VERSION)
                && versions.contains("ActiveState=active"),
            "{name}: {versions}"
        );
        ensure!(
            !versions.contains("(deleted)"),
            "{name}: the kubelet still runs the old binary: {versions}"
        );
        ensure!(
            versions.lines().any(|l| l.trim() == "unschedulable="),
            "{name}: not uncordoned: {versions}"
        );
        ensure!(
            boot.text("upgrade-failed-units")?.trim().is_empty(),
            "{name}: failed units after the upgrade: {}",
            boot.text("upgrade-failed-units")?
        );
        checks::no_secret_leaks(&name, &boot, &rendered.needles)?;
        if name == "master-0" {
            let server: serde_json::Value =
                serde_json::from_str(&boot.text("upgrade-server-version")?)?;
            ensure!(
                server["serverVersion"]["gitVersion"] == KUBERNETES_VERSION,
                "{name}: {server:#}"
            );
        }
        upgraded.push((name, seconds));
    }
    for (name, seconds) in upgraded {
        println!("upgrade {UPGRADE_FROM} -> {KUBERNETES_VERSION} in the VM: {name}: its steps took {seconds:.1} s");
    }
    master.vm.stop();
    worker.vm.stop();
    Ok(())
}

/// One row of the timings table.
struct Timing {
    run: String,
    node: String,
    boot_to_done: f64,
    /// From the setup's start (the agent's unit, or cloud-final running the baseline script) to
    /// done: the same boot before it, so it compares runs booted under different host loads.
    setup: f64,
    /// The agent's own CPU; for the shell baseline, that of its curl and sha256sum.
    own_cpu: checks::Cpu,
    /// The agent's peak resident set in MB (None for the shell baseline).
    agent_peak_rss_mb: Option<f64>,
    /// The agent's CPU by thread name (empty for the shell baseline).
    agent_threads: Vec<(String, checks::Cpu)>,
    /// The machine's softirq seconds: while sampling, and while downloading.
    softirq: (f64, f64),
    phases: Vec<Phase>,
}

fn timing(run: &str, node: &str, boot: &Boot) -> Result<Timing> {
    let cost = checks::own_cost(boot)?;
    Ok(Timing {
        run: run.into(),
        node: node.into(),
        boot_to_done: checks::agent_exit_seconds(boot)?,
        setup: checks::agent_exit_seconds(boot)? - checks::agent_start_seconds(boot)?,
        own_cpu: cost.agent_cpu,
        agent_peak_rss_mb: Some(cost.agent_peak_rss_mb),
        agent_threads: cost.agent_threads,
        softirq: cost.softirq,
        phases: checks::phases(boot)?,
    })
}

fn done(node: &str, boot: &Boot) -> Result<()> {
    let unit = boot.unit()?;
    let phases = checks::phases(boot)?;
    ensure!(
        unit.get("Result").map(String::as_str) == Some("success")
            && unit.get("ActiveState").map(String::as_str) == Some("active"),
        "{node} boot {}: agent unit {:?}/{:?}; phases: {phases:?}",
        boot.number,
        unit.get("ActiveState"),
        unit.get("Result")
    );
    ensure!(
        phases
            .iter()
            .all(|p| p.state == "done" || p.state == "skipped")
            && phases.iter().any(|p| p.name == "done" && p.state == "done"),
        "{node} boot {}: not every phase is done or skipped: {phases:?}",
        boot.number
    );
    no_failed_units(node, boot)
}

/// Nothing else on the node failed either: e.g. a cloud-init stage whose module hit a missing
/// tool (cloud-init 24.3+ fails the stage's unit and carries on, so only the unit shows it).
fn no_failed_units(node: &str, boot: &Boot) -> Result<()> {
    let failed = boot.text("failed-units")?;
    ensure!(
        failed.trim().is_empty(),
        "{node} boot {}: failed units:\n{failed}",
        boot.number
    );
    Ok(())
}

/// The user data in the seed is byte for byte the rendered file.
fn seeded_exactly(node: &Node, rendered: &Rendered) -> Result<()> {
    let rendered_file = std::fs::read(cluster::user_data(&rendered.dir, &node.spec.pool))?;
    ensure!(
        node.user_data_sha256 == kubeboot_vm_e2e::secrets::sha256_hex(&rendered_file),
        "{}: the seed's user data differs from the rendered file",
        node.spec.hostname
    );
    Ok(())
}

/// After a clean reboot the agent's unit is skipped (its condition: not done yet) and nothing is
/// redone: no agent log line, no kubeadm, the phases' records unchanged, no new registration.
fn nothing_redone(node: &str, first: &Boot, second: &Boot) -> Result<()> {
    let unit = second.unit()?;
    ensure!(
        unit.get("ActiveState").map(String::as_str) == Some("inactive")
            && unit.get("ConditionResult").map(String::as_str) == Some("no"),
        "{node}: after the reboot the agent unit is {:?} (condition {:?})",
        unit.get("ActiveState"),
        unit.get("ConditionResult")
    );
    let journal = second.text("journal")?;
    ensure!(
        !journal.contains("kubeboot-agent["),
        "{node}: the agent logged after the reboot"
    );
    let processes = second.text("processes")?;
    ensure!(
        !processes.lines().any(|l| l
            .split_whitespace()
            .next()
            .is_some_and(|program| program.rsplit('/').next() == Some("kubeadm"))),
        "{node}: kubeadm ran after the reboot"
    );
    let before: Vec<_> = checks::phases(first)?
        .into_iter()
        .map(|p| (p.name, p.finished))
        .collect();
    let after: Vec<_> = checks::phases(second)?
        .into_iter()
        .map(|p| (p.name, p.finished))
        .collect();
    ensure!(
        before == after,
        "{node}: phase records changed across the reboot"
    );
    Ok(())
}

fn happy_path(env: &Env, timings: &mut Vec<Timing>) -> Result<()> {
    let (rendered, master_spec, worker_spec) = two_nodes(env, "happy-path")?;
    let mut master = env.start(&rendered, master_spec)?;
    let mut worker = env.start(&rendered, worker_spec)?;
    let master_boot = master.wait_dumped(1, BOOT_WAIT)?;
    let worker_boot = worker.wait_dumped(1, BOOT_WAIT)?;
    println!(
        "happy path: both nodes settled {:.0?} after start",
        master.vm.started.elapsed()
    );
    timings.push(timing("kubeboot", "master-0", &master_boot)?);
    timings.push(timing("kubeboot", "worker-0", &worker_boot)?);
    converged(&rendered, (master, master_boot), (worker, worker_boot))
}

/// What every two-node run must end with: both nodes done, the worker pinned the cluster CA, no
/// secret leaked, no IMDS traffic (provider none); then after a clean reboot nothing is redone
/// and both nodes are registered with their pools' labels and taints.
fn converged(rendered: &Rendered, master: (Node, Boot), worker: (Node, Boot)) -> Result<()> {
    let ((master, master_boot), (worker, worker_boot)) = (master, worker);
    for (node, boot) in [(&master, &master_boot), (&worker, &worker_boot)] {
        let name = &node.spec.hostname;
        seeded_exactly(node, rendered)?;
        done(name, boot)?;
        checks::no_secret_leaks(name, boot, &rendered.needles)?;
        ensure!(
            node.imds.hits().is_empty() && imds_packets_only_to_the_forward(node)? == 0,
            "{name}: a provider-none node called IMDS"
        );
    }
    checks::worker_pinned_ca(&worker_boot, &rendered.dir, rendered.config("worker"))?;

    master.vm.reboot()?;
    worker.vm.reboot()?;
    let mut pairs = Vec::new();
    for (mut node, boot) in [(master, master_boot), (worker, worker_boot)] {
        let again = node.wait_dumped(boot.number + 1, BOOT_WAIT)?;
        nothing_redone(&node.spec.hostname, &boot, &again)?;
        checks::no_secret_leaks(&node.spec.hostname, &again, &rendered.needles)?;
        pairs.push((node, again));
    }
    // The master's own evidence of its first run may predate the worker's join (the master is
    // done first); its records dumped after the reboot hold both registrations.
    let nodes = checks::registered_nodes(&pairs[0].1)?;
    checks::node_registered(&nodes, "master-0", rendered.config("master"), None)?;
    checks::node_registered(&nodes, "worker-0", rendered.config("worker"), None)?;
    for (node, _) in pairs {
        node.vm.stop();
    }
    Ok(())
}

/// Faults, in one two-node run (a boot costs minutes under TCG):
/// - the worker starts alone, its downloads slowed, and is rebooted while `install` is
///   downloading; the master starts only once the rebooted worker has fetched everything again,
///   so the worker must wait for the control-plane endpoint with backoff, then join;
/// - the master's agent is SIGKILLed while `kubeadm init` runs; its unit restarts it.
fn faults(env: &Env, timings: &mut Vec<Timing>) -> Result<()> {
    let (rendered, mut master_spec, mut worker_spec) = two_nodes(env, "faults")?;
    master_spec.instrumentation.kill_agent_during_kubeadm_init = true;
    // ~15 s for kubectl: long enough to reboot in the middle of it.
    worker_spec.mirror.bytes_per_second = Some(4 << 20);
    let mut worker = env.start(&rendered, worker_spec)?;

    let cut = worker
        .vm
        .wait_for("a download in progress", BOOT_WAIT, |_| {
            worker.mirror.hits().into_iter().find(|h| {
                h.status == 0 && !h.url.ends_with(".sha256") && h.at.elapsed().as_secs() >= 3
            })
        })?;
    worker.vm.reboot()?;
    let rebooted = Instant::now();
    println!(
        "faults: worker rebooted {:.0?} after start while downloading {}",
        worker.vm.started.elapsed(),
        cut.url
    );
    worker
        .vm
        .wait_for("the interrupted download again", BOOT_WAIT, |_| {
            worker
                .mirror
                .hits()
                .into_iter()
                .find(|h| h.url == cut.url && h.at > rebooted && h.status == 200)
        })?;
    let mut master = env.start(&rendered, master_spec)?;
    println!(
        "faults: master started {:.0?} after the worker",
        worker.vm.started.elapsed()
    );
    let master_boot = master.wait_dumped(1, BOOT_WAIT)?;
    let worker_boot = worker.wait_dumped(2, BOOT_WAIT)?;
    println!(
        "faults: both nodes settled {:.0?} after the worker started",
        worker.vm.started.elapsed()
    );

    ensure!(
        !worker
            .boots()?
            .iter()
            .any(|b| b.number == 1 && b.is_dumped()),
        "worker-0: boot 1 was not interrupted by the reboot"
    );
    let fetches = worker
        .mirror
        .hits()
        .iter()
        .filter(|h| h.url == cut.url)
        .count();
    ensure!(
        fetches >= 2,
        "worker-0: {} was fetched {fetches} time(s), not again after the reboot",
        cut.url
    );
    let waits = checks::endpoint_wait_attempts(&worker_boot)?;
    println!("faults: worker-0 waited for the endpoint, attempts at {waits:?} s after boot");
    ensure!(
        waits.len() >= 3,
        "worker-0: did not wait for the control-plane endpoint with retries (attempts at {waits:?})"
    );
    ensure!(
        master_boot.event("fault").is_some(),
        "master-0: the agent was never killed during kubeadm init"
    );
    let restarts: u32 = master_boot
        .unit()?
        .get("NRestarts")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    ensure!(
        restarts >= 1,
        "master-0: the agent's unit was not restarted after the kill"
    );
    let journal = master_boot.text("journal")?;
    let init_runs = journal
        .lines()
        .filter(|l| l.contains("starting:") && l.contains("phase=\"control-plane-init\""))
        .count();
    ensure!(
        init_runs >= 2,
        "master-0: control-plane-init did not run again after the kill ({init_runs} run)"
    );
    if let Some(resumed) = journal.lines().find(|l| {
        l.contains("phase=\"control-plane-init\"")
            && (l.contains("finishing init") || l.contains("did not finish"))
    }) {
        println!("faults: master-0 after the kill: {resumed}");
    }
    timings.push(timing("kubeboot-faults", "master-0", &master_boot)?);
    timings.push(timing(
        "kubeboot-faults",
        "worker-0 (boot 2)",
        &worker_boot,
    )?);
    converged(&rendered, (master, master_boot), (worker, worker_boot))
}

/// A worker whose mirror corrupts kubelet in transit (its `.sha256` stays right).
fn start_corrupted_node(env: &Env) -> Result<Node> {
    let rendered = Rendered::new(env, "corrupt", "none.yaml", &["worker"])?;
    let mut spec = env.node_spec("worker-9", "worker", 4, false);
    spec.mirror.corrupt = Some("kubelet".into());
    env.start(&rendered, spec)
}

/// The node fails clearly: the agent's unit failed with an exit code (and, as `Restart=on-failure`
/// says, is failed or waiting to try again), `status` names the digest mismatch of kubelet in
/// `install`, and none of the Kubernetes binaries was installed.
fn corrupted_node_failed(mut node: Node) -> Result<()> {
    let boot = node.wait_dumped(1, BOOT_WAIT)?;
    let unit = boot.unit()?;
    let state = (
        unit.get("ActiveState").map(String::as_str),
        unit.get("SubState").map(String::as_str),
    );
    ensure!(
        matches!(
            state,
            (Some("failed"), _) | (Some("activating"), Some("auto-restart"))
        ) && unit.get("Result").map(String::as_str) == Some("exit-code")
            && unit.get("ExecMainStatus").map(String::as_str) != Some("0"),
        "worker-9: the agent unit did not fail with an exit code: {:?}/{:?}/{:?}",
        unit.get("ActiveState"),
        unit.get("Result"),
        unit.get("ExecMainStatus")
    );
    let phases = checks::phases(&boot)?;
    let install = phases
        .iter()
        .find(|p| p.name == "install")
        .context("status has no install phase")?;
    let error = install.error.clone().unwrap_or_default();
    ensure!(
        install.state == "failed"
            && error.contains("kubelet")
            && error.contains("SHA-256 mismatch"),
        "worker-9: status does not say install failed on kubelet's digest: {install:?}"
    );
    let needing_install = checks::dependents(&phases, "install");
    ensure!(
        needing_install.len() >= 3 && needing_install.iter().all(|p| p.state != "done"),
        "worker-9: phases that need the failed install ran: {needing_install:?}"
    );
    let listed = boot.text("large-files")?;
    let files = boot.files("changed-files")?;
    for tool in ["kubelet", "kubeadm", "kubectl"] {
        let path = format!("/usr/local/bin/{tool}");
        ensure!(
            checks::file(&files, &path).is_none() && !listed.split_whitespace().any(|w| w == path),
            "worker-9: {path} was installed from a failed fetch"
        );
    }
    println!("corrupt: worker-9 failed as it should: {error}");
    node.vm.stop();
    Ok(())
}

/// Every packet the guest sent to 169.254.169.254 on its uplink went to TCP port 80, the only
/// one `guestfwd` hands to the loopback IMDS; returns how many there were.
fn imds_packets_only_to_the_forward(node: &Node) -> Result<usize> {
    let imds_ip = qemu::IMDS_ADDR.split(':').next().unwrap_or_default();
    let packets = capture::packets_to(&node.vm.uplink_capture, imds_ip.parse()?)?;
    let stray: Vec<_> = packets
        .iter()
        .filter(|p| !(p.protocol == 6 && p.port == 80))
        .collect();
    ensure!(
        stray.is_empty(),
        "{}: packets to {imds_ip} other than TCP/80 (not forwarded to the loopback IMDS): {stray:?}",
        node.spec.hostname
    );
    Ok(packets.len())
}

/// The Azure flavour: the master of `specs/azure.yaml`, scale-set instance 0 (so the first
/// master) in zone 2, whose only source of identity is the fake IMDS. Its private address
/// (what IMDS reports) is on a second NIC, as the subnet's address of an Azure NIC is. Once it
/// is done, the worker pool's first instance joins it (`azure_worker`).
fn azure_master(env: &Env, timings: &mut Vec<Timing>) -> Result<()> {
    let vault = FakeAzure::start();
    let spec_path = with_ca_bundle(env, "azure.yaml", &vault.ca_pem)?;
    let rendered = Rendered::render(env, "azure", &spec_path, &["master", AZURE_WORKER_POOL])?;
    let config = rendered.config("master");
    let azure = config
        .provider
        .azure
        .as_ref()
        .context("the azure spec renders an azure provider")?;
    let custom = azure
        .custom_cloud
        .as_ref()
        .context("the azure spec renders a custom cloud")?;
    ensure!(
        custom.key_vault_dns_suffix == VAULT_SUFFIX && custom.key_vault_resource == VAULT_RESOURCE,
        "specs/azure.yaml's customCloud is not the fake vault's ({VAULT_SUFFIX}, {VAULT_RESOURCE})"
    );
    let key_vault = &config
        .secrets
        .as_ref()
        .context("the azure master reads its secrets from a Key Vault")?
        .key_vault;
    let pki_secret = key_vault
        .pki_secret
        .clone()
        .context("the azure master's NodeConfig names no PKI secret")?;
    custom_data_holds_no_secret(&rendered, "master")?;
    // What the ARM deployment puts in the vault, the master identity's role to read all of it and
    // to write the join token (Key Vault Secrets Officer on that secret only).
    let secrets = cluster_secrets(&rendered.dir)?;
    for (name, value) in &secrets {
        vault.put_secret(name, value);
        vault.grant(name);
    }
    vault.grant_write(&key_vault.join_token_secret);
    let rendered_token = secrets
        .iter()
        .find(|(name, _)| *name == key_vault.join_token_secret)
        .map(|(_, value)| value.clone())
        .context("the rendered clusterSecrets hold no join token")?;
    // Instance 0 of a pool's scale set in zone 2, with an address of the pool's subnet.
    let instance_of = |pool: &str, private_ip: &str| imds::Instance {
        subscription_id: azure.subscription_id.clone(),
        resource_group: azure.resource_group.clone(),
        location: azure.location.clone(),
        // The generator's names: scale set `<cluster>-<pool>`, computer names `<cluster>-<pool>-`.
        vm_scale_set: format!("{}-{pool}", config.cluster.name),
        computer_name_prefix: format!("{}-{pool}-", config.cluster.name),
        ordinal: 0,
        zone: "2".into(),
        private_ip: private_ip.into(),
    };
    let instance = instance_of("master", "10.240.0.4");
    let node_name = instance.computer_name();
    let mut spec = env.node_spec(&node_name, "master", 3, true);
    spec.imds = Some(instance.clone());
    // The vault's name resolves (through the test environment's seed) to the forwarded address.
    spec.forwards
        .push((qemu::VAULT_ADDR.into(), vault.vault_addr().port()));
    let vault_ip = qemu::VAULT_ADDR.split(':').next().unwrap_or_default();
    spec.instrumentation.hosts.push((
        vault_ip.into(),
        format!("{}.{VAULT_SUFFIX}", key_vault.name),
    ));
    // A NIC with the address IMDS reports, linked to the worker's (the VNet: one /16).
    let (master_port, worker_port) = cluster::udp_port_pair()?;
    spec.link = Some((
        format!("{}/16", instance.private_ip),
        master_port,
        worker_port,
    ));
    spec.instrumentation
        .extra_files
        .push(checks::OBJECTS_JSON.into());
    let mut master = env.start(&rendered, spec)?;
    seeded_exactly(&master, &rendered)?;
    let boot = master.wait_dumped(1, BOOT_WAIT)?;
    println!(
        "azure: master settled {:.0?} after start",
        master.vm.started.elapsed()
    );
    done(&node_name, &boot)?;

    let hits = master.imds.hits();
    ensure!(!hits.is_empty(), "{node_name}: the agent never called IMDS");
    for hit in &hits {
        ensure!(
            hit.header("Metadata") == Some("true") && hit.status == 200,
            "{node_name}: IMDS request {} {} (Metadata: {:?}) answered {}",
            hit.method,
            hit.url,
            hit.header("Metadata"),
            hit.status
        );
    }
    let forwarded = imds_packets_only_to_the_forward(&master)?;
    ensure!(
        forwarded > 0,
        "{node_name}: no IMDS packet on the uplink capture"
    );
    ensure!(
        hits.iter()
            .any(|h| h.url.starts_with("/metadata/identity/oauth2/token?")),
        "{node_name}: the agent never asked IMDS for an identity token"
    );
    let seen = vault.seen();
    let secret_reads = secret_reads(&seen);
    ensure!(
        secret_reads.iter().all(|(_, bearer_ok)| *bearer_ok)
            && secret_reads
                .iter()
                .any(|(path, _)| *path == format!("/secrets/{pki_secret}")),
        "{node_name}: the vault did not see an authorised read of {pki_secret}: {secret_reads:?}"
    );
    println!("azure: the vault served {secret_reads:?}");
    // The join-token phase put this hour's token into the vault in place of the rendered one.
    let token_path = format!("/secrets/{}", key_vault.join_token_secret);
    let writes: Vec<bool> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::SetSecret { path, bearer_ok } if *path == token_path => Some(*bearer_ok),
            _ => None,
        })
        .collect();
    let rotated = vault
        .secret(&key_vault.join_token_secret)
        .context("the vault lost the join token")?;
    ensure!(
        !writes.is_empty() && writes.iter().all(|ok| *ok) && rotated != rendered_token,
        "{node_name}: the join token was not rotated into the vault (writes with a valid bearer: {writes:?}; the vault holds the rendered token: {})",
        rotated == rendered_token
    );
    println!(
        "azure: the master wrote the vault's join token {} time(s)",
        writes.len()
    );
    let mut needles = rendered.needles.clone();
    needles.push(kubeboot_vm_e2e::secrets::Needle {
        name: "the rotated join token".into(),
        patterns: rotated
            .split_once('.')
            .map(|(_, secret)| secret.to_string())
            .into_iter()
            .collect(),
    });

    let nodes = checks::registered_nodes(&boot)?;
    checks::node_registered(&nodes, &node_name, config, Some(&instance.provider_id()))?;
    let labels = &nodes[&node_name]["metadata"]["labels"];
    for (key, value) in [
        (
            "topology.kubernetes.io/zone",
            format!("{}-{}", instance.location, instance.zone),
        ),
        ("topology.kubernetes.io/region", instance.location.clone()),
    ] {
        ensure!(
            labels[key].as_str() == Some(value.as_str()),
            "{node_name}: label {key} is {} (IMDS says {value})",
            labels[key]
        );
    }
    checks::endpoint_mapped_locally(&boot, config, &instance.private_ip)?;
    checks::azure_addons_applied(&boot)?;
    checks::no_secret_leaks(&node_name, &boot, &needles)?;
    timings.push(timing("kubeboot-azure", &node_name, &boot)?);

    let worker = AzureWorker {
        instance: instance_of(AZURE_WORKER_POOL, "10.240.1.4"),
        link: (worker_port, master_port),
        master_ip: instance.private_ip.clone(),
    };
    azure_worker(env, &rendered, &vault, worker, &needles, timings)?;
    master.vm.stop();
    Ok(())
}

const AZURE_WORKER_POOL: &str = "general";

/// The vault's Get Secret requests among `seen`: path, and whether the bearer was IMDS's.
fn secret_reads(seen: &[Seen]) -> Vec<(String, bool)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Secret { path, bearer_ok } => Some((path.clone(), *bearer_ok)),
            _ => None,
        })
        .collect()
}

/// Who the Azure worker is and how it reaches the master.
struct AzureWorker {
    instance: imds::Instance,
    /// Its end of the link to the master (local, remote UDP ports).
    link: (u16, u16),
    /// Where the endpoint's name leads (the load balancer's frontend on Azure).
    master_ip: String,
}

/// A worker created once the master has replaced the rendered join token in the vault: it
/// learns who it is from its own fake IMDS, reads the vault's current token (its NodeConfig
/// carries none) and joins the master through the endpoint's name.
fn azure_worker(
    env: &Env,
    rendered: &Rendered,
    vault: &FakeAzure,
    worker: AzureWorker,
    needles: &[Needle],
    timings: &mut Vec<Timing>,
) -> Result<()> {
    let config = rendered.config(AZURE_WORKER_POOL);
    custom_data_holds_no_secret(rendered, AZURE_WORKER_POOL)?;
    let key_vault = &config
        .secrets
        .as_ref()
        .context("the azure worker reads its join token from a Key Vault")?
        .key_vault;
    ensure!(
        key_vault.pki_secret.is_none(),
        "the azure worker's NodeConfig names the PKI secret"
    );
    let node_name = worker.instance.computer_name();
    let mut spec = env.node_spec(&node_name, AZURE_WORKER_POOL, 4, false);
    spec.imds = Some(worker.instance.clone());
    spec.forwards
        .push((qemu::VAULT_ADDR.into(), vault.vault_addr().port()));
    let vault_ip = qemu::VAULT_ADDR.split(':').next().unwrap_or_default();
    let endpoint_host = config.cluster.control_plane_endpoint.host();
    spec.instrumentation.hosts.extend([
        (
            vault_ip.to_string(),
            format!("{}.{VAULT_SUFFIX}", key_vault.name),
        ),
        (worker.master_ip.clone(), endpoint_host.to_string()),
    ]);
    spec.link = Some((
        format!("{}/16", worker.instance.private_ip),
        worker.link.0,
        worker.link.1,
    ));
    let seen_before = vault.seen().len();
    let mut node = env.start(rendered, spec)?;
    seeded_exactly(&node, rendered)?;
    let boot = node.wait_dumped(1, BOOT_WAIT)?;
    println!(
        "azure: worker settled {:.0?} after start",
        node.vm.started.elapsed()
    );
    done(&node_name, &boot)?;
    ensure!(
        node.imds
            .hits()
            .iter()
            .any(|h| h.url.starts_with("/metadata/identity/oauth2/token?")),
        "{node_name}: the worker never asked IMDS for an identity token"
    );
    // Since the worker started, the vault was only asked for the join token (by the worker, and
    // by the master's timer), never for the PKI, and only with the IMDS-issued bearer.
    let token_path = format!("/secrets/{}", key_vault.join_token_secret);
    let reads = secret_reads(&vault.seen()[seen_before..]);
    ensure!(
        !reads.is_empty() && reads.iter().all(|(path, ok)| *path == token_path && *ok),
        "{node_name}: vault reads since the worker started: {reads:?}"
    );
    checks::no_secret_leaks(&node_name, &boot, needles)?;
    timings.push(timing("kubeboot-azure", &node_name, &boot)?);
    node.vm.stop();
    Ok(())
}

/// `specs/<spec>` with `spec.azure.customCloud.caBundle` set to the fake vault's test CA (made
/// for this run), written beside the runs' directories.
fn with_ca_bundle(env: &Env, spec: &str, ca_pem: &str) -> Result<PathBuf> {
    let source = workspace_root().join("tests/vm/specs").join(spec);
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&source)?)?;
    let custom = doc["spec"]["azure"]
        .get_mut("customCloud")
        .with_context(|| format!("{spec}: no spec.azure.customCloud"))?;
    custom["caBundle"] = ca_pem.into();
    let out = env.work.join(spec);
    std::fs::write(&out, serde_yaml_ng::to_string(&doc)?)?;
    Ok(out)
}

/// The rendered `clusterSecrets` (what the ARM deployment creates the vault's secrets from).
fn cluster_secrets(rendered: &Path) -> Result<Vec<(String, String)>> {
    let path = rendered.join("arm/azuredeploy.parameters.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let secrets = doc["parameters"]["clusterSecrets"]["value"]
        .as_object()
        .with_context(|| format!("{}: no clusterSecrets", path.display()))?;
    secrets
        .iter()
        .map(|(name, value)| {
            let value = value
                .as_str()
                .with_context(|| format!("clusterSecrets.{name} is not a string"))?;
            Ok((name.clone(), value.to_string()))
        })
        .collect()
}

/// A vault-backed pool's user data (what Azure gets as custom data) carries no secret: its
/// NodeConfig has no token and no PKI, and none of the cluster's secrets appears in the file.
fn custom_data_holds_no_secret(rendered: &Rendered, pool: &str) -> Result<()> {
    let config = rendered.config(pool);
    ensure!(
        config.bootstrap.token.is_none() && config.pki.is_none(),
        "pool {pool}: the NodeConfig in its user data carries a token or the PKI"
    );
    let user_data = std::fs::read(cluster::user_data(&rendered.dir, pool))?;
    if let Some(needle) = kubeboot_vm_e2e::secrets::find(&rendered.needles, &user_data) {
        anyhow::bail!("pool {pool}: the user data carries {}", needle.name);
    }
    Ok(())
}

/// The shell baseline on the same image, the same two-node layout and the same mirror as the
/// happy path: both scripts must get to their last line.
fn shell_baseline(env: &Env, timings: &mut Vec<Timing>) -> Result<()> {
    let (rendered, master_spec, worker_spec) = two_nodes(env, "baseline")?;
    let mut master = env.start_baseline(&rendered, master_spec, "192.168.100.10")?;
    let mut worker = env.start_baseline(&rendered, worker_spec, "192.168.100.20")?;
    for node in [&mut master, &mut worker] {
        let boot = node.wait_dumped(1, BOOT_WAIT)?;
        let name = node.spec.hostname.clone();
        let output = boot.text("cloud-init-output")?;
        ensure!(
            output.contains(baseline::DONE_LINE),
            "baseline {name}: the script did not finish:\n{}",
            output.lines().rev().take(15).collect::<Vec<_>>().join("\n")
        );
        no_failed_units(&name, &boot)?;
        let cost = checks::own_cost(&boot)?;
        timings.push(Timing {
            run: "shell-baseline".into(),
            node: name,
            boot_to_done: checks::agent_exit_seconds(&boot)?,
            setup: checks::agent_exit_seconds(&boot)? - checks::agent_start_seconds(&boot)?,
            own_cpu: cost.fetch_tools_cpu,
            agent_peak_rss_mb: None,
            agent_threads: vec![],
            softirq: cost.softirq,
            phases: vec![],
        });
    }
    master.vm.stop();
    worker.vm.stop();
    Ok(())
}

/// Two single-VM runs side by side: the Azure master and the node that gets a corrupted kubelet.
fn azure_and_corrupt(env: &Env, timings: &mut Vec<Timing>) -> Result<()> {
    let corrupted = start_corrupted_node(env)?;
    azure_master(env, timings)?;
    corrupted_node_failed(corrupted)
}

fn print_timings(timings: &[Timing]) {
    println!(
        "\n{:<16} {:<20} {:>13} {:>9} {:>20} {:>8} {:>9}",
        "run", "node", "boot-to-done", "setup", "own CPU (user+sys)", "share", "peak RSS"
    );
    println!(
        "(setup: from the agent unit's start, or cloud-final's for the baseline, to done; own CPU: \
         the agent's, for the baseline its curl and sha256sum processes'; share: of boot-to-done; \
         peak RSS: the agent's, sampled)"
    );
    for t in timings {
        let rss = t
            .agent_peak_rss_mb
            .map_or("-".into(), |mb| format!("{mb:.1} MB"));
        let cpu = format!(
            "{:.2} s ({:.2}+{:.2})",
            t.own_cpu.total(),
            t.own_cpu.user,
            t.own_cpu.system
        );
        println!(
            "{:<16} {:<20} {:>11.1} s {:>7.1} s {:>20} {:>6.1} % {:>9}",
            t.run,
            t.node,
            t.boot_to_done,
            t.setup,
            cpu,
            100.0 * t.own_cpu.total() / t.boot_to_done,
            rss
        );
        let phases: Vec<String> = t
            .phases
            .iter()
            .map(|p| {
                format!(
                    "{}={}",
                    p.name,
                    p.seconds.map(|s| format!("{s:.1}s")).unwrap_or("-".into())
                )
            })
            .collect();
        if !phases.is_empty() {
            println!("    phases: {}", phases.join(" "));
        }
        println!(
            "    machine softirq: {:.2} s while sampled, {:.2} s of it while downloading",
            t.softirq.0, t.softirq.1
        );
        if !t.agent_threads.is_empty() {
            let threads: Vec<String> = t
                .agent_threads
                .iter()
                .map(|(name, cpu)| format!("{name}={:.2}+{:.2}s", cpu.user, cpu.system))
                .collect();
            println!("    agent CPU by thread (user+sys): {}", threads.join(" "));
        }
    }
}

/// kubeboot (the happy path) against the shell baseline, node by node, booted the same way, with
/// issue #17's goals as ratios: setup at most 0.6x the baseline's, and the agent's CPU at most the
/// baseline's curl + sha256sum CPU plus 1 % of kubeboot's boot-to-done.
fn print_comparison(timings: &[Timing]) {
    let row = |run: &str, node: &str| timings.iter().find(|t| t.run == run && t.node == node);
    println!(
        "\n{:<10} {:>22} {:>22} {:>18} {:>16}",
        "node", "boot-to-done k / sh", "setup k / sh", "CPU agent / sh", "CPU / CPU goal"
    );
    for node in ["master-0", "worker-0"] {
        if let (Some(k), Some(b)) = (row("kubeboot", node), row("shell-baseline", node)) {
            let cpu_goal = b.own_cpu.total() + 0.01 * k.boot_to_done;
            println!(
                "{node:<10} {:>7.1} / {:>5.1} s {:>5.2}x {:>7.1} / {:>5.1} s {:>5.2}x {:>7.2} / {:>5.2} s {:>15.2}x",
                k.boot_to_done,
                b.boot_to_done,
                k.boot_to_done / b.boot_to_done,
                k.setup,
                b.setup,
                k.setup / b.setup,
                k.own_cpu.total(),
                b.own_cpu.total(),
                k.own_cpu.total() / cpu_goal
            );
        }
    }
}

/// `KUBEBOOT_E2E_RUNS=azure,faults` runs only those runs (while working on one); all by default.
fn selected(run: &str) -> bool {
    std::env::var("KUBEBOOT_E2E_RUNS").map_or(true, |runs| runs.split(',').any(|r| r == run))
}

#[test]
fn kubeboot_cluster_in_qemu_vms() -> Result<()> {
    let started = Instant::now();
    let env = Env::prepare()?;
    let mut timings = Vec::new();
    type Run = fn(&Env, &mut Vec<Timing>) -> Result<()>;
    let runs: [(&str, &str, Run); 5] = [
        ("happy-path", "master + worker, reboot", happy_path),
        (
            "baseline",
            "the shell baseline, master + worker",
            shell_baseline,
        ),
        (
            "azure",
            "azure master from IMDS and the fake vault, beside a node fed a corrupted artifact",
            azure_and_corrupt,
        ),
        (
            "faults",
            "worker first, reboot mid-download, agent killed",
            faults,
        ),
        (
            "upgrade",
            "master and worker upgraded to the next minor",
            upgrade,
        ),
    ];
    for (name, what, run) in runs {
        if selected(name) {
            run(&env, &mut timings).with_context(|| format!("{name} ({what})"))?;
            println!("{name} passed at {:.0?}", started.elapsed());
        }
    }
    print_timings(&timings);
    print_comparison(&timings);
    println!("VM end-to-end test took {:.0?}", started.elapsed());
    Ok(())
}
