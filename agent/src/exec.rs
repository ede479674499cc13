//! The one place the agent starts other programs. Every command is logged with its phase before it
//! runs; under `--dry-run` it is printed instead and not run. Arguments never hold secrets (those
//! only ever go into 0600 files or a child's stdin), so logging the whole command line is safe;
//! stdin bytes are never logged, nor is the stdout of a command marked as answering with a secret.
//! Children inherit the agent's environment, which holds no secrets either.
//!
//! Every child has a deadline its caller states (see [`deadline`]): when it passes, the child's
//! whole process group gets SIGTERM, then SIGKILL after [`KILL_GRACE`], and the command fails with
//! [`DeadlineExceeded`] — a plain error, so the retry engine and the unit's restart treat it as
//! worth another try. The child's output goes to the agent's log line by line as it comes.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use kubeboot_nodeconfig::Secret;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::info;

use crate::artifacts::BIN_DIR;
use crate::root::Root;

/// How long each kind of command may take before it is killed. Each is what the step does at
/// worst on a slow VM, with room to spare; a step cut short is retried (it resumes safely).
pub mod deadline {
    use std::time::Duration;

    const fn minutes(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    /// systemctl: a daemon-reload, enabling a unit, or starting/restarting one (containerd,
    /// the kubelet) — systemd's own start timeout is 90 s.
    pub const SYSTEMCTL: Duration = minutes(2);
    /// modprobe of one kernel module.
    pub const MODPROBE: Duration = minutes(1);
    /// `kubeadm init`: pulls the control-plane images unless baked, then waits for the API
    /// server (kubeadm's own health check gives up after 4 minutes).
    pub const KUBEADM_INIT: Duration = minutes(10);
    /// One `kubeadm init phase` of a control plane that is already up (API calls only).
    pub const KUBEADM_INIT_PHASE: Duration = minutes(3);
    /// `kubeadm join`: token discovery (2 minutes, set in kubeadm.yaml), the kubelet's TLS
    /// bootstrap (kubeadm's 5 minutes) and, on a master, the etcd member join.
    pub const KUBEADM_JOIN: Duration = minutes(10);
    /// `kubeadm reset -f`: stops the static pods and empties /etc/kubernetes.
    pub const KUBEADM_RESET: Duration = minutes(3);
    /// `kubeadm upgrade apply|node`: pulls the new control-plane images unless present, then
    /// replaces each static pod and waits for it (kubeadm's own wait is 5 minutes per component).
    pub const KUBEADM_UPGRADE: Duration = minutes(20);
    /// `kubectl drain`: its own `--timeout` (10 minutes) for evictions, plus the requests around.
    pub const KUBECTL_DRAIN: Duration = minutes(12);
    /// `kubectl apply` of the addon manifests (server-side, one request per object).
    pub const KUBECTL_APPLY: Duration = minutes(2);
    /// One kubectl request: get, create or delete an object, or the API server probe.
    pub const KUBECTL_REQUEST: Duration = minutes(1);
    /// A program's `--version`.
    pub const VERSION_QUERY: Duration = Duration::from_secs(30);
}

/// After SIGTERM at its deadline, how long a child has to exit before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(10);

/// Tests only: an upper bound on every command's deadline (a humantime duration, e.g. `2s`), so
/// a test can see a hung child killed without waiting minutes. Unset on a node.
pub const DEADLINE_CAP_ENV: &str = "KUBEBOOT_TEST_DEADLINE_CAP";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// A Kubernetes binary, run from `<root>/usr/local/bin` where the install phase put it.
    Kube(&'static str),
    /// A tool of the operating system (systemctl, modprobe), found on PATH.
    System(&'static str),
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kube(n) | Self::System(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: Program,
    pub args: Vec<String>,
    /// Killed when this has passed (see [`deadline`]).
    pub deadline: Duration,
    /// Fed to the child's stdin (e.g. a manifest holding a token); never logged nor printed.
    pub stdin: Option<Secret>,
    /// The child answers with a secret on stdout (e.g. a token Secret as JSON): it is returned
    /// to the caller but not logged.
    pub secret_stdout: bool,
}

impl Cmd {
    pub fn new<I, S>(program: Program, args: I, deadline: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program,
            args: args.into_iter().map(Into::into).collect(),
            deadline,
            stdin: None,
            secret_stdout: false,
        }
    }

    /// The same command with `input` on its stdin.
    pub fn with_stdin(self, input: Secret) -> Self {
        Self {
            stdin: Some(input),
            ..self
        }
    }

    /// The same command, its stdout kept out of the log.
    pub fn with_secret_stdout(self) -> Self {
        Self {
            secret_stdout: true,
            ..self
        }
    }

    /// systemctl, with its deadline.
    pub fn systemctl<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Self {
        Self::new(Program::System("systemctl"), args, deadline::SYSTEMCTL)
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program.name())?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// A command killed at its deadline. Not permanent: the same step may well finish next time.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{command}` did not finish within its deadline of {}: killed it and its process group",
    humantime::format_duration(*.deadline)
)]
pub struct DeadlineExceeded {
    pub command: String,
    pub deadline: Duration,
}

#[derive(Debug)]
pub struct Runner {
    root: Root,
    mode: Mode,
    /// See [`DEADLINE_CAP_ENV`].
    deadline_cap: Option<Duration>,
}

/// Whether commands run.
#[derive(Debug)]
enum Mode {
    Run,
    /// A dry run: each command is printed instead.
    Print,
    /// Unit tests: each command is recorded instead, for the test to read.
    #[cfg(test)]
    Record(std::sync::Mutex<Vec<String>>),
}

/// Lines of a failed command's stderr kept in the error message.
const STDERR_TAIL_LINES: usize = 20;

/// How a child ended, and what the callers need of its output.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr_tail: VecDeque<String>,
}

