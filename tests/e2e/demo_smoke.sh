#!/usr/bin/env bash
# scripts/demo end to end, short: 3 test-bed VMs, controller (serving the dashboard), agent, tenants, 60 s of
# market, the report and the PNG plot, then --down. Asserts exit 0, report.txt naming the three VMs with numbers, a
# non-trivial PNG, and that nothing is left: no demo domain, no daemon of the run, no ipc sockets.
# Needs root and libvirtd/QEMU (skips with 77, or fails under CI=true). The demo's two PlanetLab traces come
# with the repository (scripts/testbed.d/planetlab), so it runs without ../shared.
set -uo pipefail
src=${MORPH_SOURCE_DIR:?run through ctest}
bin=${MORPH_BINARY_DIR:?run through ctest}
prefix=${MORPH_DEMO_SMOKE_PREFIX:-demosmoke}  # a test-bed prefix of its own
run=$(mktemp -d /tmp/morph-demo-smoke.XXXXXX)

need() { # need CONDITION-TEXT: skip (77) or, under CI=true, fail
  if [ "${CI:-}" = true ]; then echo "demo_smoke: required under CI: $1" >&2; exit 1; fi
  echo "demo_smoke: skipped: $1"; exit 77
}
[ "$(id -u)" -eq 0 ] || need "needs root (run as root or via scripts/test)"
command -v virsh >/dev/null && command -v qemu-system-x86_64 >/dev/null || need "needs libvirt and QEMU (scripts/setup-deps)"
for b in controller/morph-controller hostagent/morph-agent; do
  [ -x "$bin/$b" ] || { echo "demo_smoke: $bin/$b is not built" >&2; exit 1; }
done

fail() { echo "demo_smoke: FAIL: $*" >&2; echo "--- demo output (tail)" >&2; tail -40 "$run/demo.log" >&2; exit 1; }
cleanup() { MORPH_DEMO_DIR=$run "$src/scripts/demo" down --prefix "$prefix" >/dev/null 2>&1 || true; }
trap cleanup EXIT

start=$SECONDS
MORPH_DEMO_DIR=$run "$src/scripts/demo" --no-build --build-dir "$bin" --duration 60 --step-seconds 2 \
  --prefix "$prefix" --listen 127.0.0.1:0 --down >"$run/demo.log" 2>&1
rc=$?
took=$((SECONDS - start))
[ $rc -eq 0 ] || fail "scripts/demo exited $rc"

report=$run/report/report.txt png=$run/report/demo.png
[ -s "$report" ] || fail "no report at $report"
for i in 1 2 3; do
  grep -Eq "^$prefix-vm$i +tenant-[abc] +[0-9]+\.[0-9] +[0-9]+\.[0-9] +[0-9]+\.[0-9] +[0-9]+\.[0-9]" "$report" ||
    fail "report has no line with numbers for $prefix-vm$i"
done
[ -s "$png" ] || fail "no plot at $png"
[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$png is not a PNG"
[ "$(stat -c %s "$png")" -gt 20000 ] || fail "$png is suspiciously small"
grep -q "dashboard:  http://127.0.0.1:" "$run/demo.log" || fail "the demo did not print the dashboard URL"
grep -q "^dashboard http://127.0.0.1:" "$run/logs/controller.out" 2>/dev/null ||
  grep -q "controller: .*dashboard http://127.0.0.1:" "$run/demo.log" || fail "the dashboard is not the controller's own"

# Torn down: no domain of the prefix, no daemon started from this run dir, no sockets.
virsh -q -c qemu:///system list --all --name | grep -q "^$prefix-vm" && fail "domains of $prefix are left"
for p in /proc/[0-9]*; do
  grep -qa -- "$run" "$p/cmdline" 2>/dev/null && [ "$(basename "$p")" != $$ ] && fail "process $(basename "$p") of the run is left: $(tr '\0' ' ' <"$p/cmdline")"
done
[ ! -e "$run/ipc" ] || fail "ipc sockets left in $run/ipc"
[ ! -d "/var/lib/morph-testbed/$prefix" ] || fail "test-bed state of $prefix is left"
echo "demo_smoke: ok in ${took}s; report $report, plot $png"
sed -n '1,14p' "$report"
rm -rf "$run"
