#!/usr/bin/env bash
# Builds the guest image of the VM tests (issue 24, part 1) from Debian's packages
# alone and prints the directory holding it:
#
#   scripts/vm-image.sh [TARGET_DIR]      # default: ./target; the image goes to TARGET_DIR/vm/KEY/
#
#   KEY/vmlinuz      the kernel of Debian's current linux-image-amd64 (apt-get download +
#                    dpkg-deb -x: nothing is installed, /boot is not touched)
#   KEY/initrd.img   busybox-static, the kernel's virtio modules (virtio-pci, virtio-net
#                    with its failover helpers, virtio-console), iperf3 with its libraries,
#                    and /init (below)
#
# KEY names the versions of the kernel, busybox-static and iperf3 packages, so a new
# package version builds a new image and an unchanged one is reused (a few seconds the
# first time, nothing after; older images are removed). Concurrent callers serialize on a lock.
#
# Why a shell script and not Rust in the test kit: every step is a Debian tool
# (apt-get, dpkg-deb, cpio); the test kit calls this script, and a person can run it
# and boot the result by hand.
#
# The guest's /init reads its settings from the kernel command line:
#   rvs.ip=198.18.0.1/24   address of eth0 (the test's own range, 198.18.0.0/15)
#   rvs.mac=52:54:00:..    checked against eth0's MAC (QEMU sets the MAC; a mismatch is reported)
#   rvs.run=CMD            a command to run once the NIC is up (spaces as %20), output on the console
#   rvs.poweroff=1         power off after rvs.run (boot probes, one-shot guests)
# and reports on the serial console (ttyS0): "RVS-READY ip=.. mac=.." once eth0 is up,
# "RVS-RUN-RC n" after rvs.run. It then serves a small agent on the virtio-serial port
# named "rvs.agent": each line "ID COMMAND" is run with sh, its output (stdout+stderr)
# written back followed by a line "@@RVS-END ID RC".
set -euo pipefail

target="${1:-target}"
mkdir -p "$target/vm"
target="$(cd "$target" && pwd)"

die() { echo "vm-image.sh: $*" >&2; exit 1; }
for t in apt-cache apt-get dpkg-deb dpkg-query gzip ldd; do
    command -v "$t" >/dev/null || die "needs $t"
done
# (grep -x without -q: an early exit would kill busybox with SIGPIPE under pipefail)
[ -x /bin/busybox ] && /bin/busybox --list | grep -x cpio >/dev/null \
    || die "needs busybox-static (/bin/busybox with cpio): apt-get install busybox-static"
command -v iperf3 >/dev/null || die "needs iperf3: apt-get install iperf3"

# The kernel: the package linux-image-amd64 depends on, at its candidate version.
find_kernel() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg="${RVS_VM_KERNEL_PKG:-$(find_kernel)}"
if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
    # A machine whose package lists were never fetched knows no kernel package yet.
    apt-get update -qq >/dev/null 2>&1 || true
    kpkg="$(find_kernel)"
fi
[ -n "$kpkg" ] || die "no kernel package found (apt-get update first?)"
kver="$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2}')"
[ -n "$kver" ] && [ "$kver" != "(none)" ] || die "$kpkg has no candidate version (apt-get update first?)"
bbver="$(dpkg-query -W -f='${Version}' busybox-static)"
ipver="$(dpkg-query -W -f='${Version}' iperf3)"
# The image's format changes with this script too.
self="$(sha256sum "$0" | cut -c1-8)"
key="$(printf '%s_%s_bb%s_ip%s_%s' "$kpkg" "$kver" "$bbver" "$ipver" "$self" | tr ':~+' '---')"
out="$target/vm/$key"

exec 9>"$target/vm/.lock"
flock -w 600 9 || die "timed out waiting for $target/vm/.lock"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
    echo "$out"
    exit 0
fi

work="$(mktemp -d "$target/vm/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "vm-image.sh: building $key" >&2

# Kernel package: downloaded (not installed), unpacked into the work directory.
(cd "$work" && apt-get download -q "$kpkg=$kver" >/dev/null 2>&1) \
    || (cd "$work" && apt-get download "$kpkg=$kver") \
    || die "apt-get download $kpkg=$kver failed"
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/k"
kdir="$(ls -d "$work"/k/lib/modules/*/ | head -n1)"
krel="$(basename "$kdir")"

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,lib/modules,lib64,usr/lib/x86_64-linux-gnu,run}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done

