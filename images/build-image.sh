#!/usr/bin/env bash
# Builds the bootable Debian 13 (trixie) test VM image with the kubeboot agent installed the way the Packer path installs
# it (its .deb through dpkg, which enables the unit from the maintainer script).
#
# Usage: build-image.sh --deb PATH.deb --out DIR [--bake 'ARGS']
#        build-image.sh --without-agent --out DIR      (the input of packer/qemu.json, which installs the agent)
#   --bake ARGS  also run `kubeboot-agent bake ARGS` inside the image root (as Packer's provisioner does);
#                the VM tests leave it out, because their host serves the Kubernetes binaries at first boot.
#
# Outputs in DIR (see docs/images.md): vmlinuz, initrd.img and root.img (raw ext4 for /dev/vda), bootable with
# target/debug/kubeboot-vm --image DIR (tests/vm/src/bin/kubeboot-vm.rs), which never writes the image.
#
# Cache: the Debian root filesystem is the expensive part (~1 min, network); it is kept under
# ${KUBEBOOT_CACHE:-/var/cache/kubeboot}/images/<sha256 of its recipe> and reused until the recipe changes.
# Only the cheap agent layer and mkfs run on every build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

deb="" out="" bake="" with_agent=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --bake) bake="$2"; shift 2 ;;
    --without-agent) with_agent=no; shift ;;
    *) echo "build-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ "$with_agent" = yes ] && [ ! -f "$deb" ]; then
  echo "build-image.sh: --deb must name the agent .deb (got '${deb}'), or pass --without-agent" >&2
  exit 2
fi
[ -n "$out" ] || { echo "build-image.sh: --out DIR is required" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "build-image.sh: must run as root (mmdebstrap root mode, chroot, file ownership)" >&2; exit 2; }

# The recipe: every input of base-rootfs.sh, by content, plus the mmdebstrap version that interprets it.
recipe_key() {
  cd "$here"
  {
    mmdebstrap --version
    sha256sum base-rootfs.sh packages.txt
    find rootfs -type f -print0 | sort -z | xargs -0 sha256sum
    find rootfs -print0 | sort -z | xargs -0 stat -c '%n %a'
  } | sha256sum | cut -d' ' -f1
}

cache_root="${KUBEBOOT_CACHE:-/var/cache/kubeboot}/images"
key="$(recipe_key)"
base="$cache_root/$key"
mkdir -p "$cache_root"
started=$(date +%s)
# One builder at a time per cache; a second one waits and then finds the base ready.
exec 9>"$cache_root/.lock"
flock 9
if [ ! -f "$base/complete" ]; then
  echo "build-image.sh: building the base root filesystem $key (cold cache)" >&2
  # Under the lock nothing else builds: any *.tmp is left over from an interrupted build.
  rm -rf "$base" "$cache_root"/*.tmp
  "$here/base-rootfs.sh" "$base.tmp" >&2
  touch "$base.tmp/complete"
  mv "$base.tmp" "$base"
  # Other recipes' bases (~0.5 GiB each) go once unused for two days; branches in flight keep theirs.
  find "$cache_root" -mindepth 2 -maxdepth 2 -name complete -mtime +2 -printf '%h\0' | xargs -0r rm -rf
else
  echo "build-image.sh: reusing cached base root filesystem $key" >&2
  touch "$base/complete"
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "$out/.layer.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp -a --reflink=auto "$base/rootfs" "$work/rootfs"
flock -u 9

# The agent layer, exactly as on a Packer build VM: dpkg installs the package and runs its maintainer scripts
# (which enable kubeboot-agent.service); then the optional bake.
if [ "$with_agent" = yes ]; then
  cp "$deb" "$work/rootfs/tmp/kubeboot-agent.deb"
  chroot "$work/rootfs" dpkg -i /tmp/kubeboot-agent.deb >&2
  rm "$work/rootfs/tmp/kubeboot-agent.deb"
  if [ -n "$bake" ]; then
    # shellcheck disable=SC2086 # ARGS is a word list on purpose
    chroot "$work/rootfs" /usr/bin/kubeboot-agent bake $bake >&2
  fi
fi

# Room for what the node downloads at first boot (Kubernetes binaries, images): the agent's preflight wants
# 2 GiB free under /var/lib. The file is sparse, so the headroom costs no disk.
size_mib=$(( $(du -sm "$work/rootfs" | cut -f1) + 3072 ))
rm -f "$out/root.img"
mkfs.ext4 -q -F -L kubeboot-root -d "$work/rootfs" "$out/root.img" "${size_mib}M"
cp "$base/vmlinuz" "$out/vmlinuz"
cp "$base/initrd.img" "$out/initrd.img"
echo "build-image.sh: image in $out ($(du -sh --apparent-size "$out/root.img" | cut -f1) apparent, $(du -sh "$out/root.img" | cut -f1) on disk) after $(( $(date +%s) - started )) s" >&2