impl Finished {
    /// Its stdout; a non-zero exit is an error carrying the tail of its stderr.
    fn stdout(self, shown: &str) -> Result<String> {
        if !self.status.success() {
            let tail = Vec::from(self.stderr_tail).join("\n");
            bail!("`{shown}` failed ({}): {tail}", self.status);
        }
        Ok(String::from_utf8_lossy(&self.stdout).into_owned())
    }
}

/// A child about to start, as the supervisor sees it.
struct Job<'a> {
    /// The command line as logged and named in errors.
    shown: String,
    deadline: Duration,
    stdin: Option<&'a Secret>,
    log_stdout: bool,
}

impl<'a> Job<'a> {
    fn of(cmd: &'a Cmd) -> Self {
        Self {
            shown: cmd.to_string(),
            deadline: cmd.deadline,
            stdin: cmd.stdin.as_ref(),
            log_stdout: !cmd.secret_stdout,
        }
    }
}

/// What the threads watching a child report.
enum Event {
    Line { stdout: bool, line: Vec<u8> },
    Closed,
    Exited(std::io::Result<ExitStatus>),
}

impl Runner {
    /// Runs commands, or prints them when `root` is a dry run's.
    pub fn new(root: Root) -> Self {
        let mode = if root.overlay().is_some() {
            Mode::Print
        } else {
            Mode::Run
        };
        let deadline_cap = std::env::var(DEADLINE_CAP_ENV)
            .ok()
            .and_then(|v| humantime::parse_duration(&v).ok());
        Self {
            root,
            mode,
            deadline_cap,
        }
    }

    /// Runs no command but records each (unit tests).
    #[cfg(test)]
    pub fn recording(root: Root) -> Self {
        Self {
            root,
            mode: Mode::Record(Default::default()),
            deadline_cap: None,
        }
    }

    /// The commands a recording runner was given, in order.
    #[cfg(test)]
    pub fn recorded(&self) -> Vec<String> {
        match &self.mode {
            Mode::Record(commands) => commands.lock().unwrap().clone(),
            _ => Vec::new(),
        }
    }

