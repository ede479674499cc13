#!/usr/bin/env bash
# The expensive, cached layer of the test VM image: a Debian 13 (trixie) root filesystem built with mmdebstrap
# from the Debian archive only. Usage: base-rootfs.sh OUTDIR
# Produces OUTDIR/rootfs (a directory tree), OUTDIR/vmlinuz and OUTDIR/initrd.img (for direct kernel boot).
# Everything this recipe reads (this file, packages.txt, rootfs/) is part of the cache key in build-image.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
mirror="${KUBEBOOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${KUBEBOOT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

packages="$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt" | paste -sd, -)"

mkdir -p "$out"
# Docs, man pages and translations are dead weight in a test VM; excluding them at unpack time keeps the image
# small and mkfs fast.
mmdebstrap --mode=root --variant=minbase --include="$packages" \
  --aptopt='Acquire::Retries "3"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --setup-hook="sync-in '$here/rootfs' /" \
  `# Login-less: the serial console only carries output (kernel, systemd, test markers); no getty anywhere.` \
  --customize-hook='ln -sf /dev/null "$1/etc/systemd/system/serial-getty@ttyS0.service"' \
  --customize-hook='ln -sf /dev/null "$1/etc/systemd/system/getty.target"' \
  --customize-hook='systemctl --root="$1" disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer 2>/dev/null || true' \
  `# No sshd on AF_VSOCK (systemd 256+): its generator loads the vsock/VMCI modules on every boot for nothing.` \
  --customize-hook='mkdir -p "$1/etc/systemd/system-generators" && ln -sf /dev/null "$1/etc/systemd/system-generators/systemd-ssh-generator"' \
  `# Mark /etc and /var up to date with /usr, so the first boot skips ldconfig and the journal catalog rebuild` \
  `# (ConditionNeedsUpdate), seconds under TCG.` \
  --customize-hook='chroot "$1" /usr/lib/systemd/systemd-update-done' \
  --customize-hook='rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id" && : > "$1/etc/machine-id"' \
  trixie "$out/rootfs" \
  "deb $mirror trixie main" \
  "deb $mirror trixie-updates main" \
  "deb $security_mirror trixie-security main"

cp "$(ls "$out"/rootfs/boot/vmlinuz-* | sort -V | tail -n1)" "$out/vmlinuz"
cp "$(ls "$out"/rootfs/boot/initrd.img-* | sort -V | tail -n1)" "$out/initrd.img"
