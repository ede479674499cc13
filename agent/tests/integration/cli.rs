//! The real binary in dry-run mode: no command runs and nothing under --root changes, the output
//! says what would; and a real run refused while another one holds the run lock.

use crate::common;

use common::{Node, MASTER_YAML, WORKER_YAML};
use kubeboot_test_kit::output::text;
use kubeboot_test_kit::snapshot;

#[test]
fn dry_run_for_each_node_kind() {
    for (hostname, yaml, kind, runs, not_runs) in [
        (
            "node-1",
            MASTER_YAML,
            "first-master",
            "/etc/kubeboot/kubeadm.yaml --skip-token-print",
            "kubeadm join",
        ),
        (
            "node-2",
            MASTER_YAML,
            "extra-master",
            "/etc/kubeboot/kubeadm.yaml",
            "kubeadm init",
        ),
        (
            "node-3",
            WORKER_YAML,
            "worker",
            "/etc/kubeboot/kubeadm.yaml",
            "apply --server-side",
        ),
    ] {
        let node = Node::new(hostname, yaml);
        let before = snapshot::take(node.root());
        let kept = tempfile::tempdir().unwrap();
        let out = node.run(&[
            "run",
            "--dry-run",
            "--dry-run-dir",
            kept.path().to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(runs), "{kind}: {}", text(&out));
        assert!(!stdout.contains(not_runs), "{kind}: {}", text(&out));
        // Nothing under the root changed; the output says what a real run would write, and
        // withholds the contents of kubeadm's configuration (it holds the join token).
        assert_eq!(snapshot::take(node.root()), before, "{kind}");
        assert!(
            stdout.contains("would write /etc/kubeboot/kubeadm.yaml (0600, "),
            "{kind}: {}",
            text(&out)
        );
        assert!(
            stdout.contains("contents withheld"),
            "{kind}: {}",
            text(&out)
        );
        let kubeadm =
            std::fs::read_to_string(kept.path().join("etc/kubeboot/kubeadm.yaml")).unwrap();
        assert!(kubeadm.contains("kubeadm.k8s.io/v1beta4"));
        // The node facts the metadata phase would write.
        let facts: serde_json::Value = serde_json::from_slice(
            &std::fs::read(kept.path().join("var/lib/kubeboot/node-facts.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(facts["kind"], kind);
        // Dry runs write no markers, so a real run still does everything.
        let status = node.status_json();
        assert_eq!(status["done"], false);
        assert!(status["phases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] != "done"));
        // No secret on stdout or stderr.
        assert!(!text(&out).contains("0123456789abcdef"), "{}", text(&out));
    }
}

/// A dry run of a node that ran before: the files a real run changes show as a diff, the run
/// lock is held as by a real run, and the temporary tree is gone afterwards. The root stays
/// byte-identical, staging debris of a killed run included (a real run would remove it).
#[test]
fn a_dry_run_changes_nothing_and_prints_a_diff_per_file() {
    let node = Node::new("node-3", WORKER_YAML);
    node.write(
        "/etc/containerd/config.toml",
        "version = 2\n# hand-edited\n",
    );
    node.write("/etc/kubeboot/.kubeboot-partial", "left by a killed run");
    node.write("/var/lib/kubeboot/run.lock", "");
    let out = dry_run_leaving_no_trace(&node);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        // A changed file: a unified diff against the node's.
        "--- /etc/containerd/config.toml\n+++ /etc/containerd/config.toml (dry run)",
        "-# hand-edited",
        "SystemdCgroup = true",
        // A new one: from /dev/null.
        "--- /dev/null\n+++ /etc/sysctl.d/90-kubeboot.conf (dry run)",
        // The swap line fstab loses.
        "+# disabled by kubeboot",
        "would remove /etc/kubeboot/.kubeboot-partial",
        "would change the mode of /etc/kubeboot from 0755 to 0700",
        "nothing was changed",
    ] {
        assert!(stdout.contains(expected), "{expected}: {}", text(&out));
    }

    use nix::fcntl::{Flock, FlockArg};
    let lock = std::fs::File::open(node.path("/var/lib/kubeboot/run.lock")).unwrap();
    let held = Flock::lock(lock, FlockArg::LockExclusiveNonblock).unwrap();
    let out = node.run(&["run", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("another kubeboot-agent run holds"),
        "{}",
        text(&out)
    );
    drop(held);
}

/// A dry run whose phase fails (here preflight, on a node without cgroup v2) still ends with what
/// it would have changed, and exits as a real run would: 3, unsupported. The root is untouched and
/// its temporary tree gone.
#[test]
fn a_dry_run_whose_phase_fails_reports_and_exits_as_a_real_run() {
    let node = Node::new("node-3", WORKER_YAML);
    std::fs::remove_file(node.path("/sys/fs/cgroup/cgroup.controllers")).unwrap();
    let out = dry_run_leaving_no_trace(&node);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("cgroup v2"), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing was changed"),
        "{}",
        text(&out)
    );
}

/// `run --dry-run` of `node` with its temporary tree in a fresh `$TMPDIR`, checking that the root
/// is byte-identical afterwards and the temporary tree gone.
fn dry_run_leaving_no_trace(node: &Node) -> std::process::Output {
    let before = snapshot::take(node.root());
    let tmp = tempfile::tempdir().unwrap();
    let out = node
        .agent(&["run", "--dry-run"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(snapshot::take(node.root()), before, "{}", text(&out));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    out
}

#[test]
fn a_kept_dry_run_tree_must_be_outside_the_root_and_empty() {
    let node = Node::new("node-3", WORKER_YAML);
    let before = snapshot::take(node.root());
    let inside = node.path("/etc/dry-run");
    let out = node.run(&[
        "run",
        "--dry-run",
        "--dry-run-dir",
        inside.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is under --root"), "{}", text(&out));
    assert_eq!(snapshot::take(node.root()), before);
    let out = node.run(&["run", "--dry-run-dir", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn exit_codes_for_bad_input() {
    let node = Node::new("node-1", MASTER_YAML);
    let unknown = node.run(&["run", "--dry-run", "--only", "nonsense"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    node.write(
        "/etc/kubeboot/node.yaml",
        &MASTER_YAML.replace("v1.35.2", "v1.30.1"),
    );
    let old = node.run(&["run", "--dry-run"]);
    assert_eq!(old.status.code(), Some(2), "{}", text(&old));
    assert!(
        text(&old).contains("cluster.kubernetesVersion"),
        "{}",
        text(&old)
    );
    let missing = node.run(&["run", "--config", "/nonexistent/node.yaml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    let usage = node.run(&["run", "--frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn plan_names_every_phase_and_why() {
    let node = Node::new("node-3", WORKER_YAML);
    let out = node.run(&["plan"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        plan.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{plan}"))
            .to_string()
    };
    assert!(line("control-plane-init").contains("skip"), "{plan}");
    assert!(line("join").contains(" run "), "{plan}");
    // A phase that will run names what it starts after (so what may run beside it).
    assert!(line("install").ends_with("(after preflight)"), "{plan}");
    assert!(
        line("join").ends_with("(after container-runtime, install, kubelet, kubeadm-config)"),
        "{plan}"
    );
    let master = Node::new("node-2", MASTER_YAML);
    let plan = String::from_utf8_lossy(&master.run(&["plan"]).stdout).to_string();
    assert!(
        plan.lines()
            .any(|l| l.starts_with("join") && l.contains("decide")),
        "{plan}"
    );
}

#[test]
fn a_run_while_another_holds_the_lock_stops_before_any_phase() {
    use nix::fcntl::{Flock, FlockArg};
    let node = Node::new("node-1", MASTER_YAML);
    let lock = node.path("/var/lib/kubeboot/run.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&lock).unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
    let out = node.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another kubeboot-agent run holds"),
        "{}",
        text(&out)
    );
    assert!(!node.path("/var/lib/kubeboot/phases").exists());
    drop(held);
}

#[test]
fn a_node_that_cannot_run_the_minor_stops_in_preflight_with_one_line() {
    let old_containerd = Node::new("node-3", WORKER_YAML);
    old_containerd.write(
        "/usr/bin/containerd",
        "#!/bin/sh\necho 'containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1'\n",
    );
    let cgroup_v1 = Node::new("node-3", WORKER_YAML);
    std::fs::remove_file(cgroup_v1.path("/sys/fs/cgroup/cgroup.controllers")).unwrap();
    for (node, expected) in [
        (
            &old_containerd,
            &[
                "containerd 1.6.20 (/usr/bin/containerd)",
                "1.7.0",
                "spec.artifacts.containerd",
            ][..],
        ),
        (
            &cgroup_v1,
            &["cgroup v2", "/sys/fs/cgroup/cgroup.controllers"][..],
        ),
    ] {
        let out = node.run(&["run"]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert_eq!(errors.len(), 1, "{}", text(&out));
        for part in expected {
            assert!(errors[0].contains(part), "{part}: {}", text(&out));
        }
        // Nothing after preflight ran.
        assert!(!node.path("/var/lib/kubeboot/phases/metadata.done").exists());
        // `status` tells a failed phase by its exit code (4), in text and JSON alike.
        let status = node.status_json();
        let preflight = status["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "preflight")
            .unwrap();
        assert_eq!(preflight["state"], "failed", "{status:#}");
        assert_eq!(node.run(&["status"]).status.code(), Some(4));
    }
}

#[test]
fn status_of_a_missing_root_is_bad_input() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"))
        .args(["status", "--root", "/nonexistent/root"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--root /nonexistent/root: no such directory"),
        "{}",
        text(&out)
    );
}

#[test]
fn plan_as_json_lists_the_same_stages_as_the_text() {
    let node = Node::new("node-3", WORKER_YAML);
    let out = node.run(&["plan", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text_plan = String::from_utf8(node.run(&["plan"]).stdout).unwrap();
    let from_text: Vec<(&str, &str)> = text_plan
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap(), words.next().unwrap())
        })
        .collect();
    let from_json: Vec<(&str, &str)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["action"].as_str().unwrap()))
        .collect();
    assert_eq!(from_json, from_text);
    assert!(from_json.contains(&("join", "run")), "{plan:#}");
    assert!(
        from_json.contains(&("control-plane-init", "skip")),
        "{plan:#}"
    );
}

/// Join-token rotation is the masters' job, and only where a vault holds the token: a worker, and
/// a master of plain VMs (the operator owns its token), are refused with one line and exit 2,
/// before anything runs.
#[test]
fn rotate_join_token_is_refused_on_workers_and_without_a_vault() {
    for (yaml, reason) in [
        (WORKER_YAML, "runs on masters only"),
        (MASTER_YAML, "the operator owns the join token"),
    ] {
        let node = Node::new("node-1", yaml);
        let out = node.run(&["rotate-join-token"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{}", text(&out));
        assert!(lines[0].contains(reason), "{}", text(&out));
        assert!(!node.path("/var/lib/kubeboot").exists(), "{}", text(&out));
    }
}

/// The root mounted read-only (in a private mount namespace, so nothing outside the test sees
/// the mount): a dry run still completes, because it writes nothing under the root.
#[test]
fn a_dry_run_completes_on_a_read_only_root() {
    let node = Node::new("node-1", MASTER_YAML);
    let before = snapshot::take(node.root());
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && touch "$1/probe" 2>/dev/null && echo "the root is writable" >&2 && exit 99; shift; exec "$@""#)
        .arg("sh")
        .arg(node.root())
        .arg(env!("CARGO_BIN_EXE_kubeboot-agent"))
        .args(["run", "--dry-run", "--root"])
        .arg(node.root())
        .env("TMPDIR", tmp.path())
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing was changed"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot::take(node.root()), before);
}
