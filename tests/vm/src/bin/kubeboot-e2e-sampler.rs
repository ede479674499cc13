//! Runs inside the test VMs (copied from the seed by the vendor-data boothook; never shipped).
//! Samples every process's arguments and environment from /proc five times a second without
//! forking, so short-lived commands are caught and the node under test is barely disturbed;
//! keeps the CPU time of each `kubeboot-agent` process (and, for the shell baseline's comparison,
//! of each `curl` and `sha256sum`, the tools doing the agent's downloading and hashing there) and
//! the highest peak resident set (`VmHWM`) any agent process reached, and the CPU time of each agent
//! thread by name; the machine's softirq time (the guest kernel charges a softirq that
//! interrupts a task to that task's system time: received packets land on whoever is running),
//! over the whole sampling and over the samples in which something was downloading; and, as a fault, SIGKILLs the agent the
//! first time `kubeadm init` is seen half-way: still running, with the API server it started
//! already up (so the restarted agent finds a partly initialised control plane).
//!
//! Usage: kubeboot-e2e-sampler OUT_DIR STOP_FILE KILL_MARKER|-

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn words(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

fn uptime() -> String {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out_dir, stop_file, kill_marker] = args.as_slice() else {
        eprintln!("usage: kubeboot-e2e-sampler OUT_DIR STOP_FILE KILL_MARKER|-");
        std::process::exit(2);
    };
    let kill_marker = (kill_marker != "-").then(|| Path::new(kill_marker));
    let mut seen = BTreeSet::new();
    // pid -> (utime, stime) in clock ticks, last sample.
    let mut agent_ticks: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let mut fetch_tool_ticks: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    // pid/tid -> (thread name, (utime, stime)) of the agent's threads, last sample.
    let mut agent_thread_ticks: BTreeMap<String, (String, (u64, u64))> = BTreeMap::new();
    let mut agent_peak_rss_kb: u64 = 0;
    let first_softirq = softirq_ticks();
    let mut last_softirq = first_softirq;
    let mut fetching_softirq = 0;
    while !Path::new(stop_file).exists() {
        let mut fetching = false;
        let mut kubeadm_init = false;
        let mut apiserver = false;
        let mut agents = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let dir = entry.path();
            let argv = words(&fs::read(dir.join("cmdline")).unwrap_or_default());
            if argv.is_empty() {
                continue;
            }
            let env = words(&fs::read(dir.join("environ")).unwrap_or_default());
            seen.insert(format!("{} ## {}", argv.join(" "), env.join(" ")));
            let program = argv[0].rsplit('/').next().unwrap_or("");
            if program == "kubeadm" && argv.get(1).map(String::as_str) == Some("init") {
                kubeadm_init = true;
            }
            apiserver |= program == "kube-apiserver";
            if let Some((comm, ticks)) = stat_ticks(&dir) {
                if comm == "kubeboot-agent" {
                    agent_ticks.insert(pid, ticks);
                    agents.push(pid);
                    agent_peak_rss_kb = agent_peak_rss_kb.max(peak_rss_kb(&dir));
                    for task in fs::read_dir(dir.join("task"))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let tid = task.file_name().to_string_lossy().into_owned();
                        if let Some(thread) = stat_ticks(&task.path()) {
                            fetching |= thread.0 == "artifact-fetch";
                            agent_thread_ticks.insert(format!("{pid}/{tid}"), thread);
                        }
                    }
                } else if comm == "curl" || comm == "sha256sum" {
                    fetching = true;
                    fetch_tool_ticks.insert(pid, ticks);
                }
            }
        }
        if let Some(marker) = kill_marker {
            if kubeadm_init && apiserver && !marker.exists() && !agents.is_empty() {
                for pid in &agents {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                let _ = fs::write(marker, uptime());
                let _ = Command::new("sync").status();
                if let Ok(mut tty) = fs::OpenOptions::new().append(true).open("/dev/ttyS1") {
                    let _ = writeln!(tty, "KBE2E fault agent-killed {}", uptime());
                }
            }
        }
        let softirq = softirq_ticks();
        if fetching {
            fetching_softirq += softirq.saturating_sub(last_softirq);
        }
        last_softirq = softirq;
        // While the kill is armed and `kubeadm init` runs, look often: its second half is short.
        let armed = kill_marker.is_some_and(|m| !m.exists());
        std::thread::sleep(Duration::from_millis(if armed && kubeadm_init {
            10
        } else {
            200
        }));
    }
    let dir = Path::new(out_dir);
    let processes: String = seen.into_iter().map(|l| l + "\n").collect();
    let _ = fs::write(dir.join("processes.txt"), processes);
    let total = |ticks: &BTreeMap<u32, (u64, u64)>| {
        let (user, system) = ticks
            .values()
            .fold((0, 0), |(u, s), (pu, ps)| (u + pu, s + ps));
        format!("{user} {system}\n")
    };
    let _ = fs::write(dir.join("agent-cpu.txt"), total(&agent_ticks));
    let _ = fs::write(dir.join("fetch-tools-cpu.txt"), total(&fetch_tool_ticks));
    let _ = fs::write(
        dir.join("softirq.txt"),
        format!(
            "{} {fetching_softirq}\n",
            last_softirq.saturating_sub(first_softirq)
        ),
    );
    let _ = fs::write(
        dir.join("agent-rss-kb.txt"),
        format!("{agent_peak_rss_kb}\n"),
    );
    // Per thread name (the agent names each phase's thread after the phase), from each thread's
    // last sample: a thread that started and ended between two samples is missing here, and so is
    // a thread's CPU after its last sample, but not from the process's total.
    let mut by_name: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (name, (user, system)) in agent_thread_ticks.into_values() {
        let sum = by_name.entry(name).or_default();
        *sum = (sum.0 + user, sum.1 + system);
    }
    let threads: String = by_name
        .into_iter()
        .map(|(name, (user, system))| format!("{name}\t{user}\t{system}\n"))
        .collect();
    let _ = fs::write(dir.join("agent-threads.txt"), threads);
}

/// The name (comm) and (utime, stime) in clock ticks of the process or thread at `proc_dir`.
fn stat_ticks(proc_dir: &Path) -> Option<(String, (u64, u64))> {
    let stat = fs::read_to_string(proc_dir.join("stat")).ok()?;
    // comm may contain spaces and parentheses; the fields after it start after the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|t| t.parse::<u64>().ok());
    Some((comm, (field(11)?, field(12)?)))
}

/// The softirq time of all CPUs so far (the `cpu` line of /proc/stat), in clock ticks.
fn softirq_ticks() -> u64 {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let line = stat.lines().find(|l| l.starts_with("cpu "))?;
            // cpu user nice system idle iowait irq softirq ...
            line.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The process's peak resident set so far (`VmHWM` of /proc/PID/status), in kB; 0 if unknown.
fn peak_rss_kb(proc_dir: &Path) -> u64 {
    fs::read_to_string(proc_dir.join("status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
