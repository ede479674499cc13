//! The way the agent reaches a node: its systemd units, its Debian package, the test VM image built from that
//! package, and a first boot of that image under QEMU (TCG) from a NoCloud seed, with the VM test crate's launcher
//! (`kubeboot-vm`).
//! Needs root and the tools `.ci/install-deps` installs (systemd-analyze, dpkg-deb, mmdebstrap, QEMU, genisoimage).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubeboot_test_kit::binaries::binaries;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds the agent's .deb from the binary cargo just built for this test.
fn build_deb(out_dir: &Path) -> PathBuf {
    let out = run(Command::new(repo_root().join("packaging/build-deb.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_kubeboot-agent"))
        .arg("--out")
        .arg(out_dir));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `systemd-analyze verify` on a throw-away root holding the host's systemd units, our units in
/// /etc/systemd/system and placeholder executables at the paths the units start. Returns its diagnostics:
/// systemd reports unknown keys and bad values as warnings with exit status 0, so any output is a finding.
fn verify_units(units_dir: &Path) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("lib/systemd")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg("/lib/systemd/system")
        .arg(r.join("lib/systemd/system")));
    for exe in ["usr/bin/kubeboot-agent", "usr/local/bin/kubelet"] {
        let path = r.join(exe);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        run(Command::new("chmod").arg("0755").arg(&path));
    }
    let etc_units = r.join("etc/systemd/system");
    std::fs::create_dir_all(&etc_units).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(units_dir.join("."))
        .arg(&etc_units));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("--man=no")
        .args([
            "kubeboot-agent.service",
            "kubelet.service",
            "kubeboot-join-token.service",
            "kubeboot-join-token.timer",
        ])
        .output()
        .expect("systemd-analyze is installed (package systemd)");
    let diagnostics = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && diagnostics.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("exit {}: {diagnostics}", out.status))
    }
}

#[test]
fn units_pass_systemd_analyze_verify() {
    verify_units(&repo_root().join("units")).unwrap();
}

#[test]
fn unit_verification_catches_a_broken_drop_in() {
    let copy = tempfile::tempdir().unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(repo_root().join("units/."))
        .arg(copy.path()));
    let drop_in = copy.path().join("kubelet.service.d/10-kubeadm.conf");
    let text = std::fs::read_to_string(&drop_in).unwrap();
    std::fs::write(
        &drop_in,
        text.replace("EnvironmentFile=", "EnvironmentFil="),
    )
    .unwrap();
    let err = verify_units(copy.path()).unwrap_err();
    assert!(err.contains("EnvironmentFil"), "{err}");
}

fn deb_field(deb: &Path, field: &str) -> String {
    let out = run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(field));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn deb_ships_the_agent_its_units_and_a_private_config_dir() {
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("kubeboot-agent_{}_amd64.deb", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(deb_field(&deb, "Package"), "kubeboot-agent");
    assert_eq!(deb_field(&deb, "Architecture"), "amd64");
    let depends = deb_field(&deb, "Depends");
    assert!(depends.contains("libc6 (>="), "{depends}");

    let listing = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let modes: BTreeMap<String, String> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields.last().unwrap().trim_start_matches('.').to_string();
            (path, format!("{} {}", fields[0], fields[1]))
        })
        .collect();
    for (path, expected) in [
        ("/usr/bin/kubeboot-agent", "-rwxr-xr-x root/root"),
        (
            "/lib/systemd/system/kubeboot-agent.service",
            "-rw-r--r-- root/root",
        ),
        (
            "/lib/systemd/system/kubeboot-join-token.service",
            "-rw-r--r-- root/root",
        ),
        (
            "/lib/systemd/system/kubeboot-join-token.timer",
            "-rw-r--r-- root/root",
        ),
        // CIS 4.1.1: kubelet service files 600 or more restrictive.
        (
            "/lib/systemd/system/kubelet.service",
            "-rw------- root/root",
        ),
        (
            "/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
            "-rw------- root/root",
        ),
        ("/etc/kubeboot/", "drwx------ root/root"),
    ] {
        assert_eq!(
            modes.get(path).map(String::as_str),
            Some(expected),
            "{path} in {modes:#?}"
        );
    }

    // The packaged unit starts the packaged binary.
    let extracted = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(extracted.path()));
    let unit = std::fs::read_to_string(
        extracted
            .path()
            .join("lib/systemd/system/kubeboot-agent.service"),
    )
    .unwrap();
    assert!(unit.contains("\nExecStart=/usr/bin/kubeboot-agent run\n"));
    let rotation = std::fs::read_to_string(
        extracted
            .path()
            .join("lib/systemd/system/kubeboot-join-token.service"),
    )
    .unwrap();
    assert!(rotation.contains("\nExecStart=/usr/bin/kubeboot-agent rotate-join-token\n"));
}