# Modules: the ones the guest needs and, before each, what it depends on (modinfo's
# `depends`, depth first). Built-in ones (=y) need nothing: modules.builtin names them.
command -v modinfo >/dev/null || die "needs modinfo (package kmod)"
: >"$root/lib/modules/order"
add_mod() {
    local m="$1" f d
    grep -qx "$m" "$root/lib/modules/order" && return 0
    f="$(find "$kdir/kernel" -name "$m.ko*" | head -n1)"
    if [ -z "$f" ]; then
        grep -q "/$m.ko" "$kdir/modules.builtin" || die "$m is neither a module nor built into $krel"
        return 0
    fi
    for d in $(modinfo -F depends "$f" | tr ',' ' '); do add_mod "$d"; done
    case "$f" in
        *.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
        *) cp "$f" "$root/lib/modules/$m.ko" ;;
    esac
    echo "$m" >>"$root/lib/modules/order"
}
# 8021q: a guest on a trunk makes VLAN devices.
for m in virtio_pci virtio_net virtio_console 8021q; do add_mod "$m"; done

# iperf3 with the libraries it links (ldd's paths; the loader at its own path).
cp "$(command -v iperf3)" "$root/bin/iperf3"
ldd "$(command -v iperf3)" | awk '/=> \// {print $3} /^\t\/lib64/ {print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cat >"$root/init" <<'EOF'
#!/bin/sh
# rvs test guest (scripts/vm-image.sh): NIC from the kernel command line, then an agent.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
exec </dev/console >/dev/console 2>&1
say() { echo "$*" >/dev/ttyS0; }
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || say "RVS-ERROR insmod $m"; done
ip=; mac=; run=; off=
for a in $(cat /proc/cmdline); do
    case "$a" in
        rvs.ip=*) ip="${a#rvs.ip=}" ;;
        rvs.mac=*) mac="${a#rvs.mac=}" ;;
        rvs.run=*) run="$(echo "${a#rvs.run=}" | sed 's/%20/ /g')" ;;
        rvs.poweroff=1) off=1 ;;
    esac
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if [ -e /sys/class/net/eth0 ]; then
    have="$(cat /sys/class/net/eth0/address)"
    [ -z "$mac" ] || [ "$have" = "$mac" ] || say "RVS-ERROR eth0 has MAC $have, not $mac"
    ip link set eth0 up
    [ -z "$ip" ] || ip addr add "$ip" dev eth0
    say "RVS-READY ip=$ip mac=$have kernel=$(uname -r)"
else
    say "RVS-READY ip= mac= nic=none kernel=$(uname -r)"
fi
if [ -n "$run" ]; then
    sh -c "$run" >/dev/ttyS0 2>&1
    say "RVS-RUN-RC $?"
fi
[ -z "$off" ] || poweroff -f
# The agent: one command per line on the virtio-serial port "rvs.agent".
port=; i=0
while [ -z "$port" ] && [ $i -lt 50 ]; do
    for p in /sys/class/virtio-ports/*; do
        [ "$(cat $p/name 2>/dev/null)" = rvs.agent ] && [ -e /dev/$(basename $p) ] && port=/dev/$(basename $p)
    done
    [ -n "$port" ] || sleep 0.1
    i=$((i+1))
done
if [ -z "$port" ]; then
    say "RVS-NOAGENT"
    while true; do sleep 3600; done
fi
# A virtio port opens once at a time, so one descriptor reads and writes.
exec 3<>"$port"
while true; do
    # Read returns end-of-file while no host is connected: wait and try again.
    while read -r id cmd <&3; do
        out="$(sh -c "$cmd" </dev/null 2>&1)"; rc=$?
        printf '%s\n@@RVS-END %s %s\n' "$out" "$id" "$rc" >&3
    done
    sleep 0.2
done
EOF
chmod 755 "$root/init"

mkdir -p "$work/out"
(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -6) >"$work/out/initrd.img"
cp "$work"/k/boot/vmlinuz-* "$work/out/vmlinuz"
printf 'kernel %s %s (%s)\nbusybox-static %s\niperf3 %s\n' "$kpkg" "$kver" "$krel" "$bbver" "$ipver" >"$work/out/versions"
rm -rf "$out"
mv "$work/out" "$out"
# Images of older package versions (or of an older version of this script) are not used again.
for old in "$target"/vm/linux-image-*; do
    [ "$old" = "$out" ] || rm -rf "$old"
done
echo "$out"
