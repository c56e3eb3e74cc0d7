#!/usr/bin/env bash
# Soak benchmark: traffic between two VMs for SOAK_SECS (default 600) while a port is
# added and removed every second; the daemon's resident memory, open file descriptors
# and threads are sampled every 30 s and must stay flat.
#
#   benches/soak.sh                 # as root, 10 minutes
#   SOAK_SECS=120 benches/soak.sh   # shorter
#
# One node (a namespace with rvs-vswitchd and br0), vm1 and vm2 (namespaces) on taps
# rvs created; iperf3 TCP from vm1 to vm2 at 2 Gbit/s for the whole run, and ping
# (10/s) beside it; every second `add-port br0 soakN` (an internal port: a tap rvs
# creates) or `del-port` of the one added the second before. Addresses: 198.18.0.0/15
# only, inside namespaces made here; everything is removed on exit.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "soak.sh: run it as root (namespaces, taps)" >&2; exit 1; }
. scripts/prereqs.sh demo || exit 1
SECS="${SOAK_SECS:-600}"
cargo build --release --bins -q || exit 1
bin="$PWD/target/release"
P="sk$$"
dir="$(mktemp -d /tmp/rvs-soak.XXXXXX)"
node="${P}n"
cleanup() {
    set +e
    [ -n "${churn:-}" ] && kill "$churn" 2>/dev/null
    [ -f "$dir/rvs-vswitchd.pid" ] && kill "$(cat "$dir/rvs-vswitchd.pid")" 2>/dev/null && sleep 0.3
    for n in 1 2; do ip netns del "${P}v$n" 2>/dev/null; done
    ip netns del "$node" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
ctl() { "$bin/rvsctl" --db="unix:$dir/rvs.sock" --timeout=10 "$@"; }

ip netns add "$node"
ip netns exec "$node" "$bin/rvs-vswitchd" --rundir "$dir" --dbdir "$dir" --detach --pidfile --log-file="$dir/log" || exit 1
pid="$(cat "$dir/rvs-vswitchd.pid")"
ctl add-br br0
for n in 1 2; do
    ip netns add "${P}v$n"
    ip -n "${P}v$n" link set lo up
    ctl add-port br0 "${P}t$n" -- set Interface "${P}t$n" type=tap
    ip -n "$node" link set "${P}t$n" netns "${P}v$n"
    ip -n "${P}v$n" addr add "198.18.210.$n/24" dev "${P}t$n"
    ip -n "${P}v$n" link set "${P}t$n" up
done
ip netns exec "${P}v1" ping -c 3 -i 0.2 -W 2 198.18.210.2 >/dev/null || { echo "soak.sh: vm1 cannot reach vm2"; exit 1; }

ip netns exec "${P}v2" iperf3 -s -1 -D >/dev/null 2>&1; sleep 0.3
ip netns exec "${P}v1" iperf3 -c 198.18.210.2 -b 2G -t "$SECS" --forceflush > "$dir/iperf" 2>&1 &
ip netns exec "${P}v1" ping -i 0.1 -w "$SECS" -W 1 198.18.210.2 > "$dir/ping" 2>&1 &

# The churn: one port added, then removed, each second.
(
    i=0
    while :; do
        i=$((i + 1))
        ctl add-port br0 "soak$i" -- set Interface "soak$i" type=internal >/dev/null 2>>"$dir/churn.err" || echo "add soak$i failed" >> "$dir/churn.err"
        sleep 1
        ctl del-port br0 "soak$i" >/dev/null 2>>"$dir/churn.err" || echo "del soak$i failed" >> "$dir/churn.err"
        sleep 1
    done
) &
churn=$!

sample() {
    local rss fds thr
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
    fds="$(ls "/proc/$pid/fd" | wc -l)"
    thr="$(ls "/proc/$pid/task" | wc -l)"
    printf '%6d s   RSS %7d KiB   fds %4d   threads %2d   ports %d\n' "$1" "$rss" "$fds" "$thr" "$(ctl list-ports br0 | wc -l)"
}
echo "soak: ${SECS} s of traffic, a port added or removed every second (daemon pid $pid)"
start=$(date +%s)
sample 0
while :; do
    now=$(( $(date +%s) - start ))
    [ "$now" -ge "$SECS" ] && break
    sleep $(( SECS - now < 30 ? SECS - now : 30 ))
    sample $(( $(date +%s) - start ))
done
kill "$churn" 2>/dev/null; churn=""
wait 2>/dev/null
echo "iperf3: $(grep -E 'sender$' "$dir/iperf" | tail -1 | sed 's/  */ /g')"
echo "ping:   $(grep -E 'packets transmitted' "$dir/ping")"
echo "churn errors: $(cat "$dir/churn.err" 2>/dev/null | grep -c .)"
echo "ports added: $(grep -c 'opened port soak' "$dir/log"), closed: $(grep -c 'closing port soak' "$dir/log")"
echo "devices left in the node: $(ip -n "$node" -o link | grep -c soak) soak ports (the one the churn may have added last, at most)"
echo "daemon log WARN/ERROR lines: $(grep -cE ' (WARN|ERROR) ' "$dir/log")"
