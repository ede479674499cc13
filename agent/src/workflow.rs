//! Walks `phases::STEPS` and then writes the final marker (and, for `upgrade`, the upgrade's
//! steps): runs what is not done (re-verifying what is), records markers, and tells `plan` and
//! `status` what each stage's state is and why (`stage_state`, the one place that decides it).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context as _, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::artifacts;
use crate::context::Context;
use crate::error::Stop;
use crate::facts::NodeKind;
use crate::markers::{self, DoneRecord, FailedRecord, Markers, WaitingRecord};
use crate::paths::{self, DONE_MARKER};
use crate::phases::{Step, STEPS};

/// What `run` walks and `plan`/`status` show, in order: every phase of `phases::STEPS`, then the
/// final marker, which the runner writes once every phase for this node is done.
#[derive(Clone, Copy)]
pub enum Stage {
    Phase(&'static Step),
    FinalMarker,
}

/// The name `plan`, `status`, `--only` and `--skip` use for the final marker.
pub const FINAL_MARKER: &str = "done";

impl Stage {
    pub fn all() -> impl Iterator<Item = Stage> {
        STEPS
            .iter()
            .map(Stage::Phase)
            .chain(std::iter::once(Stage::FinalMarker))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Stage::Phase(step) => step.phase.name(),
            Stage::FinalMarker => FINAL_MARKER,
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Stage::Phase(step) => step.phase.description(),
            Stage::FinalMarker => "write the final marker once every phase for this node is done",
        }
    }

    /// The stages this one starts after: a phase's `after`, and for the final marker every phase.
    pub fn after(&self) -> Vec<&'static str> {
        match self {
            Stage::Phase(step) => step.after.to_vec(),
            Stage::FinalMarker => STEPS.iter().map(|step| step.phase.name()).collect(),
        }
    }

    fn applicability(&self, ctx: &Context) -> Result<Applicability> {
        let Stage::Phase(step) = self else {
            return Ok(Applicability::Applies);
        };
        if !step.runs_on_every_node() {
            match ctx.node_kind()? {
                None => return Ok(Applicability::Undecided(step.runs_on)),
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

    fn verify(&self, ctx: &Context) -> Result<()> {
        match self {
            Stage::Phase(step) => step.phase.verify(ctx),
            Stage::FinalMarker if Markers::new(&ctx.root).all_done() => Ok(()),
            Stage::FinalMarker => bail!("{DONE_MARKER} is missing"),
        }
    }
}

/// Which phases a `run` touches (`--only` / `--skip`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Option<String>,
    pub skip: BTreeSet<String>,
}

impl Selection {
    pub fn check(&self) -> Result<()> {
        for name in self.only.iter().chain(&self.skip) {
            if !Stage::all().any(|stage| stage.name() == name) {
                let names: Vec<&str> = Stage::all().map(|stage| stage.name()).collect();
                return Err(Stop::BadConfig(format!(
                    "unknown phase {name:?} (phases: {})",
                    names.join(", ")
                ))
                .into());
            }
        }
        Ok(())
    }
}

/// Whether a stage runs on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applicability {
    Applies,
    /// Not for this kind of node.
    NotForKind(NodeKind),
    /// The phase itself says it has nothing to do here.
    NotNeeded,
    /// The node's kind is not decided yet (the metadata phase decides it for masters); the
    /// stage runs on these kinds. Also what `status` assumes without a readable NodeConfig.
    Undecided(&'static [NodeKind]),
}

/// Why a stage does or does not run here, as `plan` and errors say it.
impl std::fmt::Display for Applicability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Applicability::Applies => write!(f, "it applies"),
            Applicability::NotForKind(kind) => write!(f, "not run on a {kind}"),
            Applicability::NotNeeded => write!(f, "nothing to do on this node"),
            Applicability::Undecided(runs_on) => write!(
                f,
                "runs on a {}: the metadata phase decides which this master is",
                runs_on
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    }
}

/// What the markers say of a stage, checked against the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done(DoneRecord),
    /// Done earlier, but its invariant no longer holds (the reason): it runs again.
    Stale(DoneRecord, String),
    NotDone,
}

