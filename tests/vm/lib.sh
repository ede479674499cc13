# Shared helpers for booting the kubeboot test image under QEMU. Source it:  . tests/vm/lib.sh
# Used by the image boot test and the end-to-end VM test; documented in the README ("Units, test image, ...").
#
#   kb_make_seed OUT.iso USER_DATA META_DATA [NETWORK_CONFIG]
#       NoCloud seed (ISO 9660 volume "cidata") from files, exactly as given.
#   kb_run_vm [options] [-- extra qemu args...]
#       Boots the image in the foreground until the guest powers off (exit 0) or the timeout hits (exit 124).
#       --image-env FILE   image.env from images/build-image.sh (required)
#       --seed ISO         NoCloud seed (required)
#       --serial FILE      where the guest's serial console (ttyS0: kernel, journal, test markers) is written
#       --timeout SECONDS  wall-clock limit (default 300)
#       --mem MIB          guest memory (default 2048)      --smp N   vCPUs (default 2)
#       --user-net OPTS    extra options for the first NIC's user-mode netdev (id=n0), e.g.
#                          'net=169.254.169.0/24,guestfwd=tcp:169.254.169.254:80-cmd:socat STDIO TCP:127.0.0.1:8080'
#       --mac MAC          MAC of the first NIC (default 52:54:00:12:34:56)
#       --no-reboot        make a guest reboot exit QEMU instead
#     The root disk is attached with snapshot=on: the image stays pristine, every boot starts from it.
#     Inside the guest, eth0 is the user-mode NIC (host loopback services are at 10.0.2.2) and further NICs
#     passed after -- are eth1, eth2... (net.ifnames=0).
#
# no_timer_check: on a loaded host the kernel's IO-APIC timer check can fail under TCG and panic the boot.
# Acceleration: TCG by default (/dev/kvm here is nested PVM, where a stock Debian kernel hangs under KVM);
# KUBEBOOT_VM_ACCEL=kvm opts in on machines where KVM works.

kb_make_seed() {
  local out="$1" user_data="$2" meta_data="$3" network_config="${4:-}"
  local dir
  dir="$(mktemp -d)"
  cp "$user_data" "$dir/user-data"
  cp "$meta_data" "$dir/meta-data"
  if [ -n "$network_config" ]; then cp "$network_config" "$dir/network-config"; fi
  genisoimage -quiet -output "$out" -volid cidata -joliet -rock "$dir" || { rm -rf "$dir"; return 1; }
  rm -rf "$dir"
}

kb_accel() {
  case "${KUBEBOOT_VM_ACCEL:-tcg}" in
    kvm) echo kvm ;;
    *) echo tcg,thread=multi ;;
  esac
}

kb_run_vm() {
  local image_env="" seed="" serial="" timeout_s=300 mem=2048 smp=2 user_net="" mac=52:54:00:12:34:56
  local reboot_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --image-env) image_env="$2"; shift 2 ;;
      --seed) seed="$2"; shift 2 ;;
      --serial) serial="$2"; shift 2 ;;
      --timeout) timeout_s="$2"; shift 2 ;;
      --mem) mem="$2"; shift 2 ;;
      --smp) smp="$2"; shift 2 ;;
      --user-net) user_net=",$2"; shift 2 ;;
      --mac) mac="$2"; shift 2 ;;
      --no-reboot) reboot_args=(-no-reboot); shift ;;
      --) shift; break ;;
      *) echo "kb_run_vm: unknown option $1" >&2; return 2 ;;
    esac
  done
  if [ ! -f "$image_env" ] || [ ! -f "$seed" ] || [ -z "$serial" ]; then
    echo "kb_run_vm: --image-env, --seed and --serial are required" >&2
    return 2
  fi
  local KB_KERNEL KB_INITRD KB_ROOT_IMG
  # shellcheck disable=SC1090
  . "$image_env"
  timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
    -accel "$(kb_accel)" -m "$mem" -smp "$smp" \
    -nodefaults -no-user-config -display none -monitor none \
    -serial "file:$serial" \
    -kernel "$KB_KERNEL" -initrd "$KB_INITRD" \
    -append 'root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 no_timer_check' \
    -drive "file=$KB_ROOT_IMG,format=raw,if=virtio,snapshot=on" \
    -drive "file=$seed,format=raw,if=virtio,readonly=on" \
    -netdev "user,id=n0$user_net" -device "virtio-net-pci,netdev=n0,mac=$mac" \
    "${reboot_args[@]}" "$@"
}
