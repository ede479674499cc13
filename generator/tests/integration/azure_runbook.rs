//! docs/azure.md, the Azure runbook, checked against the code it drives: the Packer templates'
//! variables, the cluster spec it writes, the ARM template rendered from that spec, the
//! `kubeboot-gen` and `kubeboot-agent` command lines, and the Azure tag names of both templates.
//! Azure CLI options themselves are not checked (no `az` here).

use crate::common;
use common::repo;

use std::collections::{BTreeMap, BTreeSet};

use clap::Parser;
use common::render_arm;
use common::shell::{agent_command_problems, kubeboot_command_problems, words, Shell};
use kubeboot_agent::cli::Cli as AgentCli;
use kubeboot_gen::arm;
use kubeboot_gen::spec::ClusterSpec;
use kubeboot_gen::validate::{validate_text, EXAMPLE_SPEC};
use kubeboot_nodeconfig::KubernetesVersion;
use kubeboot_test_kit::output::{stderr, stdout};
use serde_json::Value;

fn runbook() -> String {
    std::fs::read_to_string(repo().join("docs/azure.md")).expect("docs/azure.md exists")
}

/// Values the runbook reads from Azure (`az account show`), stood in for by the test.
const FROM_AZURE: &[(&str, &str)] = &[
    ("TENANT_ID", "11111111-2222-4333-8444-555555555555"),
    ("SUBSCRIPTION_ID", "66666666-7777-4888-9999-000000000000"),
];

/// Replaces `$NAME` and `${NAME}` by their values; panics on a name without one.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("closed ${");
            (&braced[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("${name} has no value in the runbook"));
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The value of `--flag VALUE` or `--flag=VALUE` in `args`, every occurrence.
fn option_values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    let mut values = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if arg == flag {
            values.push(args.get(i + 1).map(String::as_str).unwrap_or(""));
        } else if let Some(v) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            values.push(v);
        }
    }
    values
}

fn packer_template(name: &str) -> Value {
    let path = repo().join("packer").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The spec the runbook writes with a here-document, its variables expanded.
fn runbook_spec(shell: &Shell, file: &str) -> ClusterSpec {
    let body = shell
        .heredocs
        .get(file)
        .unwrap_or_else(|| panic!("the runbook writes {file} with a here-document"));
    let text = expand(body, &shell.variables(FROM_AZURE));
    match validate_text(&text) {
        Ok(valid) => valid.cluster,
        Err(errors) => panic!("the runbook's {file} is invalid: {errors:?}"),
    }
}

/// The `kubeboot-agent ...` command lines of a Packer template's shell provisioners, with Packer's
/// `{{...}}` interpolations left out (so the options between them remain).
fn packer_agent_commands(template: &Value) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for provisioner in template["provisioners"].as_array().unwrap() {
        for line in provisioner["inline"].as_array().into_iter().flatten() {
            let mut text = line.as_str().unwrap().to_string();
            while let Some(start) = text.find("{{") {
                let end = start + text[start..].find("}}").expect("closed {{") + 2;
                text.replace_range(start..end, " ");
            }
            let shell = Shell {
                lines: vec![text],
                ..Default::default()
            };
            commands.extend(shell.invocations("kubeboot-agent"));
        }
    }
    commands
}

#[test]
fn packer_commands_name_variables_of_their_template() {
    let shell = Shell::parse(&runbook());
    let vars = shell.variables(FROM_AZURE);
    let packer = shell.invocations("packer");
    assert!(
        packer
            .iter()
            .any(|args| args.first().map(String::as_str) == Some("build")),
        "the runbook runs packer build"
    );
    for args in &packer {
        let template_file = args
            .iter()
            .rfind(|a| a.ends_with(".json"))
            .unwrap_or_else(|| panic!("packer {args:?} names no template"));
        let template = packer_template(template_file.trim_start_matches("packer/"));
        let variables = template["variables"].as_object().unwrap();
        let given: BTreeMap<&str, &str> = option_values(args, "-var")
            .into_iter()
            .map(|v| v.split_once('=').expect("-var NAME=VALUE"))
            .collect();
        for name in given.keys() {
            assert!(
                variables.contains_key(*name),
                "packer {args:?}: {template_file} has no variable {name:?}"
            );
        }
        for (name, default) in variables {
            assert!(
                !default.is_null() || given.contains_key(name.as_str()),
                "packer {args:?}: {template_file} requires -var {name}=..."
            );
        }
        // The version the runbook passes is one `kubeboot-agent bake --version` accepts.
        let version = expand(given["kubernetes_version"], &vars);
        if let Err(e) = AgentCli::try_parse_from(["kubeboot-agent", "bake", "--version", &version])
        {
            panic!("bake refuses the runbook's version {version}: {e}");
        }
    }
}

