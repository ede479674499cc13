#!/usr/bin/env bash
# Builds kubeboot-agent_<version>_amd64.deb from a compiled agent binary with dpkg-deb (Debian's own packaging
# tool): the binary in /usr/bin, the units from units/ in /lib/systemd/system, /etc/kubeboot (0700) and the
# maintainer scripts in packaging/deb/ that enable the agent unit on install and clean up on purge.
#
# Usage: build-deb.sh --binary PATH --out DIR [--version VERSION]
# VERSION defaults to the workspace version in Cargo.toml. Prints the path of the .deb on stdout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

binary="" out="" version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "build-deb.sh: --binary must name the compiled kubeboot-agent (got '${binary}')" >&2; exit 2; }
[ -n "$out" ] || { echo "build-deb.sh: --out DIR is required" >&2; exit 2; }
if [ -z "$version" ]; then
  version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")"
fi
[ -n "$version" ] || { echo "build-deb.sh: no version given and none found in Cargo.toml" >&2; exit 2; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"

install -D -m 0755 "$binary" "$pkg/usr/bin/kubeboot-agent"
# As dh_strip does for executables: no debug info, no symbols the loader does not need.
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$pkg/usr/bin/kubeboot-agent"
install -D -m 0644 "$repo/units/kubeboot-agent.service" "$pkg/lib/systemd/system/kubeboot-agent.service"
# Enabled by the agent's join-token phase on masters with a Key Vault, not by the package.
for unit in kubeboot-join-token.service kubeboot-join-token.timer; do
  install -D -m 0644 "$repo/units/$unit" "$pkg/lib/systemd/system/$unit"
done
# 0600: CIS 4.1.1 wants every kubelet service file readable by root only (the audit checks /lib too).
install -D -m 0600 "$repo/units/kubelet.service" "$pkg/lib/systemd/system/kubelet.service"
install -D -m 0600 "$repo/units/kubelet.service.d/10-kubeadm.conf" \
  "$pkg/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
# node.yaml (secrets) lands here from cloud-init: the directory is root-only from the start.
install -d -m 0700 "$pkg/etc/kubeboot"

install -d -m 0755 "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$repo/packaging/deb/$script" "$pkg/DEBIAN/$script"
done
depends="$(cd "$stage" && mkdir -p debian && : > debian/control \
  && dpkg-shlibdeps -O -e "$pkg/usr/bin/kubeboot-agent" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
installed_kib="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@DEPENDS@/$depends/" -e "s/@INSTALLED_SIZE@/$installed_kib/" \
  "$repo/packaging/deb/control" > "$pkg/DEBIAN/control"
(cd "$pkg" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)

mkdir -p "$out"
deb="$(cd "$out" && pwd)/kubeboot-agent_${version}_amd64.deb"
# gzip: every dpkg reads it, and it compresses a debug-profile binary in a fraction of xz's time.
dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$deb" >&2
echo "$deb"