    /// Whether commands really run (not under dry-run nor in unit tests): what depends on their
    /// effects (a socket, an API server answering) can only be waited for then.
    pub fn runs_commands(&self) -> bool {
        matches!(self.mode, Mode::Run)
    }

    pub fn path_of(&self, program: Program) -> PathBuf {
        match program {
            Program::Kube(name) => self.root.path(format!("{BIN_DIR}/{name}")),
            Program::System(name) => PathBuf::from(name),
        }
    }

    /// Runs `cmd` to completion within its deadline and returns its stdout; a non-zero exit is an
    /// error carrying the tail of its stderr. Unless commands run, prints (dry run) or records
    /// (unit tests) it and returns empty output.
    pub fn run(&self, phase: &str, cmd: &Cmd) -> Result<String> {
        match &self.mode {
            Mode::Run => {}
            Mode::Print => {
                println!("[dry-run] {phase}: would run: {cmd}");
                return Ok(String::new());
            }
            #[cfg(test)]
            Mode::Record(commands) => {
                commands.lock().unwrap().push(cmd.to_string());
                return Ok(String::new());
            }
        }
        info!(phase, "running: {cmd}");
        let job = Job::of(cmd);
        self.supervise(phase, self.command(cmd), &job, KILL_GRACE)?
            .stdout(&job.shown)
    }

    /// Runs a read-only check and reports whether it succeeded (a child killed at its deadline
    /// did not). Only called when commands run: callers decide from files alone otherwise.
    pub fn probe(&self, phase: &str, cmd: &Cmd) -> bool {
        info!(phase, "checking: {cmd}");
        self.supervise(phase, self.command(cmd), &Job::of(cmd), KILL_GRACE)
            .is_ok_and(|f| f.status.success())
    }

    /// Runs a read-only query of a program at `path` (e.g. the image's `containerd --version`)
    /// within `deadline` and returns its stdout. Runs under dry-run too: it changes nothing, and
    /// preflight decides from its answer.
    pub fn query(
        &self,
        phase: &str,
        path: &Path,
        args: &[&str],
        deadline: Duration,
    ) -> Result<String> {
        let job = Job {
            shown: format!("{} {}", path.display(), args.join(" ")),
            deadline,
            stdin: None,
            log_stdout: true,
        };
        info!(phase, "checking: {}", job.shown);
        let mut command = Command::new(path);
        command.args(args);
        self.supervise(phase, command, &job, KILL_GRACE)?
            .stdout(&job.shown)
    }

    fn command(&self, cmd: &Cmd) -> Command {
        let mut c = Command::new(self.path_of(cmd.program));
        c.args(&cmd.args);
        c
    }

    /// Starts `command` in a process group of its own, logs its output line by line as it comes
    /// and waits for it to end; at its deadline the group gets SIGTERM, and SIGKILL `grace` later.
    fn supervise(
        &self,
        phase: &str,
        mut command: Command,
        job: &Job,
        grace: Duration,
    ) -> Result<Finished> {
        let deadline = self
            .deadline_cap
            .map_or(job.deadline, |cap| cap.min(job.deadline));
        let program = Path::new(command.get_program()).to_path_buf();
        let name = program
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        command
            .stdin(match job.stdin {
                Some(_) => Stdio::piped(),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        // The child leads its group, so its group id is its pid.
        let group = Pid::from_raw(child.id() as i32);
        let (events, watch) = mpsc::channel();
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let (out, err) = (
            out.context("the child's stdout")?,
            err.context("the child's stderr")?,
        );
        let sender = events.clone();
        std::thread::spawn(move || forward_lines(out, true, &sender));
        let sender = events.clone();
        std::thread::spawn(move || forward_lines(err, false, &sender));
        if let (Some(input), Some(mut pipe)) = (job.stdin.cloned(), child.stdin.take()) {
            // Dropped when written: the child sees end of input. A child that exits without
            // reading it all fails the write; its exit status says why.
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.expose().as_bytes());
            });
        }
        std::thread::spawn(move || {
            let _ = events.send(Event::Exited(child.wait()));
        });

