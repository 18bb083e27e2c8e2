# shellcheck shell=bash
# Several libvirt hosts on one machine, sourced by scripts/testbed. See docs/architecture.md, "Test bed",
# "Several hosts".
#
# Host 1 of every prefix is the machine's own libvirtd. Host i > 1 (named <prefix>-h<i>) is a libvirtd
# and virtlogd of its own in:
#   - a network namespace (`ip netns` <prefix>-h<i>) linked to the machine's by a veth pair with the
#     link-local /30 169.254.K.0 (machine side .1, host side .2), with a default route over it;
#   - a mount namespace where /run is a tmpfs, and /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and
#     /var/log/libvirt are bind mounts of $STATE/<prefix>/hosts/<name>/{etc,lib,cache,log}: its own host
#     UUID, runtime, state, logs and configuration. Everything else (disk images, the test bed's state,
#     the guest image) is the machine's filesystem, shared by all hosts like NFS would be;
#   - a cgroup namespace rooted at /morph-testbed/<name> in every hierarchy, so its VMs' cgroups
#     (/machine/qemu-<id>-<vm>.libvirt-qemu in its own view) never meet the same VM's cgroup on another
#     host during a migration: libvirt numbers domains per daemon, so the names could be equal.
# Its daemon's socket is in $STATE/<prefix>/hosts/<name>/sock, a path every namespace sees. Inside a
# host's mount namespace the machine's daemon socket is bind-mounted at /run/libvirt/libvirt-sock, so
# PRIMARY_URI names host 1 from every namespace, also for peer-to-peer migrations that the daemons run
# themselves.
#
# A VM's network follows it: a follower per host (`_follow`, one `virsh event` loop) gives a VM's tap its
# host address 169.254.K.1 and starts its control server in the namespace of the host where the VM
# starts, including the destination of an incoming migration (the event comes when QEMU starts there,
# before the guest moves), and stops the control server where the VM stopped.

PRIMARY_URI="qemu+unix:///system?socket=/run/libvirt/libvirt-sock"
CGROUP_PARENT=morph-testbed
MAX_HOSTS=8

host_link_name() { # veth name: mh<5 hex of the prefix's hash>h<i> (max 15 chars)
  echo "mh$(echo -n "$1" | sha256sum | cut -c1-5)h$2"
}

host_env_path() { echo "$STATE/$1/hosts/$2.env"; } # prefix, host name

# Sets H_NAME H_INDEX H_PREFIX H_URI (and for i > 1 H_DIR H_NETNS H_LINK H_LINK_IP H_NS_IP H_UUID
# H_HOLDER_PID H_LIBVIRTD_PID H_VIRTLOGD_PID) for a host given as <prefix>-h<i>, h<i> or <i>.
load_host_env() {
  local p=$1 h=$2 i
  unset H_NAME H_INDEX H_PREFIX H_URI H_DIR H_NETNS H_LINK H_LINK_IP H_NS_IP H_UUID H_HOLDER_PID H_LIBVIRTD_PID \
    H_VIRTLOGD_PID
  case "$h" in
    "$p"-h[0-9]*) i=${h#"$p"-h} ;;
    h[0-9]*) i=${h#h} ;;
    [0-9]*) i=$h ;;
    *) die "unknown host '$h' for prefix $p (see: scripts/testbed hosts --prefix $p)" ;;
  esac
  [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -ge 1 ] || die "unknown host '$h' for prefix $p"
  H_PREFIX=$p H_INDEX=$i H_NAME="$p-h$i"
  if [ "$i" -eq 1 ]; then
    H_URI=$PRIMARY_URI
    return 0
  fi
  local f
  f=$(host_env_path "$p" "$H_NAME")
  [ -f "$f" ] || die "no host $H_NAME (see: scripts/testbed hosts --prefix $p)"
  # shellcheck source=/dev/null
  . "$f"
}

