//! End to end, in QEMU VMs, the way kubeboot runs on Azure: the VM knows nothing but its user data.
//! `kubeboot-gen` renders a cluster; each VM boots the test image (the agent's .deb installed as
//! Packer would) from a NoCloud seed whose user data is exactly the rendered
//! `pools/<pool>/user-data.yaml`; the host serves the artifact mirror (stand-in kubeadm/kubelet,
//! real kubectl) and a fake IMDS on loopback only. kubeadm, kubelet and the API server are the
//! stand-ins of `tests/stand-ins` because their real binaries are not available here.
//!
//! One test, so the VM runs never overlap (two cores): the happy path with a reboot, the faults,
//! the Azure flavour, then the shell baseline, and the timings table. Evidence (consoles, what
//! each guest sent back) stays in `target/vm-e2e/` for a failing run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use kubeboot_nodeconfig::NodeConfig;
use kubeboot_vm_e2e::checks::{self, Phase};
use kubeboot_vm_e2e::cluster::{self, Node, NodeSpec, AGENT_UNIT, KUBECTL, KUBERNETES_VERSION};
use kubeboot_vm_e2e::evidence::Boot;
use kubeboot_vm_e2e::qemu::{Image, GUEST_UPLINK_IP};
use kubeboot_vm_e2e::secrets::{node_config_from_user_data, Needle};
use kubeboot_vm_e2e::seed::Instrumentation;
use kubeboot_vm_e2e::{imds, mirror, workspace_root};

/// Upper bounds only (a loaded CI machine is slow under TCG); nothing is asserted on time.
const VM_TIMEOUT: Duration = Duration::from_secs(1500);
const BOOT_WAIT: Duration = Duration::from_secs(1200);
/// How much later than the worker the master starts in the fault run ("two minutes", scaled
/// down to what the CI budget allows; the worker is still well into its join wait).
const MASTER_DELAY: Duration = Duration::from_secs(40);
/// The worker's mirror in the fault run, slow enough to reset the worker mid-download.
const SLOW_MIRROR_BYTES_PER_SECOND: u64 = 4 * 1024 * 1024;

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
    fn new(env: &Env, spec: &str, pools: &[&str]) -> Result<Self> {
        let dir = env.work.join(spec.trim_end_matches(".yaml"));
        let spec_path = workspace_root().join("tests/vm/specs").join(spec);
        cluster::render(&env.bin, &spec_path, &dir)?;
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
        let bin = cluster::binaries()?;
        let image = cluster::build_image(&bin, &work.join("image"))?;
        println!("binaries and image ready in {:.0?}", started.elapsed());
        let stripped = work.join("stripped");
        std::fs::create_dir_all(&stripped)?;
        let strip = |name: &str| cluster::stripped(&bin.join(name), &stripped);
        let mirror_tree = work.join("mirror");
        mirror::build_release_tree(
            &mirror_tree,
            KUBERNETES_VERSION,
            &[
                ("kubeadm", strip("kubeadm")?),
                ("kubelet", strip("kubelet")?),
                ("kubectl", PathBuf::from(KUBECTL)),
            ],
        )?;
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
            // kubeadm's minimum for a control-plane node is 2 CPUs and 1700 MB.
            cpus: if master { 2 } else { 1 },
            memory_mb: if master { 2048 } else { 1024 },
            index,
            link: None,
            mirror: mirror::Behaviour::default(),
            imds: None,
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
            },
            payload: self.payload.clone(),
            timeout: VM_TIMEOUT,
        }
    }

    fn start(&self, rendered: &Rendered, spec: NodeSpec) -> Result<Node> {
        let user_data = cluster::user_data(&rendered.dir, &spec.pool);
        Node::start(&self.image, &user_data, &self.mirror_tree, spec, &self.work)
    }
}

/// Links two node specs with a private network: master 192.168.100.10, worker 192.168.100.20.
fn link(master: &mut NodeSpec, worker: &mut NodeSpec) -> Result<()> {
    let (a, b) = cluster::udp_port_pair()?;
    master.link = Some(("192.168.100.10/24".into(), a, b));
    worker.link = Some(("192.168.100.20/24".into(), b, a));
    Ok(())
}

