//! The one place the agent starts other programs. Every command is logged with its phase before it
//! runs; under `--dry-run` it is printed instead and not run. Arguments never hold secrets (those
//! only ever go into 0600 files or a child's stdin), so logging the whole command line is safe;
//! stdin bytes are never logged. Children inherit the agent's environment, which holds no secrets
//! either.

use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use std::io::Write as _;

use anyhow::{bail, Context as _, Result};
use kubeboot_nodeconfig::Secret;
use tracing::info;

use crate::artifacts::BIN_DIR;
use crate::root::Root;

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
    /// Fed to the child's stdin (e.g. a manifest holding a token); never logged nor printed.
    pub stdin: Option<Secret>,
}

impl Cmd {
    pub fn new<I, S>(program: Program, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program,
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// The same command with `input` on its stdin.
    pub fn with_stdin(self, input: Secret) -> Self {
        Self {
            stdin: Some(input),
            ..self
        }
    }

    pub fn systemctl<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Self {
        Self::new(Program::System("systemctl"), args)
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

#[derive(Debug)]
pub struct Runner {
    root: Root,
    mode: Mode,
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

impl Runner {
    /// Runs commands, or prints them when `root` is a dry run's.
    pub fn new(root: Root) -> Self {
        let mode = if root.overlay().is_some() {
            Mode::Print
        } else {
            Mode::Run
        };
        Self { root, mode }
    }

    /// Runs no command but records each (unit tests).
    #[cfg(test)]
    pub fn recording(root: Root) -> Self {
        Self {
            root,
            mode: Mode::Record(Default::default()),
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

    /// Runs `cmd` to completion and returns its stdout; a non-zero exit is an error carrying the
    /// tail of its stderr. Unless commands run, prints (dry run) or records (unit tests) it and
    /// returns empty output.
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
        let starting = || format!("starting {}", self.path_of(cmd.program).display());
        let output = match &cmd.stdin {
            None => self
                .command(cmd)
                .stdin(Stdio::null())
                .output()
                .with_context(starting)?,
            Some(input) => {
                let mut child = self
                    .command(cmd)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .with_context(starting)?;
                // Dropped at the end of the block: the child sees end of input.
                let mut pipe = child.stdin.take().context("the child's stdin")?;
                // A child that exits without reading it all fails the write; its exit status says why.
                let _ = pipe.write_all(input.expose().as_bytes());
                drop(pipe);
                child.wait_with_output().with_context(starting)?
            }
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
            bail!("`{cmd}` failed ({}): {tail}", output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs a read-only check and reports whether it succeeded. Only called when commands run:
    /// callers decide from files alone otherwise.
    pub fn probe(&self, phase: &str, cmd: &Cmd) -> bool {
        info!(phase, "checking: {cmd}");
        self.command(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs a read-only query of a program at `path` (e.g. the image's `containerd --version`)
    /// and returns its stdout. Runs under dry-run too: it changes nothing, and preflight decides
    /// from its answer.
    pub fn query(&self, phase: &str, path: &std::path::Path, args: &[&str]) -> Result<String> {
        info!(phase, "checking: {} {}", path.display(), args.join(" "));
        let output = Command::new(path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting {}", path.display()))?;
        if !output.status.success() {
            bail!(
                "`{} {}` failed ({})",
                path.display(),
                args.join(" "),
                output.status
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn command(&self, cmd: &Cmd) -> Command {
        let mut c = Command::new(self.path_of(cmd.program));
        c.args(&cmd.args);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_kube_binaries_under_the_root_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(Root::new(dir.path()));
        assert_eq!(
            runner.path_of(Program::Kube("kubeadm")),
            dir.path().join("usr/local/bin/kubeadm")
        );
        let ok = Cmd::new(Program::System("sh"), ["-c", "echo hi"]);
        assert_eq!(runner.run("test", &ok).unwrap(), "hi\n");
        let fail = Cmd::new(Program::System("sh"), ["-c", "echo boom >&2; exit 3"]);
        let err = runner.run("test", &fail).unwrap_err().to_string();
        assert!(
            err.contains("boom") && err.contains("exit status: 3"),
            "{err}"
        );
        assert!(runner.probe("test", &ok));
        assert!(!runner.probe("test", &fail));
        // Stdin reaches the child; it is not part of the command as logged.
        let cat = Cmd::new(Program::System("cat"), Vec::<String>::new())
            .with_stdin(Secret::new("fed on stdin"));
        assert_eq!(runner.run("test", &cat).unwrap(), "fed on stdin");
        assert_eq!(cat.to_string(), "cat");
        assert!(!format!("{cat:?}").contains("fed on stdin"));
        // A missing Kubernetes binary is a clear error, not a PATH lookup.
        let missing = Cmd::new(Program::Kube("kubeadm"), ["version"]);
        assert!(runner.run("test", &missing).is_err());
    }

    #[test]
    fn dry_run_and_recording_runners_run_nothing() {
        let node = tempfile::tempdir().unwrap();
        let overlay = tempfile::tempdir().unwrap();
        let dry = Root::new(node.path())
            .with_overlay(crate::overlay::Overlay::kept_in(overlay.path(), node.path()).unwrap());
        let cmd = Cmd::new(Program::System("false"), ["--flag"]);
        let runner = Runner::new(dry);
        assert!(!runner.runs_commands());
        assert_eq!(runner.run("test", &cmd).unwrap(), "");
        let recording = Runner::recording(Root::new(node.path()));
        assert!(!recording.runs_commands());
        assert_eq!(recording.run("test", &cmd).unwrap(), "");
        assert_eq!(recording.recorded(), ["false --flag"]);
    }
}
