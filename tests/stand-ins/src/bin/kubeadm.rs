//! Stand-in for kubeadm (tests only): strict flags and config, observable init/join/reset/upgrade effects.

use anyhow::{bail, Result};
use kubeboot_stand_ins::flags::{self, boolean, value, Flag, Parsed};
use kubeboot_stand_ins::kubeadm::{config, init, join, reset, upgrade};
use kubeboot_stand_ins::version::KubeVersion;
use kubeboot_stand_ins::{Invocation, Root};

const GLOBAL: &[Flag] = &[
    boolean("add-dir-header"),
    value("log-file"),
    value("log-file-max-size"),
    boolean("one-output"),
    value("rootfs"),
    boolean("skip-headers"),
    boolean("skip-log-headers"),
    value("v").short('v'),
    boolean("help").short('h'),
];

const INIT: &[Flag] = &[
    value("apiserver-advertise-address"),
    value("apiserver-bind-port"),
    value("apiserver-cert-extra-sans"),
    value("cert-dir"),
    value("certificate-key"),
    value("config"),
    value("control-plane-endpoint"),
    value("cri-socket"),
    boolean("dry-run"),
    value("feature-gates"),
    value("ignore-preflight-errors"),
    value("image-repository"),
    value("kubernetes-version"),
    value("node-name"),
    value("patches"),
    value("pod-network-cidr"),
    value("service-cidr"),
    value("service-dns-domain"),
    boolean("skip-certificate-key-print"),
    value("skip-phases"),
    boolean("skip-token-print"),
    value("token"),
    value("token-ttl"),
    boolean("upload-certs"),
];

const JOIN: &[Flag] = &[
    value("apiserver-advertise-address"),
    value("apiserver-bind-port"),
    value("certificate-key"),
    value("config"),
    boolean("control-plane"),
    value("cri-socket"),
    value("discovery-file"),
    value("discovery-token"),
    value("discovery-token-ca-cert-hash"),
    boolean("discovery-token-unsafe-skip-ca-verification"),
    boolean("dry-run"),
    value("ignore-preflight-errors"),
    value("node-name"),
    value("patches"),
    value("skip-phases"),
    value("tls-bootstrap-token"),
    value("token"),
];

const RESET: &[Flag] = &[
    value("cert-dir"),
    boolean("cleanup-tmp-dir"),
    value("config"),
    value("cri-socket"),
    boolean("dry-run"),
    boolean("force").short('f'),
    value("ignore-preflight-errors"),
    value("kubeconfig"),
    value("skip-phases"),
];

const UPGRADE_APPLY: &[Flag] = &[
    boolean("allow-experimental-upgrades"),
    boolean("allow-release-candidate-upgrades"),
    boolean("certificate-renewal"),
    value("config"),
    boolean("dry-run"),
    boolean("etcd-upgrade"),
    boolean("force").short('f'),
    value("ignore-preflight-errors"),
    value("kubeconfig"),
    value("patches"),
    boolean("print-config"),
    value("skip-phases"),
    boolean("yes").short('y'),
];

const UPGRADE_NODE: &[Flag] = &[
    boolean("certificate-renewal"),
    value("config"),
    boolean("dry-run"),
    boolean("etcd-upgrade"),
    value("ignore-preflight-errors"),
    value("kubeconfig"),
    value("patches"),
    value("skip-phases"),
];

const VERSION: &[Flag] = &[value("output").short('o')];
const CONFIG_VALIDATE: &[Flag] = &[
    boolean("allow-experimental-api"),
    value("config"),
    value("kubeconfig"),
];

/// Flags that carry secrets: kubeboot keeps secrets off command lines.
const SECRET_FLAGS: &[&str] = &[
    "token",
    "discovery-token",
    "tls-bootstrap-token",
    "discovery-token-ca-cert-hash",
    "certificate-key",
];

fn main() {
    Invocation::begin("kubeadm").run(|inv| dispatch(&inv.root, &inv.args))
}

