#!/usr/bin/env bash
# Runs packer/qemu.json for real on the local test image: the same provisioning as the Azure template (install the
# agent's .deb, `kubeboot-agent bake`), under QEMU instead of on an Azure VM.
#
# Usage: packer/build-qemu.sh --deb PATH.deb --kubernetes-version vX.Y.Z --mirror DIR --out DIR
#   --mirror DIR  what bake downloads, served to the build VM by Packer's HTTP server: the release tree with the
#                 upstream layout (DIR/release/<version>/bin/linux/amd64/kubelet{,.sha256}, kubeadm, kubectl),
#                 DIR/crictl/crictl-<v>-linux-amd64.tar.gz{,.sha256} and
#                 DIR/cni-plugins/cni-plugins-linux-amd64-<v>.tgz{,.sha256} (bake's default versions).
# Output in --out: root.img (the baked image), vmlinuz and initrd.img, bootable with
# target/debug/kubeboot-vm --image DIR (tests/vm/src/bin/kubeboot-vm.rs).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

deb="" version="" mirror="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb="$2"; shift 2 ;;
    --kubernetes-version) version="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "build-qemu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for required in deb version mirror out; do
  [ -n "${!required}" ] || { echo "build-qemu.sh: --${required/version/kubernetes-version} is required" >&2; exit 2; }
done

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "$out/.packer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The input: the test image without the agent (Packer installs it).
"$repo/images/build-image.sh" --without-agent --out "$work/base"

# A build-only SSH key, authorised for root through the NoCloud seed that Packer's HTTP server serves
# (nocloud-net), next to the release mirror.
ssh-keygen -q -t ed25519 -N '' -C packer-build -f "$work/ssh_key"
mkdir -p "$work/http"
cp -a "$mirror/." "$work/http/"
cat > "$work/http/meta-data" <<META
instance-id: packer-build
local-hostname: packer-build
META
cat > "$work/http/user-data" <<USER
#cloud-config
disable_root: false
ssh_authorized_keys:
  - $(cat "$work/ssh_key.pub")
USER

# Packer would otherwise leave a packer_cache directory in the caller's working directory.
export PACKER_CACHE_DIR="$work/packer_cache"
# PACKER_HTTP_ADDR is set by Packer for shell provisioners: the build VM's way back to the HTTP server.
# shellcheck disable=SC2016 # expanded by the provisioner's shell inside the VM
packer build -color=false \
  -var "image_dir=$work/base" \
  -var "seed_dir=$work/http" \
  -var "ssh_private_key_file=$work/ssh_key" \
  -var "agent_deb=$deb" \
  -var "kubernetes_version=$version" \
  -var 'release_base_url=http://$PACKER_HTTP_ADDR' \
  -var 'crictl_dir_url=http://$PACKER_HTTP_ADDR/crictl' \
  -var 'cni_plugins_dir_url=http://$PACKER_HTTP_ADDR/cni-plugins' \
  -var "output_directory=$work/output" \
  -var "serial_log=$out/packer-build-serial.log" \
  "$repo/packer/qemu.json" >&2

mv "$work/output/root.img" "$out/root.img"
cp "$work/base/vmlinuz" "$work/base/initrd.img" "$out/"