#[test]
fn kubeboot_command_lines_exist() {
    let shell = Shell::parse(&runbook());
    let gen_commands = shell.invocations("kubeboot-gen");
    let agent_commands = shell.invocations("kubeboot-agent");
    assert!(
        gen_commands
            .iter()
            .any(|a| a.first().map(String::as_str) == Some("render")),
        "the runbook runs kubeboot-gen render"
    );
    assert!(
        !agent_commands.is_empty(),
        "the runbook runs kubeboot-agent"
    );

    let mut problems = kubeboot_command_problems(&shell);
    for name in ["azure-arm.json", "qemu.json"] {
        let bakes = packer_agent_commands(&packer_template(name));
        assert!(!bakes.is_empty(), "{name} runs kubeboot-agent");
        for args in bakes {
            problems.extend(
                agent_command_problems(&args)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn deployment_matches_the_template_rendered_from_the_runbooks_spec() {
    let shell = Shell::parse(&runbook());
    let vars = shell.variables(FROM_AZURE);
    let renders = shell.invocations("kubeboot-gen");
    let render = renders
        .iter()
        .find(|a| a.first().map(String::as_str) == Some("render"))
        .expect("kubeboot-gen render");
    let spec_file = *option_values(render, "--spec")
        .first()
        .expect("kubeboot-gen render --spec FILE");
    let out_dir = *option_values(render, "--out")
        .first()
        .expect("kubeboot-gen render --out DIR");
    let spec = runbook_spec(&shell, spec_file);
    let image_version: KubernetesVersion = expand("$K8S_VERSION", &vars).parse().unwrap();
    assert_eq!(
        spec.spec.kubernetes_version, image_version,
        "the spec's version is the image's"
    );
    let (template, parameters_file) = render_arm(&spec);
    let declared = template["parameters"].as_object().unwrap();
    let in_file = parameters_file["parameters"].as_object().unwrap();

    let deployments: Vec<Vec<String>> = shell
        .invocations("az")
        .into_iter()
        .filter(|a| a.starts_with(&["deployment".into(), "group".into(), "create".into()]))
        .collect();
    assert!(!deployments.is_empty(), "the runbook deploys the template");
    for args in &deployments {
        assert_eq!(
            option_values(args, "--template-file"),
            [format!("{out_dir}/{}", arm::TEMPLATE_FILE)],
            "az {args:?}"
        );
        let mut given = BTreeSet::new();
        for value in option_values(args, "--parameters") {
            if let Some(file) = value.strip_prefix('@') {
                assert_eq!(file, format!("{out_dir}/{}", arm::PARAMETERS_FILE));
                given.extend(in_file.keys().cloned());
            } else {
                let (name, _) = value.split_once('=').expect("--parameters NAME=VALUE");
                assert!(
                    declared.contains_key(name),
                    "the rendered template has no parameter {name:?} ({:?})",
                    declared.keys()
                );
                given.insert(name.to_string());
            }
        }
        for (name, declaration) in declared {
            assert!(
                declaration.get("defaultValue").is_some() || given.contains(name),
                "az {args:?} leaves the template's parameter {name:?} without a value"
            );
        }
    }

    // Resource names the runbook's az commands use (cluster name first) exist in the template.
    let resources: BTreeSet<&str> = template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let prefix = format!("{}-", spec.metadata.name);
    let mut named = 0;
    for args in shell.invocations("az") {
        for flag in ["-n", "--name", "--vmss-name"] {
            for name in option_values(&args, flag) {
                if name.starts_with(&prefix) {
                    named += 1;
                    assert!(
                        resources.contains(name),
                        "az {args:?}: the template creates no {name:?}"
                    );
                }
            }
        }
    }
    assert!(named > 0, "the runbook names the cluster's resources");
}

/// Tags the runbook's queries name (`tags."NAME"` in az's JMESPath and in jq) are ones Packer sets
/// on the image or the template rendered from the runbook's spec sets on a resource.
#[test]
fn tags_the_runbook_queries_are_set_by_packer_or_the_template() {
    let doc = runbook();
    let shell = Shell::parse(&doc);
    let mut set = packer_tag_names();
    let (template, _) = render_arm(&runbook_spec(&shell, "cluster.yaml"));
    arm_tag_names(&template, &mut set);
    let queried: Vec<&str> = ["tags.\\\"", "tags.\""]
        .iter()
        .flat_map(|opening| {
            doc.split(opening).skip(1).map(|rest| {
                let end = rest.find(['\\', '"']).expect("closed tag name");
                &rest[..end]
            })
        })
        .collect();
    for tag in [
        "kubeboot-kubernetes-version",
        "cluster-autoscaler-name",
        "kubeboot-pool",
    ] {
        assert!(
            queried.contains(&tag),
            "the runbook queries tag {tag:?}: {queried:?}"
        );
    }
    for tag in queried {
        assert!(
            set.contains(tag),
            "the runbook queries tag {tag:?}; Packer and the template set {set:?}"
        );
    }
}

/// Azure refuses these in tag names (and names are at most 512 characters).
fn tag_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 512 {
        return Some(format!("{name:?}: 1 to 512 characters"));
    }
    name.chars()
        .find(|c| "<>%&\\?/".contains(*c))
        .map(|c| format!("{name:?}: Azure tag names cannot contain {c:?}"))
}

fn packer_tag_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for template in ["azure-arm.json", "qemu.json"] {
        for builder in packer_template(template)["builders"].as_array().unwrap() {
            if let Some(tags) = builder["azure_tags"].as_object() {
                names.extend(tags.keys().cloned());
            }
        }
    }
    names
}

/// Every key of every `tags` object in an ARM template, and of the variables resources refer to
/// for their tags.
fn arm_tag_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "tags" || key == "clusterTags" {
                    if let Some(tags) = child.as_object() {
                        names.extend(tags.keys().cloned());
                    }
                }
                arm_tag_names(child, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| arm_tag_names(i, names)),
        _ => {}
    }
}

