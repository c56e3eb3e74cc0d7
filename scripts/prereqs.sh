#!/usr/bin/env bash
# Installs what rvs's scripts need on a Debian machine, only what is missing, and
# checks that every tool is there afterwards. Sourced, not run, by scripts/demo.sh,
# scripts/test.sh, scripts/package.sh and the benchmarks' scripts:
#
#   . scripts/prereqs.sh demo     # build + demo: Rust, a C linker, iproute2, ping, iperf3
#   . scripts/prereqs.sh test     # everything the tests use, Open vSwitch included, and cargo-fuzz;
#                                 # for the VM tests QEMU, libvirt and busybox-static (the guest's
#                                 # kernel package is fetched by scripts/vm-image.sh with
#                                 # `apt-get download`, never installed)
#   . scripts/prereqs.sh bench    # the benchmarks' tools (trafgen, sockperf, gnuplot, OVS; dpdk-testpmd,
#                                 # which Debian 12 ships in dpdk-dev, for benches/vhost.sh; perf for
#                                 # benches/rtt-hops.sh)
#   . scripts/prereqs.sh package  # scripts/package.sh's tools (dpkg-deb, fakeroot, help2man, lintian)
#
# Leaves cargo on PATH. A tool that cannot be installed is named, with its package,
# and the script returns non-zero, so that no test runs into a missing program.

rvs_prereqs() {
    local what="${1:-test}"
    # Each entry: command:package. The command is what is checked after installing.
    local -a need=(ip:iproute2 ping:iputils-ping iperf3:iperf3 pgrep:procps cc:gcc)
    case "$what" in
        demo) ;;
        test) need+=(arping:iputils-arping ethtool:ethtool tcpdump:tcpdump modprobe:kmod
                     python3:python3 ovsdb-server:openvswitch-switch ovs-vsctl:openvswitch-common
                     ovs-vswitchd:openvswitch-switch dpkg-deb:dpkg fakeroot:fakeroot help2man:help2man
                     lintian:lintian systemd-analyze:systemd
                     qemu-system-x86_64:qemu-system-x86 libvirtd:libvirt-daemon-system virsh:libvirt-clients
                     busybox:busybox-static apt-get:apt modinfo:kmod) ;;
        bench) need+=(ethtool:ethtool trafgen:netsniff-ng sockperf:sockperf gnuplot:gnuplot-nox
                      ovsdb-server:openvswitch-switch ovs-vswitchd:openvswitch-switch
                      dpdk-testpmd:dpdk-dev perf:linux-perf) ;;
        package) need+=(dpkg-deb:dpkg fakeroot:fakeroot help2man:help2man lintian:lintian python3:python3) ;;
        *) echo "prereqs.sh: unknown set '$what' (demo, test, bench or package)" >&2; return 2 ;;
    esac
    local -a pkgs=() missing=()
    local e cmd pkg
    for e in "${need[@]}"; do
        cmd="${e%%:*}"; pkg="${e#*:}"
        command -v "$cmd" >/dev/null 2>&1 || pkgs+=("$pkg")
    done
    # The linker also needs the C library's startup files and libc.so.
    [ -e /usr/lib/x86_64-linux-gnu/crt1.o ] || [ -e /usr/lib/aarch64-linux-gnu/crt1.o ] \
        || dpkg -s libc6-dev >/dev/null 2>&1 || pkgs+=(libc6-dev)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        # Deduplicate (ovsdb-server and ovs-vswitchd share a package).
        mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
        if [ "$(id -u)" != 0 ]; then
            echo "prereqs.sh: not root, so not installing: ${pkgs[*]}" >&2
        elif ! command -v apt-get >/dev/null 2>&1; then
            echo "prereqs.sh: this machine has no apt-get; install with its package manager: ${pkgs[*]}" >&2
        else
            rvs_apt_install "${pkgs[@]}"
        fi
    fi
    for e in "${need[@]}"; do
        cmd="${e%%:*}"; pkg="${e#*:}"
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd (package $pkg)")
    done

    # Rust: the toolchain rustup put in ~/.cargo, or rustup itself when there is none.
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] || rvs_install_rustup
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || missing+=("cargo (Rust toolchain: https://rustup.rs)")

    if [ "$what" = test ] && command -v cargo >/dev/null 2>&1 && [ "${RVS_SKIP_FUZZ:-0}" != 1 ]; then
        # The fuzz smoke run needs a nightly toolchain and cargo-fuzz.
        if command -v rustup >/dev/null 2>&1 && ! rustup toolchain list | grep -q '^nightly'; then
            echo "prereqs.sh: installing the nightly toolchain (for cargo-fuzz)" >&2
            rustup toolchain install nightly --profile minimal >/dev/null 2>&1 \
                || echo "prereqs.sh: rustup could not install nightly" >&2
        fi
        if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
            echo "prereqs.sh: installing cargo-fuzz" >&2
            cargo install cargo-fuzz --locked >/dev/null 2>&1 || true
        fi
        cargo +nightly fuzz --version >/dev/null 2>&1 \
            || missing+=("cargo +nightly fuzz (rustup toolchain install nightly; cargo install cargo-fuzz; or RVS_SKIP_FUZZ=1)")
    fi

    if [ "${#missing[@]}" -gt 0 ]; then
        echo "prereqs.sh: these could not be installed, so '$what' cannot run:" >&2
        printf '  - %s\n' "${missing[@]}" >&2
        return 1
    fi
}

rvs_apt_install() {
    echo "prereqs.sh: installing $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || echo "prereqs.sh: apt-get update failed; trying the package lists the machine has" >&2
    # Open vSwitch's package may start its own service where systemd runs: the tests
    # and the benchmark start private instances of their own and do not use it.
    apt-get install -y -qq --no-install-recommends "$@" >/tmp/rvs-prereqs-apt.log 2>&1 \
        || echo "prereqs.sh: apt-get install failed (its output: /tmp/rvs-prereqs-apt.log)" >&2
}

rvs_install_rustup() {
    if [ "$(id -u)" = 0 ] && ! command -v curl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        rvs_apt_install curl ca-certificates
    fi
    if command -v curl >/dev/null 2>&1; then
        echo "prereqs.sh: installing Rust with rustup (into ~/.cargo)" >&2
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null 2>&1 \
            || echo "prereqs.sh: rustup could not be installed" >&2
    fi
}

rvs_prereqs "$@"