/// `KBCHECK key=value` lines the image-check user data prints on the serial console.
fn serial_checks(serial: &str) -> BTreeMap<String, String> {
    serial
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once("KBCHECK "))
        .filter_map(|(_, kv)| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn image_boots_and_runs_the_agent_unit_at_first_boot() {
    let repo = repo_root();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let deb = build_deb(w);
    run(Command::new(repo.join("images/build-image.sh"))
        .arg("--deb")
        .arg(&deb)
        .arg("--out")
        .arg(w.join("image")));
    // The repository's one QEMU launcher (tests/vm/src/qemu.rs), through its command-line front end.
    let started = std::time::Instant::now();
    let boot = Command::new(binaries().join("kubeboot-vm"))
        .arg("--image")
        .arg(w.join("image"))
        .arg("--user-data")
        .arg(repo.join("tests/vm/image-check/user-data"))
        .args(["--hostname", "image-check", "--timeout", "900"])
        .arg("--workdir")
        .arg(w.join("vm"))
        .output()
        .expect("kubeboot-vm runs");
    let serial = std::fs::read_to_string(w.join("vm/image-check.console.log")).unwrap_or_default();
    println!(
        "VM boot to poweroff: {:.1} s\n--- serial console ---\n{serial}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        boot.status.success(),
        "the VM did not power off by itself ({}): {}",
        boot.status,
        String::from_utf8_lossy(&boot.stderr)
    );
    let checks = serial_checks(&serial);
    let get = |key: &str| {
        checks
            .get(key)
            .unwrap_or_else(|| panic!("no KBCHECK {key} on the serial console"))
            .as_str()
    };
    let micros = |key: &str| -> u64 { get(key).parse().unwrap() };
    assert_eq!(get("finished"), "yes", "the check script ran to its end");

    // Enabled by the package, started by systemd itself (nothing in the user data starts it), after
    // cloud-init wrote node.yaml, with its conditions met.
    assert_eq!(get("agent-enabled"), "enabled");
    assert_eq!(get("agent-condition"), "yes");
    assert!(micros("agent-start-us") > 0, "the agent unit never started");
    // A unit that does not exist (e.g. renamed by a cloud-init release) reads 0 and orders nothing.
    for before in [
        "cloud-init-done-us",
        "cloud-config-done-us",
        "network-online-us",
    ] {
        assert!(
            micros(before) > 0,
            "{before}: that unit never became active"
        );
        assert!(micros("agent-start-us") >= micros(before), "{before}");
    }
    // Its own log records reach the journal under the unit.
    assert!(
        get("agent-output-lines").parse::<u32>().unwrap() > 0,
        "the agent logged nothing to the journal"
    );

    // Everything the agent must do still works under the unit's hardening, and the hardening is in force.
    let probes: Vec<&str> = serial
        .lines()
        .filter_map(|l| l.split_once("KBPROBE ").map(|(_, p)| p.trim_end()))
        .collect();
    assert_eq!(probes.len(), 11, "{probes:?}");
    assert!(probes.iter().all(|p| p.starts_with("ok ")), "{probes:?}");
    assert_eq!(get("probe-result"), "success");
    assert_eq!(get("probe-tmp-leaked"), "absent", "PrivateTmp not in force");

    // The package removes and purges cleanly on the running system.
    assert_eq!(get("remove-exit"), "0");
    assert_eq!(get("removed-binary"), "absent");
    assert_eq!(get("removed-unit"), "absent");
    assert_eq!(get("removed-kubelet-unit"), "absent");
    assert_eq!(
        get("removed-config"),
        "present",
        "remove keeps the configuration"
    );
    assert_eq!(get("removed-enabled"), "masked");
    assert_eq!(get("purge-exit"), "0");
    assert_eq!(get("purged-config-dir"), "absent");
    assert_eq!(get("purged-state-dir"), "absent");
    assert_eq!(get("purged-wants-link"), "absent");
    assert_eq!(get("purged-mask"), "absent");
    assert!(get("purged-status").contains("no packages found"));
}

/// `packer validate` of a template with the given `-var`s; Err carries packer's diagnostics.
fn packer_validate(template: &str, vars: &[(&str, String)]) -> Result<(), String> {
    let mut cmd = Command::new("packer");
    cmd.arg("validate");
    for (name, value) in vars {
        cmd.arg("-var").arg(format!("{name}={value}"));
    }
    let out = cmd
        .arg(repo_root().join("packer").join(template))
        .output()
        .expect("packer is installed (Debian package packer)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn packer_templates_validate() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let deb = build_deb(w);
    let deb = deb.display().to_string();

    let azure = [
        ("resource_group", "kubeboot-images".to_string()),
        ("kubernetes_version", "v1.37.1".to_string()),
        ("agent_deb", deb.clone()),
    ];
    packer_validate("azure-arm.json", &azure).unwrap();
    // The version without its `v` (bake accepts both) still gives a managed image name Packer
    // accepts, and so do the artifact mirror variables and CLI authentication.
    let azure_variants = [
        azure[0].clone(),
        ("kubernetes_version", "1.37.1".to_string()),
        azure[2].clone(),
        ("use_azure_cli_auth", "true".to_string()),
        ("release_base_url", "https://mirror.example/k8s".to_string()),
        (
            "crictl_dir_url",
            "https://mirror.example/crictl".to_string(),
        ),
        (
            "cni_plugins_dir_url",
            "https://mirror.example/cni".to_string(),
        ),
    ];
    packer_validate("azure-arm.json", &azure_variants).unwrap();
    // Packer checks the managed image name: a version that would make it invalid fails validation.
    let bad_name = [
        azure[0].clone(),
        ("kubernetes_version", "v1.37.1/".to_string()),
        azure[2].clone(),
    ];
    let err = packer_validate("azure-arm.json", &bad_name).unwrap_err();
    assert!(err.contains("managed_image_name"), "{err}");
    // The checks are real: a required variable left out, or a .deb that does not exist, fails validation.
    let err = packer_validate("azure-arm.json", &azure[..2]).unwrap_err();
    assert!(err.contains("agent_deb"), "{err}");
    let missing_deb = [
        azure[0].clone(),
        azure[1].clone(),
        ("agent_deb", w.join("missing.deb").display().to_string()),
    ];
    let err = packer_validate("azure-arm.json", &missing_deb).unwrap_err();
    assert!(err.contains("missing.deb"), "{err}");

    let image_dir = w.join("image");
    std::fs::create_dir_all(&image_dir).unwrap();
    std::fs::write(image_dir.join("root.img"), b"").unwrap();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(w.join("packer_key")));
    let qemu = [
        ("image_dir", image_dir.display().to_string()),
        ("seed_dir", w.display().to_string()),
        (
            "ssh_private_key_file",
            w.join("packer_key").display().to_string(),
        ),
        ("agent_deb", deb),
        ("kubernetes_version", "v1.37.1".to_string()),
        (
            "output_directory",
            w.join("packer-out").display().to_string(),
        ),
    ];
    packer_validate("qemu.json", &qemu).unwrap();
    let err = packer_validate("qemu.json", &qemu[1..]).unwrap_err();
    assert!(err.contains("image_dir"), "{err}");
}

/// A file of an ext4 image, read offline with debugfs (e2fsprogs); None when it does not exist.
fn image_file(image: &Path, path: &str) -> Option<Vec<u8>> {
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(image));
    let missing = String::from_utf8_lossy(&out.stderr).contains("File not found");
    (!missing).then_some(out.stdout)
}