        let (mut stdout, mut stderr_tail) = (Vec::new(), VecDeque::new());
        let (mut status, mut open_outputs) = (None, 2);
        let mut signal = None;
        let mut check_at = Instant::now() + deadline;
        loop {
            // After SIGKILL only the exit counts: a descendant that left the group may still
            // hold the output open.
            let output_done = open_outputs == 0 || signal == Some(Signal::SIGKILL);
            if status.is_some() && output_done {
                break;
            }
            match watch.recv_timeout(check_at.saturating_duration_since(Instant::now())) {
                Ok(Event::Line { stdout: true, line }) => {
                    if job.log_stdout {
                        info!(phase, "{name}: {}", shown_line(&line));
                    }
                    stdout.extend_from_slice(&line);
                }
                Ok(Event::Line {
                    stdout: false,
                    line,
                }) => {
                    let line = shown_line(&line);
                    info!(phase, "{name}: {line}");
                    if stderr_tail.len() == STDERR_TAIL_LINES {
                        stderr_tail.pop_front();
                    }
                    stderr_tail.push_back(line);
                }
                Ok(Event::Closed) => open_outputs -= 1,
                Ok(Event::Exited(exit)) => {
                    status = Some(exit.with_context(|| format!("waiting for `{}`", job.shown))?)
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let next = match signal {
                        None => Signal::SIGTERM,
                        Some(_) => Signal::SIGKILL,
                    };
                    // Fails only if the group is gone already (the child exited, but its output
                    // stayed open until now).
                    let _ = killpg(group, next);
                    signal = Some(next);
                    check_at = Instant::now() + grace;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if signal.is_some() {
            return Err(DeadlineExceeded {
                command: job.shown.clone(),
                deadline,
            }
            .into());
        }
        Ok(Finished {
            status: status.with_context(|| format!("`{}`: its exit status was lost", job.shown))?,
            stdout,
            stderr_tail,
        })
    }
}

/// Sends each line `pipe` yields as it comes, then that it closed.
fn forward_lines(pipe: impl Read, stdout: bool, events: &mpsc::Sender<Event>) {
    let mut reader = BufReader::new(pipe);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if events.send(Event::Line { stdout, line }).is_err() {
                    return;
                }
            }
        }
    }
    let _ = events.send(Event::Closed);
}

