#!/usr/bin/env bash
# End-to-end benchmark: rvs against the Linux bridge, kernel VXLAN and Open vSwitch's
# userspace datapath, measured in one run on this machine, in network namespaces.
#
# As root; installs its tools when missing (scripts/prereqs.sh bench).
#   benches/e2e.sh            # 3 runs of each measurement, medians
#   benches/e2e.sh --quick    # 1 short run each
#   E2E_ROWS="rvs-veth linux-bridge" benches/e2e.sh   # only these rows
#   E2E_WORKERS=2 benches/e2e.sh   # rvs with other_config:n-workers=2
#   E2E_BIN=/other/target/release benches/e2e.sh   # another build of rvs
#   E2E_VM=1 benches/e2e.sh        # also two QEMU guests through each switch (benches/vm.rs)
#
# Rows (each built, measured, torn down in turn):
#   one node:   linux-bridge (veths) | rvs-tap (VMs on rvs taps) | rvs-veth (rvs
#               AF_PACKET on veths) | ovs-netdev (OVS userspace datapath, veths)
#   two nodes:  kernel-vxlan (vxlan + bridge) | rvs-vxlan (rvs, taps) | mixed-vxlan
#               (vm1's node the kernel's vxlan + bridge, vm2's node rvs) | ovs-vxlan
#               (OVS userspace, br-phy)
#   polling:    rvs-tap-pmd, rvs-veth-pmd, rvs-vxlan-pmd: the rvs rows with
#               other_config:pmd-cpu-mask, one polling worker per node pinned to a CPU
#               of its own (the last CPU; across VXLAN, nodes 1 and 2 on the last two
#               CPUs, or both on the last one on a machine with fewer than 4 CPUs)
# Metrics: single-stream TCP (iperf3), 64-byte frames delivered per second (trafgen,
# counted at the receiving VM), round-trip time (median and 99th percentile of ping's
# replies at 100/s, with the CPU the switch daemons used meanwhile; median of sockperf
# ping-pong when installed), and the CPU the switch daemon(s) use while idle (no
# traffic, 10 s, from /proc/PID/stat; rvs and OVS rows). Each figure is
# the median of the runs and is also given as a ratio to the kernel row of its class
# (one node: linux-bridge; two nodes: kernel-vxlan). The rows take turns: every row is
# built, measured once and torn down, then the next; then the second run of each.
# The report also gives what one thread wake-up costs on the machine (benches/wakeup.rs).
# Output: a table on stdout and in bench-results/e2e-DATE.txt, a CSV, and a PNG plot
# (gnuplot). Addresses: 198.18.0.0/15 only, inside namespaces made here; everything is
# removed on exit, also on failure or Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "e2e.sh: needs root (namespaces, taps)" >&2; exit 1; }

RUNS=3; TCP_SECS=8; PPS_SECS=4; PING_COUNT=200; IDLE_SECS=10
if [ "${1:-}" = "--quick" ]; then RUNS=1; TCP_SECS=3; PPS_SECS=2; PING_COUNT=50; IDLE_SECS=3; fi

. scripts/prereqs.sh bench || exit 1
HAVE_OVS=0; command -v ovs-vswitchd >/dev/null && command -v ovsdb-server >/dev/null && HAVE_OVS=1
HAVE_SOCKPERF=0; command -v sockperf >/dev/null && HAVE_SOCKPERF=1
HAVE_GNUPLOT=0; command -v gnuplot >/dev/null && HAVE_GNUPLOT=1

cargo build --release --workspace --bins -q || exit 1
# What one thread wake-up costs on this machine (benches/wakeup.rs): rvs pays it per
# frame when traffic is sparse (ping), the kernel's bridge does not. Into the report.
cargo bench -q --bench wakeup --no-run 2>/dev/null
WAKEUP="$(timeout 60 cargo bench -q --bench wakeup 2>/dev/null)"
BIN="${E2E_BIN:-$PWD/target/release}"
P="e2e$$"                       # name prefix, unique per run
WORK="$(mktemp -d /tmp/rvs-e2e.XXXXXX)"
OUT_DIR="bench-results"; mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y%m%d-%H%M%S)"
RESULTS="$WORK/results.csv"; echo "row,metric,run,value" > "$RESULTS"

