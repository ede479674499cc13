//! The agent's own cost for a full first-master dry run: wall time (no child runs under
//! --dry-run, so it is all the agent's), CPU time, and peak RSS (VmHWM of the agent process via
//! getrusage of the waited-for child). Prints numbers; asserts nothing about time.

use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 20;
const MASTER_YAML: &str = include_str!("../tests/fixtures/master.yaml");

fn children_usage() -> (Duration, i64) {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { nix::libc::getrusage(nix::libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: nix::libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss)
}

fn main() {
    let mut walls = Vec::new();
    let mut cpu = Duration::ZERO;
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let write = |p: &str, text: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("proc/sys/kernel/hostname", "node-1\n");
        write("etc/kubeboot/node.yaml", MASTER_YAML);
        let (cpu_before, _) = children_usage();
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"))
            .args(["run", "--dry-run", "--root"])
            .arg(dir.path())
            .env("KUBEBOOT_LOG", "warn")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        walls.push(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cpu += children_usage().0 - cpu_before;
    }
    walls.sort();
    let (_, max_rss_kb) = children_usage();
    let mean = walls.iter().sum::<Duration>() / RUNS as u32;
    println!("kubeboot-agent full dry run (first master), {RUNS} runs:");
    println!("  wall time: median {:?}, mean {mean:?}, max {:?} (no children under --dry-run: all agent overhead)", walls[RUNS / 2], walls[RUNS - 1]);
    println!("  CPU time (user+sys): mean {:?}", cpu / RUNS as u32);
    println!(
        "  peak RSS: {:.1} MB (target <= 16 MB): {:.2} of target",
        max_rss_kb as f64 / 1024.0,
        max_rss_kb as f64 / 1024.0 / 16.0
    );
}
