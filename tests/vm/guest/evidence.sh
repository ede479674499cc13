#!/bin/sh
# VM e2e test instrumentation (test only; installed from the seed's vendor data, never from user
# data, never part of the product). On every boot it samples the process list while the node is
# being set up, then, once the setup has settled, sends everything the test asserts on to the
# host over the second serial port (ttyS1) as gzip+base64 sections, and exits.
. /etc/kubeboot-e2e/settings
out=/dev/ttyS1
run=/run/kubeboot-e2e
state=/var/lib/kubeboot-e2e
mkdir "$run" 2>/dev/null || exit 0 # once per boot, however often it is started
mkdir -p "$state"
stty -F "$out" raw -echo 2>/dev/null
boots=$(( $(cat "$state/boots" 2>/dev/null || echo 0) + 1 ))
echo "$boots" > "$state/boots"
uptime_s() { cut -d' ' -f1 /proc/uptime; }
say() { echo "KBE2E $*" > "$out"; }
section() {
  name=$1; shift
  { echo "KBE2E-BEGIN $name"; "$@" 2>&1 | gzip -c | base64 -w 76; echo "KBE2E-END $name"; } > "$out"
}
boot_epoch=$(( $(date +%s) - $(uptime_s | cut -d. -f1) - 1 ))
say boot "$boots" "$(cat /proc/sys/kernel/random/boot_id)" "$(uptime_s)"

# Processes (arguments and environment), the agent's CPU time and the kill fault: a small
# program sampling /proc without forking (src/bin/kubeboot-e2e-sampler.rs).
kill_marker=-
[ "$KILL_AGENT_DURING_KUBEADM_INIT" = 1 ] && kill_marker="$state/agent-killed"
/usr/local/lib/kubeboot-e2e/kubeboot-e2e-sampler "$run" "$run/settled" "$kill_marker" &
sampler=$!

settled() {
  if [ "$MODE" = baseline ]; then
    case $(systemctl show -p ActiveState --value cloud-final.service) in active|failed) return 0 ;; esac
    return 1
  fi
  eval "$(systemctl show -p ActiveState -p SubState -p Result -p ConditionTimestampMonotonic "$AGENT_UNIT")"
  case $ActiveState in
    active|failed) ;;
    inactive) [ "$ConditionTimestampMonotonic" != 0 ] || return 1 ;;
    # Restart=on-failure: the agent exited non-zero (a phase failed and says why in status) and
    # systemd waits to run it again. That attempt is over, as "failed" was before the unit
    # restarted; a kill (Result=signal, the faults run) is not: the restart must be seen.
    activating) [ "$SubState" = auto-restart ] && [ "$Result" = exit-code ] || return 1 ;;
    *) return 1 ;;
  esac
  case $(systemctl show -p ActiveState --value cloud-final.service) in active|failed) return 0 ;; esac
  return 1
}
waited=0
until settled; do
  sleep 1
  waited=$((waited + 1))
  if [ "$waited" -ge "$DEADLINE_SECONDS" ]; then say deadline-passed "$(uptime_s)"; break; fi
done
touch "$run/settled"
wait "$sampler"
say settled "$(uptime_s)"

changed_files() {
  find / /run /tmp -xdev \( -path /var/log/journal -o -path "$run" \) -prune -o \
    -type f -newermt "@$boot_epoch" "$@" -print0
}
echo "$(cat "$run/agent-cpu.txt") $(getconf CLK_TCK) $(cat "$run/fetch-tools-cpu.txt") $(cat "$run/agent-rss-kb.txt")" > "$run/agent-cpu-hz.txt"
changed_files -size +1024k | xargs -0r ls -l > "$run/large-files.txt"
changed_files -size -1025k | tar --null -T - -cf "$run/changed-files.tar" 2>/dev/null
section unit systemctl show "$AGENT_UNIT"
section failed-units systemctl list-units --state=failed --plain --no-legend --no-pager
if [ "$MODE" != baseline ]; then section status kubeboot-agent status --output json; fi
section journal journalctl -b -o short-monotonic --no-pager
section cloud-init-log cat /var/log/cloud-init.log
section cloud-init-output cat /var/log/cloud-init-output.log
section processes cat "$run/processes.txt"
section agent-cpu cat "$run/agent-cpu-hz.txt"
section agent-threads cat "$run/agent-threads.txt"
section softirq cat "$run/softirq.txt"
section large-files cat "$run/large-files.txt"
section changed-files cat "$run/changed-files.tar"
if [ -n "$EXTRA_FILES" ]; then
  tar -cf "$run/extra-files.tar" $EXTRA_FILES 2>/dev/null
  section extra-files cat "$run/extra-files.tar"
fi
say dumped "$boots" "$(uptime_s)"

# The upgrade run, once per instance: the node is done; upgrade it as an operator would, again
# while it waits for another node (a worker for the master's control plane, and for the drain the
# master does for it), then send the upgrade's evidence.
if [ -n "$UPGRADE_TO" ] && [ "$MODE" != baseline ] && [ ! -e "$state/upgraded" ]; then
  say upgrade-started "$(uptime_s)"
  retry() {
    waited=0
    until "$@" >> "$run/upgrade.log" 2>&1; do
      # The last line says why (the host sees it while the node retries).
      say upgrade-retry "$(tail -n 1 "$run/upgrade.log" | tr -s ' \t' '__' | cut -c1-300)"
      sleep 5
      waited=$((waited + 5))
      if [ "$waited" -ge "$DEADLINE_SECONDS" ]; then say upgrade-deadline-passed "$(uptime_s)"; return 1; fi
    done
  }
  # Its log to the file, not to the journal (the host sees the file's last line while it retries).
  retry env -u JOURNAL_STREAM kubeboot-agent upgrade --to "$UPGRADE_TO" && touch "$state/upgraded"
  say upgrade-finished "$(uptime_s)"
  if [ -n "$DRAIN_AFTER_UPGRADE" ]; then
    retry kubectl --kubeconfig /etc/kubernetes/admin.conf drain "$DRAIN_AFTER_UPGRADE" --ignore-daemonsets --delete-emptydir-data
  fi
  section upgrade-status kubeboot-agent status --output json
  section upgrade-log cat "$run/upgrade.log"
  # The running kubelet's executable: "(deleted)" if it is still the file the upgrade replaced.
  section upgrade-versions sh -c 'kubelet --version; kubeadm version -o short; systemctl show -p ActiveState kubelet; readlink "/proc/$(systemctl show -p MainPID --value kubelet)/exe"; echo; kubectl --kubeconfig /etc/kubernetes/kubelet.conf get node "$(hostname)" -o "jsonpath=unschedulable={.spec.unschedulable}"'
  if [ -f /etc/kubernetes/admin.conf ]; then
    section upgrade-server-version kubectl --kubeconfig /etc/kubernetes/admin.conf version -o json
  fi
  section upgrade-failed-units systemctl list-units --state=failed --plain --no-legend --no-pager
  say upgrade-dumped "$(uptime_s)"
fi