cleanup() {
    set +e
    for f in "$WORK"/*/rvs-vswitchd.pid "$WORK"/*/vs.pid "$WORK"/*/ovsdb.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    pkill -f "iperf3 -s -p 52" 2>/dev/null; pkill -f "sockperf sr" 2>/dev/null; pkill -f "trafgen -i $WORK" 2>/dev/null
    sleep 0.3
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P"); do ip netns del "$ns"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }
nsx() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }
mkns() { ip netns add "$P$1"; ip -n "$P$1" link set lo up; }
delall() { for ns in $(ip netns list | awk '{print $1}' | grep "^$P"); do ip netns del "$ns"; done; }
record() { echo "$1,$2,$3,$4" >> "$RESULTS"; }

# --- the two VMs every row ends with: namespaces vm1/vm2, devices and addresses ----
VM1_DEV=""; VM2_DEV=""; VM1_IP=198.18.60.1; VM2_IP=198.18.60.2

vm_addr() { # ns dev ip
    ip -n "$P$1" link set "$2" up
    ip -n "$P$1" addr add "$3/24" dev "$2"
}

# --- measurements ----------------------------------------------------------------------
measure_tcp() { # row
    nsx vm2 iperf3 -s -p 5201 -1 -D >/dev/null 2>&1; sleep 0.4
    local j bps
    j=$(nsx vm1 timeout $((TCP_SECS + 20)) iperf3 -c $VM2_IP -p 5201 -t "$TCP_SECS" -J 2>/dev/null)
    bps=$(printf '%s' "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])' 2>/dev/null || echo 0)
    pkill -f "iperf3 -s -p 5201" 2>/dev/null
    python3 -c "print(round($bps/1e9, 3))"
}

measure_pps() { # row: 64-byte UDP frames from vm1 to vm2, counted at vm2
    local dmac cfg a b
    dmac=$(nsx vm2 cat /sys/class/net/$VM2_DEV/address)
    cfg="$WORK/tg.cfg"
    {
        printf '{ %s, ' "$(echo "$dmac" | sed 's/^/0x/; s/:/, 0x/g')"
        printf '0x02, 0xe2, 0xe0, 0x00, 0x00, 0x01, 0x08, 0x00, '
        printf '0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, csumip(14, 33), '
        printf '198, 18, 60, 1, 198, 18, 60, 2, 0x13, 0x88, 0x13, 0x89, 0x00, 0x1a, 0x00, 0x00, fill(0x41, 18) }\n'
    } > "$cfg"
    # One generator process on one core: the other core is left to the switch (a
    # userspace switch needs a core of its own; the kernel bridge forwards in the
    # sender's context).
    nsx vm1 trafgen -i "$cfg" -o "$VM1_DEV" -q -b 0 -P 1 >/dev/null 2>&1 &
    sleep 1
    a=$(nsx vm2 cat /sys/class/net/$VM2_DEV/statistics/rx_packets)
    sleep "$PPS_SECS"
    b=$(nsx vm2 cat /sys/class/net/$VM2_DEV/statistics/rx_packets)
    # trafgen runs its generator in a child process: stop them all.
    pkill -f "trafgen -i $cfg" 2>/dev/null
    sleep 1   # let queues drain before the next measurement
    echo $(( (b - a) / PPS_SECS ))
}

measure_rtt() { # prints the median and 99th percentile ping RTT in µs, and the % of a core the daemons used meanwhile
    local t0 t1 s0 s1
    t0=$(daemon_ticks); s0=$(date +%s%N)
    nsx vm1 ping -c "$PING_COUNT" -i 0.01 $VM2_IP 2>/dev/null > "$WORK/ping.out"
    t1=$(daemon_ticks); s1=$(date +%s%N)
    python3 - "$WORK/ping.out" "$t0" "$t1" "$s0" "$s1" "$(getconf CLK_TCK)" <<'PY'
import re, sys, statistics
t = sorted(float(m.group(1)) * 1000 for m in re.finditer(r"time=([0-9.]+) ms", open(sys.argv[1]).read()))
t0, t1, s0, s1, hz = (float(x) for x in sys.argv[2:7])
cpu = (t1 - t0) * 100 / hz / ((s1 - s0) / 1e9) if s1 > s0 else 0
if t:
    print(f"{statistics.median(t):.1f} {t[min(len(t) - 1, int(len(t) * 0.99))]:.1f} {cpu:.1f}")
PY
}

daemon_ticks() { # CPU ticks (user + system) the row's switch daemons used so far
    local s=0 f
    for f in "$WORK"/*/rvs-vswitchd.pid "$WORK"/*/vs.pid; do
        [ -f "$f" ] && s=$((s + $(awk '{print $14 + $15}' "/proc/$(cat "$f")/stat" 2>/dev/null || echo 0)))
    done
    echo $s
}

measure_sockperf() { # prints the median round trip in µs (sockperf reports half)
    [ $HAVE_SOCKPERF = 1 ] || { echo ""; return; }
    nsx vm2 sockperf sr -i $VM2_IP -p 11111 >/dev/null 2>&1 &
    local srv=$!; sleep 0.5
    local lat
    lat=$(nsx vm1 timeout 20 sockperf pp -i $VM2_IP -p 11111 -t 3 2>/dev/null | awk '/percentile 50.000 =/ {print $NF * 2}' | tail -1)
    kill $srv 2>/dev/null; wait $srv 2>/dev/null
    # $! is the shell running `ip netns exec`; the server itself may outlive it
    pkill -f "sockperf sr -i $VM2_IP -p 11111" 2>/dev/null
    echo "$lat"
}

measure_idle() { # prints the % of one core the row's daemons used over IDLE_SECS, or ""
    local pids=() f t0=0 t1=0 p
    for f in "$WORK"/*/rvs-vswitchd.pid "$WORK"/*/vs.pid; do [ -f "$f" ] && pids+=("$(cat "$f")"); done
    [ ${#pids[@]} -gt 0 ] || { echo ""; return; }
    cpu_ticks() { local s=0 p; for p in "${pids[@]}"; do s=$((s + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $s; }
    t0=$(cpu_ticks); sleep "$IDLE_SECS"; t1=$(cpu_ticks)
    python3 -c "print(round(($t1 - $t0) * 100 / $(getconf CLK_TCK) / $IDLE_SECS, 2))"
}

run_measurements() { # row run: one run of every measurement (idle CPU in the first)
    local row=$1 r=$2 v
    # warm up: ARP and MAC learning
    nsx vm1 ping -c 3 -i 0.2 -W 1 $VM2_IP >/dev/null 2>&1 || { log "  $row: no connectivity, skipping"; return 1; }
    sleep 1
    if [ "$r" = 1 ]; then
        v=$(measure_idle); [ -n "$v" ] && { record "$row" idle_cpu 1 "$v"; log "  $row: idle CPU $v % of a core"; }
    fi
    v=$(measure_tcp "$row"); record "$row" tcp_gbps "$r" "$v"; log "  $row run $r: TCP $v Gbit/s"
    v=$(measure_pps "$row"); record "$row" pps64 "$r" "$v"; log "  $row run $r: $v frames/s (64 B)"
    read -r v p99 cpu <<< "$(measure_rtt)"
    record "$row" rtt_us "$r" "$v"; record "$row" rtt_p99_us "$r" "$p99"; record "$row" rtt_cpu "$r" "$cpu"
    log "  $row run $r: ping RTT median $v µs, p99 $p99 µs, daemons' CPU meanwhile $cpu % of a core"
    v=$(measure_sockperf); [ -n "$v" ] && { record "$row" pp_us "$r" "$v"; log "  $row run $r: sockperf ping-pong RTT $v µs"; }
}

# --- topologies -------------------------------------------------------------------------
two_vms_on_veths() { # node-ns: makes veth pairs vm1<->node, vm2<->node; prints node-side names
    mkns vm1; mkns vm2
    ip link add ${P}n1 netns "$P$1" type veth peer name ${P}v1 netns "${P}vm1"
    ip link add ${P}n2 netns "$P$1" type veth peer name ${P}v2 netns "${P}vm2"
    ip -n "$P$1" link set ${P}n1 up; ip -n "$P$1" link set ${P}n2 up
    VM1_DEV=${P}v1; VM2_DEV=${P}v2
    vm_addr vm1 $VM1_DEV $VM1_IP; vm_addr vm2 $VM2_DEV $VM2_IP
}

rvsctl() { local dir=$1; shift; "$BIN/rvsctl" --db="unix:$dir/rvs.sock" "$@"; }
PMD_CPU=""   # set by the polling rows: the CPU the node's worker polls on
start_rvs() { # ns dir
    mkdir -p "$2"
    ip netns exec "$P$1" "$BIN/rvs-vswitchd" --rundir "$2" --dbdir "$2" --detach --pidfile --log-file="$2/log"
    [ -z "${E2E_WORKERS:-}" ] || rvsctl "$2" set Open_vSwitch . other_config:n-workers="$E2E_WORKERS"
    [ -z "$PMD_CPU" ] || rvsctl "$2" set Open_vSwitch . other_config:pmd-cpu-mask="$(printf '0x%x' $((1 << PMD_CPU)))"
}
LAST_CPU=$(( $(nproc) - 1 ))

start_ovs() { # ns dir
    local d=$2; mkdir -p "$d"
    ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ip netns exec "$P$1" ovsdb-server "$d/conf.db" --remote=punix:"$d/db.sock" --unixctl="$d/ovsdb.ctl" --pidfile="$d/ovsdb.pid" --detach --log-file="$d/ovsdb.log"
    ovs-vsctl --db=unix:"$d/db.sock" --no-wait init
    ip netns exec "$P$1" env OVS_RUNDIR="$d" ovs-vswitchd unix:"$d/db.sock" --pidfile="$d/vs.pid" --unixctl="$d/vs.ctl" --detach --log-file="$d/vs.log"
}
ovsctl() { local d=$1; shift; ovs-vsctl --db=unix:"$d/db.sock" --timeout=20 "$@"; }

stop_daemons() {
    for f in "$WORK"/*/rvs-vswitchd.pid "$WORK"/*/vs.pid "$WORK"/*/ovsdb.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null && rm -f "$f"
    done
    sleep 0.5
    delall
    # the daemons' directories (databases, sockets, logs): the next build starts afresh
    find "$WORK" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
}