fn parse(args: &[String], command: &[Flag]) -> Result<Parsed> {
    for a in args {
        let name = a
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default();
        if a.starts_with("--") && SECRET_FLAGS.contains(&name) {
            bail!("--{name} carries a secret; kubeboot must pass it in the config file, never on the command line");
        }
    }
    let spec: Vec<Flag> = command.iter().chain(GLOBAL).copied().collect();
    let parsed = flags::parse(args, &spec)?;
    if parsed.last("config").is_some() {
        // kubeadm's ValidateMixedArguments: only these may accompany --config.
        const ALLOWED: &[&str] = &[
            "config",
            "ignore-preflight-errors",
            "dry-run",
            "kubeconfig",
            "node-name",
            "kubeconfig-dir",
            "upload-certs",
            "print-join-command",
            "rootfs",
            "v",
            "log-file",
            "yes",
        ];
        let mixed: Vec<&str> = parsed
            .names()
            .filter(|n| {
                !ALLOWED.contains(n)
                    && !n.starts_with("skip-")
                    && !GLOBAL.iter().any(|g| g.name == *n && *n != "help")
            })
            .collect();
        if !mixed.is_empty() {
            bail!("can not mix '--config' with arguments {mixed:?}");
        }
    }
    if parsed.is_true("help") {
        bail!("--help: the stand-in prints no help");
    }
    Ok(parsed)
}

fn dispatch(root: &Root, args: &[String]) -> Result<()> {
    let (command, rest) = args.split_first().ok_or_else(|| {
        anyhow::anyhow!(
            "a command is required (init, join, reset, upgrade, version, config validate)"
        )
    })?;
    match command.as_str() {
        "init" if rest.first().map(String::as_str) == Some("phase") => {
            let spec: Vec<Flag> = INIT.iter().copied().chain([value("kubeconfig")]).collect();
            init::run_phase(root, &parse(&rest[1..], &spec)?)
        }
        "init" => {
            let p = parse(rest, INIT)?;
            no_positionals(&p)?;
            init::run(root, &p)
        }
        "join" => {
            let p = parse(rest, JOIN)?;
            if p.last("config").is_some() {
                no_positionals(&p)?;
            } else {
                bail!("kubeboot always joins with --config (the endpoint, token and CA pin live in the config file)");
            }
            join::run(root, &p)
        }
        "reset" => {
            let p = parse(rest, RESET)?;
            no_positionals(&p)?;
            reset::run(root, &p)
        }
        "upgrade" => match rest.split_first() {
            Some((sub, rest)) if sub == "apply" => upgrade::apply(root, &parse(rest, UPGRADE_APPLY)?),
            Some((sub, rest)) if sub == "node" => upgrade::node(root, &parse(rest, UPGRADE_NODE)?),
            _ => bail!("the stand-in implements only `kubeadm upgrade apply` and `kubeadm upgrade node`"),
        },
        "version" => {
            let p = parse(rest, VERSION)?;
            no_positionals(&p)?;
            let v = KubeVersion::own()?.ok_or_else(|| anyhow::anyhow!("this stand-in has no version: set STANDIN_KUBERNETES_VERSION or ship a kubernetes-version file beside it"))?;
            match p.last("output").unwrap_or("") {
                "short" => println!("{v}"),
                "" => println!("kubeadm version: &version.Info{{Major:\"1\", Minor:\"{}\", GitVersion:\"{v}\"}}", v.minor),
                "json" => println!("{}", serde_json::json!({"clientVersion": {"major": "1", "minor": v.minor.to_string(), "gitVersion": v.to_string()}})),
                "yaml" => println!("clientVersion:\n  gitVersion: {v}\n  major: \"1\"\n  minor: \"{}\"", v.minor),
                other => bail!("invalid output format: {other}"),
            }
            Ok(())
        }
        "config" => match rest.split_first() {
            Some((sub, rest)) if sub == "validate" => {
                let p = parse(rest, CONFIG_VALIDATE)?;
                no_positionals(&p)?;
                let path = p.last("config").ok_or_else(|| anyhow::anyhow!("--config is required"))?;
                config::load(&root.arg_path(path), config::Purpose::Validate, KubeVersion::own()?.as_ref())?;
                println!("ok");
                Ok(())
            }
            _ => bail!("the stand-in implements only `kubeadm config validate`"),
        },
        other => bail!("unknown command {other:?} for \"kubeadm\" (the stand-in implements init, join, reset, upgrade apply|node, version, config validate)"),
    }
}

fn no_positionals(p: &Parsed) -> Result<()> {
    if let Some(extra) = p.positionals.first() {
        bail!("unexpected argument {extra:?}");
    }
    Ok(())
}