/// A stage's state on this node: the one place that combines applicability, markers and `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageState {
    pub applicability: Applicability,
    pub progress: Progress,
    /// Its last failure, until it is done.
    pub failed: Option<FailedRecord>,
    /// While the stage retries something outside the node: what and why (see `retry`).
    pub waiting: Option<WaitingRecord>,
}

/// Whether `stage_state` re-checks a done stage's invariants (`verify`): `run` and `plan` act on
/// the answer; `status` and the final marker count a done marker as done, so they skip the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invariants {
    Check,
    Skip,
}

/// The state of `stage`. Without a context (no readable NodeConfig) neither applicability nor
/// the invariants can be checked: the stage counts as undecided, and a done marker as done.
pub fn stage_state(
    ctx: Option<&Context>,
    markers: &Markers,
    stage: Stage,
    invariants: Invariants,
) -> Result<StageState> {
    let name = stage.name();
    let applicability = match ctx {
        Some(ctx) => stage
            .applicability(ctx)
            .with_context(|| format!("phase {name}"))?,
        None => Applicability::Undecided(&[]),
    };
    let progress = match (markers.done(name)?, ctx) {
        // The invariants are only checked where the stage runs.
        (Some(done), Some(ctx))
            if invariants == Invariants::Check && applicability == Applicability::Applies =>
        {
            match stage.verify(ctx) {
                Ok(()) => Progress::Done(done),
                Err(e) => Progress::Stale(done, format!("{e:#}")),
            }
        }
        (Some(done), _) => Progress::Done(done),
        (None, _) => Progress::NotDone,
    };
    Ok(StageState {
        applicability,
        progress,
        failed: markers.failed(name)?,
        waiting: markers.waiting(name)?,
    })
}

/// Where an atomic write of the agent stages its file (next to the target), so where a killed run
/// can leave a partial one: the trees only kubeboot (and kubeadm) write in, swept whole...
const WRITTEN_TREES: &[&str] = &[
    paths::CONFIG_DIR,
    paths::STATE_DIR,
    paths::KUBERNETES_DIR,
    paths::SYSTEMD_UNIT_DIR,
    paths::CONTAINERD_CONFIG_DIR,
    paths::MODULES_LOAD_DIR,
    paths::SYSCTL_DIR,
    artifacts::BIN_DIR,
    artifacts::CNI_BIN_DIR,
];
/// ...and /etc itself for fstab and hosts, without its subdirectories. Not the rest of /etc, nor
/// the kubelet's tree (/var/lib/kubelet, which holds pod volume mounts): the agent writes neither.
const WRITTEN_DIRS: &[&str] = &[paths::ETC_DIR];

/// Takes the run lock (a dry run too, so that it cannot read the node while a real run writes
/// it), then removes the partial staging files a killed run left behind (its writes are atomic,
/// but a SIGKILL skips the clean-up of the temporary file it was filling); a dry run only says it
/// would.
pub(crate) fn begin_run(ctx: &Context) -> Result<Option<Flock<File>>> {
    let lock = take_run_lock(ctx)?;
    let trees = WRITTEN_TREES.iter().map(|t| (t, true));
    let dirs = WRITTEN_DIRS.iter().map(|d| (d, false));
    for (tree, recursive) in trees.chain(dirs) {
        // A leftover only wastes space: a tree that cannot be swept must not stop the node.
        match ctx.root.remove_staging_leftovers(tree, recursive) {
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

/// The exclusive run lock. A dry run writes nothing on the node, so it locks the lock file only
/// where a real run created it: None where none ever ran (a real run that starts meanwhile then
/// runs beside it, and the dry run's diff may show a half-written node).
fn take_run_lock(ctx: &Context) -> Result<Option<Flock<File>>> {
    let path = ctx.root.live_path(paths::RUN_LOCK);
    let file = if ctx.dry_run() {
        match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
    } else {
        fs::create_dir_all(path.parent().expect("the lock has a directory"))
            .with_context(|| format!("creating the directory of {}", path.display()))?;
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?
    };
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "another kubeboot-agent run holds {} ({errno}); not running twice at once",
            path.display()
        )
    })?;
    Ok(Some(lock))
}

