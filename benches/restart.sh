#!/usr/bin/env bash
# Restart benchmark: how long VMs stop being forwarded when rvs-vswitchd restarts.
#
#   benches/restart.sh            # as root: 3 restarts by SIGTERM + start, 3 by kill -9 + start,
#                                 # 3 by `rvs-vswitchd --takeover` (the new daemon beside the old)
#   RESTARTS=5 benches/restart.sh
#
# One node (a namespace with rvs-vswitchd and bridge br0), four VMs (namespaces):
# vm1 and vm2 on taps rvs created (type=tap, moved into the VMs' namespaces), vm3 and
# vm4 on veths rvs reaches through AF_PACKET (type=system, as libvirt's own taps).
# vm1 pings vm2 and vm3 pings vm4 every 10 ms while the daemon is stopped and started
# again; per pair the longest time between two replies (the forwarding gap, 10 ms when
# nothing was lost) and the pings lost are reported; once, untimed, whether vm1's
# link stays up while no daemon runs (a tap nobody holds shows NO-CARRIER). The daemon is started
# again at once (the packaged unit restarts a crashed daemon after RestartSec=100ms).
# Addresses: 198.18.0.0/15 only, inside namespaces made here; everything is removed on
# exit.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "restart.sh: run it as root (namespaces, taps)" >&2; exit 1; }
. scripts/prereqs.sh demo || exit 1
RESTARTS="${RESTARTS:-3}"
cargo build --release --bins -q || exit 1
bin="$PWD/target/release"
P="rs$$"
dir="$(mktemp -d /tmp/rvs-restart.XXXXXX)"
node="${P}n"
cleanup() {
    set +e
    [ -f "$dir/rvs-vswitchd.pid" ] && kill "$(cat "$dir/rvs-vswitchd.pid")" 2>/dev/null && sleep 0.3
    for n in 1 2 3 4; do ip netns del "${P}v$n" 2>/dev/null; done
    ip netns del "$node" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
ctl() { "$bin/rvsctl" --db="unix:$dir/rvs.sock" --timeout=10 "$@"; }
start() { ip netns exec "$node" "$bin/rvs-vswitchd" --rundir "$dir" --dbdir "$dir" --detach --pidfile --log-file="$dir/log" "$@"; }

ip netns add "$node"
start
ctl add-br br0
for n in 1 2 3 4; do ip netns add "${P}v$n"; ip -n "${P}v$n" link set lo up; done
for n in 1 2; do
    ctl add-port br0 "${P}t$n" -- set Interface "${P}t$n" type=tap
    ip -n "$node" link set "${P}t$n" netns "${P}v$n"
    ip -n "${P}v$n" link set "${P}t$n" name eth0
done
for n in 3 4; do
    ip -n "$node" link add "${P}e$n" type veth peer name eth0 netns "${P}v$n"
    ip -n "$node" link set "${P}e$n" up
    ctl add-port br0 "${P}e$n"
done
for n in 1 2 3 4; do
    ip -n "${P}v$n" addr add "198.18.200.$n/24" dev eth0
    ip -n "${P}v$n" link set eth0 up
done
ip netns exec "${P}v1" ping -c 3 -i 0.2 -W 2 198.18.200.2 >/dev/null || { echo "restart.sh: vm1 cannot reach vm2"; cat "$dir/log"; exit 1; }
ip netns exec "${P}v3" ping -c 3 -i 0.2 -W 2 198.18.200.4 >/dev/null || { echo "restart.sh: vm3 cannot reach vm4"; cat "$dir/log"; exit 1; }

# Longest gap between replies (ms) and losses, from `ping -D` output.
summarize() {
    python3 - "$1" <<'PY'
import re, sys
t = [float(m.group(1)) for m in re.finditer(r'^\[(\d+\.\d+)\] \d+ bytes from(?!.*DUP!)', open(sys.argv[1]).read(), re.M)]
s = open(sys.argv[1]).read()
m = re.search(r'(\d+) packets transmitted, (\d+) received', s)
sent, got = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
pairs = list(zip(t, t[1:]))
gap, at = max(((b - a, b) for a, b in pairs), default=(float('nan'), 0))
dups = s.count('DUP!')
print(f"gap {gap * 1000:7.1f} ms  lost {sent - len(t):3d} of {sent}  dup {dups}  (replies again at {at:.3f})")
PY
}

carrier() { ip -n "${P}v$1" -o link show eth0 | grep -q NO-CARRIER && echo "down" || echo "up"; }

# Stops the daemon with signal $1 and waits until it has ended.
stop_daemon() {
    local pid; pid="$(cat "$dir/rvs-vswitchd.pid")"
    kill -"$1" "$pid"
    # Gone, or a zombie waiting for init to reap it with every thread ended (so its
    # files, and the database lock, are closed).
    for _ in $(seq 1 2000); do
        st="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)"
        tasks="$(ls "/proc/$pid/task" 2>/dev/null | wc -l)"
        case "$st" in ""|Z|X) [ "$tasks" -le 1 ] && break ;; esac
        sleep 0.001
    done
}
# Once, untimed: what vm1 sees of its link while no daemon runs.
stop_daemon TERM
echo "vm1's link while no daemon runs: $(carrier 1) ($(ip -n "${P}v1" -o link show eth0 | grep -o '<[^>]*>'))"
start
echo "vm1's link once the daemon runs again: $(carrier 1)"

for how in TERM KILL TAKEOVER; do
    for r in $(seq 1 "$RESTARTS"); do
        c1="$(ip netns exec "${P}v1" cat /sys/class/net/eth0/carrier_changes)"
        ip netns exec "${P}v1" ping -D -i 0.01 -c 300 -W 1 198.18.200.2 > "$dir/p12" 2>&1 &
        p1=$!
        ip netns exec "${P}v3" ping -D -i 0.01 -c 300 -W 1 198.18.200.4 > "$dir/p34" 2>&1 &
        p2=$!
        sleep 1
        ts=$(date +%s%N)
        if [ "$how" = TAKEOVER ]; then
            # The old daemon runs on until the new one has every port open.
            t0=$ts
            start --takeover
        else
            stop_daemon "$how"
            t0=$(date +%s%N)
            start
        fi
        t1=$(date +%s%N)
        wait $p1 $p2
        c2="$(ip netns exec "${P}v1" cat /sys/class/net/eth0/carrier_changes)"
        printf '%-8s restart %d: taps (vm1->vm2) %s; veths (vm3->vm4) %s; vm1 carrier changes %d; signalled at %s, ended %d ms later, the new one started in %d ms\n' \
            "$how" "$r" "$(summarize "$dir/p12")" "$(summarize "$dir/p34")" $((c2 - c1)) "$(awk "BEGIN{printf \"%.3f\", $ts/1e9}")" $(( (t0 - ts) / 1000000 )) $(( (t1 - t0) / 1000000 ))
    done
done
