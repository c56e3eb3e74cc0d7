#!/usr/bin/env bash
# Bond benchmark (issue 22): failover time and two-stream throughput over a bond.
#
#   benches/bond.sh              # as root
#   BOND_BIN=/other/target/release benches/bond.sh
#
# Two nodes (namespaces), each with rvs-vswitchd, bridge br0 and a balance-tcp bond
# with LACP (active, fast) over two veth pairs cabled node to node; a VM (namespace,
# veth, AF_PACKET) on each node. Two measurements:
#   1. carrier failover: vm1 pings vm2 every 5 ms; the member carrying the echo
#      requests is set down on node A (both ends lose carrier): longest gap between
#      replies and pings lost;
#   2. throughput: iperf3 -P 2 (two TCP streams) for 8 s over the bond with both
#      members, then with one member down; the bytes each member sent;
#   3. LACP-only failover: as 1, the cable cut in a middle switch with carrier up.
# Addresses: 198.18.0.0/15 only, inside namespaces made here; everything is removed on
# exit.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bond.sh: run it as root (namespaces, veths)" >&2; exit 1; }
for t in ip ping python3 iperf3; do command -v "$t" >/dev/null || { echo "bond.sh: needs $t" >&2; exit 1; }; done
if [ -z "${BOND_BIN:-}" ]; then
    cargo build --release --bins -q || exit 1
    BOND_BIN="$PWD/target/release"