/// Runs the selected stages, each as soon as the stages it needs (`Stage::after`) are finished,
/// beside any other that is ready; after the first failure (recorded in its `.failed`) it starts
/// nothing more, lets the running ones finish and returns that failure. Under dry-run no markers
/// are written, so a later real run still does everything.
pub fn run(ctx: &Context, selection: &Selection) -> Result<()> {
    selection.check()?;
    let _lock = begin_run(ctx)?;
    let stages: Vec<Stage> = Stage::all().collect();
    run_stages(ctx, &Markers::new(&ctx.root), &stages, selection)
}

/// Runs `stages` (the boot phases, or the upgrade steps) under the run lock the caller holds,
/// recording their progress with `markers`; see `run`.
pub(crate) fn run_stages(
    ctx: &Context,
    markers: &Markers,
    stages: &[Stage],
    selection: &Selection,
) -> Result<()> {
    let index = |name: &str| stages.iter().position(|s| s.name() == name);
    let needs: Vec<Vec<usize>> = stages
        .iter()
        .map(|stage| stage.after().into_iter().filter_map(index).collect())
        .collect();
    let names: Vec<&str> = stages.iter().map(Stage::name).collect();
    run_graph(&needs, &names, |i| {
        run_stage(ctx, markers, selection, stages[i])
    })
}

/// Runs `task(i)` for every i, each in a thread of its own (named `names[i]`, so that per-thread
/// CPU in /proc tells the phases apart) once every task `needs[i]` names has finished, as many at
/// once as are ready; after a failure it starts no more tasks and returns the first failure once
/// the running ones have finished. `needs` must name only earlier tasks.
fn run_graph(
    needs: &[Vec<usize>],
    names: &[&str],
    task: impl Fn(usize) -> Result<()> + Sync,
) -> Result<()> {
    let mut started = vec![false; needs.len()];
    let mut finished = vec![false; needs.len()];
    let mut running = 0;
    let mut failure: Option<anyhow::Error> = None;
    std::thread::scope(|scope| {
        let (report, reports) = std::sync::mpsc::channel();
        loop {
            if failure.is_none() {
                for (i, needed) in needs.iter().enumerate() {
                    if !started[i] && needed.iter().all(|&n| finished[n]) {
                        started[i] = true;
                        running += 1;
                        let (report, task) = (report.clone(), &task);
                        let thread = std::thread::Builder::new().name(names[i].to_string());
                        let spawned = thread.spawn_scoped(scope, move || {
                            // A panic would otherwise leave the loop waiting for this report.
                            let outcome =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(i)))
                                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the phase panicked")));
                            report
                                .send((i, outcome))
                                .expect("the runner waits for every task");
                        });
                        if let Err(e) = spawned {
                            running -= 1;
                            finished[i] = true;
                            failure.get_or_insert(
                                anyhow::Error::new(e).context(format!("starting {}", names[i])),
                            );
                        }
                    }
                }
            }
            if running == 0 {
                break;
            }
            let (i, outcome) = reports.recv().expect("a task is running");
            running -= 1;
            finished[i] = true;
            if let Err(e) = outcome {
                match &failure {
                    None => failure = Some(e),
                    Some(_) => warn!("another phase failed as well: {e:#}"),
                }
            }
        }
    });
    failure.map_or(Ok(()), Err)
}

