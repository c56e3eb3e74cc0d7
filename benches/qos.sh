#!/usr/bin/env bash
# Egress QoS benchmark (issue 26 part 1): the rate a VM limited to 100 Mbit/s receives.
#
#   benches/qos.sh               # as root
#   QOS_BIN=/other/target/release QOS_SECS=10 benches/qos.sh
#
# One node (namespace) with rvs-vswitchd and bridge br0; three VMs (namespaces):
#   vm1 on a veth added as a system port (AF_PACKET: how rvs sees a libvirt tap),
#   vm2 on an rvs tap (type=tap, rvs writes it directly),
#   vm3 on a veth, unlimited: the sender.
# vm1's and vm2's ports get libvirt's rows for <inbound average='12500' peak='12500'
# burst='128'/> (QoS linux-htb and queue 0: min-rate = max-rate = 100 Mbit/s, burst
# 1 Mbit). Then one TCP stream (iperf3, QOS_SECS seconds, default 10) from vm3 to each,
# and one to vm1 again with the QoS removed. Prints Mbit/s received; the target for the
# kernel-shaped port is 95-105. Addresses: 198.18.0.0/15 only, inside namespaces made
# here; everything is removed on exit.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "qos.sh: run it as root (namespaces, veths)" >&2; exit 1; }
for t in ip tc python3 iperf3; do command -v "$t" >/dev/null || { echo "qos.sh: needs $t" >&2; exit 1; }; done
if [ -z "${QOS_BIN:-}" ]; then
    cargo build --release --bins -q || exit 1
    QOS_BIN="$PWD/target/release"
fi
SECS="${QOS_SECS:-10}"
P="qb$$"
d="$(mktemp -d /tmp/rvs-qos.XXXXXX)"
cleanup() {
    set +e
    [ -f "$d/rvs-vswitchd.pid" ] && kill "$(cat "$d/rvs-vswitchd.pid")" 2>/dev/null
    for f in "$d"/iperf-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    sleep 0.3
    for n in n v1 v2 v3; do ip netns del "${P}$n" 2>/dev/null; done
    rm -rf "$d"
}
trap cleanup EXIT

ctl() { "$QOS_BIN/rvsctl" --db="unix:$d/rvs.sock" --timeout=10 "$@"; }
for n in n v1 v2 v3; do ip netns add "${P}$n"; ip -n "${P}$n" link set lo up; done
ip netns exec "${P}n" "$QOS_BIN/rvs-vswitchd" --rundir "$d" --dbdir "$d" --detach --pidfile --log-file="$d/log" || exit 1
ctl add-br br0
for v in 1 3; do
    ip -n "${P}n" link add "${P}e$v" type veth peer name eth0 netns "${P}v$v"
    ip -n "${P}n" link set "${P}e$v" up
    ctl add-port br0 "${P}e$v"
done
ctl add-port br0 "${P}t2" -- set Interface "${P}t2" type=tap
ip -n "${P}n" link set "${P}t2" netns "${P}v2"
for v in 1 2 3; do
    dev=eth0; [ "$v" = 2 ] && dev="${P}t2"
    ip -n "${P}v$v" addr add "198.18.220.$v/24" dev "$dev"
    ip -n "${P}v$v" link set "$dev" up
done

# libvirt's command (virNetDevOpenvswitchInterfaceSetTxQos), 12500 kB/s = 100 Mbit/s.
limit() {
    local p="$1" ids="external-ids:vm-id=\"00000000-0000-0000-0000-00000000000$2\" external-ids:ifname=\"$1\""
    local r="other_config:min-rate=100000000 other_config:burst=1048576 other_config:max-rate=100000000"
    # shellcheck disable=SC2086
    ctl set port "$p" qos=@qos1 $ids -- --id=@qos1 create qos type=linux-htb $r queues:0=@queue0 $ids -- --id=@queue0 create queue $r $ids
}
limit "${P}e1" 1
limit "${P}t2" 2

for v in 1 2; do
    ok=
    for _ in $(seq 50); do ip netns exec "${P}v3" ping -c 1 -W 1 "198.18.220.$v" >/dev/null 2>&1 && { ok=1; break; }; done
    [ -n "$ok" ] || { echo "qos.sh: vm3 cannot reach vm$v" >&2; cat "$d/log" >&2; exit 1; }
done

rate() { # rate VM PORT: Mbit/s vm3 -> vmN
    ip netns exec "${P}v$1" iperf3 -s -D -1 -p "$2" -I "$d/iperf-$2.pid" >/dev/null 2>&1
    sleep 0.3
    ip netns exec "${P}v3" timeout $((SECS + 20)) iperf3 -c "198.18.220.$1" -p "$2" -t "$SECS" -J |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6,1))'
}
echo "== TCP into a VM limited to 100 Mbit/s (${SECS} s, one stream; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
k="$(rate 1 5411)"
echo "system port (kernel HTB, as a libvirt tap): $k Mbit/s"
ctl qos/show "${P}e1" | sed 's/^/    /'
ip netns exec "${P}n" tc -s class show dev "${P}e1" | sed 's/^/    /'
t="$(rate 2 5412)"
echo "rvs tap (rvs's shaper: bucket and queue): $t Mbit/s"
ctl qos/show "${P}t2" | sed 's/^/    /'
qos="$(ctl get port "${P}e1" qos)"
ctl clear port "${P}e1" qos -- destroy qos "$qos"
sleep 1
u="$(rate 1 5413)"
echo "system port, QoS removed: $u Mbit/s"
echo "qos-bench,kernel_htb_mbps=$k,rvs_tap_mbps=$t,unlimited_mbps=$u"
