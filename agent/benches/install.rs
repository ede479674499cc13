//! `cargo bench -p kubeboot-agent --bench install`: serves three ~60 MB release binaries from a
//! loopback server and compares `kubeboot-agent install` (the real binary, built by cargo in the
//! bench profile) with `curl -o` + `sha256sum -c` of the same files, sequentially and in parallel,
//! then again with 50 ms of added latency per request. Prints throughputs, the CPU time the
//! agent and the curl + sha256sum processes used per GB (their own user + system time, from
//! `getrusage(RUSAGE_CHILDREN)`; the loopback server is this process, not counted) and ratios;
//! asserts no timing.

// Shared with the tests, which use other parts of it.
#[allow(dead_code)]
#[path = "../tests/integration/release/mod.rs"]
mod release;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

use release::server::ReleaseServer;
use release::{binary_path, ReleaseTree};

const FILE_SIZE: usize = 60 << 20;
const NAMES: [&str; 3] = ["kubelet", "kubeadm", "kubectl"];
const RUNS: usize = 3;

/// One run: its wall-clock time, and the CPU time and minor page faults of the processes it
/// started.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    minor_faults: i64,
}

/// CPU time (user + system) and minor page faults of every child process this one has waited
/// for so far.
fn children_usage() -> (Duration, i64) {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    let time =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    (
        time(usage.user_time()) + time(usage.system_time()),
        usage.minor_page_faults(),
    )
}

/// Runs `work` and measures it.
fn sample(work: impl FnOnce()) -> Sample {
    let (cpu, faults) = children_usage();
    let started = Instant::now();
    work();
    let (cpu_after, faults_after) = children_usage();
    Sample {
        wall: started.elapsed(),
        cpu: cpu_after - cpu,
        minor_faults: faults_after - faults,
    }
}

fn agent(server: &ReleaseServer, parallel: usize) -> Sample {
    let root = tempfile::tempdir().unwrap();
    sample(|| {
        let status = Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"))
            .args(["install", "--version", release::VERSION, "--from"])
            .arg(server.url())
            .arg("--root")
            .arg(root.path())
            .args(["--parallel", &parallel.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "kubeboot-agent install failed");
    })
}

/// `curl -o` the file and its checksum file, then `sha256sum -c`: what a shell script would do.
fn curl_script(server: &ReleaseServer, dir: &Path, name: &str) -> String {
    let url = format!("{}{}", server.url(), binary_path(name));
    format!(
        "cd {} && curl -sSf -o {name} {url} && curl -sSf -o {name}.sha256 {url}.sha256 && sha256sum --quiet -c {name}.sha256",
        dir.display()
    )
}

fn curl(server: &ReleaseServer, parallel: bool) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let scripts: Vec<String> = NAMES
        .iter()
        .map(|n| curl_script(server, dir.path(), n))
        .collect();
    sample(|| {
        if parallel {
            let children: Vec<_> = scripts
                .iter()
                .map(|s| Command::new("sh").args(["-c", s]).spawn().unwrap())
                .collect();
            for mut child in children {
                assert!(child.wait().unwrap().success(), "curl/sha256sum failed");
            }
        } else {
            let status = Command::new("sh")
                .args(["-c", &scripts.join(" && ")])
                .status()
                .unwrap();
            assert!(status.success(), "curl/sha256sum failed");
        }
    })
}

/// The best of `RUNS` runs (after one warm-up): MB/s over all three files from the fastest, CPU
/// seconds per GB from the cheapest, and the fewest minor page faults per MB.
fn measure(mut run: impl FnMut() -> Sample) -> (f64, f64, f64) {
    run();
    let samples: Vec<Sample> = (0..RUNS).map(|_| run()).collect();
    let megabytes = (NAMES.len() * FILE_SIZE) as f64 / 1e6;
    let wall = samples.iter().map(|s| s.wall).min().unwrap();
    let cpu = samples.iter().map(|s| s.cpu).min().unwrap();
    let faults = samples.iter().map(|s| s.minor_faults).min().unwrap();
    (
        megabytes / wall.as_secs_f64(),
        cpu.as_secs_f64() / (megabytes / 1e3),
        faults as f64 / megabytes,
    )
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let server = ReleaseServer::start();
    let mut tree = ReleaseTree { files: Vec::new() };
    for name in NAMES {
        tree.add(&binary_path(name), release::content(name, FILE_SIZE));
    }
    tree.serve(&server);
    println!(
        "install benchmark: 3 x {} MB from loopback, best of {RUNS} runs",
        FILE_SIZE >> 20
    );

    for latency in [Duration::ZERO, Duration::from_millis(50)] {
        server.set_latency(latency);
        let (agent_seq, agent_seq_cpu, agent_seq_faults) = measure(|| agent(&server, 1));
        let (agent_par, agent_par_cpu, agent_par_faults) = measure(|| agent(&server, NAMES.len()));
        let (curl_seq, curl_seq_cpu, curl_seq_faults) = measure(|| curl(&server, false));
        let (curl_par, curl_par_cpu, curl_par_faults) = measure(|| curl(&server, true));
        println!("\nadded latency per request: {} ms", latency.as_millis());
        println!("  kubeboot-agent install, sequential: {agent_seq:7.0} MB/s {agent_seq_cpu:6.2} CPU s/GB");
        println!("  kubeboot-agent install, parallel:   {agent_par:7.0} MB/s {agent_par_cpu:6.2} CPU s/GB");
        println!(
            "  curl -o + sha256sum -c, sequential: {curl_seq:7.0} MB/s {curl_seq_cpu:6.2} CPU s/GB"
        );
        println!(
            "  curl -o + sha256sum -c, parallel:   {curl_par:7.0} MB/s {curl_par_cpu:6.2} CPU s/GB"
        );
        println!(
            "  CPU per GB, agent / curl: sequential {:.2}, parallel {:.2}",
            agent_seq_cpu / curl_seq_cpu,
            agent_par_cpu / curl_par_cpu
        );
        // Each minor fault maps a fresh page; under TCG's soft MMU they cost far more than natively.
        println!(
            "  minor page faults per MB: agent {agent_seq_faults:.1} / {agent_par_faults:.1}, curl {curl_seq_faults:.1} / {curl_par_faults:.1} (sequential / parallel)"
        );
        println!(
            "  agent / curl: sequential {:.2}, parallel {:.2}",
            agent_seq / curl_seq,
            agent_par / curl_par
        );
        println!(
            "  parallel / sequential: agent {:.2}, curl {:.2}",
            agent_par / agent_seq,
            curl_par / curl_seq
        );
    }
}