fi
P="bd$$"
dirs=()
cleanup() {
    set +e
    for d in "${dirs[@]}"; do [ -f "$d/rvs-vswitchd.pid" ] && kill "$(cat "$d/rvs-vswitchd.pid")" 2>/dev/null; done
    sleep 0.3
    for n in a b v1 v2 m; do ip netns del "${P}$n" 2>/dev/null; done
    for d in "${dirs[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

ctl() { local d="$1"; shift; "$BOND_BIN/rvsctl" --db="unix:$d/rvs.sock" --timeout=10 "$@"; }
for n in a b v1 v2; do ip netns add "${P}$n"; ip -n "${P}$n" link set lo up; done
da="$(mktemp -d /tmp/rvs-bond-a.XXXXXX)"; db="$(mktemp -d /tmp/rvs-bond-b.XXXXXX)"; dirs=("$da" "$db")
for x in a b; do
    d="$da"; [ "$x" = b ] && d="$db"
    ip netns exec "${P}$x" "$BOND_BIN/rvs-vswitchd" --rundir "$d" --dbdir "$d" --detach --pidfile --log-file="$d/log" || exit 1
    ctl "$d" add-br br0
done
for m in 0 1; do
    ip -n "${P}a" link add "${P}a$m" type veth peer name "${P}b$m" netns "${P}b"
    ip -n "${P}a" link set "${P}a$m" up
    ip -n "${P}b" link set "${P}b$m" up
done
for x in a b; do
    d="$da"; [ "$x" = b ] && d="$db"
    ctl "$d" add-bond br0 bond0 "${P}${x}0" "${P}${x}1" bond_mode=balance-tcp lacp=active other_config:lacp-time=fast
done
for v in 1 2; do
    x=a; d="$da"; [ "$v" = 2 ] && { x=b; d="$db"; }
    ip -n "${P}$x" link add "${P}e$v" type veth peer name eth0 netns "${P}v$v"
    ip -n "${P}$x" link set "${P}e$v" up
    ctl "$d" add-port br0 "${P}e$v"
    ip -n "${P}v$v" addr add "198.18.210.$v/24" dev eth0
    ip -n "${P}v$v" link set eth0 up
done

# Waits (at most 30 s) until node A's bond has both members enabled.
both_enabled() {
    for _ in $(seq 150); do
        [ "$(ctl "$da" bond/show bond0 | grep -c ': enabled')" = 2 ] && return 0
        sleep 0.2
    done
    echo "bond.sh: the bond did not come up"; ctl "$da" bond/show bond0; cat "$da/log"; exit 1
}
both_enabled
ip netns exec "${P}v1" ping -c 3 -i 0.2 -W 2 198.18.210.2 >/dev/null || { echo "bond.sh: vm1 cannot reach vm2"; cat "$da/log"; exit 1; }

txa() { ip netns exec "${P}a" cat "/sys/class/net/$1/statistics/tx_$2"; }
# The member of node A that carries vm1's echo requests.
carrying() {
    local a0 a1
    a0="$(txa "${P}a0" packets)"; a1="$(txa "${P}a1" packets)"
    ip netns exec "${P}v1" ping -c 50 -i 0.01 -W 1 198.18.210.2 >/dev/null
    a0=$(( $(txa "${P}a0" packets) - a0 )); a1=$(( $(txa "${P}a1" packets) - a1 ))
    if [ "$a0" -ge "$a1" ]; then echo 0; else echo 1; fi
}
summarize() {
    python3 - "$1" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
t = [float(m.group(1)) for m in re.finditer(r'^\[(\d+\.\d+)\] \d+ bytes from', s, re.M)]
m = re.search(r'(\d+) packets transmitted, (\d+) received', s)
sent, got = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
gap = max((b - a for a, b in zip(t, t[1:])), default=float('nan'))
print(f"gap {gap * 1000:8.1f} ms   lost {sent - got:4d} of {sent}")
PY
}
out="$(mktemp /tmp/rvs-bond-ping.XXXXXX)"

# Three runs of: vm1 pings vm2 every 5 ms ($2 pings); after 1 s, "$3 N" cuts the
# member N that carries the pings; then "$4 N" mends it.
failovers() {
    echo "== $1"
    for run in 1 2 3; do
        m="$(carrying)"
        ip netns exec "${P}v1" ping -D -i 0.005 -c "$2" -W 1 198.18.210.2 >"$out" 2>&1 &
        pid=$!
        sleep 1
        "$3" "$m"
        wait "$pid"
        echo "run $run (member a$m): $(summarize "$out")"
        "$4" "$m"
        both_enabled
        sleep 2
    done
}
link_down() { ip -n "${P}a" link set "${P}a$1" down; }
link_up() { ip -n "${P}a" link set "${P}a$1" up; }
failovers "carrier failover (ping every 5 ms; the carrying member set down after 1 s)" 600 link_down link_up

echo "== throughput: iperf3 -P 2, 8 s, vm1 -> vm2"
ip netns exec "${P}v2" iperf3 -s -D -1 >/dev/null 2>&1
sleep 0.5
b0="$(txa "${P}a0" bytes)"; b1="$(txa "${P}a1" bytes)"
g="$(ip netns exec "${P}v1" iperf3 -c 198.18.210.2 -P 2 -t 8 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))')"
echo "two members: $g Gbit/s; member a0 sent $(( ($(txa "${P}a0" bytes) - b0) >> 20 )) MiB, a1 $(( ($(txa "${P}a1" bytes) - b1) >> 20 )) MiB"
ip -n "${P}a" link set "${P}a1" down
sleep 1
ip netns exec "${P}v2" iperf3 -s -D -1 >/dev/null 2>&1
sleep 0.5
g="$(ip netns exec "${P}v1" iperf3 -c 198.18.210.2 -P 2 -t 8 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))')"
echo "one member:  $g Gbit/s"
rm -f "$out"

# 3. failover by LACP's timeout alone: each member's cable now runs through a middle
# switch (a third rvs-vswitchd, bridge midN per member, forward-bpdu=true so LACPDUs
# pass), which is "cut" by removing node B's side from midN: every frame is lost while
# both bonds keep carrier, so only LACP (fast: a PDU a second, expiry after 3 s) notices.
ip netns add "${P}m"; ip -n "${P}m" link set lo up
dm="$(mktemp -d /tmp/rvs-bond-m.XXXXXX)"; dirs+=("$dm")
ip netns exec "${P}m" "$BOND_BIN/rvs-vswitchd" --rundir "$dm" --dbdir "$dm" --detach --pidfile --log-file="$dm/log" || exit 1
for m in 0 1; do
    ip -n "${P}a" link del "${P}a$m" 2>/dev/null
    ip -n "${P}a" link add "${P}a$m" type veth peer name "${P}ma$m" netns "${P}m"
    ip -n "${P}b" link add "${P}b$m" type veth peer name "${P}mb$m" netns "${P}m"
    ip -n "${P}a" link set "${P}a$m" up; ip -n "${P}b" link set "${P}b$m" up
    ip -n "${P}m" link set "${P}ma$m" up; ip -n "${P}m" link set "${P}mb$m" up
    ctl "$dm" add-br "mid$m" -- set Bridge "mid$m" other_config:forward-bpdu=true -- add-port "mid$m" "${P}ma$m" -- add-port "mid$m" "${P}mb$m"
done
both_enabled
cut() { ctl "$dm" del-port "mid$1" "${P}mb$1"; }
mend() { ctl "$dm" add-port "mid$1" "${P}mb$1"; }
failovers "LACP-only failover (ping every 5 ms; the carrying member's cable cut in a middle switch after 1 s, carrier stays up)" 1200 cut mend
