#!/usr/bin/env bash
# The vhost-user packet rate (issue 27): DPDK's dpdk-testpmd as the frontend, with no
# guest, so the rate is that of the switch path even where guests run under TCG.
#
# Rows (each: one testpmd with two ports, `--forward-mode=flowgen`: every port sends
# 64-byte frames to the other port's MAC and frees what it receives; the rate is the
# frames received per second, both ports together):
#   rvs-vhost     two net_virtio_user ports on two dpdkvhostuser ports of one rvs bridge
#   rvs-vhost-pmd the same with rvs's worker polling, pinned to CPU 0 (pmd-cpu-mask=0x1;
#                 testpmd forwards on CPU 1), as OVS-DPDK is run
#   rvs-tap       two net_tap taps (made by testpmd) added to an rvs bridge (AF_PACKET)
#   linux-bridge  the same two taps in a Linux bridge
# Medians of RUNS runs of SECS seconds, rows taking turns, and the CPU rvs-vswitchd used
# meanwhile. The machine has 2 CPUs:
# testpmd's forwarding lcore spins on one, rvs's worker and testpmd's main lcore share
# the other; the same for every row.
#
#   benches/vhost.sh                 # RUNS=3 SECS=10
# Root; needs dpdk-testpmd (package dpdk-dev; scripts/prereqs.sh bench). Sets up 128
# hugepages of 2 MiB on a private hugetlbfs mount and releases both afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}" SECS="${SECS:-10}"
[ "$(id -u)" = 0 ] || { echo "vhost.sh: needs root (hugepages, taps)" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "vhost.sh: needs dpdk-testpmd (apt-get install dpdk-dev)" >&2; exit 1; }
cargo build --release --workspace --bins -q
BIN="$PWD/target/release"
W="$(mktemp -d /tmp/rvs-vhb.XXXXXX)"
OLD_HP="$(cat /proc/sys/vm/nr_hugepages)"
RVS_PID=""
cleanup() {
    [ -n "$RVS_PID" ] && kill "$RVS_PID" 2>/dev/null && wait "$RVS_PID" 2>/dev/null || true
    ip link del rvsvbr 2>/dev/null || true
    umount "$W/huge" 2>/dev/null || true
    echo "$OLD_HP" > /proc/sys/vm/nr_hugepages
    rm -rf "$W" /var/run/dpdk/rvsvb
}
trap cleanup EXIT
echo 128 > /proc/sys/vm/nr_hugepages
mkdir -p "$W/huge" "$W/run" "$W/db"
mount -t hugetlbfs -o pagesize=2M rvs-vhb "$W/huge"

