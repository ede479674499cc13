//! modprobe shim for `--root` integration tests: known module names only; loaded modules are recorded in
//! `<root>/var/lib/stand-ins/modules.json`.
use std::collections::BTreeSet;

use anyhow::{bail, Result};
use kubeboot_stand_ins::flags::{self, boolean, Flag};
use kubeboot_stand_ins::{fsx, Invocation, Root};

const FLAGS: &[Flag] = &[
    boolean("quiet").short('q'),
    boolean("verbose").short('v'),
    boolean("all").short('a'),
    boolean("remove").short('r'),
    boolean("dry-run").short('n'),
];

/// Modules a Kubernetes node loads (container runtime, bridge netfilter, kube-proxy modes, CNIs).
const KNOWN: &[&str] = &[
    "overlay",
    "br_netfilter",
    "bridge",
    "nf_conntrack",
    "nf_nat",
    "nf_tables",
    "nft_chain_nat",
    "ip_tables",
    "ip6_tables",
    "iptable_nat",
    "iptable_filter",
    "iptable_mangle",
    "xt_conntrack",
    "xt_MASQUERADE",
    "xt_mark",
    "xt_set",
    "ip_set",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_sh",
    "vxlan",
    "veth",
    "wireguard",
];

fn main() {
    Invocation::begin("modprobe").run(|inv| run(&inv.root, &inv.args))
}

fn run(root: &Root, args: &[String]) -> Result<()> {
    let p = flags::parse(args, FLAGS)?;
    if p.positionals.is_empty() {
        bail!("modprobe: ERROR: missing parameters. See -h.");
    }
    // Without -a, modprobe takes one module and treats the rest as module parameters (key=value).
    let modules: Vec<&String> = if p.is_true("all") || p.is_true("remove") {
        p.positionals.iter().collect()
    } else {
        vec![&p.positionals[0]]
    };
    if !p.is_true("all") && !p.is_true("remove") {
        if let Some(bad) = p.positionals[1..].iter().find(|a| !a.contains('=')) {
            bail!("modprobe: {bad:?} is not a module parameter (key=value); use -a to load several modules");
        }
    }
    for m in &modules {
        if !KNOWN.contains(&m.replace('-', "_").as_str()) {
            bail!("modprobe: FATAL: Module {m} not found in directory /lib/modules/stand-in");
        }
    }
    let path = root.path("/var/lib/stand-ins/modules.json");
    let mut loaded: BTreeSet<String> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if !p.is_true("dry-run") {
        for m in modules {
            if p.is_true("remove") {
                loaded.remove(m.as_str());
            } else {
                loaded.insert(m.replace('-', "_"));
            }
        }
        fsx::write(&path, serde_json::to_vec_pretty(&loaded)?, 0o644)?;
    }
    Ok(())
}
