#!/usr/bin/env bash
# Builds rvs's Debian packages from the workspace with dpkg-deb:
#   target/debian/rvs_VERSION_ARCH.deb          rvs-vswitchd, rvsctl, the systemd unit,
#       /etc/default/rvs, log rotation, NetworkManager's unmanaged-devices, man pages
#       (help2man, from the same --help the binaries print), bash completion;
#   target/debian/rvs-ovs-compat_VERSION_all.deb  ovs-vsctl and ovs-appctl as rvsctl
#       (Open vSwitch's own are diverted aside while it is installed).
# Then checks them with lintian when it is installed (errors fail the build).
#
#   scripts/package.sh                 # release build
#   RVS_PKG_PROFILE=debug scripts/package.sh   # package the debug build (tests)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prereqs.sh package

profile="${RVS_PKG_PROFILE:-release}"
if [ "$profile" = release ]; then cargo build --release --locked --bins -q; else cargo build --locked --bins -q; fi
bin="target/$profile"
version="$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="rvs-vswitchd"))')"
arch="$(dpkg --print-architecture)"
out="target/debian"
work="$(mktemp -d /tmp/rvs-pkg.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# Files common to both packages' documentation directories.
docs() { # PACKAGE ROOT
    local d="$2/usr/share/doc/$1"
    install -d "$d"
    cat > "$d/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rvs
Source: https://example.invalid/rvs

Files: *
Copyright: 2026 rvs developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
    printf '%s (%s) unstable; urgency=medium\n\n  * Built from the rvs workspace.\n\n -- rvs developers <rvs@example.invalid>  %s\n' \
        "$1" "$version" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
        | gzip -9n > "$d/changelog.gz"
}

control() { # PACKAGE ROOT
    install -d -m 755 "$2/DEBIAN"
    local size; size="$(du -sk --exclude=DEBIAN "$2" | cut -f1)"
    sed -e "s/@VERSION@/$version/g" -e "s/@ARCH@/$arch/g" -e "s/@SIZE@/$size/g" "packaging/debian/$1/control" > "$2/DEBIAN/control"
    local s
    for s in preinst postinst prerm postrm; do
        if [ -f "packaging/debian/$1/$s" ]; then install -m 755 "packaging/debian/$1/$s" "$2/DEBIAN/$s"; fi
    done
    # Files under /etc are conffiles: an operator's edits survive upgrades.
    if [ -d "$2/etc" ]; then (cd "$2" && find etc -type f | sed 's|^|/|' | sort) > "$2/DEBIAN/conffiles"; fi
    (cd "$2" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs -r md5sum) > "$2/DEBIAN/md5sums"
}

# rvs
r="$work/rvs"
install -D -m 755 "$bin/rvs-vswitchd" "$r/usr/sbin/rvs-vswitchd"
install -D -m 755 "$bin/rvsctl" "$r/usr/bin/rvsctl"
strip --strip-unneeded "$r/usr/sbin/rvs-vswitchd" "$r/usr/bin/rvsctl"
install -D -m 644 packaging/rvs-vswitchd.service "$r/lib/systemd/system/rvs-vswitchd.service"
install -D -m 644 packaging/default "$r/etc/default/rvs"
install -D -m 644 packaging/logrotate "$r/etc/logrotate.d/rvs"
install -D -m 644 packaging/NetworkManager/90-rvs.conf "$r/etc/NetworkManager/conf.d/90-rvs.conf"
install -D -m 644 packaging/rvsctl.bash-completion "$r/usr/share/bash-completion/completions/rvsctl"
install -d "$r/usr/share/man/man8"
help2man --no-info --section=8 --name="rvs userspace virtual switch daemon (drop-in for ovs-vswitchd)" \
    --include=packaging/rvs-vswitchd.h2m --version-string="$version" "$bin/rvs-vswitchd" | gzip -9n > "$r/usr/share/man/man8/rvs-vswitchd.8.gz"
help2man --no-info --section=8 --name="rvs configuration utility (ovs-vsctl and ovs-appctl compatible)" \
    --include=packaging/rvsctl.h2m --version-string="$version" "$bin/rvsctl" | gzip -9n > "$r/usr/share/man/man8/rvsctl.8.gz"
docs rvs "$r"
control rvs "$r"

# rvs-ovs-compat
c="$work/rvs-ovs-compat"
install -d "$c/usr/bin"
ln -s rvsctl "$c/usr/bin/ovs-vsctl"
ln -s rvsctl "$c/usr/bin/ovs-appctl"
# Its two names are rvsctl's, which rvsctl(8) documents; Open vSwitch's own pages for
# them stay where they are.
install -D -m 644 packaging/debian/rvs-ovs-compat/lintian-overrides "$c/usr/share/lintian/overrides/rvs-ovs-compat"
docs rvs-ovs-compat "$c"
control rvs-ovs-compat "$c"

for p in rvs rvs-ovs-compat; do
    a=$([ $p = rvs ] && echo "$arch" || echo all)
    fakeroot dpkg-deb --build -Zxz "$work/$p" "$out/${p}_${version}_${a}.deb" >/dev/null
    echo "$out/${p}_${version}_${a}.deb"
done

if command -v lintian >/dev/null 2>&1 && [ "${RVS_PKG_LINTIAN:-1}" = 1 ]; then
    # Any error fails; warnings are printed (README, "Installing the package").
    lintian --fail-on error "$out/rvs_${version}_${arch}.deb" "$out/rvs-ovs-compat_${version}_all.deb" >&2
fi
