//! Render + check of a 50-pool cluster with pre-generated secrets (key generation is not what is
//! measured). Prints mean and median wall time against the 20 ms target and against a baseline
//! measured in the same run, interleaved round by round so both see the same load: the floor any
//! render + check pays, each output file serialised once and parsed once. Also prints the process
//! CPU time per round (wall time on a shared 2-core machine includes waiting for other work);
//! asserts nothing about time.

use std::time::{Duration, Instant};

use kubeboot_gen::check::{check_dir, check_tree};
use kubeboot_gen::render::render;
use kubeboot_gen::secrets::{ClusterSecrets, LocalStore, SecretStore};
use kubeboot_gen::tree::Tree;
use kubeboot_gen::validate::{validate_text, EXAMPLE_SPEC};

const POOLS: usize = 50;
const ROUNDS: usize = 50;
const TARGET: Duration = Duration::from_millis(20);

/// The example's header with one master pool and 49 worker pools, one subnet each.
fn fifty_pool_spec() -> String {
    let header = &EXAMPLE_SPEC[..EXAMPLE_SPEC.find("  pools:").expect("example has pools")];
    let mut text = format!("{header}  pools:\n");
    for i in 0..POOLS {
        let (name, role, count) = if i == 0 {
            ("master".to_string(), "master", 3)
        } else {
            (format!("pool{i}"), "worker", 2)
        };
        text.push_str(&format!(
            "    - name: {name}\n      role: {role}\n      count: {count}\n      vmSize: Standard_D4s_v5\n      zones: [\"1\", \"2\", \"3\"]\n      subnetCIDR: 10.240.{i}.0/24\n      labels: {{workload: w{i}}}\n"
        ));
    }
    text
}

/// User + system CPU time of this process so far (from /proc, in clock ticks of 10 ms: only
/// meaningful summed over many rounds).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("a number"))
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// The baseline: every JSON file of `tree` parsed with serde_json and every YAML file (user data,
/// effective spec) with serde_yaml_ng, each once, and serialised back once. Returns the bytes
/// serialised, so nothing is optimised away.
fn serialise_and_parse(tree: &Tree) -> usize {
    let mut serialised = 0;
    for (path, file) in &tree.files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let value: serde_json::Value = serde_json::from_slice(&file.bytes).expect("JSON");
                serialised += serde_json::to_string_pretty(&value)
                    .expect("serialises")
                    .len();
            }
            Some("yaml") => {
                let value: serde_yaml_ng::Value =
                    serde_yaml_ng::from_slice(&file.bytes).expect("YAML");
                serialised += serde_yaml_ng::to_string(&value).expect("serialises").len();
            }
            _ => {}
        }
    }
    serialised
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(what: &str, samples: Vec<Duration>, cpu: Duration) {
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let rounds = samples.len();
    let median = median(samples);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: mean {:.2} ms, median {:.2} ms over {} rounds (target {} ms: median is {:.2}x of it)",
        ms(mean),
        ms(median),
        rounds,
        TARGET.as_millis(),
        ms(median) / ms(TARGET)
    );
    println!("    CPU time per round: {:.2} ms", ms(cpu) / rounds as f64);
}

fn main() {
    let spec_text = fifty_pool_spec();
    let secrets = ClusterSecrets::generate().expect("secrets generate");

    let mut in_memory = Vec::with_capacity(ROUNDS);
    let mut stages = [Duration::ZERO; 3];
    let mut baseline = Vec::with_capacity(ROUNDS);
    let mut cpu_in_baseline = Duration::ZERO;
    let cpu_start = cpu_time();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let spec = validate_text(&spec_text).expect("the 50-pool spec is valid");
        let validated = Instant::now();
        let rendered = render(&spec, &secrets).expect("renders");
        let rendered_at = Instant::now();
        let problems = check_tree(&rendered.tree);
        let end = Instant::now();
        in_memory.push(end - start);
        stages[0] += validated - start;
        stages[1] += rendered_at - validated;
        stages[2] += end - rendered_at;
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rendered.custom_data_sizes.len(), POOLS);

        let cpu_before = cpu_time();
        let start = Instant::now();
        assert!(serialise_and_parse(&rendered.tree) > 0);
        baseline.push(start.elapsed());
        cpu_in_baseline += cpu_time() - cpu_before;
    }
    let in_memory_median = median(in_memory.clone());
    let baseline_median = median(baseline);
    report(
        "validate + render + check, 50 pools, in memory",
        in_memory,
        cpu_time() - cpu_start - cpu_in_baseline,
    );
    println!(
        "    baseline (each output file serialised once and parsed once, same run): median {:.2} ms; validate + render + check is {:.2}x of it",
        baseline_median.as_secs_f64() * 1000.0,
        in_memory_median.as_secs_f64() / baseline_median.as_secs_f64()
    );
    let per_round = |d: Duration| d.as_secs_f64() * 1000.0 / ROUNDS as f64;
    println!(
        "    mean per stage: validate {:.2} ms, render {:.2} ms, check {:.2} ms",
        per_round(stages[0]),
        per_round(stages[1]),
        per_round(stages[2])
    );

    // The same through the output directory: the first round writes every file (atomically,
    // fsynced); later rounds find them up to date and leave them alone; `check DIR` reads all.
    let dir = tempfile::tempdir().expect("temp dir");
    LocalStore::new(dir.path())
        .save(&secrets)
        .expect("secrets saved");
    let mut on_disk = Vec::with_capacity(ROUNDS);
    let cpu_start = cpu_time();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let spec = validate_text(&spec_text).expect("valid");
        kubeboot_gen::render_dir(&spec, dir.path(), false).expect("renders");
        let problems = check_dir(dir.path()).expect("checks");
        on_disk.push(start.elapsed());
        assert!(problems.is_empty(), "{problems:?}");
    }
    let first_write = on_disk[0];
    report(
        "render + write + check DIR, 50 pools, re-render of an up-to-date DIR",
        on_disk,
        cpu_time() - cpu_start,
    );
    println!(
        "    first round (every file written and fsynced): {:.2} ms",
        first_write.as_secs_f64() * 1000.0
    );
}
