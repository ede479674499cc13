//! What every phase gets: the Root it works under, the parsed NodeConfig, the command runner, and
//! (once the metadata phase has run) the node facts. Built once per command.

use std::cell::Cell;
use std::path::Path;

use anyhow::{Context as _, Result};
use kubeboot_nodeconfig::NodeConfig;
use tracing::warn;

use crate::exec::{Cmd, Runner};
use crate::facts::{NodeFacts, NodeKind};
use crate::markers::{self, Markers};
use crate::paths::{self, FACTS_FILE};
use crate::provider::{self, Provider, Report};
use crate::retry::Waiting;
use crate::root::Root;

pub struct Context {
    pub root: Root,
    pub config: NodeConfig,
    pub runner: Runner,
}

thread_local! {
    /// The phase this thread runs: the runner runs each phase in a thread of its own, beside
    /// others whose needs are met (see `workflow::run`), so the phase is per thread.
    static CURRENT_PHASE: Cell<&'static str> = const { Cell::new("-") };
}

impl Context {
    /// A context whose commands run, or, when `root` is a dry run's, are printed.
    pub fn new(root: Root, config: NodeConfig) -> Self {
        Self::with_runner(root.clone(), config, Runner::new(root))
    }

    pub fn with_runner(root: Root, config: NodeConfig, runner: Runner) -> Self {
        Self {
            runner,
            root,
            config,
        }
    }

    /// Reads and validates the NodeConfig at `config_path` (a path on the machine running the
    /// agent, not under the root) or, when absent, at `/etc/kubeboot/node.yaml` under the root.
    pub fn load(root: Root, config_path: Option<&Path>) -> Result<Self> {
        let config = read_config(&root, config_path)?;
        Ok(Self::new(root, config))
    }

    /// A dry run: writes go to the root's overlay, commands are printed, no marker is written.
    pub fn dry_run(&self) -> bool {
        self.root.overlay().is_some()
    }

    /// Whether commands really run (see `Runner::runs_commands`).
    pub fn runs_commands(&self) -> bool {
        self.runner.runs_commands()
    }

    /// Names the phase this thread runs, for logs, markers and commands.
    pub fn set_phase(&self, name: &'static str) {
        CURRENT_PHASE.with(|phase| phase.set(name));
    }

    pub fn phase(&self) -> &'static str {
        CURRENT_PHASE.with(Cell::get)
    }

    /// A node path as a command argument: where the file is on the node (under --root in tests).
    pub fn arg_path(&self, node_path: &str) -> String {
        self.root.live_path(node_path).display().to_string()
    }

    /// Records why the current phase waits (its `.waiting` record, which `status` shows) and
    /// logs it. Not under dry-run: that writes no markers.
    pub fn report_waiting(&self, waiting: &Waiting) {
        warn!(
            phase = self.phase(),
            "waiting (attempt {}, next in {:.1?}): {:#}",
            waiting.attempt,
            waiting.next_in,
            waiting.reason
        );
        if !self.dry_run() {
            let record = Markers::new(&self.root).record_waiting(
                self.phase(),
                &format!("{:#}", waiting.reason),
                waiting.attempt,
            );
            if let Err(e) = record {
                warn!(phase = self.phase(), "cannot record the wait: {e:#}");
            }
        }
    }

    /// Runs `f`, which may wait (a provider call), with a reporter for the current phase; the
    /// record goes once `f` returns, whichever way it ends.
    pub fn waiting_on<T>(&self, f: impl FnOnce(Report) -> Result<T>) -> Result<T> {
        let result = f(&|w| self.report_waiting(w));
        if !self.dry_run() {
            Markers::new(&self.root).clear_waiting(self.phase())?;
        }
        result
    }

    /// The cloud provider the NodeConfig names (metadata and cluster secrets).
    pub fn provider(&self) -> Box<dyn Provider> {
        provider::for_config(&self.config, &self.root)
    }

    /// Runs a command on behalf of the current phase (see `exec`).
    pub fn exec(&self, cmd: &Cmd) -> Result<String> {
        self.runner.run(self.phase(), cmd)
    }

    /// The node facts the metadata phase wrote, or None before it ran.
    pub fn try_facts(&self) -> Result<Option<NodeFacts>> {
        markers::read_json(&self.root.path(paths::FACTS_FILE))
    }

    pub fn facts(&self) -> Result<NodeFacts> {
        self.try_facts()?
            .with_context(|| format!("{FACTS_FILE} is missing: the metadata phase has not run yet"))
    }

    /// The node's kind when it is already decided: a worker is always a worker; a master's kind
    /// comes from the metadata phase.
    pub fn node_kind(&self) -> Result<Option<NodeKind>> {
        if !self.config.is_master() {
            return Ok(Some(NodeKind::Worker));
        }
        Ok(self.try_facts()?.map(|f| f.kind))
    }
}

/// The NodeConfig, at the version a finished `upgrade` moved the node to (if one did, to a newer
/// version than the NodeConfig names).
pub fn read_config(root: &Root, config_path: Option<&Path>) -> Result<NodeConfig> {
    let path = config_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.path(kubeboot_nodeconfig::DEFAULT_PATH));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the NodeConfig {}", path.display()))
        .map_err(|e| anyhow::Error::new(crate::error::Stop::BadConfig(format!("{e:#}"))))?;
    let mut config = kubeboot_nodeconfig::parse(&text)
        .with_context(|| format!("invalid NodeConfig {}", path.display()))?;
    // The custom data still names the version the node booted at.
    if let Some(upgraded) = crate::upgrade::upgraded_version(root)? {
        if upgraded > config.cluster.kubernetes_version {
            config.cluster.kubernetes_version = upgraded;
        }
    }
    Ok(config)
}