/// One row of the timings table.
struct Timing {
    run: String,
    node: String,
    boot_to_done: f64,
    agent_cpu: Option<f64>,
    phases: Vec<Phase>,
}

fn timing(run: &str, node: &str, boot: &Boot) -> Result<Timing> {
    Ok(Timing {
        run: run.into(),
        node: node.into(),
        boot_to_done: checks::agent_exit_seconds(boot)?,
        agent_cpu: Some(checks::agent_cpu_seconds(boot)?),
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
    let rendered = Rendered::new(env, "none.yaml", &["master", "worker"])?;
    let mut master_spec = env.node_spec("master-0", "master", 1, true);
    let mut worker_spec = env.node_spec("worker-0", "worker", 2, false);
    link(&mut master_spec, &mut worker_spec)?;
    let mut master = env.start(&rendered, master_spec)?;
    let mut worker = env.start(&rendered, worker_spec)?;
    seeded_exactly(&master, &rendered)?;
    seeded_exactly(&worker, &rendered)?;

    let master_boot = master.wait_dumped(1, BOOT_WAIT)?;
    let worker_boot = worker.wait_dumped(1, BOOT_WAIT)?;
    println!(
        "happy path: both nodes settled {:.0?} after start",
        master.vm.started.elapsed()
    );
    done("master-0", &master_boot)?;
    done("worker-0", &worker_boot)?;
    let nodes = checks::registered_nodes(&master_boot)?;
    checks::node_registered(&nodes, "master-0", rendered.config("master"), None)?;
    checks::node_registered(&nodes, "worker-0", rendered.config("worker"), None)?;
    checks::worker_pinned_ca(&worker_boot, &rendered.dir, rendered.config("worker"))?;
    for (name, boot) in [("master-0", &master_boot), ("worker-0", &worker_boot)] {
        checks::no_secret_leaks(name, boot, &rendered.needles)?;
    }
    for node in [&master, &worker] {
        ensure!(
            node.imds.hits().is_empty(),
            "{}: a provider-none node called IMDS",
            node.spec.hostname
        );
    }
    timings.push(timing("kubeboot", "master-0", &master_boot)?);
    timings.push(timing("kubeboot", "worker-0", &worker_boot)?);

    master.vm.reboot()?;
    worker.vm.reboot()?;
    let master_again = master.wait_dumped(2, BOOT_WAIT)?;
    let worker_again = worker.wait_dumped(2, BOOT_WAIT)?;
    nothing_redone("master-0", &master_boot, &master_again)?;
    nothing_redone("worker-0", &worker_boot, &worker_again)?;
    ensure!(
        checks::registrations(&checks::registered_nodes(&master_again)?)
            == checks::registrations(&nodes),
        "the registered nodes changed across the reboot"
    );
    for (name, boot) in [("master-0", &master_again), ("worker-0", &worker_again)] {
        checks::no_secret_leaks(name, boot, &rendered.needles)?;
    }
    master.vm.stop();
    worker.vm.stop();
    Ok(())
}

/// Faults, in one boot of three VMs: the worker starts first and is reset (a power cut) while
/// `install` downloads from its slowed mirror; the master starts `MASTER_DELAY` later and its
/// agent is SIGKILLed during `kubeadm init`; a second worker's mirror corrupts kubelet.
fn faults(env: &Env) -> Result<()> {
    let rendered = Rendered::new(env, "none.yaml", &["master", "worker"])?;
    let mut master_spec = env.node_spec("master-0", "master", 3, true);
    let mut worker_spec = env.node_spec("worker-0", "worker", 4, false);
    link(&mut master_spec, &mut worker_spec)?;
    master_spec.instrumentation.kill_agent_during_kubeadm_init = true;
    worker_spec.mirror.bytes_per_second = Some(SLOW_MIRROR_BYTES_PER_SECOND);
    let mut corrupt_spec = env.node_spec("worker-1", "worker", 5, false);
    corrupt_spec.mirror.corrupt = Some("kubelet".into());

    let mut worker = env.start(&rendered, worker_spec)?;
    let mut corrupt = env.start(&rendered, corrupt_spec)?;
    let started = Instant::now();
    let mut master: Option<Node> = None;
    let mut worker_reset = false;
    // Reset the worker once a download has been under way for two seconds; start the master
    // on time.
    while !worker_reset || master.is_none() {
        if master.is_none() && started.elapsed() >= MASTER_DELAY {
            master = Some(env.start(&rendered, master_spec.clone())?);
        }
        if !worker_reset {
            let downloading = worker.mirror.hits().iter().any(|h| {
                !h.url.ends_with(".sha256")
                    && h.url.contains("/bin/linux/amd64/")
                    && h.at.elapsed() > Duration::from_secs(2)
            });
            if downloading {
                worker.vm.reset()?;
                worker_reset = true;
                println!(
                    "faults: worker-0 reset mid-download at {:.0?}",
                    started.elapsed()
                );
            }
        }
        ensure!(
            started.elapsed() < BOOT_WAIT,
            "faults: the worker never downloaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut master = master.expect("started above");

    // The corrupted download: the node fails clearly and installs nothing.
    let corrupt_boot = corrupt.wait_dumped(1, BOOT_WAIT)?;
    let unit = corrupt_boot.unit()?;
    ensure!(
        unit.get("ActiveState").map(String::as_str) == Some("failed"),
        "worker-1 (corrupted kubelet): agent unit is {:?}, expected failed",
        unit.get("ActiveState")
    );
    let phases = checks::phases(&corrupt_boot)?;
    let install = phases
        .iter()
        .find(|p| p.name == "install")
        .ok_or_else(|| anyhow!("worker-1: no install phase in {phases:?}"))?;
    let why = install.error.clone().unwrap_or_default();
    ensure!(
        install.state == "failed"
            && why.contains("kubelet")
            && why.to_lowercase().contains("sha256"),
        "worker-1: install should fail naming kubelet's sha256 mismatch: {install:?}"
    );
    let installed = corrupt_boot.text("large-files")?;
    ensure!(
        !["kubelet", "kubeadm", "kubectl"]
            .iter()
            .any(|t| installed.contains(t)),
        "worker-1 installed binaries despite the corrupted download:\n{installed}"
    );
    corrupt.vm.stop();
    println!("faults: worker-1 failed clearly: {why}");

    // The master: killed during kubeadm init; if its unit does not resume by itself, a reboot
    // (what an operator or the platform's auto-repair does) must finish the job.
    let first = master.wait_dumped(1, BOOT_WAIT)?;
    ensure!(
        first.event("fault").is_some(),
        "the master's agent was never killed during kubeadm init"
    );
    let master_done = if done("master-0", &first).is_ok() {
        println!("faults: master-0 converged in the same boot after SIGKILL");
        first
    } else {
        master.vm.reboot()?;
        let second = master.wait_dumped(2, BOOT_WAIT)?;
        println!("faults: master-0 converged after SIGKILL and a reboot");
        second
    };
    done("master-0", &master_done)?;

    // The worker: its first boot was cut short; the boot after the reset finishes and joins.
    let worker_boots = worker.boots()?;
    let worker_done = match worker_boots.iter().find(|b| b.number >= 2 && b.is_dumped()) {
        Some(b) => b.clone(),
        None => worker.wait_dumped(2, BOOT_WAIT)?,
    };
    done("worker-0", &worker_done)?;
    let final_master = master.wait_dumped(master_done.number, BOOT_WAIT)?;
    let nodes = checks::registered_nodes(&final_master)?;
    checks::node_registered(&nodes, "worker-0", rendered.config("worker"), None)?;
    checks::worker_pinned_ca(&worker_done, &rendered.dir, rendered.config("worker"))?;
    for (name, boot) in [
        ("master-0", &master_done),
        ("worker-0", &worker_done),
        ("worker-1", &corrupt_boot),
    ] {
        checks::no_secret_leaks(name, boot, &rendered.needles)?;
    }
    let join = checks::phases(&worker_done)?
        .into_iter()
        .find(|p| p.name == "join")
        .ok_or_else(|| anyhow!("worker-0 has no join phase"))?;
    println!(
        "faults: worker-0 joined after waiting; join phase took {:?} s",
        join.seconds
    );
    master.vm.stop();
    worker.vm.stop();
    Ok(())
}

/// The Azure flavour on one master VM: identity from the fake IMDS, the endpoint name mapped
/// locally, provider id and zone label on the registered node.
fn azure_master(env: &Env, timings: &mut Vec<Timing>) -> Result<()> {
    let rendered = Rendered::new(env, "azure.yaml", &["master"])?;
    let config = rendered.config("master").clone();
    let azure = config
        .provider
        .azure
        .clone()
        .ok_or_else(|| anyhow!("the Azure spec rendered no provider.azure"))?;
    let instance = imds::Instance {
        subscription_id: azure.subscription_id.clone(),
        resource_group: azure.resource_group.clone(),
        location: azure.location.clone(),
        vm_scale_set: format!("{}-master", config.cluster.name),
        ordinal: 0,
        zone: "2".into(),
        private_ip: GUEST_UPLINK_IP.into(),
    };
    let node_name = instance.computer_name();
    let mut spec = env.node_spec(&node_name, "master", 6, true);
    spec.imds = Some(instance.clone());
    let mut master = env.start(&rendered, spec)?;
    seeded_exactly(&master, &rendered)?;
    let boot = master.wait_dumped(1, BOOT_WAIT)?;
    done(&node_name, &boot)?;
    let hits = master.imds.hits();
    ensure!(
        !hits.is_empty() && hits.iter().all(|h| h.status == 200),
        "IMDS was not asked correctly: {hits:?}"
    );
    let nodes = checks::registered_nodes(&boot)?;
    checks::node_registered(&nodes, &node_name, &config, Some(&instance.provider_id()))?;
    let zone = &nodes[&node_name]["metadata"]["labels"]["topology.kubernetes.io/zone"];
    ensure!(
        zone.as_str() == Some("westeurope-2"),
        "zone label is {zone}, expected westeurope-2"
    );
    let endpoint_host = config
        .cluster
        .control_plane_endpoint
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_default();
    let files = boot.files("changed-files")?;
    let hosts = checks::file(&files, "/etc/hosts")
        .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
        .unwrap_or_default();
    ensure!(
        hosts
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains(&endpoint_host)),
        "the master did not map {endpoint_host} in /etc/hosts:\n{hosts}"
    );
    checks::no_secret_leaks(&node_name, &boot, &rendered.needles)?;
    timings.push(timing("kubeboot azure", &node_name, &boot)?);
    master.vm.stop();
    Ok(())
}

fn print_timings(timings: &[Timing]) {
    println!(
        "\n{:<16} {:<20} {:>13} {:>11} {:>9}",
        "run", "node", "boot-to-done", "agent CPU", "overhead"
    );
    for t in timings {
        let (cpu, share) = match t.agent_cpu {
            Some(c) => (
                format!("{c:.2} s"),
                format!("{:.2} %", 100.0 * c / t.boot_to_done),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<16} {:<20} {:>11.1} s {:>11} {:>9}",
            t.run, t.node, t.boot_to_done, cpu, share
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
    }
}

#[test]
fn kubeboot_cluster_in_qemu_vms() -> Result<()> {
    let started = Instant::now();
    let env = Env::prepare()?;
    let mut timings = Vec::new();
    happy_path(&env, &mut timings).context("happy path (master + worker, reboot)")?;
    println!("happy path passed at {:.0?}", started.elapsed());
    faults(&env).context("faults")?;
    println!("faults passed at {:.0?}", started.elapsed());
    azure_master(&env, &mut timings).context("Azure flavour")?;
    println!("Azure flavour passed at {:.0?}", started.elapsed());
    print_timings(&timings);
    println!("VM end-to-end test took {:.0?}", started.elapsed());
    Ok(())
}