/// Runs one stage if it is selected, applies and is not done; records its markers.
fn run_stage(ctx: &Context, markers: &Markers, selection: &Selection, stage: Stage) -> Result<()> {
    let name = stage.name();
    if selection.only.as_deref().is_some_and(|only| only != name) {
        return Ok(());
    }
    if selection.skip.contains(name) {
        info!(phase = name, "skipped (--skip)");
        return Ok(());
    }
    ctx.set_phase(name);
    let state = stage_state(Some(ctx), markers, stage, Invariants::Check)?;
    match state.applicability {
        Applicability::Applies => {}
        Applicability::NotForKind(_) | Applicability::NotNeeded if selection.only.is_none() => {
            info!(phase = name, "{}", state.applicability);
            return Ok(());
        }
        other => {
            return Err(Stop::BadConfig(format!(
                "phase {name} cannot run on this node now: {other}"
            ))
            .into())
        }
    }
    match state.progress {
        Progress::Done(_) => {
            info!(phase = name, "already done");
            return Ok(());
        }
        Progress::Stale(_, why) => {
            warn!(phase = name, "done earlier, but {why}; running it again");
            if !ctx.dry_run() {
                markers.clear_done(name)?;
            }
        }
        Progress::NotDone => {}
    }
    info!(phase = name, "starting: {}", stage.description());
    let started = SystemTime::now();
    let clock = Instant::now();
    let outcome = match stage {
        Stage::Phase(step) => step.phase.run(ctx),
        Stage::FinalMarker => write_final_marker(ctx, markers, selection),
    };
    match outcome {
        Ok(()) => {
            if !ctx.dry_run() {
                markers.record_done(name, started, SystemTime::now())?;
            }
            info!(phase = name, "done in {} ms", clock.elapsed().as_millis());
            Ok(())
        }
        Err(e) => {
            let message = format!("{e:#}");
            warn!(phase = name, "failed: {message}");
            if !ctx.dry_run() {
                markers.record_failed(name, &message)?;
            }
            Err(e.context(format!("phase {name} failed")))
        }
    }
}

