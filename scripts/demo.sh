#!/usr/bin/env bash
# rvs demo: builds rvs, starts rvs-vswitchd on a private run/db directory, makes a
# bridge with three VMs (network namespaces on taps) in two VLANs, shows that VMs in
# VLAN 10 reach each other and VLAN 20 reaches neither, prints `rvsctl show` and
# `rvsctl fdb/show`, runs a short TCP transfer, restarts the daemon to show the
# configuration coming back and the VMs' taps kept, and cleans everything up. Run it as root: it installs
# what it lacks first (scripts/prereqs.sh: Rust, iproute2, ping, iperf3).
#
#   scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run it as root (it creates network namespaces and taps)" >&2; exit 1; }
. scripts/prereqs.sh demo

cargo build --release --workspace --bins
bin="$PWD/target/release"
dir="$(mktemp -d /tmp/rvs-demo.XXXXXX)"
node="rvsdemo-node-$$"
ctl() { "$bin/rvsctl" --db="unix:$dir/rvs.sock" "$@"; }
cleanup() {
    set +e
    [ -f "$dir/rvs-vswitchd.pid" ] && kill "$(cat "$dir/rvs-vswitchd.pid")" 2>/dev/null && sleep 0.5
    for n in 1 2 3; do ip netns del "rvsdemo-vm$n-$$" 2>/dev/null; done
    ip netns del "$node" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
start() { ip netns exec "$node" "$bin/rvs-vswitchd" --rundir "$dir" --dbdir "$dir" --detach --pidfile --log-file="$dir/rvs-vswitchd.log"; }

say "starting rvs-vswitchd (node namespace $node, run/db dir $dir)"
ip netns add "$node"
start

say "rvsctl add-br br0; three VM ports: vm1, vm2 in VLAN 10, vm3 in VLAN 20"
ctl add-br br0
for n in 1 2 3; do
    t=$([ $n = 3 ] && echo 20 || echo 10)
    ctl add-port br0 "vm$n" tag=$t -- set Interface "vm$n" type=tap
done
plug() {
    for n in 1 2 3; do
        ns="rvsdemo-vm$n-$$"
        ip netns list | grep -q "^$ns" || ip netns add "$ns"
        ip -n "$node" link set "vm$n" netns "$ns"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "vm$n" up
        ip -n "$ns" addr add "198.18.0.$n/24" dev "vm$n"
    done
}
plug
vm() { ip netns exec "rvsdemo-vm$1-$$" "${@:2}"; }

say "vm1 -> vm2 (same VLAN): expected to work"
vm 1 ping -c 3 -i 0.2 -W 1 198.18.0.2
say "vm3 -> vm1 (VLAN 20 -> VLAN 10): expected to fail"
if vm 3 ping -c 2 -i 0.2 -W 1 198.18.0.1; then echo "UNEXPECTED: VLAN leak"; exit 1; else echo "isolated, as it should be"; fi

say "rvsctl show"
ctl show
say "rvsctl fdb/show br0"
ctl fdb/show br0

say "3 s of TCP from vm1 to vm2 through rvs (iperf3)"
vm 2 iperf3 -s -1 -D >/dev/null 2>&1; sleep 0.3
vm 1 iperf3 -c 198.18.0.2 -t 3 | tail -4

say "restart: stop rvs-vswitchd, start it again (the VMs keep their taps and addresses)"
kill "$(cat "$dir/rvs-vswitchd.pid")"; sleep 0.5
ip -n rvsdemo-vm1-$$ -br addr show vm1
start
ctl list-ports br0
vm 1 ping -c 2 -i 0.2 -W 2 198.18.0.2 >/dev/null && echo "vm1 -> vm2 works again after the restart"
say "done (cleaning up)"