row_linux_bridge() {
    mkns node; ip -n ${P}node link add br0 type bridge; ip -n ${P}node link set br0 up
    two_vms_on_veths node
    ip -n ${P}node link set ${P}n1 master br0; ip -n ${P}node link set ${P}n2 master br0
}

row_rvs_tap() {
    mkns node; start_rvs node "$WORK/rt"
    rvsctl "$WORK/rt" add-br br0
    mkns vm1; mkns vm2
    for n in 1 2; do
        rvsctl "$WORK/rt" add-port br0 ${P}t$n -- set Interface ${P}t$n type=tap
        ip -n ${P}node link set ${P}t$n netns ${P}vm$n
    done
    VM1_DEV=${P}t1; VM2_DEV=${P}t2
    vm_addr vm1 $VM1_DEV $VM1_IP; vm_addr vm2 $VM2_DEV $VM2_IP
}

row_rvs_veth() {
    mkns node; start_rvs node "$WORK/rv"
    rvsctl "$WORK/rv" add-br br0
    two_vms_on_veths node
    rvsctl "$WORK/rv" add-port br0 ${P}n1 -- add-port br0 ${P}n2
}

row_ovs_netdev() {
    mkns node; start_ovs node "$WORK/on"
    ovsctl "$WORK/on" add-br br0 -- set bridge br0 datapath_type=netdev
    two_vms_on_veths node
    ovsctl "$WORK/on" add-port br0 ${P}n1 -- add-port br0 ${P}n2
    # OVS's userspace datapath cannot complete partial checksums from veths.
    nsx vm1 ethtool -K $VM1_DEV tx off >/dev/null; nsx vm2 ethtool -K $VM2_DEV tx off >/dev/null
}