M0=02:00:00:00:0b:01 M1=02:00:00:00:0b:02
start_rvs() {
    RVS_RUNDIR="$W/run" RVS_DBDIR="$W/db" "$BIN/rvs-vswitchd" >"$W/rvs.log" 2>&1 &
    RVS_PID=$!
    for _ in $(seq 50); do [ -S "$W/run/rvs.sock" ] && break; sleep 0.1; done
}
ctl() { RVS_RUNDIR="$W/run" "$BIN/rvsctl" "$@"; }
# User + system CPU ticks of rvs-vswitchd (fields 14 and 15 of /proc/PID/stat).
ticks() { awk '{print $14 + $15}' "/proc/$RVS_PID/stat"; }
stop_rvs() { kill "$RVS_PID"; wait "$RVS_PID" 2>/dev/null || true; RVS_PID=""; rm -rf "$W/run"/* "$W/db"/*; }

# testpmd VDEV0 VDEV1 SETUP: runs SETUP once the ports exist, forwards SECS seconds,
# prints frames received per second (both ports).
testpmd() {
    local setup="$3"
    (sleep 4; echo start; sleep "$SECS"; echo "show port stats all"; echo stop; echo quit) |
        timeout $((SECS + 60)) dpdk-testpmd -l 0,1 --file-prefix rvsvb --huge-dir "$W/huge" -m 128 --single-file-segments \
            --iova-mode=va --no-pci --vdev "$1" --vdev "$2" -- -i --total-num-mbufs=16384 --forward-mode=flowgen \
            --eth-peer=0,$M1 --eth-peer=1,$M0 --txpkts=64 >"$W/tp.log" 2>&1 &
    local tp=$!
    sleep 2.5
    eval "$setup"
    # rvs's CPU time over the forwarding seconds (none for the Linux bridge: the
    # kernel forwards in testpmd's own system calls and in softirqs).
    sleep 1.5
    local c0; c0="$(ticks)"
    sleep "$SECS"
    if [ -n "$RVS_PID" ]; then
        echo "$c0 $(ticks) $(getconf CLK_TCK) $SECS" | awk '{printf "%.0f\n", ($2 - $1) / $3 / $4 * 100}' >"$W/cpu"
    else
        echo - >"$W/cpu"
    fi
    wait $tp || { tail -20 "$W/tp.log" >&2; return 1; }
    # The forward statistics' RX-packets of the two ports, over the run's seconds.
    awk -v s="$SECS" '/Forward statistics for port/ {p=1} p && /RX-packets:/ {n+=$2; p=0} END {printf "%.0f\n", n/s}' "$W/tp.log"
}

row_rvs_vhost() {
    start_rvs
    ctl add-br rvsvb0 -- add-port rvsvb0 vhb0 -- set Interface vhb0 type=dpdkvhostuser \
        -- add-port rvsvb0 vhb1 -- set Interface vhb1 type=dpdkvhostuser
    testpmd "net_virtio_user0,path=$W/run/vhb0,mac=$M0" "net_virtio_user1,path=$W/run/vhb1,mac=$M1" true
    echo "rvs-vhost vhb0: $(ctl get Interface vhb0 statistics)" >&2
    stop_rvs
}
row_rvs_vhost_pmd() {
    start_rvs
    ctl set Open_vSwitch . other_config:pmd-cpu-mask=0x1 -- add-br rvsvb0 -- add-port rvsvb0 vhb0 -- set Interface vhb0 type=dpdkvhostuser \
        -- add-port rvsvb0 vhb1 -- set Interface vhb1 type=dpdkvhostuser
    testpmd "net_virtio_user0,path=$W/run/vhb0,mac=$M0" "net_virtio_user1,path=$W/run/vhb1,mac=$M1" true
    echo "rvs-vhost-pmd vhb0: $(ctl get Interface vhb0 statistics)" >&2
    stop_rvs
}
row_rvs_tap() {
    start_rvs
    ctl add-br rvsvb0
    testpmd "net_tap0,iface=rvsvt0,mac=$M0" "net_tap1,iface=rvsvt1,mac=$M1" \
        "ip link set rvsvt0 up; ip link set rvsvt1 up; ctl add-port rvsvb0 rvsvt0 -- add-port rvsvb0 rvsvt1 >/dev/null"
    stop_rvs
}
row_linux_bridge() {
    ip link add rvsvbr type bridge && ip link set rvsvbr up
    testpmd "net_tap0,iface=rvsvt0,mac=$M0" "net_tap1,iface=rvsvt1,mac=$M1" \
        "ip link set rvsvt0 master rvsvbr up; ip link set rvsvt1 master rvsvbr up"
    ip link del rvsvbr
}

declare -A R C
for r in $(seq "$RUNS"); do
    for row in rvs_vhost rvs_vhost_pmd rvs_tap linux_bridge; do
        v="$("row_$row")"
        c="$(cat "$W/cpu")"
        echo "run $r $row: $v frames/s, rvs CPU $c %" >&2
        R[$row]+="$v "
        C[$row]+="$c "
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
lb="$(echo "${R[linux_bridge]}" | median)"
echo "64-byte frames/s, medians of $RUNS runs of ${SECS} s ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)):"
for row in rvs_vhost rvs_vhost_pmd rvs_tap linux_bridge; do
    m="$(echo "${R[$row]}" | median)"
    c="$(echo "${C[$row]}" | grep -q '[0-9]' && echo "$(echo "${C[$row]}" | median) %" || echo -)"
    printf "  %-13s %10s  (%s)  %.2fx the Linux bridge   rvs CPU %s\n" "${row//_/-}" "$m" "${R[$row]}" "$(echo "$m $lb" | awk '{print ($2 > 0) ? $1 / $2 : 0}')" "$c"
done
echo "rvs CPU: rvs-vswitchd's user+system time over the forwarding seconds, % of one CPU (median);"
echo "  '-' for the Linux bridge, whose forwarding runs in testpmd's system calls and softirqs"