#[test]
fn azure_tag_names_are_valid() {
    // The check itself refuses what Azure refuses.
    assert!(tag_name_problem("kubeboot.io/kubernetes-version").is_some());
    assert!(tag_name_problem("a?b").is_some());
    assert!(tag_name_problem("k8s-azure-cluster-name").is_none());

    let packer = packer_tag_names();
    let (template, _) = render_arm(&validate_text(EXAMPLE_SPEC).unwrap().cluster);
    let mut arm_names = BTreeSet::new();
    arm_tag_names(&template, &mut arm_names);
    let problems: Vec<String> = packer
        .iter()
        .chain(&arm_names)
        .filter_map(|n| tag_name_problem(n))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // The walk found the tags (an empty set would pass vacuously).
    assert!(packer.contains("kubeboot-kubernetes-version"), "{packer:?}");
    assert!(arm_names.contains(arm::CLUSTER_TAG), "{arm_names:?}");
    assert!(arm_names.contains(arm::KUBEBOOT_TAG), "{arm_names:?}");
}

#[test]
fn shell_words_split_as_the_shell_does() {
    assert_eq!(
        words(r#"ssh -o ProxyCommand="ssh -W %h:%p a@$H" b 'x y' | grep -q '"done": true'"#),
        [
            "ssh",
            "-o",
            "ProxyCommand=ssh -W %h:%p a@$H",
            "b",
            "x y",
            "|",
            "grep",
            "-q",
            "\"done\": true"
        ]
    );
    assert_eq!(
        words(r#"X=$(az a --query "[?t.\"k\"=='v']" -o tsv)"#),
        [
            "X=",
            "$(",
            "az",
            "a",
            "--query",
            "[?t.\"k\"=='v']",
            "-o",
            "tsv",
            ")"
        ]
    );
    assert_eq!(words("a && b > f"), ["a", "&&", "b", ">", "f"]);
}

/// The `kubeboot-agent bake` argv a Packer template's provisioner produces for `vars`: Packer
/// (null builder, shell-local) renders and runs the template's own bake line, a stand-in
/// `kubeboot-agent` on PATH records its arguments. `env` is the provisioner shell's environment.
fn packer_bake_argv(
    template_name: &str,
    vars: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Vec<String> {
    let template = packer_template(template_name);
    let bake_line = template["provisioners"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["inline"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .find(|line| line.starts_with("kubeboot-agent bake "))
        .unwrap_or_else(|| panic!("{template_name} runs kubeboot-agent bake"));
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let argv_file = work.path().join("argv");
    let stand_in = bin.join("kubeboot-agent");
    std::fs::write(
        &stand_in,
        "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$BAKE_ARGV\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The template's variables (so every `{{user}}` resolves), its bake line, nothing else.
    let harness = serde_json::json!({
        "variables": template["variables"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [bake_line]}],
    });
    let harness_file = work.path().join("bake.json");
    std::fs::write(&harness_file, harness.to_string()).unwrap();

    let mut cmd = std::process::Command::new("packer");
    cmd.args(["build", "-color=false"]);
    let variables = template["variables"].as_object().unwrap();
    for (name, default) in variables {
        if default.is_null() && !vars.iter().any(|(n, _)| n == name) {
            cmd.arg("-var").arg(format!("{name}=unused"));
        }
    }
    for (name, value) in vars {
        cmd.arg("-var").arg(format!("{name}={value}"));
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = cmd
        .arg(&harness_file)
        .current_dir(work.path())
        .env("PATH", path)
        .env("PACKER_CACHE_DIR", work.path().join("cache"))
        .env("BAKE_ARGV", &argv_file)
        .envs(env.iter().copied())
        .output()
        .expect("packer is installed (Debian package packer)");
    assert!(
        out.status.success(),
        "packer build of the bake line failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let argv = std::fs::read(&argv_file).expect("the bake line ran kubeboot-agent");
    // Every argument ends in a NUL; an empty argument stays one.
    argv.strip_suffix(&[0])
        .map_or(Vec::new(), |a| a.split(|b| *b == 0).collect())
        .into_iter()
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .collect()
}

/// Parses `kubeboot-agent ARGV` as the agent does; panics unless it is a valid `bake`.
fn bake_args(argv: &[String]) -> kubeboot_agent::cli::bake::Args {
    let full = std::iter::once("kubeboot-agent".to_string()).chain(argv.iter().cloned());
    match AgentCli::try_parse_from(full) {
        Ok(AgentCli {
            command: kubeboot_agent::cli::Command::Bake(args),
        }) => args,
        Ok(other) => panic!("{argv:?} is not bake: {other:?}"),
        Err(e) => panic!("kubeboot-agent refuses {argv:?}: {e}"),
    }
}

#[test]
fn packer_bake_lines_give_bake_the_versions_and_mirrors() {
    for template in ["azure-arm.json", "qemu.json"] {
        // Only the version: bake's own defaults for every source.
        let argv = packer_bake_argv(template, &[("kubernetes_version", "1.37.1")], &[]);
        assert_eq!(argv, ["bake", "--version", "1.37.1"], "{template}");
        let args = bake_args(&argv);
        assert_eq!(args.artifacts.version.to_string(), "v1.37.1");

        // Every mirror variable, a value the build VM's shell expands (as packer/build-qemu.sh
        // passes http://$PACKER_HTTP_ADDR), and extra options.
        let argv = packer_bake_argv(
            template,
            &[
                ("kubernetes_version", "v1.37.1"),
                ("release_base_url", "http://$MIRROR_ADDR/k8s"),
                ("crictl_dir_url", "https://mirror.example/crictl dir"),
                ("cni_plugins_dir_url", "https://mirror.example/cni"),
                ("bake_extra_args", "--parallel 2"),
            ],
            &[("MIRROR_ADDR", "10.0.2.2:8080")],
        );
        let args = bake_args(&argv).artifacts;
        assert_eq!(args.from, "http://10.0.2.2:8080/k8s", "{template}");
        assert_eq!(
            args.crictl_from.as_deref(),
            Some("https://mirror.example/crictl dir"),
            "{template}: one word, however the URL is spelt"
        );
        assert_eq!(
            args.cni_plugins_from.as_deref(),
            Some("https://mirror.example/cni")
        );
        assert_eq!(args.parallel, 2, "{template}");
    }
}

/// The runbook's re-deployment turns `az vmss list` into the `poolCapacity` object with jq, over
/// the rendered parameters file's values: run that jq program on what az returns for two autoscaled
/// scale sets, with a parameters file that also has a pool not deployed yet.
#[test]
fn the_capacity_query_yields_the_pool_capacity_parameter() {
    let doc = runbook();
    let slurp = "jq -c --slurpfile rendered out/arm/azuredeploy.parameters.json \\\n    '";
    let program = doc
        .split(slurp)
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the runbook runs jq -c --slurpfile rendered <parameters file> '...'");
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("parameters.json");
    std::fs::write(
        &rendered,
        serde_json::json!({"parameters": {"poolCapacity": {"value": {"general": 2, "gpu": 0, "batch": 1}}}})
            .to_string(),
    )
    .unwrap();
    let listed = serde_json::json!([
        {"name": "demo-general", "sku": {"name": "Standard_D2s_v5", "capacity": 4},
         "tags": {"cluster-autoscaler-name": "demo", "kubeboot-pool": "general", "min": "2", "max": "5"}},
        {"name": "demo-gpu", "sku": {"name": "Standard_NC6s_v3", "capacity": 3},
         "tags": {"cluster-autoscaler-name": "demo", "kubeboot-pool": "gpu"}},
    ]);
    let run = |input: &Value| {
        let mut jq = std::process::Command::new("jq")
            .args(["-c", "--slurpfile", "rendered"])
            .arg(&rendered)
            .arg(program)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("jq is installed (.ci/install-deps)");
        use std::io::Write;
        jq.stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = jq.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(
        run(&listed),
        serde_json::json!({"general": 4, "gpu": 3, "batch": 1})
    );
    // Nothing deployed yet: the rendered counts.
    assert_eq!(
        run(&serde_json::json!([])),
        serde_json::json!({"general": 2, "gpu": 0, "batch": 1})
    );
}