two_nodes_underlay() { # MTU 1600 underlay veth between node1 and node2
    mkns node1; mkns node2
    ip link add ${P}u1 netns ${P}node1 mtu 1600 type veth peer name ${P}u2 netns ${P}node2 mtu 1600
    ip -n ${P}node1 link set ${P}u1 up; ip -n ${P}node2 link set ${P}u2 up
}

kernel_vxlan_node() { # n: node n with the kernel's vxlan and bridge, vm n on a veth
    local n=$1 p=$((3 - $1))
    ip -n ${P}node$n addr add 198.19.60.$n/24 dev ${P}u$n
    ip -n ${P}node$n link add vx type vxlan id 5000 dstport 4789 remote 198.19.60.$p local 198.19.60.$n
    ip -n ${P}node$n link add kbr type bridge
    ip -n ${P}node$n link set vx master kbr; ip -n ${P}node$n link set vx up; ip -n ${P}node$n link set kbr up
    ip link add ${P}n$n netns ${P}node$n type veth peer name ${P}v$n netns ${P}vm$n
    ip -n ${P}node$n link set ${P}n$n master kbr; ip -n ${P}node$n link set ${P}n$n up
}

rvs_vxlan_node() { # n: node n with rvs, a VXLAN port and vm n on an rvs tap
    local n=$1 p=$((3 - $1)) d="$WORK/rx$1"
    ip -n ${P}node$n addr add 198.19.60.$n/24 dev ${P}u$n
    # Polling across VXLAN: each node's worker on a CPU of its own (the last two) when
    # the machine has CPUs left for the VMs; with fewer than 4, both on the last CPU
    # (they take turns there, yielding on every empty poll) and the VMs on the rest.
    [ -z "$PMD_CPU" ] || PMD_CPU=$(( LAST_CPU >= 3 ? LAST_CPU - 2 + n : LAST_CPU ))
    start_rvs node$n "$d"
    rvsctl "$d" add-br br0
    rvsctl "$d" add-port br0 vx -- set Interface vx type=vxlan options:remote_ip=198.19.60.$p options:key=5000
    rvsctl "$d" add-port br0 ${P}t$n -- set Interface ${P}t$n type=tap
    ip -n ${P}node$n link set ${P}t$n netns ${P}vm$n
}

