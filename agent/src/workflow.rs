//! Walks `phases::STEPS`: runs what is not done (re-verifying what is), records markers, and tells
//! `plan` and `status` what each phase's state is and why.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use tracing::{info, warn};

use crate::context::Context;
use crate::error::Stop;
use crate::facts::NodeKind;
use crate::fsx;
use crate::markers::{Markers, WaitingRecord};
use crate::phases::{self, Step, STEPS};

/// Which phases a `run` touches (`--only` / `--skip`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Option<String>,
    pub skip: BTreeSet<String>,
}

impl Selection {
    pub fn check(&self) -> Result<()> {
        for name in self.only.iter().chain(&self.skip) {
            if phases::find(name).is_none() {
                return Err(Stop::BadConfig(format!(
                    "unknown phase {name:?} (phases: {})",
                    phases::names().join(", ")
                ))
                .into());
            }
        }
        Ok(())
    }
}

/// Whether a step runs on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applicability {
    Applies,
    /// Not for this kind of node.
    NotForKind(NodeKind),
    /// The phase itself says it has nothing to do here.
    NotNeeded,
    /// The node's kind is not decided yet (the metadata phase decides it for masters).
    Undecided,
}

pub fn applicability(ctx: &Context, step: &Step) -> Result<Applicability> {
    if !step.runs_on_every_node() {
        match ctx.node_kind()? {
            None => return Ok(Applicability::Undecided),
            Some(kind) if !step.runs_on.contains(&kind) => {
                return Ok(Applicability::NotForKind(kind))
            }
            Some(_) => {}
        }
    }
    Ok(if step.phase.applies_to(ctx)? {
        Applicability::Applies
    } else {
        Applicability::NotNeeded
    })
}

/// Held for a whole run: the phases and the sweep of staging leftovers assume that no other run
/// writes the node's files at the same time.
pub const RUN_LOCK: &str = "/var/lib/kubeboot/run.lock";

/// Every tree the agent writes files in (see the phases' outputs).
const WRITTEN_TREES: &[&str] = &[
    "/etc",
    "/var/lib/kubeboot",
    "/var/lib/kubelet",
    "/usr/local/bin",
    "/opt/cni/bin",
];

/// Takes the run lock, then removes the partial staging files a killed run left behind (its
/// writes are atomic, but a SIGKILL skips the clean-up of the temporary file it was filling).
fn begin_run(ctx: &Context) -> Result<Flock<File>> {
    let path = ctx.root.path(RUN_LOCK);
    fs::create_dir_all(path.parent().expect("the lock has a directory"))
        .with_context(|| format!("creating the directory of {}", path.display()))?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "another kubeboot-agent run holds {} ({errno}); not running twice at once",
            path.display()
        )
    })?;
    for tree in WRITTEN_TREES {
        // A leftover only wastes space: a tree that cannot be swept must not stop the node.
        match fsx::remove_staging_leftovers(&ctx.root.path(tree)) {
            Ok(removed) => {
                for leftover in removed {
                    warn!(
                        "removed {}, left by a run that was killed while writing",
                        leftover.display()
                    );
                }
            }
            Err(e) => warn!("not sweeping {tree} for staging leftovers: {e:#}"),
        }
    }
    Ok(lock)
}

/// Runs the selected phases in order; stops at the first failure (recorded in its `.failed`).
/// Under dry-run no markers are written, so a later real run still does everything.
pub fn run(ctx: &Context, selection: &Selection) -> Result<()> {
    selection.check()?;
    let _lock = if ctx.dry_run() {
        None
    } else {
        Some(begin_run(ctx)?)
    };
    let markers = Markers::new(&ctx.root);
    for step in STEPS {
        let name = step.phase.name();
        if selection.only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        if selection.skip.contains(name) {
            info!(phase = name, "skipped (--skip)");
            continue;
        }
        ctx.set_phase(name);
        match applicability(ctx, step)? {
            Applicability::Applies => {}
            Applicability::NotForKind(kind) if selection.only.is_none() => {
                info!(phase = name, "not run on a {kind}");
                continue;
            }
            Applicability::NotNeeded if selection.only.is_none() => {
                info!(phase = name, "nothing to do on this node");
                continue;
            }
            other => {
                return Err(Stop::BadConfig(format!(
                    "phase {name} cannot run on this node now: {other:?}"
                ))
                .into())
            }
        }
        if markers.done(name)?.is_some() {
            match step.phase.verify(ctx) {
                Ok(()) => {
                    info!(phase = name, "already done");
                    continue;
                }
                Err(e) => {
                    warn!(phase = name, "done earlier, but {e:#}; running it again");
                    if !ctx.dry_run() {
                        markers.clear_done(name)?;
                    }
                }
            }
        }
        info!(phase = name, "starting: {}", step.phase.description());
        let started = SystemTime::now();
        let clock = Instant::now();
        match step.phase.run(ctx) {
            Ok(()) => {
                if !ctx.dry_run() {
                    markers.record_done(name, started, SystemTime::now())?;
                }
                info!(phase = name, "done in {} ms", clock.elapsed().as_millis());
            }
            Err(e) => {
                let message = format!("{e:#}");
                warn!(phase = name, "failed: {message}");
                if !ctx.dry_run() {
                    markers.record_failed(name, &message)?;
                }
                return Err(e.context(format!("phase {name} failed")));
            }
        }
    }
    Ok(())
}

/// One phase's state for `status` (the JSON schema is documented in the README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseStatus {
    pub name: &'static str,
    pub state: PhaseState,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub last_error: Option<String>,
    /// While the phase retries something outside the node: what and why (see `retry`).
    pub waiting: Option<WaitingRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseState {
    Done,
    /// Running, and retrying something outside the node until it works.
    Waiting,
    Pending,
    Failed,
    Skipped,
}

/// The state of every phase. Without a context (no readable NodeConfig) applicability is
/// unknown, so not-done phases are pending.
pub fn statuses(root: &crate::root::Root, ctx: Option<&Context>) -> Result<Vec<PhaseStatus>> {
    let markers = Markers::new(root);
    STEPS
        .iter()
        .map(|step| {
            let name = step.phase.name();
            let done = markers.done(name)?;
            let failed = markers.failed(name)?;
            let waiting = markers.waiting(name)?;
            let not_applicable = match ctx {
                Some(ctx) => !matches!(
                    applicability(ctx, step).with_context(|| format!("phase {name}"))?,
                    Applicability::Applies | Applicability::Undecided
                ),
                None => false,
            };
            let state = match (&done, &failed) {
                (Some(_), _) => PhaseState::Done,
                (None, _) if waiting.is_some() => PhaseState::Waiting,
                (None, Some(_)) => PhaseState::Failed,
                (None, None) if not_applicable => PhaseState::Skipped,
                (None, None) => PhaseState::Pending,
            };
            Ok(PhaseStatus {
                name,
                state,
                started_at: done.as_ref().map(|d| d.started_at.clone()),
                finished_at: done.as_ref().map(|d| d.finished_at.clone()),
                duration_ms: done.as_ref().map(|d| d.duration_ms),
                last_error: failed.map(|f| f.message),
                waiting,
            })
        })
        .collect()
}
