#!/usr/bin/env bash
# Where a ping's round trip goes across rvs's VXLAN overlay, hop by hop, with sleeping
# (default-mode) workers: two rvs nodes in namespaces, a "VM" namespace on a tap of
# each, ping at 100/s from vm1 to vm2, and the kernel's scheduler and network
# tracepoints recorded meanwhile (`perf record -a`). For each echo request it finds:
#
#   send -> w1 runs      ping queues the request on its tap .. node 1's worker runs
#   w1 -> node 2         .. the VXLAN datagram is received on node 2's underlay
#   -> w2 runs           .. node 2's worker runs (a thread wake-up, often on the other CPU)
#   w2 -> node 1         .. it wrote the request to vm2's tap, vm2's kernel answered in
#                           that write, and the reply's datagram reached node 1
#   -> vm1's tap         .. node 1's worker wrote the reply to vm1's tap
#   -> ping runs         .. ping runs again with its reply
#
# and prints the median and 90th percentile of each hop in µs. Tracing slows every hop
# (each event costs ~1 µs): compare runs of this script with each other, not with
# benches/e2e.sh. As root; installs what it lacks (scripts/prereqs.sh bench; perf is in
# linux-perf). Addresses: 198.18.0.0/15 inside namespaces made here; everything is
# removed on exit.
#   benches/rtt-hops.sh [PINGS]           # default 300
#   RTT_BIN=/other/target/release benches/rtt-hops.sh   # another build of rvs
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "rtt-hops.sh: needs root (namespaces, taps, perf -a)" >&2; exit 1; }
PINGS="${1:-300}"
. scripts/prereqs.sh bench || exit 1
[ -n "${RTT_BIN:-}" ] || cargo build --release -q -p rvs-vswitchd -p rvsctl || exit 1
BIN="${RTT_BIN:-$PWD/target/release}"
P="rh$$"
WORK="$(mktemp -d /tmp/rvs-rtt.XXXXXX)"

cleanup() {
    set +e
    for f in "$WORK"/*/rvs-vswitchd.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    sleep 0.3
    for ns in n1 n2 vm1 vm2; do ip netns del "$P$ns" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rc() { local d=$1; shift; "$BIN/rvsctl" --db="unix:$d/rvs.sock" "$@"; }
for ns in n1 n2 vm1 vm2; do ip netns add "$P$ns"; ip -n "$P$ns" link set lo up; done
ip link add "${P}u1" netns "${P}n1" mtu 1600 type veth peer name "${P}u2" netns "${P}n2" mtu 1600
for n in 1 2; do
    p=$((3 - n)); d="$WORK/n$n"; mkdir -p "$d"
    ip -n "${P}n$n" link set "${P}u$n" up
    ip -n "${P}n$n" addr add "198.19.62.$n/24" dev "${P}u$n"
    ip netns exec "${P}n$n" "$BIN/rvs-vswitchd" --rundir "$d" --dbdir "$d" --detach --pidfile --log-file="$d/log" || exit 1
    rc "$d" add-br br0
    rc "$d" add-port br0 vx -- set Interface vx type=vxlan options:remote_ip="198.19.62.$p" options:key=5000
    rc "$d" add-port br0 "${P}t$n" -- set Interface "${P}t$n" type=tap
    ip -n "${P}n$n" link set "${P}t$n" netns "${P}vm$n"
    ip -n "${P}vm$n" link set "${P}t$n" up
    ip -n "${P}vm$n" addr add "198.18.62.$n/24" dev "${P}t$n"
done
ip netns exec "${P}vm1" ping -c 3 -i 0.2 -W 1 198.18.62.2 >/dev/null || { echo "rtt-hops.sh: no connectivity" >&2; exit 1; }

perf record -q -a -o "$WORK/perf.data" \
    -e sched:sched_switch,sched:sched_wakeup,net:net_dev_queue,net:netif_receive_skb -- \
    ip netns exec "${P}vm1" ping -c "$PINGS" -i 0.01 198.18.62.2 > "$WORK/ping.out" 2>&1
perf script -i "$WORK/perf.data" -F comm,tid,cpu,time,event,trace 2>/dev/null > "$WORK/events.txt"

python3 - "$WORK/events.txt" "$WORK/ping.out" "$P" <<'PY'
import re, sys
events_file, ping_file, p = sys.argv[1:]
line = re.compile(r'\s*(\S+)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+\S+:(\w+): (.*)')
ev = []
for l in open(events_file):
    m = line.match(l)
    if m and not (m.group(1) == 'perf' and m.group(5) != 'sched_switch'):
        comm, tid, cpu, t, name, rest = m.groups()
        ev.append((float(t) * 1e6, comm, tid, int(cpu), name, rest))

def next_pid(rest):
    m = re.search(r'next_comm=(\S+) next_pid=(\d+)', rest)
    return m.groups() if m else (None, None)

def worker_runs(e, other):
    # a datapath thread other than `other` is switched in, or already running
    t, comm, tid, cpu, name, rest = e
    if name == 'sched_switch':
        c, pid = next_pid(rest)
        return pid if c and c.startswith('rvs-datapath') and pid != other else None
    return tid if comm.startswith('rvs-datapath') and tid != other else None

hops = ['send -> w1 runs', 'w1 -> node 2', '-> w2 runs', 'w2 -> node 1', "-> vm1's tap", '-> ping runs']
rows, one_cpu = [], 0
for i, (t, comm, tid, cpu, name, rest) in enumerate(ev):
    if not (comm == 'ping' and name == 'net_dev_queue' and f'dev={p}t1 ' in rest):
        continue
    marks, w1, cpus = [t], None, {cpu}
    for e in ev[i + 1:i + 2000]:
        k = len(marks)
        tj, cj, tidj, cpuj, nj, rj = e
        if k == 1 and (w := worker_runs(e, None)):
            w1 = w; marks.append(tj); cpus.add(cpuj)
        elif k == 2 and nj == 'netif_receive_skb' and f'dev={p}u2 ' in rj:
            marks.append(tj)
        elif k == 3 and worker_runs(e, w1):
            marks.append(tj); cpus.add(cpuj)
        elif k == 4 and nj == 'netif_receive_skb' and f'dev={p}u1 ' in rj:
            marks.append(tj)
        elif k == 5 and nj == 'netif_receive_skb' and f'dev={p}t1 ' in rj:
            marks.append(tj)
        elif k == 6 and ((nj == 'sched_switch' and next_pid(rj)[0] == 'ping') or cj == 'ping'):
            marks.append(tj); cpus.add(cpuj)
            break
    if len(marks) == 7:
        rows.append([b - a for a, b in zip(marks, marks[1:])] + [marks[-1] - marks[0]])
        one_cpu += len(cpus) == 1

def q(v, f):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * f))]

rtt = [float(m.group(1)) * 1000 for m in (re.search(r'time=([\d.]+) ms', l) for l in open(ping_file)) if m]
print(f"ping (traced): {len(rtt)} replies, RTT median {q(rtt, .5):.0f} us, p90 {q(rtt, .9):.0f} us" if rtt else "ping: no replies")
if not rows:
    sys.exit("rtt-hops.sh: no complete round trip found in the trace")
print(f"{len(rows)} round trips traced; all on one CPU: {one_cpu}")
for k, h in enumerate(hops + ['total (request queued .. ping runs)']):
    v = [r[k] for r in rows]
    print(f"  {h:38s} median {q(v, .5):6.1f} us   p90 {q(v, .9):6.1f} us")
PY