#[test]
fn packer_build_installs_and_bakes_the_agent_into_the_test_image() {
    let repo = repo_root();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let deb = build_deb(w);
    // What bake downloads, laid out as packer/build-qemu.sh documents; the "binaries" only have to match
    // their checksums.
    let version = "v1.35.0";
    let mirror = w.join("mirror");
    let sha256 = |path: &Path| {
        let out = run(Command::new("sha256sum").arg(path));
        String::from_utf8(out.stdout).unwrap()[..64].to_string()
    };
    let bin_dir = mirror.join(format!("release/{version}/bin/linux/amd64"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let mut served = BTreeMap::new();
    for tool in ["kubelet", "kubeadm", "kubectl"] {
        let body = format!("#!/bin/sh\necho {tool} {version}\n");
        std::fs::write(bin_dir.join(tool), &body).unwrap();
        let digest = sha256(&bin_dir.join(tool));
        std::fs::write(bin_dir.join(format!("{tool}.sha256")), &digest).unwrap();
        served.insert(tool, (body, digest));
    }
    let tarball = |dir: &str, name: &str, members: &[&str]| {
        let src = w.join(format!("{dir}-members"));
        std::fs::create_dir_all(&src).unwrap();
        for member in members {
            std::fs::write(src.join(member), "#!/bin/sh\n").unwrap();
        }
        std::fs::create_dir_all(mirror.join(dir)).unwrap();
        let path = mirror.join(dir).join(name);
        run(Command::new("tar")
            .arg("czf")
            .arg(&path)
            .arg("-C")
            .arg(&src)
            .args(members));
        std::fs::write(
            mirror.join(dir).join(format!("{name}.sha256")),
            sha256(&path),
        )
        .unwrap();
    };
    tarball("crictl", "crictl-v1.35.0-linux-amd64.tar.gz", &["crictl"]);
    tarball(
        "cni-plugins",
        "cni-plugins-linux-amd64-v1.8.0.tgz",
        &["bridge", "host-local", "loopback", "portmap"],
    );

    let started = std::time::Instant::now();
    run(Command::new(repo.join("packer/build-qemu.sh"))
        .arg("--deb")
        .arg(&deb)
        .args(["--kubernetes-version", version])
        .arg("--mirror")
        .arg(&mirror)
        .arg("--out")
        .arg(w.join("baked")));
    println!(
        "packer build of packer/qemu.json (incl. the image without agent): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let image = w.join("baked/root.img");
    let read = |path: &str| image_file(&image, path);
    let manifest: serde_json::Value = serde_json::from_slice(
        &read("/etc/kubeboot/baked.json").expect("bake recorded baked.json"),
    )
    .unwrap();
    for (tool, (body, digest)) in &served {
        let installed = read(&format!("/usr/local/bin/{tool}"))
            .unwrap_or_else(|| panic!("{tool} not baked into /usr/local/bin"));
        assert_eq!(String::from_utf8(installed).unwrap(), *body);
        let recorded = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == *tool)
            .unwrap_or_else(|| panic!("{tool} missing from baked.json: {manifest}"));
        assert_eq!(recorded["sha256"], digest.as_str());
    }
    assert!(
        read("/usr/bin/kubeboot-agent").is_some(),
        "the .deb was installed"
    );
    assert!(
        read("/etc/systemd/system/multi-user.target.wants/kubeboot-agent.service").is_some(),
        "the agent unit is enabled"
    );
    // Generalised: no build VM identity or credentials left.
    assert_eq!(read("/etc/machine-id"), Some(Vec::new()));
    assert_eq!(read("/root/.ssh/authorized_keys"), None);
    assert_eq!(read("/var/lib/cloud/instance/user-data.txt"), None);
}
