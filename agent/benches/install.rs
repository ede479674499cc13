//! `cargo bench -p kubeboot-agent --bench install`: serves three ~60 MB release binaries from a
//! loopback server and compares `kubeboot-agent install` (the real binary, built by cargo in the
//! bench profile) with `curl -o` + `sha256sum -c` of the same files, sequentially and in parallel,
//! then again with 50 ms of added latency per request. Prints throughputs and ratios; asserts no
//! timing.

// Shared with the tests, which use other parts of it.
#[allow(dead_code)]
#[path = "../tests/integration/release/mod.rs"]
mod release;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use release::server::ReleaseServer;
use release::{binary_path, ReleaseTree};

const FILE_SIZE: usize = 60 << 20;
const NAMES: [&str; 3] = ["kubelet", "kubeadm", "kubectl"];
const RUNS: usize = 3;

fn agent(server: &ReleaseServer, parallel: usize) -> Duration {
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
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
    let elapsed = started.elapsed();
    assert!(status.success(), "kubeboot-agent install failed");
    elapsed
}

/// `curl -o` the file and its checksum file, then `sha256sum -c`: what a shell script would do.
fn curl_script(server: &ReleaseServer, dir: &Path, name: &str) -> String {
    let url = format!("{}{}", server.url(), binary_path(name));
    format!(
        "cd {} && curl -sSf -o {name} {url} && curl -sSf -o {name}.sha256 {url}.sha256 && sha256sum --quiet -c {name}.sha256",
        dir.display()
    )
}

fn curl(server: &ReleaseServer, parallel: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let scripts: Vec<String> = NAMES
        .iter()
        .map(|n| curl_script(server, dir.path(), n))
        .collect();
    let started = Instant::now();
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
    started.elapsed()
}

/// The fastest of `RUNS` runs (after one warm-up), in MB/s over all three files.
fn throughput(mut run: impl FnMut() -> Duration) -> f64 {
    run();
    let best = (0..RUNS).map(|_| run()).min().unwrap();
    (NAMES.len() * FILE_SIZE) as f64 / 1e6 / best.as_secs_f64()
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
        let agent_seq = throughput(|| agent(&server, 1));
        let agent_par = throughput(|| agent(&server, NAMES.len()));
        let curl_seq = throughput(|| curl(&server, false));
        let curl_par = throughput(|| curl(&server, true));
        println!("\nadded latency per request: {} ms", latency.as_millis());
        println!("  kubeboot-agent install, sequential: {agent_seq:7.0} MB/s");
        println!("  kubeboot-agent install, parallel:   {agent_par:7.0} MB/s");
        println!("  curl -o + sha256sum -c, sequential: {curl_seq:7.0} MB/s");
        println!("  curl -o + sha256sum -c, parallel:   {curl_par:7.0} MB/s");
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