extra_hosts() { # names of a prefix's hosts beyond the first, in index order
  local p=$1 f
  for f in "$STATE/$p"/hosts/*.env; do
    [ -f "$f" ] && (. "$f"; echo "$H_INDEX $H_NAME")
  done | sort -n | cut -d' ' -f2
  return 0
}

host_count() { echo $((1 + $(extra_hosts "$1" | grep -c .))); }

all_hosts() { # every host of a prefix: the first, then the others
  echo "$1-h1"
  extra_hosts "$1"
}

# Runs a command in a host's network namespace (host 1: the machine's own).
in_host_net() {
  local p=$1 h=$2
  shift 2
  load_host_env "$p" "$h"
  if [ "$H_INDEX" -eq 1 ]; then "$@"; else ip netns exec "$H_NETNS" "$@"; fi
}

# ------------------------------------------------------------------------------------------ cgroups

# Every mounted hierarchy's directory, one per line (v1 controllers and the unified cgroup2).
cgroup_roots() { awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts; }

# Makes DIR a cgroup in every hierarchy; cpuset needs cpus and mems before it takes a task.
make_cgroup() {
  local rel=$1 c d parent
  for c in $(cgroup_roots); do
    d=$c
    local part
    for part in ${rel//\// }; do
      parent=$d d=$d/$part
      [ -d "$d" ] || mkdir "$d"
      if [ -f "$d/cpuset.cpus" ] && [ -z "$(cat "$d/cpuset.cpus")" ]; then
        cat "$parent/cpuset.cpus" >"$d/cpuset.cpus"
        cat "$parent/cpuset.mems" >"$d/cpuset.mems"
      fi
    done
  done
}

join_cgroup() { # moves the calling (sub)shell into REL in every hierarchy
  local c
  for c in $(cgroup_roots); do echo "$BASHPID" >"$c/$1/cgroup.procs"; done
}

# libvirt uses a cgroup2 mount only if its root lists a controller. In a host's cgroup namespace that root
# is /morph-testbed/<name>, which lists what /morph-testbed enables for its children: enable there (and
# at the machine's root, which must enable it first) every controller the machine's root offers. On this
# hybrid machine that is hugetlb alone; nothing else of the machine's cgroups changes.
enable_cgroup2_controllers() {
  local c ctl
  for c in $(awk '$3 == "cgroup2" {print $2}' /proc/self/mounts); do
    for ctl in $(cat "$c/cgroup.controllers"); do
      grep -qw "$ctl" "$c/cgroup.subtree_control" || echo "+$ctl" >"$c/cgroup.subtree_control" 2>/dev/null ||
        log "cannot enable the $ctl controller in $c"
      grep -qw "$ctl" "$c/$CGROUP_PARENT/cgroup.subtree_control" ||
        echo "+$ctl" >"$c/$CGROUP_PARENT/cgroup.subtree_control" 2>/dev/null ||
        log "cannot enable the $ctl controller in $c/$CGROUP_PARENT"
    done
  done
}

remove_cgroup() { # removes REL and everything below it in every hierarchy, killing what still runs there
  local rel=$1 c pid
  for c in $(cgroup_roots); do
    [ -d "$c/$rel" ] || continue
    for pid in $(find "$c/$rel" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  local i
  for i in $(seq 1 20); do
    local left=0
    for c in $(cgroup_roots); do
      [ -d "$c/$rel" ] || continue
      find "$c/$rel" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$c/$rel" ] && left=1
    done
    [ $left -eq 0 ] && return 0
    sleep 0.1
  done
  log "cgroup $rel is still busy in some hierarchy; left in place"
}

# ---------------------------------------------------------------------------------------- host daemons

write_host_env() {
  cat >"$(host_env_path "$H_PREFIX" "$H_NAME")" <<EOF
H_NAME=$H_NAME
H_INDEX=$H_INDEX
H_URI='$H_URI'
H_DIR=$H_DIR
H_NETNS=$H_NETNS
H_LINK=$H_LINK
H_LINK_IP=$H_LINK_IP
H_NS_IP=$H_NS_IP
H_UUID=$H_UUID
H_HOLDER_PID=${H_HOLDER_PID:-}
H_LIBVIRTD_PID=${H_LIBVIRTD_PID:-}
H_VIRTLOGD_PID=${H_VIRTLOGD_PID:-}
EOF
}

host_answers() { virsh -c "$1" version >/dev/null 2>&1; }

# A process inside the host's namespaces to enter them through: the holder, else one of its daemons.
host_ns_pid() {
  local pid
  for pid in ${H_HOLDER_PID:-} ${H_VIRTLOGD_PID:-} ${H_LIBVIRTD_PID:-}; do
    if alive "$pid"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# Creates host i of prefix p (its files, namespaces, link and daemons), or restarts its daemons if they
# died (the namespaces and VMs' runtime state outlive them), or does nothing if it answers.
ensure_host() {
  local p=$1 i=$2 name="$1-h$2"
  local f
  f=$(host_env_path "$p" "$name")
  if [ -f "$f" ]; then
    load_host_env "$p" "$name"
    if host_ns_pid >/dev/null; then
      if alive "${H_LIBVIRTD_PID:-0}" && host_answers "$H_URI"; then return 0; fi
      log "$name: restarting its daemons"
      start_host_daemons
      return 0
    fi
    log "$name: its namespaces are gone; setting it up again"
    stop_host "$p" "$name"
  fi
  H_PREFIX=$p H_INDEX=$i H_NAME=$name
  H_DIR="$STATE/$p/hosts/$name" H_NETNS=$name H_LINK=$(host_link_name "$p" "$i")
  H_URI="qemu+unix:///system?socket=$H_DIR/sock/libvirt-sock"
  H_UUID=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$H_DIR"/{etc/qemu,etc/hooks,etc/secrets,lib,cache,log,sock}
  # Its own configuration: the machine's daemon settings, none of its domains, networks or secrets.
  cp /etc/libvirt/*.conf "$H_DIR/etc/"
  [ -d /etc/libvirt/nwfilter ] && cp -a /etc/libvirt/nwfilter "$H_DIR/etc/"
  printf '\n# morph test bed host %s\nhost_uuid = "%s"\nunix_sock_dir = "%s"\n' "$name" "$H_UUID" \
    "$H_DIR/sock" >>"$H_DIR/etc/libvirtd.conf"

  exec 7>"$STATE/.alloc.lock"
  flock 7
  local k
  k=$(alloc_subnet)
  H_LINK_IP="169.254.$k.1" H_NS_IP="169.254.$k.2"
  write_host_env
  flock -u 7
  exec 7>&-

  ip netns add "$H_NETNS" || die "ip netns add $H_NETNS failed"
  ip link add "$H_LINK" type veth peer name "$H_LINK" netns "$H_NETNS" || die "cannot create veth $H_LINK"
  ip addr add "$H_LINK_IP/30" dev "$H_LINK"
  ip link set "$H_LINK" up
  ip netns exec "$H_NETNS" sh -c "ip link set lo up && ip addr add $H_NS_IP/30 dev $H_LINK &&
    ip link set $H_LINK up && ip route add default via $H_LINK_IP" || die "cannot configure $H_NETNS"

  make_cgroup "$CGROUP_PARENT/$name/daemons"
  enable_cgroup2_controllers
  # The namespaces: entered from the host's cgroup, so that it is the cgroup namespace's root.
  (join_cgroup "$CGROUP_PARENT/$name" &&
     exec nsenter --net="/run/netns/$H_NETNS" unshare --mount --cgroup --propagation private \
       "$ROOT/scripts/testbed" _host-init "$p" "$name") || die "$name: cannot set up its namespaces"
  load_host_env "$p" "$name"
  start_host_daemons
  log "$name: libvirtd answers on $H_URI (host UUID $H_UUID)"
}

# Internal, inside the host's new namespaces: its mounts, then a holder process that keeps them.
cmd_host_init() {
  load_host_env "$1" "$2"
  local path type opts
  # Every hierarchy again, so each shows this cgroup namespace's root as its own.
  while read -r path type opts; do
    umount "$path" && mount -t "$type" -o "$opts" "$type" "$path" || die "cannot remount $path"
  done < <(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2, $3, $4}' /proc/self/mounts)
  # The machine's daemon socket, taken before /run is covered.
  : >"$H_DIR/primary-sock"
  if [ -S /run/libvirt/libvirt-sock ]; then mount --bind /run/libvirt/libvirt-sock "$H_DIR/primary-sock"; fi
  mount -t tmpfs -o mode=0755 tmpfs /run
  mkdir -p /run/libvirt
  if mountpoint -q "$H_DIR/primary-sock"; then
    : >/run/libvirt/libvirt-sock
    mount --bind "$H_DIR/primary-sock" /run/libvirt/libvirt-sock
    umount "$H_DIR/primary-sock"
  fi
  rm -f "$H_DIR/primary-sock"
  mount --bind "$H_DIR/etc" /etc/libvirt
  mount --bind "$H_DIR/lib" /var/lib/libvirt
  mount --bind "$H_DIR/cache" /var/cache/libvirt
  mount --bind "$H_DIR/log" /var/log/libvirt
  setsid sleep infinity </dev/null >/dev/null 2>&1 &
  H_HOLDER_PID=$!
  write_host_env
}

# Internal, inside the host's namespaces: runs a daemon in the host's daemons cgroup.
cmd_host_daemon() {
  local c
  join_cgroup daemons
  exec "$@"
}

start_host_daemons() {
  local ns
  ns=$(host_ns_pid) || die "$H_NAME: no process is left in its namespaces"
  local enter=(nsenter -t "$ns" -m -n -C)
  if ! alive "${H_VIRTLOGD_PID:-0}"; then
    setsid "${enter[@]}" "$ROOT/scripts/testbed" _host-daemon virtlogd </dev/null >>"$H_DIR/log/virtlogd.out" 2>&1 &
    H_VIRTLOGD_PID=$!
  fi
  setsid "${enter[@]}" "$ROOT/scripts/testbed" _host-daemon libvirtd </dev/null >>"$H_DIR/log/libvirtd.out" 2>&1 &
  H_LIBVIRTD_PID=$!
  write_host_env
  local t
  for t in $(seq 1 60); do
    host_answers "$H_URI" && return 0
    alive "$H_LIBVIRTD_PID" || break
    sleep 0.5
  done
  tail -n 20 "$H_DIR/log/libvirtd.out" >&2 || true
  die "$H_NAME: libvirtd does not answer on $H_URI (log: $H_DIR/log/libvirtd.out)"
}

# Stops a host beyond the first: its follower, VMs still running (destroyed by the caller before; what
# is left dies with the cgroup), daemons, namespaces, link and cgroups.
stop_host() {
  local p=$1 name=$2
  load_host_env "$p" "$name"
  kill_recorded "$STATE/$p/pids/follow-$name.pid" "_follow $p $name"
  local pid
  for pid in ${H_LIBVIRTD_PID:-} ${H_VIRTLOGD_PID:-} ${H_HOLDER_PID:-}; do
    alive "$pid" && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in ${H_LIBVIRTD_PID:-} ${H_VIRTLOGD_PID:-} ${H_HOLDER_PID:-}; do
    local t
    for t in $(seq 1 30); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  remove_cgroup "$CGROUP_PARENT/$name"
  local c
  for c in $(cgroup_roots); do rmdir "$c/$CGROUP_PARENT" 2>/dev/null || true; done  # if no other host is left
  ip link del "$H_LINK" 2>/dev/null || true
  ip netns del "$H_NETNS" 2>/dev/null || true
  rm -f "$(host_env_path "$p" "$name")"
  echo "down: $name"
}

# ------------------------------------------------------------------------------------ network follower

ctl_pidfile() { # VM, host name: its control server's pid file (host 1 keeps the single-host name)
  load_host_env "${2%-h*}" "$2"
  if [ "$H_INDEX" -eq 1 ]; then echo "$STATE/${2%-h*}/pids/httpd-$1.pid"; else echo "$STATE/${2%-h*}/pids/httpd-$1@$2.pid"; fi
}

# Gives VM's tap its host address on host H and starts its control server there, unless already done.
vm_net_up() {
  local vm=$1 h=$2
  load_vm_env "$vm"
  load_host_env "$PREFIX" "$h"
  exec 8>"$CTL_DIR/.net.lock"
  flock 8
  local pidfile
  pidfile=$(ctl_pidfile "$vm" "$H_NAME")
  if in_host_net "$PREFIX" "$H_NAME" ip link show "$TAP" >/dev/null 2>&1; then
    in_host_net "$PREFIX" "$H_NAME" ip -4 addr show dev "$TAP" | grep -qF "inet $HOST_IP/" ||
      in_host_net "$PREFIX" "$H_NAME" ip addr add "$HOST_IP/30" dev "$TAP"
    in_host_net "$PREFIX" "$H_NAME" ip link set "$TAP" up
    if ! { [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; }; then
      if [ "$H_INDEX" -eq 1 ]; then
        spawn "$pidfile" "$STATE/$PREFIX/logs/httpd-$vm.log" busybox httpd -f -p "$HOST_IP:$CTL_PORT" -h "$CTL_DIR"
      else
        spawn "$pidfile" "$STATE/$PREFIX/logs/httpd-$vm.log" \
          ip netns exec "$H_NETNS" busybox httpd -f -p "$HOST_IP:$CTL_PORT" -h "$CTL_DIR"
      fi
    fi
  fi
  flock -u 8
  exec 8>&-
}

vm_net_down() {
  local vm=$1 h=$2
  load_vm_env "$vm"
  exec 8>"$CTL_DIR/.net.lock"
  flock 8
  kill_recorded "$(ctl_pidfile "$vm" "$h")" "$CTL_DIR"
  flock -u 8
  exec 8>&-
}

# Internal: one host's follower (own process group, killed by `down`).
cmd_follow() {
  local p=$1 name=$2
  load_host_env "$p" "$name"
  local uri=$H_URI line vm what
  while true; do
    while read -r line; do
      # event 'lifecycle' for domain 'mig-vm1': Started Migrated
      [[ "$line" =~ ^event\ \'lifecycle\'\ for\ domain\ \'([^\']+)\':\ ([A-Za-z]+) ]] || continue
      vm=${BASH_REMATCH[1]} what=${BASH_REMATCH[2]}
      [[ "$vm" =~ ^${p//./\\.}-vm[0-9]+$ ]] && [ -f "$STATE/$p/vms/$vm.env" ] || continue
      case "$what" in
        Started) (vm_net_up "$vm" "$name") || log "$name: cannot set up $vm's network" ;;
        Stopped) (vm_net_down "$vm" "$name") || true ;;
      esac
    done < <(stdbuf -oL virsh -c "$uri" event --loop --event lifecycle 2>/dev/null)
    sleep 1
  done
}

ensure_followers() {
  local p=$1 h pidfile
  for h in $(all_hosts "$p"); do
    pidfile="$STATE/$p/pids/follow-$h.pid"
    if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then continue; fi
    spawn "$pidfile" "$STATE/$p/logs/follow-$h.log" "$ROOT/scripts/testbed" _follow "$p" "$h"
  done
}

# Makes a prefix have n hosts (more are never removed but by `down`); a shared directory for migration
# sockets that QEMU's user may write (unix:///$STATE/<prefix>/migrate/<anything>.sock).
ensure_hosts() {
  local p=$1 n=$2 i
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_HOSTS ] || die "--hosts expects 1..$MAX_HOSTS, got '$n'"
  [ "$n" -gt 1 ] || [ "$(host_count "$p")" -gt 1 ] || return 0
  mkdir -p "$STATE/$p"/{hosts,pids,logs,migrate}
  chown "$(qemu_user)" "$STATE/$p/migrate"
  chmod 0770 "$STATE/$p/migrate"
  for i in $(seq 2 "$n"); do ensure_host "$p" "$i"; done
  ensure_followers "$p"
}

qemu_user() { # the user:group QEMU runs as (qemu.conf), Debian's default otherwise
  local u g
  u=$(sed -n 's/^user *= *"\(.*\)"/\1/p' /etc/libvirt/qemu.conf | tail -1)
  g=$(sed -n 's/^group *= *"\(.*\)"/\1/p' /etc/libvirt/qemu.conf | tail -1)
  echo "${u:-libvirt-qemu}:${g:-libvirt-qemu}"
}

# Which host runs VM (its prefix's hosts are asked), or nothing.
vm_host() {
  local vm=$1 h
  load_vm_env "$vm"
  for h in $(all_hosts "$PREFIX"); do
    load_host_env "$PREFIX" "$h"
    [ "$(virsh -c "$H_URI" domstate "$vm" 2>/dev/null | head -1)" = running ] && { echo "$h"; return 0; }
  done
  return 0
}

cmd_hosts() {
  local prefix=${MORPH_TESTBED_PREFIX:-morph}
  [ "${1:-}" = --prefix ] && prefix=${2:?--prefix needs a value}
  check_prefix "$prefix"
  local h
  for h in $(all_hosts "$prefix"); do
    load_host_env "$prefix" "$h"
    echo "$H_NAME $H_URI"
  done
}

cmd_where() {
  local vm=${1:?usage: scripts/testbed where VM}
  local h
  h=$(vm_host "$vm")
  [ -n "$h" ] || die "$vm runs on no host of its test bed"
  echo "$h"
}

# Runs a command inside a host's namespaces (host 1: as it is), e.g. that host's morph-agent.
cmd_exec() {
  local h=${1:?usage: scripts/testbed exec HOST COMMAND [ARG...]}
  shift
  [ $# -gt 0 ] || die "exec: no command given"
  [[ "$h" =~ ^(.+)-h[0-9]+$ ]] || die "exec: expected a host name <prefix>-h<i>, got '$h'"
  load_host_env "${BASH_REMATCH[1]}" "$h"
  if [ "$H_INDEX" -eq 1 ]; then exec "$@"; fi
  local ns
  ns=$(host_ns_pid) || die "exec: host $h is not up"
  exec nsenter -t "$ns" -m -n -C -- "$@"
}