row_kernel_vxlan() {
    two_nodes_underlay; mkns vm1; mkns vm2
    kernel_vxlan_node 1; kernel_vxlan_node 2
    VM1_DEV=${P}v1; VM2_DEV=${P}v2
    vm_addr vm1 $VM1_DEV $VM1_IP; vm_addr vm2 $VM2_DEV $VM2_IP
}

row_rvs_vxlan() {
    two_nodes_underlay; mkns vm1; mkns vm2
    rvs_vxlan_node 1; rvs_vxlan_node 2
    VM1_DEV=${P}t1; VM2_DEV=${P}t2
    vm_addr vm1 $VM1_DEV $VM1_IP; vm_addr vm2 $VM2_DEV $VM2_IP
}

row_rvs_tap_pmd() { PMD_CPU=$LAST_CPU; row_rvs_tap; }
row_rvs_veth_pmd() { PMD_CPU=$LAST_CPU; row_rvs_veth; }
row_rvs_vxlan_pmd() { PMD_CPU=$LAST_CPU; row_rvs_vxlan; }

# A cluster part-way through moving to rvs: the sending VM's node runs the kernel's
# vxlan, the receiving VM's node rvs. The generator's frames reach rvs one datagram
# each (the kernel sends no trains of small frames).
row_mixed_vxlan() {
    two_nodes_underlay; mkns vm1; mkns vm2
    kernel_vxlan_node 1; rvs_vxlan_node 2
    # The kernel leaves the inner TCP checksum of what it encapsulates to the NIC's
    # offload, and a veth never fills it in (the kernel-vxlan row's receiver trusts the
    # skb's checksum state, which a UDP socket's reader never sees): the underlay
    # "NIC" of node 1 computes checksums in software instead, as with a real NIC
    # without tunnel offloads. vm1 keeps its TSO.
    ip netns exec ${P}node1 ethtool -K ${P}u1 tx off >/dev/null
    # ... and node 2's underlay "NIC" merges what arrives with GRO, as a real NIC's
    # driver does by default (a veth only with `gro on`), so rvs reads UDP GRO trains
    # rather than one datagram per TCP segment. (Between rvs nodes the trains come
    # whole from the sender and this makes no difference.)
    ip netns exec ${P}node2 ethtool -K ${P}u2 gro on >/dev/null
    VM1_DEV=${P}v1; VM2_DEV=${P}t2
    vm_addr vm1 $VM1_DEV $VM1_IP; vm_addr vm2 $VM2_DEV $VM2_IP
}