/// A line of a child's output as logged: text, without its line break.
fn shown_line(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .trim_end_matches(['\n', '\r'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Failure;

    const SHORT: Duration = Duration::from_secs(5);

    fn sh(script: &str, deadline: Duration) -> Cmd {
        Cmd::new(Program::System("sh"), ["-c", script], deadline)
    }

    #[test]
    fn resolves_kube_binaries_under_the_root_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(Root::new(dir.path()));
        assert_eq!(
            runner.path_of(Program::Kube("kubeadm")),
            dir.path().join("usr/local/bin/kubeadm")
        );
        let ok = sh("echo hi", SHORT);
        assert_eq!(runner.run("test", &ok).unwrap(), "hi\n");
        let fail = sh("echo boom >&2; exit 3", SHORT);
        let err = runner.run("test", &fail).unwrap_err().to_string();
        assert!(
            err.contains("boom") && err.contains("exit status: 3"),
            "{err}"
        );
        assert!(runner.probe("test", &ok));
        assert!(!runner.probe("test", &fail));
        // Stdin reaches the child; it is not part of the command as logged.
        let cat = Cmd::new(Program::System("cat"), Vec::<String>::new(), SHORT)
            .with_stdin(Secret::new("fed on stdin"));
        assert_eq!(runner.run("test", &cat).unwrap(), "fed on stdin");
        assert_eq!(cat.to_string(), "cat");
        assert!(!format!("{cat:?}").contains("fed on stdin"));
        // A missing Kubernetes binary is a clear error, not a PATH lookup.
        let missing = Cmd::new(Program::Kube("kubeadm"), ["version"], SHORT);
        assert!(runner.run("test", &missing).is_err());
    }

    /// The state letter of process `pid` in /proc, None once it is gone.
    fn process_state(pid: &str) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')').next()?.trim_start().chars().next()
    }

    #[test]
    fn a_child_past_its_deadline_is_killed_with_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(Root::new(dir.path()));
        let pid_file = dir.path().join("sleeper.pid");
        let hang = sh(
            &format!("sleep 300 & echo $! > {}; wait", pid_file.display()),
            Duration::from_secs(1),
        );
        let started = Instant::now();
        let err = runner.run("test", &hang).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1) + KILL_GRACE,
            "{err}"
        );
        let exceeded = err
            .downcast_ref::<DeadlineExceeded>()
            .expect("a deadline error");
        assert_eq!(exceeded.deadline, Duration::from_secs(1));
        let message = err.to_string();
        assert!(
            message.contains("`sh -c sleep 300 &") && message.contains("deadline of 1s"),
            "{message}"
        );
        // The child's own child went with it (at most a zombie until its new parent reaps it).
        let sleeper = std::fs::read_to_string(&pid_file).unwrap();
        let deadline = Instant::now() + SHORT;
        while process_state(sleeper.trim()).is_some_and(|s| s != 'Z') {
            assert!(
                Instant::now() < deadline,
                "sleep {sleeper} survived its group's kill"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A hung step is worth another try.
        assert!(matches!(Failure::from(err), Failure::Transient { .. }));
    }

    #[test]
    fn a_child_ignoring_sigterm_gets_sigkill_after_the_grace() {
        let runner = Runner::new(Root::new("/nonexistent"));
        let stubborn = sh(
            "trap '' TERM; while :; do sleep 0.1; done",
            Duration::from_millis(300),
        );
        let grace = Duration::from_millis(300);
        let started = Instant::now();
        let err = runner
            .supervise(
                "test",
                runner.command(&stubborn),
                &Job::of(&stubborn),
                grace,
            )
            .err()
            .expect("killed");
        assert!(err.downcast_ref::<DeadlineExceeded>().is_some(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_is_logged_line_by_line_except_a_secret_stdout() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let runner = Runner::new(Root::new("/nonexistent"));
        let (shown, secret) = tracing::subscriber::with_default(subscriber, || {
            let shown = runner
                .run("test", &sh("echo out-1; echo err-1 >&2; echo out-2", SHORT))
                .unwrap();
            let secret = runner
                // The value is computed, so the logged command line does not hold it.
                .run(
                    "test",
                    &sh("echo token-$((6*7))", SHORT).with_secret_stdout(),
                )
                .unwrap();
            (shown, secret)
        });
        // The callers still get the whole stdout.
        assert_eq!(
            (shown.as_str(), secret.as_str()),
            ("out-1\nout-2\n", "token-42\n")
        );
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        for line in ["sh: out-1", "sh: err-1", "sh: out-2"] {
            assert!(log.contains(line), "{line} missing in:\n{log}");
        }
        assert!(log.find("sh: out-1") < log.find("sh: out-2"), "{log}");
        assert!(!log.contains("token-42"), "{log}");
    }

    #[test]
    fn dry_run_and_recording_runners_run_nothing() {
        let node = tempfile::tempdir().unwrap();
        let overlay = tempfile::tempdir().unwrap();
        let dry = Root::new(node.path())
            .with_overlay(crate::overlay::Overlay::kept_in(overlay.path(), node.path()).unwrap());
        let cmd = Cmd::new(Program::System("false"), ["--flag"], SHORT);
        let runner = Runner::new(dry);
        assert!(!runner.runs_commands());
        assert_eq!(runner.run("test", &cmd).unwrap(), "");
        let recording = Runner::recording(Root::new(node.path()));
        assert!(!recording.runs_commands());
        assert_eq!(recording.run("test", &cmd).unwrap(), "");
        assert_eq!(recording.recorded(), ["false --flag"]);
    }
}
