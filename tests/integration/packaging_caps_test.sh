#!/usr/bin/env bash
# The agent works with exactly the capabilities its systemd unit grants, and each of them is needed.
#
# Reads the set from packaging/systemd/morph-agent.service (CapabilityBoundingSet= must equal
# AmbientCapabilities=), then runs `morph-agent kpis` (BPF tracing programs, cgroup maps, tc on a tap) on a
# cgroup with a busy process and a veth device standing in for a VM's tap (a tap without a QEMU behind it
# has no carrier and passes no packets), with frames sent through it, and no other privilege:
#   1. as uid 0 with securebits noroot (uid 0 gets no capability for being root) and the unit's set as
#      bounding, inheritable and ambient set: what systemd does with the unit;
#   2. as an unprivileged uid with the same set as ambient capabilities;
# and asserts both print KPIs for the test VM with its CPU time and traffic counted. Then, for each capability of the set, the
# run without it must fail with exit status 1 and an error line naming the refusal, never a crash.
#
# Needs root (to create the cgroup and tap and to hand out capabilities), setpriv (util-linux), iproute2,
# cgroup v2 at /sys/fs/cgroup/unified (where the agent looks) and a built morph-agent.
set -euo pipefail

SRC=${MORPH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${MORPH_BINARY_DIR:-$SRC/build}
AGENT=$BIN/hostagent/morph-agent
UNIT=$SRC/packaging/systemd/morph-agent.service
CG_ROOT=/sys/fs/cgroup/unified
NOBODY_UID=65534

skip() {
  if [ "${CI:-}" = "true" ]; then echo "FAIL (CI=true, prerequisite missing): $*" >&2; exit 1; fi
  echo "SKIP: $*" >&2; exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root to create a cgroup and a tap and to grant capabilities"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
[ -x "$AGENT" ] || skip "$AGENT not built"
[ -f "$UNIT" ] || fail "$UNIT missing"
mountpoint -q "$CG_ROOT" || skip "no cgroup v2 mount at $CG_ROOT"
mountpoint -q /sys/fs/bpf || skip "bpffs not mounted at /sys/fs/bpf"

# The unit's set, e.g. "CAP_BPF CAP_PERFMON CAP_NET_ADMIN".
unit_set() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }
BOUNDING=$(unit_set CapabilityBoundingSet)
AMBIENT=$(unit_set AmbientCapabilities)
[ -n "$BOUNDING" ] || fail "no CapabilityBoundingSet= in $UNIT"
[ "$BOUNDING" = "$AMBIENT" ] || fail "$UNIT: CapabilityBoundingSet='$BOUNDING' but AmbientCapabilities='$AMBIENT'"
# Case 1 below emulates these two lines; without them uid 0 would hold every capability of the bounding set.
grep -qx 'SecureBits=noroot noroot-locked' "$UNIT" || fail "$UNIT: SecureBits=noroot noroot-locked missing"
grep -qx 'NoNewPrivileges=yes' "$UNIT" || fail "$UNIT: NoNewPrivileges=yes missing"
read -r -a CAPS <<<"$BOUNDING"
echo "unit's capability set: ${CAPS[*]}"

# CAP_BPF CAP_NET_ADMIN -> ",+bpf,+net_admin" (setpriv's spelling).
setpriv_list() { local out="" c; for c in "$@"; do c=${c#CAP_}; out+=",+${c,,}"; done; echo "$out"; }

NAME=pkgcaps$$
CG=$CG_ROOT/morph-$NAME
TAP=mcap$$
PEER=mcapp$$
LOAD_PID=""
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$LOAD_PID" ] && wait "$LOAD_PID" 2>/dev/null || true
  ip link del "$TAP" 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || true
  rm -rf "$WORK"
}
WORK=$(mktemp -d)
trap cleanup EXIT
mkdir "$CG"
ip link add "$TAP" type veth peer name "$PEER"
ip link set "$PEER" up
ip link set "$TAP" up
# A busy process inside the test cgroup, so cpu_run_ns has something to count.
sh -c "echo \$\$ > $CG/cgroup.procs && exec sh -c 'while :; do :; done'" &
LOAD_PID=$!
sleep 0.2

# run LABEL SETPRIV_ARGS... : runs the agent's kpis command; leaves stdout/stderr in $WORK/LABEL.{out,err}
# and the exit status in $RC.
run() {
  local label=$1; shift
  # Frames out of the "tap" (towards the VM) for the whole run, sent as root: the agent counts them in tc.
  /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + b"morph-packaging-test".ljust(46, b".")
end = time.time() + 2.5
while time.time() < end:
    s.send(frame)
    time.sleep(0.02)
' "$TAP" &
  local sender=$!
  set +e
  setpriv "$@" -- "$AGENT" kpis --count 2 --interval 500ms --json --vm "$NAME:/morph-$NAME:$TAP" \
    >"$WORK/$label.out" 2>"$WORK/$label.err"
  RC=$?
  set -e
  kill "$sender" 2>/dev/null; wait "$sender" 2>/dev/null || true
}

# KPIs printed for the test VM: two JSON lines with its name and numeric counters, CPU time and traffic
# counted; its cgroup and tap attached without a refusal (a missing capability may only degrade, e.g. tc).
assert_kpis() {
  local label=$1
  [ "$RC" -eq 0 ] || { cat "$WORK/$label.err" >&2; fail "$label: exit status $RC, expected 0"; }
  grep -Eq "vm=$NAME registered in slot [0-9]+: [1-9][0-9]* cgroups, 1 taps" "$WORK/$label.err" \
    || { cat "$WORK/$label.err" >&2; fail "$label: the test VM was not registered with its cgroup and tap"; }
  if grep -Ei 'not permitted|permission denied' "$WORK/$label.err" >&2; then
    fail "$label: a refusal was logged (above)"
  fi
  /usr/bin/python3 - "$WORK/$label.out" "$NAME" "$label" <<'EOF' || { cat "$WORK/$label.err" >&2; exit 1; }
import json, sys
path, name, label = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
mine = [r for r in rows if r.get("name") == name]
assert len(mine) == 2, f"{label}: expected 2 KPI lines for {name}, got {len(mine)} of {len(rows)}"
for r in mine:
    for k in ("cpu_run_ns", "cpu_wait_ns", "net_rx_bytes", "net_tx_bytes", "mem_rss_bytes", "interval_ns"):
        assert isinstance(r[k], int) and r[k] >= 0, f"{label}: {k} is {r.get(k)!r}"
    assert r["interval_ns"] > 0, f"{label}: interval_ns is 0"
assert sum(r["cpu_run_ns"] for r in mine) > 0, f"{label}: no CPU time counted for a busy cgroup"
net = sum(r["net_rx_bytes"] + r["net_tx_bytes"] for r in mine)
assert net > 0, f"{label}: no traffic counted on the tap"
print(f"{label}: ok, cpu_run_ns {[r['cpu_run_ns'] for r in mine]}, net bytes {net}")
EOF
}

# A refusal, not a crash: status 1 (not a signal's 128+N), and an error line saying what was refused.
assert_refused() {
  local label=$1
  [ "$RC" -ne 0 ] || fail "$label: succeeded, so this capability is not needed and must leave the unit"
  [ "$RC" -eq 1 ] || { cat "$WORK/$label.err" >&2; fail "$label: exit status $RC, expected 1 (a clean error)"; }
  grep -E ' error +morph-agent: .*(Operation not permitted|Permission denied|permission)' "$WORK/$label.err" \
    >/dev/null || { cat "$WORK/$label.err" >&2; fail "$label: no error line naming the refusal"; }
  echo "$label: refused as expected: $(grep ' error ' "$WORK/$label.err" | tail -1 | cut -d' ' -f4-)"
}

SET=$(setpriv_list "${CAPS[@]}")

# 1. As the unit runs it: uid 0, but root earns nothing (noroot), only the unit's capabilities.
run unit_uid0 --securebits=+noroot,+noroot_locked --bounding-set="-all$SET" --inh-caps="-all$SET" \
  --ambient-caps="-all$SET"
assert_kpis unit_uid0

# 2. Unprivileged uid with the set as ambient capabilities (the User= drop-in of docs/operations.md).
run nobody --reuid=$NOBODY_UID --regid=$NOBODY_UID --clear-groups --bounding-set="-all$SET" \
  --inh-caps="-all$SET" --ambient-caps="-all$SET"
assert_kpis nobody

# 3. Each capability is necessary.
for drop in "${CAPS[@]}"; do
  rest=()
  for c in "${CAPS[@]}"; do [ "$c" = "$drop" ] || rest+=("$c"); done
  less=$(setpriv_list "${rest[@]}")
  run "without_$drop" --securebits=+noroot,+noroot_locked --bounding-set="-all$less" --inh-caps="-all$less" \
    --ambient-caps="-all$less"
  assert_refused "without_$drop"
done

echo "PASS: morph-agent needs exactly ${CAPS[*]}"
