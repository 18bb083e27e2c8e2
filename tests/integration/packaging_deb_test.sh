#!/usr/bin/env bash
# The Debian package and `cmake --install` deliver a working installation.
#
# 1. cpack in the build directory (output to a temporary directory) makes morph_<version>_<arch>.deb;
# 2. dpkg-deb -I/-c: name, version, Depends computed by dpkg-shlibdeps (libc6, libvirt0, libzmq5, libbpf1),
#    Recommends libvirt-daemon-system, the conffiles, postinst; the binaries, units, configs, schemas,
#    Python modules and docs are inside, at Debian paths;
# 3. dpkg -x into a temporary root (never installed system-wide): the installed morphctl --version and
#    morph-agent --help run from there, the packaged configs are the right ones, and the units pass
#    `systemd-analyze verify` with no warning (ExecStart pointed at the extracted binaries);
# 4. cmake --install --prefix TMP puts everything under TMP, configuration in TMP/etc/morph.
# Needs dpkg-deb, cpack and dpkg-shlibdeps (dpkg-dev), systemd-analyze (systemd), and a built tree (ctest
# runs after the build; cpack installs what is built and builds nothing with Ninja).
set -euo pipefail

SRC=${MORPH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${MORPH_BINARY_DIR:-$SRC/build}

skip() {
  if [ "${CI:-}" = "true" ]; then echo "FAIL (CI=true, prerequisite missing): $*" >&2; exit 1; fi
  echo "SKIP: $*" >&2; exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }

for tool in cpack dpkg-deb dpkg-shlibdeps systemd-analyze; do
  command -v "$tool" >/dev/null || skip "$tool not installed (cmake, dpkg, dpkg-dev, systemd)"
done
[ -f "$BIN/CPackConfig.cmake" ] || fail "$BIN/CPackConfig.cmake missing: cmake/Packaging.cmake not included?"
for b in hostagent/morph-agent controller/morph-controller controller/cli/morphctl; do
  [ -x "$BIN/$b" ] || skip "$BIN/$b not built"
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
VERSION=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$BIN/CPackConfig.cmake")
[ -n "$VERSION" ] || fail "no CPACK_PACKAGE_VERSION in $BIN/CPackConfig.cmake"

# 1. Build the package.
t0=$(date +%s%N)
(cd "$BIN" && cpack -B "$WORK/out" >"$WORK/cpack.log" 2>&1) || { cat "$WORK/cpack.log" >&2; fail "cpack failed"; }
DEB=$(ls "$WORK"/out/morph_"$VERSION"_*.deb 2>/dev/null | head -1)
[ -n "$DEB" ] || { cat "$WORK/cpack.log" >&2; fail "no morph_${VERSION}_*.deb from cpack"; }
echo "cpack: $(basename "$DEB") ($(stat -c %s "$DEB") bytes) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# 2. Control data and contents.
field() { dpkg-deb -f "$DEB" "$1"; }
[ "$(field Package)" = morph ] || fail "Package is '$(field Package)'"
[ "$(field Version)" = "$VERSION" ] || fail "Version is '$(field Version)', project says $VERSION"
DEPENDS=$(field Depends)
echo "Depends: $DEPENDS"
DEP_NAMES=$(sed 's/ *([^)]*)//g; s/ *| */\n/g; s/, */\n/g' <<<"$DEPENDS")
for lib in libc6 libstdc++6 libvirt0 libzmq5 libbpf1 adduser; do
  grep -qxF "$lib" <<<"$DEP_NAMES" || fail "Depends lacks $lib: $DEPENDS"
done
# Build-only packages must not leak into Depends.
grep -Eq -- '-dev$|^cmake|^clang' <<<"$DEP_NAMES" && fail "Depends names a build-time package: $DEPENDS"
grep -q 'libvirt-daemon-system' <<<"$(field Recommends)" || fail "Recommends lacks libvirt-daemon-system"

dpkg-deb -e "$DEB" "$WORK/control"
diff <(sort "$WORK/control/conffiles") <(printf '/etc/morph/morph-agent.toml\n/etc/morph/morph-controller.toml\n') \
  || fail "conffiles differ from the two configuration files"
for script in postinst prerm postrm; do
  [ -x "$WORK/control/$script" ] || fail "$script missing or not executable"
  sh -n "$WORK/control/$script" || fail "$script: shell syntax error"
done
grep -q 'adduser --system' "$WORK/control/postinst" || fail "postinst does not create the morph user"
grep -q 'systemctl enable' "$WORK/control/postinst" && fail "postinst enables units; that is the operator's choice"

dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's#^\./#/#' >"$WORK/contents"
for f in /usr/bin/morph-agent /usr/bin/morph-controller /usr/bin/morphctl \
         /etc/morph/morph-agent.toml /etc/morph/morph-controller.toml \
         /usr/lib/systemd/system/morph-agent.service /usr/lib/systemd/system/morph-controller.service \
         /usr/share/morph/events-subscriber.py /usr/share/morph/python/morph/v1/MarketEvent.py \
         /usr/share/doc/morph/operations.md /usr/share/doc/morph/security.md; do
  grep -qx "$f" "$WORK/contents" || fail "$f not in the package"
done
for fbs in "$SRC"/schemas/*.fbs; do
  grep -qx "/usr/share/morph/schemas/$(basename "$fbs")" "$WORK/contents" || fail "$(basename "$fbs") not packaged"
done
grep -E '^/usr/etc/|^/usr/local/|/_CPack_|/build' "$WORK/contents" && fail "files at non-Debian or build paths"

# 3. Extract (not install) and run what was extracted.
ROOT=$WORK/root
dpkg -x "$DEB" "$ROOT"
"$ROOT/usr/bin/morphctl" --version | grep -qx "$VERSION" || fail "installed morphctl --version is not $VERSION"
"$ROOT/usr/bin/morph-agent" --help | grep -q 'kpis' || fail "installed morph-agent --help lists no kpis command"
"$ROOT/usr/bin/morph-controller" --version | grep -qx "$VERSION" || fail "installed morph-controller --version"
grep -q '^path = "/var/lib/morph-controller/ledger.db"' "$ROOT/etc/morph/morph-controller.toml" \
  || fail "packaged controller config does not keep the ledger in the unit's StateDirectory"
diff -q "$SRC/config/morph-agent.toml" "$ROOT/etc/morph/morph-agent.toml" >/dev/null \
  || fail "packaged agent config differs from config/morph-agent.toml"

for unit in morph-agent morph-controller; do
  sed "s#/usr/bin/#$ROOT/usr/bin/#g" "$ROOT/usr/lib/systemd/system/$unit.service" >"$WORK/$unit.service"
done
# verify exits 0 even on unknown keys, so any output at all is a failure.
out=$(systemd-analyze verify --man=no "$WORK/morph-agent.service" "$WORK/morph-controller.service" 2>&1) \
  || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
echo "systemd-analyze verify: both units clean"

# 4. cmake --install into a prefix.
t0=$(date +%s%N)
cmake --install "$BIN" --prefix "$WORK/prefix" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; fail "cmake --install"; }
echo "cmake --install: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -v "^-- \(Install\|Up-to-date\)" "$WORK/install.log" | grep -v "^-- Installing: $WORK/prefix/" \
  | grep . && fail "cmake --install wrote outside the prefix (above)"
for f in bin/morph-agent bin/morphctl etc/morph/morph-agent.toml etc/morph/morph-controller.toml \
         lib/systemd/system/morph-agent.service share/morph/schemas/kpi_report.fbs share/doc/morph/README.md; do
  [ -e "$WORK/prefix/$f" ] || fail "cmake --install: $f missing under the prefix"
done
"$WORK/prefix/bin/morphctl" --version | grep -qx "$VERSION" || fail "prefix morphctl --version"

echo "PASS: $(basename "$DEB"): $(wc -l <"$WORK/contents") entries, runs from an extracted root; cmake --install ok"
