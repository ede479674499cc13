//! A generated Kubernetes release tree (binaries, crictl, CNI and containerd tarballs, runc,
//! checksum files) served by a loopback `server::ReleaseServer` or written to a directory for
//! `file://` mirrors.

pub mod server;

use std::path::Path;

use flate2::write::GzEncoder;
use kubeboot_nodeconfig::ToolRelease;
use sha2::{Digest, Sha256};

pub const VERSION: &str = "v1.35.2";
pub const CRICTL_VERSION: &str = "v1.35.0";
pub const CNI_VERSION: &str = "v1.8.0";
pub const ARCH: &str = "amd64";
pub const CNI_PLUGINS: [&str; 5] = ["bridge", "host-local", "loopback", "portmap", "bandwidth"];
/// As containerd spells it in its asset names (its tag is `v` + this).
pub const CONTAINERD_VERSION: &str = "2.1.4";
pub const RUNC_VERSION: &str = "v1.3.0";
/// What containerd's release tarball holds under `bin/`; the node needs all but the last.
pub const CONTAINERD_TARBALL: [&str; 4] = [
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "containerd-stress",
];

/// Files by URL path, with their `.sha256` files.
pub struct ReleaseTree {
    pub files: Vec<(String, Vec<u8>)>,
}

/// Deterministic pseudo-random bytes, different per `seed` (so digests differ per file).
pub fn content(seed: &str, len: usize) -> Vec<u8> {
    let mut block = Sha256::digest(seed.as_bytes()).to_vec();
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn binary_path(name: &str) -> String {
    format!("/release/{VERSION}/bin/linux/{ARCH}/{name}")
}

pub fn crictl_path() -> String {
    format!("/crictl/{CRICTL_VERSION}/crictl-{CRICTL_VERSION}-linux-{ARCH}.tar.gz")
}

pub fn cni_path() -> String {
    format!("/cni/{CNI_VERSION}/cni-plugins-linux-{ARCH}-{CNI_VERSION}.tgz")
}

pub fn containerd_path() -> String {
    format!("/containerd/v{CONTAINERD_VERSION}/containerd-{CONTAINERD_VERSION}-linux-{ARCH}.tar.gz")
}

pub fn runc_path() -> String {
    format!("/runc/{RUNC_VERSION}/runc.{ARCH}")
}

pub fn runc_checksums_path() -> String {
    format!("/runc/{RUNC_VERSION}/runc.sha256sum")
}

pub fn containerd_release(base: &str) -> ToolRelease {
    ToolRelease {
        version: CONTAINERD_VERSION.into(),
        base_url: format!("{base}/containerd/v{CONTAINERD_VERSION}"),
    }
}

pub fn runc_release(base: &str) -> ToolRelease {
    ToolRelease {
        version: RUNC_VERSION.into(),
        base_url: format!("{base}/runc/{RUNC_VERSION}"),
    }
}

/// containerd's tarball the way its Makefile packs it (`tar -czf … -C <release> bin`): a `bin/`
/// directory holding the binaries, no `./`.
pub fn containerd_tarball() -> Vec<u8> {
    let members: Vec<(String, Vec<u8>)> = CONTAINERD_TARBALL
        .iter()
        .map(|name| (format!("bin/{name}"), content(name, 3000)))
        .collect();
    let members: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    tarball_under("bin/", &members)
}

pub fn crictl_release(base: &str) -> ToolRelease {
    ToolRelease {
        version: CRICTL_VERSION.into(),
        base_url: format!("{base}/crictl/{CRICTL_VERSION}"),
    }
}

pub fn cni_release(base: &str) -> ToolRelease {
    ToolRelease {
        version: CNI_VERSION.into(),
        base_url: format!("{base}/cni/{CNI_VERSION}"),
    }
}

/// A gzipped tarball the way upstream builds them: `./` then regular files.
pub fn tarball(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    tarball_under("./", members)
}

/// A gzipped tarball: the directory `dir`, then the regular files `members` (full names).
pub fn tarball_under(dir_name: &str, members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder.append_data(&mut dir, dir_name, &[][..]).unwrap();
    for (name, body) in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(body.len() as u64);
        // Written raw: the tar crate refuses to build the hostile names the tests need.
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, &body[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

impl ReleaseTree {
    /// kubelet, kubeadm, kubectl of `binary_size` bytes each, crictl and CNI plugin tarballs.
    pub fn generate(binary_size: usize) -> ReleaseTree {
        let mut tree = ReleaseTree { files: Vec::new() };
        for name in ["kubelet", "kubeadm", "kubectl"] {
            tree.add(&binary_path(name), content(name, binary_size));
        }
        tree.add(
            &crictl_path(),
            tarball(&[("crictl", content("crictl", 4096))]),
        );
        let mut cni: Vec<(String, Vec<u8>)> = CNI_PLUGINS
            .iter()
            .map(|p| (format!("./{p}"), content(p, 2048)))
            .collect();
        cni.push(("./LICENSE".into(), b"Apache-2.0".to_vec()));
        let cni: Vec<(&str, Vec<u8>)> = cni.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        tree.add(&cni_path(), tarball(&cni));
        tree.add_containerd(containerd_tarball());
        let runc = content("runc", 5000);
        // runc publishes one checksum listing for every architecture (`sha256sum runc.*`).
        let listing = format!(
            "{}  runc.arm64\n{}  runc.{ARCH}\n{}  runc.tar.xz\n",
            sha256_hex(b"another architecture"),
            sha256_hex(&runc),
            sha256_hex(b"source")
        );
        tree.put(&runc_path(), runc);
        tree.put(&runc_checksums_path(), listing.into_bytes());
        tree
    }

    /// Serves `body` as containerd's tarball, with its `.sha256sum` beside it as upstream writes it.
    pub fn add_containerd(&mut self, body: Vec<u8>) {
        let path = containerd_path();
        let file_name = path.rsplit('/').next().unwrap();
        let checksum = format!("{}  {file_name}\n", sha256_hex(&body));
        self.put(&format!("{path}.sha256sum"), checksum.into_bytes());
        self.put(&path, body);
    }

    /// Serves `body` at `path`, with no checksum file.
    pub fn put(&mut self, path: &str, body: Vec<u8>) {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.to_string(), body));
    }

    /// Adds `body` at `path` and its checksum file in the upstream format (`<hex>  <name>`).
    pub fn add(&mut self, path: &str, body: Vec<u8>) {
        let file_name = path.rsplit('/').next().unwrap();
        let checksum = format!("{}  {file_name}\n", sha256_hex(&body));
        self.put(path, body);
        self.set_checksum(path, checksum.as_bytes());
    }

    pub fn set_checksum(&mut self, path: &str, checksum: &[u8]) {
        let checksum_path = format!("{path}.sha256");
        self.files.retain(|(p, _)| *p != checksum_path);
        self.files.push((checksum_path, checksum.to_vec()));
    }

    pub fn body(&self, path: &str) -> &[u8] {
        &self.files.iter().find(|(p, _)| p == path).unwrap().1
    }

    pub fn serve(&self, server: &server::ReleaseServer) {
        for (path, body) in &self.files {
            server.put(path, body.clone());
        }
    }

    pub fn write_to(&self, dir: &Path) {
        for (path, body) in &self.files {
            let target = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, body).unwrap();
        }
    }
}
