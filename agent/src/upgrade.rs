//! `kubeboot-agent upgrade --to VERSION`: moves a node that is done to a newer patch or the next
//! minor, in named, idempotent steps like the boot phases, in the order kubeadm's upgrade guide
//! gives: kubeadm first, the control plane (`kubeadm upgrade apply` on the first master,
//! `kubeadm upgrade node` elsewhere), then the node drained around its kubelet's replacement.
//!
//! THE list of upgrade steps is `STEPS` below, one step per file under `upgrade/`; four boot
//! phases run again at the new version (their files depend on it). Progress: `upgrade.json`
//! (from, to, when; `status` shows it) and one record per step in `/var/lib/kubeboot/upgrade/`,
//! which a new upgrade clears. Once an upgrade finished, the node's version is its `to` (not the
//! older one of the NodeConfig, which the image's custom data still carries): `context::read_config`
//! says so.

pub mod check;
pub mod drain;
pub mod install_kubeadm;
pub mod install_kubelet;
pub mod kubeadm_upgrade;
pub mod restart_kubelet;
pub mod uncordon;

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use kubeboot_nodeconfig::KubernetesVersion;
use serde::{Deserialize, Serialize};

use crate::artifacts::{self, ArtifactSet};
use crate::context::Context;
use crate::error::Stop;
use crate::exec::{Cmd, Program};
use crate::facts::NodeKind::{self, ExtraMaster, FirstMaster, Worker};
use crate::markers::{self, Markers};
use crate::paths;
use crate::phases::{addons, container_runtime, harden, kubeadm_config, Step};
use crate::root::Root;
use crate::workflow::{self, Selection, Stage};

const EVERY_NODE: &[NodeKind] = &[FirstMaster, ExtraMaster, Worker];
const FIRST_MASTER: &[NodeKind] = &[FirstMaster];

/// The upgrade steps, in order: each starts after the one before it.
#[rustfmt::skip]
pub static STEPS: &[Step] = &[
    // The version move is allowed, and the control plane is there before the other nodes follow.
    Step { phase: &check::Check, runs_on: EVERY_NODE, after: &[] },
    Step { phase: &install_kubeadm::InstallKubeadm, runs_on: EVERY_NODE, after: &["check"] },
    // kubeadm's configuration at the new version, as a node booted at it would have it (for
    // later `run` and `plan`: `kubeadm upgrade` itself reads the cluster's stored configuration).
    Step { phase: &kubeadm_config::KubeadmConfig, runs_on: EVERY_NODE, after: &["install-kubeadm"] },
    Step { phase: &kubeadm_upgrade::KubeadmUpgrade, runs_on: EVERY_NODE, after: &["kubeadm-config"] },
    // kubeadm upgrade rewrote the kubelet's files with its default modes.
    Step { phase: &harden::Harden, runs_on: EVERY_NODE, after: &["kubeadm-upgrade"] },
    Step { phase: &drain::Drain, runs_on: EVERY_NODE, after: &["harden"] },
    // containerd's sandbox (pause) image follows the minor.
    Step { phase: &container_runtime::ContainerRuntime, runs_on: EVERY_NODE, after: &["drain"] },
    Step { phase: &install_kubelet::InstallKubelet, runs_on: EVERY_NODE, after: &["container-runtime"] },
    Step { phase: &restart_kubelet::RestartKubelet, runs_on: EVERY_NODE, after: &["install-kubelet"] },
    Step { phase: &uncordon::Uncordon, runs_on: EVERY_NODE, after: &["restart-kubelet"] },
    // The addons released per minor (cloud-provider-azure, cluster-autoscaler) at the new one.
    Step { phase: &addons::Addons, runs_on: FIRST_MASTER, after: &["uncordon"] },
];

/// What `upgrade.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeRecord {
    pub from: KubernetesVersion,
    pub to: KubernetesVersion,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `--kubeconfig` of the latest `upgrade` run: credentials that may drain this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
}

pub fn record(root: &Root) -> Result<Option<UpgradeRecord>> {
    markers::read_json(&root.path(paths::UPGRADE_RECORD))
}

fn write_record(root: &Root, record: &UpgradeRecord) -> Result<()> {
    markers::write_json(root, paths::UPGRADE_RECORD, record)
}

/// The version a finished upgrade moved this node to, if any.
pub fn upgraded_version(root: &Root) -> Result<Option<KubernetesVersion>> {
    Ok(record(root)?
        .filter(|r| r.finished_at.is_some())
        .map(|r| r.to))
}

