#!/usr/bin/env bash
# Builds the local systemd test-host image from Debian packages (no registry
# is reachable on our machines, see shared/facts/test-environment.md) and
# caches it by a hash of this recipe: a rerun with an unchanged recipe only
# checks that the tagged image exists.
#
# Usage: tests/images/build-test-image.sh [--print-name]
# Env:   TEST_IMAGE_REPO (default integr8scode-testhost), DEBIAN_MIRROR
#        (default: the URIs: line of /etc/apt/sources.list.d/debian.sources)
set -euo pipefail

suite=bookworm
packages=systemd,systemd-sysv,python3,python3-apt,python3-cryptography,python3-cffi-backend,python3-yaml,iproute2,iptables,ca-certificates,sudo,dbus,procps,curl,kmod,sqlite3,less,git,nftables
repo=${TEST_IMAGE_REPO:-integr8scode-testhost}

# The tag is the hash of everything that shapes the image.
recipe_hash=$( { echo "$suite $packages"; cat "$0"; } | sha256sum | cut -c1-12)
image="$repo:$recipe_hash"

if [ "${1:-}" = "--print-name" ]; then
  echo "$image"
  exit 0
fi

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "test image $image is cached"
  docker tag "$image" "$repo:latest"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
  mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
  echo "no Debian mirror found: set DEBIAN_MIRROR" >&2
  exit 2
fi

rootfs=$(mktemp -d /tmp/testhost-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >/tmp/debootstrap.log 2>&1 || {
  tail -n 30 /tmp/debootstrap.log >&2
  exit 1
}

# Apt inside the test host uses the same mirror the build used.
printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" >"$rootfs/etc/apt/sources.list"
# Units that make no sense in a container and slow or break boot.
for unit in systemd-resolved.service systemd-timesyncd.service getty.target console-getty.service \
  systemd-logind.service sys-kernel-config.mount sys-kernel-debug.mount systemd-remount-fs.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
echo 'integr8scode-testhost' >"$rootfs/etc/hostname"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
docker tag "$image" "$repo:latest"
echo "built test image $image"