row_ovs_vxlan() {
    two_nodes_underlay; mkns vm1; mkns vm2
    for n in 1 2; do
        local p=$((3 - n)) d="$WORK/ox$n"
        start_ovs node$n "$d"
        ovsctl "$d" add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy ${P}u$n
        ip -n ${P}node$n addr add 198.19.60.$n/24 dev br-phy; ip -n ${P}node$n link set br-phy up
        ovsctl "$d" add-br br-int -- set bridge br-int datapath_type=netdev
        ovsctl "$d" add-port br-int vx -- set Interface vx type=vxlan options:remote_ip=198.19.60.$p options:key=5000
        ip link add ${P}n$n netns ${P}node$n type veth peer name ${P}v$n netns ${P}vm$n
        ip -n ${P}node$n link set ${P}n$n up
        ovsctl "$d" add-port br-int ${P}n$n
        # see row_ovs_netdev; and the outer UDP checksum the kernel leaves partial on
        # a veth underlay must be completed before OVS reads it from the raw socket.
        ip netns exec ${P}node$n ethtool -K ${P}u$n tx off >/dev/null
    done
    VM1_DEV=${P}v1; VM2_DEV=${P}v2
    vm_addr vm1 $VM1_DEV $VM1_IP; vm_addr vm2 $VM2_DEV $VM2_IP
    nsx vm1 ethtool -K $VM1_DEV tx off >/dev/null; nsx vm2 ethtool -K $VM2_DEV tx off >/dev/null
}

# The rows take turns: run 1 of every row, then run 2 of every row, ... (each row built
# and torn down every time), so that the machine's slow and fast phases, which last
# minutes on a shared host, fall on kernel and rvs rows alike rather than on whole rows.
ROWS=(linux-bridge rvs-tap rvs-tap-pmd rvs-veth rvs-veth-pmd ovs-netdev kernel-vxlan rvs-vxlan rvs-vxlan-pmd mixed-vxlan ovs-vxlan)
for r in $(seq 1 "$RUNS"); do
    for row in "${ROWS[@]}"; do
        [ -z "${E2E_ROWS:-}" ] || [[ " $E2E_ROWS " == *" $row "* ]] || continue
        case $row in ovs-*) [ $HAVE_OVS = 1 ] || { [ "$r" = 1 ] && log "== $row: Open vSwitch not installed, skipped"; continue; } ;; esac
        log "== $row (run $r of $RUNS)"
        fn="row_${row//-/_}"
        if $fn >"$WORK/setup-$row.log" 2>&1; then
            sleep 1
            run_measurements "$row" "$r" || true
        else
            log "  $row: setup failed: $(tail -3 "$WORK/setup-$row.log")"
        fi
        stop_daemons
        PMD_CPU=""
    done
done

# --- report ------------------------------------------------------------------------------
REPORT="$OUT_DIR/e2e-$STAMP.txt"; CSV="$OUT_DIR/e2e-$STAMP.csv"; PNG="$OUT_DIR/e2e-$STAMP.png"
WAKEUP="$WAKEUP" python3 - "$RESULTS" "$CSV" "$RUNS" > "$REPORT" <<'PY'
import csv, statistics, sys, collections, platform, os, subprocess
src, out_csv, runs = sys.argv[1], sys.argv[2], sys.argv[3]
vals = collections.defaultdict(list)
for r in csv.DictReader(open(src)):
    try:
        vals[(r["row"], r["metric"])].append(float(r["value"]))
    except ValueError:
        pass
rows = ["linux-bridge", "rvs-tap", "rvs-tap-pmd", "rvs-veth", "rvs-veth-pmd", "ovs-netdev", "kernel-vxlan", "rvs-vxlan", "rvs-vxlan-pmd", "mixed-vxlan", "ovs-vxlan"]
base = {r: ("linux-bridge" if r in rows[:6] else "kernel-vxlan") for r in rows}
metrics = [("tcp_gbps", "TCP Gbit/s", True), ("pps64", "64B frames/s", True), ("rtt_us", "ping RTT us", False), ("rtt_p99_us", "ping p99 us", False), ("rtt_cpu", "CPU% in ping", None), ("pp_us", "sockperf RTT us", False), ("idle_cpu", "idle CPU %", None)]
med = {k: statistics.median(v) for k, v in vals.items() if v}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"rvs end-to-end benchmark, {runs} run(s) per figure (medians; the rows take turns run by run); ratio = this row / kernel row of its class")
print(f"machine: {os.cpu_count()} cores, {cpu}, kernel {platform.release()}")
print(f"rvs datapath workers per daemon: {os.environ.get('E2E_WORKERS') or 1}")
for l in os.environ.get("WAKEUP", "").splitlines():
    print(f"machine: {l}")
