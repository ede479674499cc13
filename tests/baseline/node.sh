# A conventional shell user-data script doing what kubeboot-agent does, the way node bootstrap
# scripts usually do it: the same steps in order, no markers, no resume, no status. It is the
# baseline the VM end-to-end test boots on the same image to compare boot-to-done with
# (tests/vm/tests/e2e.rs). Whoever renders it prepends `#!/bin/bash`, `set -euo pipefail` and
# the values below, and writes the shared PKI of a master before it:
#   ROLE (master|worker) NODE_NAME ADVERTISE_ADDRESS ENDPOINT (host:port) MIRROR (base URL)
#   KUBERNETES_VERSION PAUSE_IMAGE CLUSTER_NAME POD_CIDR SERVICE_CIDR NODE_LABELS (k=v,...)
#   TAINTS (kubeadm YAML list, possibly []) TOKEN CA_CERT_HASH
# Secrets only ever go into files written by heredocs (never on a command line).

log() { echo "baseline: $*"; }
umask 077

log "kernel modules and sysctls"
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/k8s.conf
modprobe overlay
modprobe br_netfilter
cat > /etc/sysctl.d/90-k8s.conf <<'SYSCTL'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
vm.overcommit_memory = 1
vm.panic_on_oom = 0
kernel.panic = 10
kernel.panic_on_oops = 1
SYSCTL
chmod 0644 /etc/modules-load.d/k8s.conf /etc/sysctl.d/90-k8s.conf
sysctl --system > /dev/null

log "swap off"
swapoff -a
sed -i '/\sswap\s/s/^/#/' /etc/fstab

log "containerd"
mkdir -p /etc/containerd
cat > /etc/containerd/config.toml <<TOML
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
TOML
chmod 0644 /etc/containerd/config.toml
systemctl restart containerd

log "kubeadm, kubelet, kubectl from $MIRROR"
download=$(mktemp -d)
base="$MIRROR/release/$KUBERNETES_VERSION/bin/linux/amd64"
for tool in kubeadm kubelet kubectl; do
  curl -fsSL --retry 5 -o "$download/$tool" "$base/$tool"
  echo "$(curl -fsSL --retry 5 "$base/$tool.sha256")  $download/$tool" | sha256sum --check --quiet
done
install -m 0755 "$download/kubeadm" "$download/kubelet" "$download/kubectl" /usr/local/bin/
rm -rf "$download"

log "kubelet unit"
cat > /etc/systemd/system/kubelet.service <<'UNIT'
[Unit]
Description=kubelet
Wants=network-online.target containerd.service
After=network-online.target containerd.service
StartLimitIntervalSec=0
[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
RestartSec=10
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p /etc/systemd/system/kubelet.service.d
cat > /etc/systemd/system/kubelet.service.d/10-kubeadm.conf <<'UNIT'
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
UNIT
systemctl daemon-reload
systemctl enable kubelet

log "kubeadm configuration"
mkdir -p /etc/kubeadm
registration="nodeRegistration:
  name: $NODE_NAME
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-labels
    value: $NODE_LABELS
  taints: $TAINTS"
if [ "$ROLE" = master ]; then
  cat > /etc/kubeadm/config.yaml <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: $TOKEN
  ttl: 24h
localAPIEndpoint:
  advertiseAddress: $ADVERTISE_ADDRESS
  bindPort: 6443
$registration
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: $CLUSTER_NAME
kubernetesVersion: $KUBERNETES_VERSION
controlPlaneEndpoint: $ENDPOINT
# The keys kubeboot's kubeadm.yaml asks for too (the stand-in kubeadm makes no others).
encryptionAlgorithm: ECDSA-P256
networking:
  podSubnet: $POD_CIDR
  serviceSubnet: $SERVICE_CIDR
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
YAML
  log "kubeadm init"
  kubeadm init --config /etc/kubeadm/config.yaml --skip-token-print
else
  cat > /etc/kubeadm/config.yaml <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: $ENDPOINT
    token: $TOKEN
    caCertHashes:
    - $CA_CERT_HASH
$registration
YAML
  log "waiting for $ENDPOINT"
  until curl -ks -o /dev/null --connect-timeout 5 "https://$ENDPOINT/healthz"; do sleep 5; done
  log "kubeadm join"
  kubeadm join --config /etc/kubeadm/config.yaml
fi
log "node is done" # DONE_LINE in tests/vm/src/baseline.rs
