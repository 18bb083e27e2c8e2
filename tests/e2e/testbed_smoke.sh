#!/usr/bin/env bash
# e2e: the test bed boots real QEMU guests under libvirtd, and the host steers their load while they run.
# Two VMs: cpu=50 on the first must show as 35-70 % of one host core (libvirt cpu.time over a 5 s window),
# steady O_DIRECT disk reads on the second must show as growing block rd.bytes, both within 10 s of
# setting the targets. Then `down` must leave no domain, tap, qemu process or state behind.
# Exit 77 (skip) when libvirtd/QEMU cannot run here, unless CI=true (then exit 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tb="$root/scripts/testbed"
t_start=$SECONDS

cannot_run() {
  if [ "${CI:-false}" = true ]; then echo "testbed_smoke: FAIL (CI=true): $*" >&2; exit 1; fi
  echo "testbed_smoke: SKIP: $*" >&2
  exit 77
}
fail() { echo "testbed_smoke: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || cannot_run "needs root to drive libvirtd and create taps"
for c in virsh libvirtd qemu-system-x86_64 busybox gcc; do
  command -v "$c" >/dev/null || cannot_run "$c is not installed (run scripts/setup-deps)"
done
"$tb" prepare || cannot_run "scripts/testbed prepare failed: libvirtd or the guest image is unavailable"

prefix="smoke$$x$(date +%s | tail -c 6)"
vm1="$prefix-vm1" vm2="$prefix-vm2"
cleanup() { "$tb" down --prefix "$prefix" >/dev/null 2>&1 || true; }
trap cleanup EXIT

virsh_q() { virsh -q -c qemu:///system "$@"; }
stat_of() { # stat_of VM KEY -> value from virsh domstats
  virsh_q domstats --cpu-total --block "$1" | awk -F= -v k="$2" '{ sub(/^ +/, "", $1) } $1 == k { print $2 }'
}

t_up=$SECONDS
"$tb" up 2 --prefix "$prefix" --owners tenant-a,tenant-b || fail "scripts/testbed up 2 failed"
boot_s=$((SECONDS - t_up))
taps=$("$tb" ls --prefix "$prefix" | awk 'NR > 1 { print $3 }')
[ "$(echo "$taps" | wc -w)" -eq 2 ] || fail "expected 2 taps in 'testbed ls', got: $taps"
for t in $taps; do ip link show "$t" >/dev/null || fail "tap $t of the test bed does not exist"; done
for vm in "$vm1" "$vm2"; do
  virsh_q metadata "$vm" https://morph.dev/xmlns/vm/1 | grep -q "<morph:owner>tenant-\|<owner>tenant-" ||
    fail "$vm has no morph owner metadata"
done

"$tb" load "$vm1" cpu=50
"$tb" load "$vm2" disk_read=4M

# Sample once a second for 10 s; pass when some 5 s window shows both effects.
cpu_t=() rd_b=()
ok=0 best_cpu=""
for i in $(seq 0 10); do
  cpu_t[i]=$(stat_of "$vm1" cpu.time)
  rd_b[i]=$(stat_of "$vm2" block.0.rd.bytes)
  if [ "$i" -ge 5 ]; then
    j=$((i - 5)) m=$((i - 2))
    cpu_pct=$(( (cpu_t[i] - cpu_t[j]) / 50000000 ))   # ns over 5 s, in percent of one core
    best_cpu="$best_cpu $cpu_pct"
    if [ "$cpu_pct" -ge 35 ] && [ "$cpu_pct" -le 70 ] &&
       [ "${rd_b[m]}" -gt "${rd_b[j]}" ] && [ "${rd_b[i]}" -gt "${rd_b[m]}" ]; then
      ok=1
      echo "testbed_smoke: window $j..$i s: $vm1 cpu ${cpu_pct}% of a core;" \
           "$vm2 rd.bytes +$(( (rd_b[i] - rd_b[j]) / 5 )) B/s"
      break
    fi
  fi
  [ "$i" -lt 10 ] && sleep 1
done
if [ $ok -ne 1 ]; then
  "$tb" status --prefix "$prefix" --interval 1 >&2 || true
  fail "within 10 s: $vm1 cpu% per 5 s window was [$best_cpu ] (want 35..70);" \
       "$vm2 rd.bytes samples: ${rd_b[*]} (want growing); host load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

"$tb" down --prefix "$prefix"
left=$(virsh_q list --all --name | grep -F "$prefix-" || true)
[ -z "$left" ] || fail "domains left after down: $left"
for t in $taps; do ! ip link show "$t" >/dev/null 2>&1 || fail "tap $t left after down"; done
! pgrep -f "guest=$prefix-" >/dev/null || fail "qemu process left after down: $(pgrep -af "guest=$prefix-")"
! pgrep -f "/var/lib/morph-testbed/$prefix/" >/dev/null || fail "host-side process left after down"
[ ! -e "/var/lib/morph-testbed/$prefix" ] || fail "state dir /var/lib/morph-testbed/$prefix left after down"
trap - EXIT
echo "testbed_smoke: PASS in $((SECONDS - t_start)) s (boot of 2 VMs: ${boot_s} s)"
