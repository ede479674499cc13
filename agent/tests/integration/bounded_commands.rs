//! Every command the agent runs is bounded and visible: a hung child is killed at its deadline
//! (with whatever it started), the phase fails naming the command and the deadline, and a re-run
//! finishes; a child's output reaches the log while it still runs.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kubeboot_agent::exec::{DEADLINE_CAP_ENV, KILL_GRACE};
use kubeboot_test_kit::binaries::binaries;
use kubeboot_test_kit::output::text;
use kubeboot_test_kit::port::free_port;

use crate::common::checked_status;
use crate::support::machine::{loopback_spec, with_bind_port, Machine, Rendered};

fn first_master(name: &str) -> Machine {
    let port = free_port();
    let cluster = Rendered::new(&loopback_spec(name, "v1.35.0", port, 1));
    Machine::new(
        &format!("{name}-master-0"),
        &with_bind_port(&cluster.node_yaml("master"), port),
    )
}

/// Puts a shell script where the machine finds `tool` on its PATH.
fn replace_tool(machine: &Machine, tool: &str, script: &str) {
    let path = machine.on_path(tool);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn restore_tool(machine: &Machine, tool: &str) {
    let path = machine.on_path(tool);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(binaries().join(tool), path).unwrap();
}

/// The state letter of process `pid` in /proc, None once it is gone.
fn process_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn a_hung_command_is_killed_at_its_deadline_and_a_rerun_finishes() {
    let machine = first_master("hung");
    let pid_file = machine.root().join("sleeper.pid");
    // modprobe that never ends, through a child of its own.
    replace_tool(
        &machine,
        "modprobe",
        &format!("sleep 600 & echo $! > {}\nwait\n", pid_file.display()),
    );
    let started = Instant::now();
    let hung = machine
        .agent_command(&["run"])
        .env(DEADLINE_CAP_ENV, "2s")
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = text(&hung);
    assert_eq!(hung.status.code(), Some(1), "{log}");
    assert!(
        log.contains("`modprobe ") && log.contains("did not finish within its deadline of 2s"),
        "{log}"
    );
    assert!(
        took < Duration::from_secs(2) + KILL_GRACE,
        "took {took:?}: {log}"
    );
    let sleeper = std::fs::read_to_string(&pid_file).unwrap();
    let gone_by = Instant::now() + Duration::from_secs(5);
    while process_state(sleeper.trim()).is_some_and(|s| s != 'Z') {
        assert!(
            Instant::now() < gone_by,
            "modprobe's child {sleeper} outlived it"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    restore_tool(&machine, "modprobe");
    let rerun = machine.agent(&["run"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    let status = checked_status(&machine.agent(&["status", "--output", "json"]));
    assert_eq!(status["done"], true, "{status:#}");
}

#[test]
fn a_commands_output_reaches_the_log_while_it_runs() {
    let machine = first_master("streamed");
    let go = machine.root().join("go");
    // Prints a line, waits (at most 20 s) until the test has seen it in the agent's log, prints
    // another and does modprobe's job.
    replace_tool(
        &machine,
        "modprobe",
        &format!(
            "echo \"before-wait $1\"\n\
             i=0; while [ ! -e {go} ]; do sleep 0.05; i=$((i+1)); [ $i -gt 400 ] && exit 7; done\n\
             echo \"after-wait $1\"\n\
             exec {} \"$@\"\n",
            binaries().join("modprobe").display(),
            go = go.display()
        ),
    );
    let mut agent = machine
        .agent_command(&["run", "--only", "os"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut log = Vec::new();
    for line in BufReader::new(agent.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("before-wait") && !go.exists() {
            // The child is still waiting for this file: its first line came while it ran.
            assert!(
                !log.iter().any(|l: &String| l.contains("after-wait")),
                "{log:#?}"
            );
            std::fs::write(&go, "").unwrap();
        }
        log.push(line);
    }
    let status = agent.wait().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
    let position = |what: &str| log.iter().position(|l| l.contains(what));
    let (before, after) = (position("before-wait"), position("after-wait"));
    assert!(
        before.is_some() && after.is_some() && before < after,
        "{}",
        log.join("\n")
    );
}

#[test]
fn a_hung_version_query_fails_preflight_for_a_retry_not_as_unsupported() {
    let machine = first_master("query");
    let containerd = machine.node("/usr/bin/containerd");
    let answer = std::fs::read_to_string(&containerd).unwrap();
    std::fs::write(&containerd, "#!/bin/sh\nsleep 600\n").unwrap();
    let hung = machine
        .agent_command(&["run", "--only", "preflight"])
        .env(DEADLINE_CAP_ENV, "2s")
        .output()
        .unwrap();
    let log = text(&hung);
    // Exit 1 (the unit starts the agent again), not 3 (unsupported: never retried).
    assert_eq!(hung.status.code(), Some(1), "{log}");
    assert!(
        log.contains("containerd --version` did not finish within its deadline of 2s"),
        "{log}"
    );
    std::fs::write(&containerd, answer).unwrap();
    let rerun = machine.agent(&["run", "--only", "preflight"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
}