/// The upgrade a killed or failed `upgrade` left unfinished, if any.
pub fn unfinished(root: &Root) -> Result<Option<UpgradeRecord>> {
    Ok(record(root)?.filter(|r| r.finished_at.is_none()))
}

/// Why the node may not move from `current` to `target` (one line), if it may not: kubeadm
/// upgrades one minor at a time and does not downgrade; kubeboot must know the target's release.
pub fn refusal(current: &KubernetesVersion, target: &KubernetesVersion) -> Option<String> {
    if let Err(why) = target.release() {
        return Some(why);
    }
    if target < current {
        return Some(format!(
            "refusing to downgrade this node from {current} to {target}: Kubernetes upgrades only go forward"
        ));
    }
    if target.minor() > current.minor() + 1 {
        return Some(format!(
            "refusing to upgrade this node from {current} to {target}: one minor at a time (upgrade to the latest v1.{}.x first)",
            current.minor() + 1
        ));
    }
    None
}

/// What `upgrade --to` does on this node.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start a new upgrade (its steps' earlier records are cleared when it starts).
    New(UpgradeRecord),
    /// Resume the unfinished upgrade a killed or failed run left.
    Resume(UpgradeRecord),
    /// Nothing: the node is at the target already.
    AtTarget,
}

/// Decides, without changing anything, what `upgrade --to target` does here; refuses (one line,
/// `Stop::BadConfig`) a node that is not done, a target `refusal` refuses, and another target
/// while an upgrade that changed something (a step done) is unfinished. The caller holds the run
/// lock, so that no other run changes what this decides from.
pub fn decide(
    ctx: &Context,
    target: &KubernetesVersion,
    kubeconfig: Option<String>,
) -> Result<Decision> {
    let refuse = |why: String| Err(Stop::BadConfig(why).into());
    if !Markers::new(&ctx.root).all_done() {
        return refuse(format!(
            "this node is not done booting ({} is missing): `kubeboot-agent status` says where it is",
            paths::DONE_MARKER
        ));
    }
    let current = &ctx.config.cluster.kubernetes_version;
    match record(&ctx.root)? {
        // Nothing done yet (e.g. a worker that went first and stopped at `check`): start over.
        Some(unfinished) if unfinished.finished_at.is_none() && !any_step_done(&ctx.root)? => {
            match refusal(&unfinished.from, target) {
                Some(why) => refuse(why),
                None => Ok(Decision::New(UpgradeRecord {
                    to: target.clone(),
                    started_at: markers::timestamp(SystemTime::now()),
                    kubeconfig,
                    ..unfinished
                })),
            }
        }
        Some(unfinished) if unfinished.finished_at.is_none() => {
            if &unfinished.to != target {
                return refuse(format!(
                    "an upgrade from {} to {} is unfinished: finish it first (kubeboot-agent upgrade --to {})",
                    unfinished.from, unfinished.to, unfinished.to
                ));
            }
            Ok(Decision::Resume(UpgradeRecord {
                kubeconfig,
                ..unfinished
            }))
        }
        _ if current == target => Ok(Decision::AtTarget),
        _ => match refusal(current, target) {
            Some(why) => refuse(why),
            None => Ok(Decision::New(UpgradeRecord {
                from: current.clone(),
                to: target.clone(),
                started_at: markers::timestamp(SystemTime::now()),
                finished_at: None,
                kubeconfig,
            })),
        },
    }
}