/// Writes `/var/lib/kubeboot/done` (the agent's systemd unit does not start again once it exists)
/// when every phase that applies to this node is done or was skipped by the operator (`--skip`).
fn write_final_marker(ctx: &Context, markers: &Markers, selection: &Selection) -> Result<()> {
    let mut missing = Vec::new();
    for step in STEPS {
        let stage = Stage::Phase(step);
        let name = stage.name();
        let state = stage_state(Some(ctx), markers, stage, Invariants::Skip)?;
        let done = state.progress != Progress::NotDone;
        if state.applicability == Applicability::Applies && !selection.skip.contains(name) && !done
        {
            missing.push(name);
        }
    }
    if ctx.dry_run() {
        println!("[dry-run] done: would write {DONE_MARKER}");
        return Ok(());
    }
    if !missing.is_empty() {
        bail!("phases not done yet: {}", missing.join(", "));
    }
    let facts = ctx.facts()?;
    markers::write_json(
        &ctx.root,
        paths::DONE_MARKER,
        &json!({
            "finishedAt": markers::timestamp(SystemTime::now()),
            "node": facts.node_name,
            "kind": facts.kind,
            "agentVersion": env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// One phase's state for `status` (the JSON schema is documented in docs/agent.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseStatus {
    pub name: &'static str,
    pub state: PhaseState,
    /// The phases it starts after (`Stage::after`).
    pub after: Vec<&'static str>,
    /// The done phases whose recorded run overlapped this one's in time.
    pub ran_beside: Vec<&'static str>,
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

/// The state of every stage, as the markers record it (a stale one is still done). Without a
/// context (no readable NodeConfig) applicability is unknown, so not-done phases are pending.
pub fn statuses(root: &crate::root::Root, ctx: Option<&Context>) -> Result<Vec<PhaseStatus>> {
    let stages: Vec<Stage> = Stage::all().collect();
    statuses_of(&Markers::new(root), ctx, &stages)
}

/// The state of each of `stages` as `markers` record it (see `statuses`).
pub fn statuses_of(
    markers: &Markers,
    ctx: Option<&Context>,
    stages: &[Stage],
) -> Result<Vec<PhaseStatus>> {
    let mut statuses = stages
        .iter()
        .map(|&stage| {
            let StageState {
                applicability,
                progress,
                failed,
                waiting,
            } = stage_state(ctx, markers, stage, Invariants::Skip)?;
            let not_applicable = matches!(
                applicability,
                Applicability::NotForKind(_) | Applicability::NotNeeded
            );
            let done = match progress {
                Progress::Done(done) | Progress::Stale(done, _) => Some(done),
                Progress::NotDone => None,
            };
            let state = match (&done, &failed) {
                (Some(_), _) => PhaseState::Done,
                (None, _) if waiting.is_some() => PhaseState::Waiting,
                (None, Some(_)) => PhaseState::Failed,
                (None, None) if not_applicable => PhaseState::Skipped,
                (None, None) => PhaseState::Pending,
            };
            Ok(PhaseStatus {
                name: stage.name(),
                state,
                after: stage.after(),
                ran_beside: Vec::new(),
                started_at: done.as_ref().map(|d| d.started_at.clone()),
                finished_at: done.as_ref().map(|d| d.finished_at.clone()),
                duration_ms: done.as_ref().map(|d| d.duration_ms),
                last_error: failed.map(|f| f.message),
                waiting,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let intervals: Vec<Option<(SystemTime, SystemTime)>> =
        statuses.iter().map(recorded_interval).collect();
    let names: Vec<&'static str> = statuses.iter().map(|status| status.name).collect();
    for (i, status) in statuses.iter_mut().enumerate() {
        let Some((start, finish)) = intervals[i] else {
            continue;
        };
        status.ran_beside = names
            .iter()
            .zip(&intervals)
            .enumerate()
            .filter(|(j, (_, other))| {
                *j != i && other.is_some_and(|(s, f)| s < finish && start < f)
            })
            .map(|(_, (name, _))| *name)
            .collect();
    }
    Ok(statuses)
}

/// When a done phase ran, from its marker (None where it is not done or the times do not parse).
fn recorded_interval(status: &PhaseStatus) -> Option<(SystemTime, SystemTime)> {
    let parse = |at: &Option<String>| humantime::parse_rfc3339(at.as_deref()?).ok();
    Some((parse(&status.started_at)?, parse(&status.finished_at)?))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::artifacts::BAKED_MANIFEST_PATH;

    /// Tasks 1 and 2 need only task 0: they run at the same time (each waits, with a deadline,
    /// until the other has started), and task 3, which needs both, starts after they finished.
    #[test]
    fn the_graph_runs_ready_tasks_side_by_side_and_in_order_of_needs() {
        let needs = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let (started_1, seen_by_2) = mpsc::channel();
        let (started_2, seen_by_1) = mpsc::channel();
        let channels = Mutex::new([Some((started_1, seen_by_1)), Some((started_2, seen_by_2))]);
        let log = Mutex::new(Vec::new());
        run_graph(&needs, &["a", "b", "c", "d"], |i| {
            log.lock().unwrap().push(format!("start {i}"));
            if i == 1 || i == 2 {
                let (tell, hear) = channels.lock().unwrap()[i - 1].take().unwrap();
                tell.send(()).unwrap();
                hear.recv_timeout(Duration::from_secs(30))
                    .map_err(|_| anyhow::anyhow!("task {i} ran alone"))?;
            }
            log.lock().unwrap().push(format!("end {i}"));
            Ok(())
        })
        .unwrap();
        let log = log.into_inner().unwrap();
        let at = |entry: &str| log.iter().position(|e| e == entry).unwrap();
        assert!(
            at("end 0") < at("start 1") && at("end 0") < at("start 2"),
            "{log:?}"
        );
        assert!(
            at("end 1") < at("start 3") && at("end 2") < at("start 3"),
            "{log:?}"
        );
    }

    /// After a failure nothing new starts, the running task finishes, and the first failure is
    /// returned.
    #[test]
    fn after_a_failure_the_graph_starts_nothing_more() {
        let needs = vec![vec![], vec![0], vec![0], vec![1]];
        let ran = Mutex::new(Vec::new());
        let err = run_graph(&needs, &["a", "b", "c", "d"], |i| {
            ran.lock().unwrap().push(i);
            match i {
                1 => anyhow::bail!("task 1 broke"),
                2 => std::thread::sleep(Duration::from_millis(100)),
                _ => {}
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "task 1 broke");
        let mut ran = ran.into_inner().unwrap();
        ran.sort();
        assert_eq!(ran, [0, 1, 2]);
    }

    /// `status` names, for each done phase, the done phases whose recorded runs overlapped it.
    #[test]
    fn status_names_the_phases_a_phase_ran_beside() {
        let sandbox = crate::testing::Sandbox::new("node-1");
        let root = sandbox.root();
        let markers = Markers::new(&root);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |n| t0 + Duration::from_millis(n);
        markers.record_done("os", ms(0), ms(100)).unwrap();
        markers.record_done("install", ms(50), ms(200)).unwrap();
        markers.record_done("metadata", ms(150), ms(160)).unwrap();
        // Starts when install ends: after it, not beside it.
        markers.record_done("kubelet", ms(200), ms(300)).unwrap();
        let beside = |name: &str| {
            statuses(&root, None)
                .unwrap()
                .into_iter()
                .find(|s| s.name == name)
                .unwrap()
                .ran_beside
        };
        assert_eq!(beside("os"), ["install"]);
        assert_eq!(beside("install"), ["metadata", "os"]);
        assert_eq!(beside("metadata"), ["install"]);
        assert!(beside("kubelet").is_empty());
        assert!(beside("preflight").is_empty());
    }

    /// The phase table of docs/agent.md: one row per stage that `run`, `plan` and `status` walk,
    /// in their order, with the stages each starts after, so the document cannot drift from the
    /// code.
    #[test]
    fn the_documented_phase_table_is_the_phase_list() {
        let documented: Vec<(String, String)> =
            crate::testing::agent_doc_table("| phase | runs on | starts after | what it does |")
                .into_iter()
                .map(|cells| (cells[0].clone(), cells[2].clone()))
                .collect();
        let stages: Vec<(String, String)> = Stage::all()
            .map(|stage| {
                let after = match stage {
                    Stage::FinalMarker => "every phase".to_string(),
                    Stage::Phase(step) if step.after.is_empty() => "—".to_string(),
                    Stage::Phase(step) => step.after.join(", "),
                };
                (stage.name().to_string(), after)
            })
            .collect();
        assert_eq!(documented, stages);
    }

    /// Every file the agent writes is where the sweep looks for its staging leftovers.
    #[test]
    fn the_sweep_covers_every_file_the_agent_writes() {
        let swept = |file: &str| {
            let dir = Path::new(file).parent().unwrap();
            WRITTEN_DIRS.iter().any(|d| dir == Path::new(d))
                || WRITTEN_TREES.iter().any(|t| dir.starts_with(t))
        };
        for file in [
            paths::DONE_MARKER,
            paths::FACTS_FILE,
            &format!("{}/os.done", paths::PHASES_DIR),
            paths::UPGRADE_RECORD,
            &format!("{}/drain.done", paths::UPGRADE_STEPS_DIR),
            paths::KUBEADM_CONFIG,
            &format!("{}/flannel.yaml", paths::ADDONS_DIR),
            BAKED_MANIFEST_PATH,
            &format!("{}/etcd/ca.key", paths::PKI_DIR),
            paths::ADMISSION_CONFIG_FILE,
            paths::EVENT_RATE_LIMIT_FILE,
            paths::AUDIT_POLICY_FILE,
            paths::ENCRYPTION_CONFIG_FILE,
            paths::OIDC_CA_FILE,
            paths::KUBELET_UNIT,
            paths::KUBELET_DROP_IN,
            artifacts::CONTAINERD_UNIT,
            paths::CONTAINERD_CONFIG,
            paths::MODULES_FILE,
            paths::SYSCTL_FILE,
            paths::FSTAB,
            paths::HOSTS_FILE,
            &format!("{}/kubelet", artifacts::BIN_DIR),
            &format!("{}/bridge", artifacts::CNI_BIN_DIR),
        ] {
            assert!(swept(file), "{file}");
        }
        for not_ours in ["/var/lib/kubelet/pods/x/volumes/y", "/etc/ssh/sshd_config"] {
            assert!(!swept(not_ours), "{not_ours}");
        }
    }
}