hdr = f"{'row':<13}" + "".join(f"{name:>22}" for _, name, _ in metrics)
print(hdr); print("-" * len(hdr))
w = csv.writer(open(out_csv, "w"))
w.writerow(["row"] + [m for m, _, _ in metrics] + [m + "_ratio" for m, _, _ in metrics])
for r in rows:
    if not any((r, m) in med for m, _, _ in metrics):
        continue
    cells, raw, ratios = [], [], []
    for m, _, higher in metrics:
        v, b = med.get((r, m)), med.get((base[r], m))
        if v is None:
            cells.append(f"{'-':>22}"); raw.append(""); ratios.append(""); continue
        ratio = (v / b if higher else b / v) if b and higher is not None else None
        fmt = f"{v:.3f}" if m == "tcp_gbps" else (f"{v:.0f}" if m == "pps64" else (f"{v:.2f}" if m in ("idle_cpu", "rtt_cpu") else f"{v:.1f}"))
        cells.append(f"{fmt + (f' ({ratio:.2f}x)' if ratio else ''):>22}")
        raw.append(v); ratios.append(f"{ratio:.3f}" if ratio else "")
    print(f"{r:<13}" + "".join(cells))
    w.writerow([r] + raw + ratios)
print()
print("Ratios are 'better than the kernel' when above 1: throughput and frame rate divided")
print("by the kernel's; for round-trip times the kernel's divided by this row's. Idle CPU:")
print("% of one core used by the row's switch daemon(s) with no traffic (kernel rows: none);")
print("CPU% in ping: the same while ping ran (100/s). The -pmd rows keep a CPU per node busy by design")
print("(100 % each; rvs-vxlan-pmd's two nodes share one CPU on a machine with fewer than 4).")
# The spread: each run's ratio to the kernel row measured in the same turn (the rows
# take turns, so a run's rows share the machine's phase).
byrun = collections.defaultdict(dict)
for r in csv.DictReader(open(src)):
    try:
        byrun[(r["row"], r["metric"])][r["run"]] = float(r["value"])
    except ValueError:
        pass
lines = []
for r in rows:
    if r == base[r]:
        continue
    cells = []
    for m, name, higher in metrics:
        if higher is None:
            continue
        mine, kern = byrun.get((r, m), {}), byrun.get((base[r], m), {})
        rs = [(v / kern[k] if higher else kern[k] / v) for k, v in sorted(mine.items()) if kern.get(k) and v]
        if rs:
            cells.append(f"{name.split(' ')[0] if m != 'pps64' else '64B'} " + " ".join(f"{x:.2f}" for x in rs))
    if cells:
        lines.append(f"{r:<13}" + "; ".join(cells))
if lines and int(runs) > 1:
    print()
    print("Ratio of each run to the kernel row of the same run (run 1, 2, ...):")
    for l in lines:
        print(l)
PY
cat "$REPORT"
if [ $HAVE_GNUPLOT = 1 ]; then
    gnuplot <<GP 2>/dev/null && echo "plot: $PNG"
set terminal png size 1000,520
set output "$PNG"
set datafile separator ","
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right
set ylabel "ratio to the kernel (higher is better)"
set yrange [0:*]
set xtics rotate by -20
set title "rvs vs Linux bridge / kernel VXLAN / OVS userspace (medians of $RUNS run(s))"
plot "$CSV" every ::1 using 9:xtic(1) title "TCP", "" every ::1 using 10 title "64B frames/s", "" every ::1 using 11 title "ping RTT", "" every ::1 using 14 title "sockperf RTT"
GP
fi
echo "table: $REPORT; csv: $CSV"
# With E2E_VM=1, the same comparison with QEMU guests instead of namespaces
# (benches/vm.rs: a few minutes more; under TCG the emulated guests bound every row).
if [ "${E2E_VM:-0}" = 1 ]; then
    cargo bench -q --bench vm | tee "$OUT_DIR/vm-$STAMP.txt"
fi