fn any_step_done(root: &Root) -> Result<bool> {
    let markers = Markers::for_upgrade(root);
    for step in STEPS {
        if markers.done(step.phase.name())?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Runs every upgrade step not done yet, with `ctx` at the target version (for a new upgrade,
/// from the first step), then records the upgrade finished. The caller holds the run lock.
pub fn run(ctx: &Context, decision: &Decision) -> Result<()> {
    let record = match decision {
        Decision::AtTarget => return Ok(()),
        Decision::New(record) => {
            Markers::for_upgrade(&ctx.root).clear_all()?;
            record
        }
        Decision::Resume(record) => record,
    };
    write_record(&ctx.root, record)?;
    workflow::run_stages(
        ctx,
        &Markers::for_upgrade(&ctx.root),
        &stages(),
        &Selection::default(),
    )?;
    write_record(
        &ctx.root,
        &UpgradeRecord {
            finished_at: Some(markers::timestamp(SystemTime::now())),
            ..record.clone()
        },
    )
}

/// Installs `names` (of kubelet, kubeadm, kubectl) of the context's version, verified.
fn install_binaries(ctx: &Context, names: &[&str]) -> Result<()> {
    let mut set = ArtifactSet::for_node(&ctx.config);
    set.artifacts.retain(|a| names.contains(&a.name.as_str()));
    artifacts::install_for_phase(ctx, &set)
}

/// The kubeconfig the upgrade's kubectl calls use on this node: `--kubeconfig` when given, else
/// a master's admin credentials; None on a worker without `--kubeconfig` (its own credentials
/// may not evict pods).
fn operator_kubeconfig(ctx: &Context) -> Result<Option<String>> {
    let given = record(&ctx.root)?
        .context("upgrade.json is missing: the upgrade steps run from `kubeboot-agent upgrade`")?
        .kubeconfig;
    Ok(match given {
        Some(path) => Some(path),
        None if ctx.config.is_master() => Some(ctx.arg_path(paths::ADMIN_CONF)),
        None => None,
    })
}

/// Runs kubectl with `args` and returns its stdout, with the operator's kubeconfig, else the
/// node's own credentials (which may read the cluster's configuration and its own Node, and cordon
/// or uncordon it): the kubelet's kubeconfig with its rotating client certificate named under
/// `--root`, as the kubeconfig names it by its absolute node path.
fn kubectl(ctx: &Context, args: &[&str], deadline: Duration) -> Result<String> {
    let credentials = match operator_kubeconfig(ctx)? {
        Some(kubeconfig) => vec!["--kubeconfig".into(), kubeconfig],
        None => {
            let client = ctx.arg_path(paths::KUBELET_CLIENT_CERT);
            vec![
                "--kubeconfig".into(),
                ctx.arg_path(paths::KUBELET_KUBECONFIG),
                "--client-certificate".into(),
                client.clone(),
                "--client-key".into(),
                client,
            ]
        }
    };
    let args = credentials
        .into_iter()
        .chain(args.iter().map(|a| a.to_string()));
    ctx.exec(&Cmd::new(Program::Kube("kubectl"), args, deadline))
}

/// The upgrade steps as the runner, `plan` and `status` walk them.
pub fn stages() -> Vec<Stage> {
    STEPS.iter().map(Stage::Phase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> KubernetesVersion {
        text.parse().unwrap()
    }

    #[test]
    fn one_minor_forward_at_a_time() {
        assert_eq!(refusal(&v("v1.36.2"), &v("v1.37.0")), None);
        assert_eq!(refusal(&v("v1.36.2"), &v("v1.36.4")), None);
        let skip = refusal(&v("v1.35.1"), &v("v1.37.0")).unwrap();
        assert!(skip.contains("one minor at a time"), "{skip}");
        assert!(skip.contains("v1.36.x first"), "{skip}");
        let down = refusal(&v("v1.37.0"), &v("v1.36.9")).unwrap();
        assert!(down.contains("refusing to downgrade"), "{down}");
        let unknown = refusal(&v("v1.37.0"), &v("v1.38.0")).unwrap();
        assert!(
            unknown.contains("not a release kubeboot knows"),
            "{unknown}"
        );
    }

    /// The step table of docs/agent.md is `STEPS`: the same names, in order, on the same nodes.
    #[test]
    fn the_documented_step_table_is_the_step_list() {
        let documented: Vec<(String, String)> =
            crate::testing::agent_doc_table("| step | runs on | what it does |")
                .into_iter()
                .map(|cells| (cells[0].clone(), cells[1].clone()))
                .collect();
        let steps: Vec<(String, String)> = STEPS
            .iter()
            .map(|step| {
                let runs_on = if step.runs_on_every_node() {
                    "all"
                } else {
                    "first master"
                };
                (step.phase.name().to_string(), runs_on.to_string())
            })
            .collect();
        assert_eq!(documented, steps);
    }

    /// Every step a step waits for is an earlier step, as for the boot phases.
    #[test]
    fn every_step_needs_only_the_step_before_it() {
        for (i, step) in STEPS.iter().enumerate() {
            let before: Vec<&str> = STEPS[..i]
                .iter()
                .rev()
                .take(1)
                .map(|s| s.phase.name())
                .collect();
            assert_eq!(step.after, before.as_slice(), "{}", step.phase.name());
        }
    }
}
