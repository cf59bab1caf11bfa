#!/usr/bin/env bash
# Builds a local systemd test-host image from distribution packages (no
# registry is reachable on our machines, see shared/facts/test-environment.md)
# and caches it by a hash of this recipe: a rerun with an unchanged recipe
# only checks that the tagged image exists.
#
# Suites: bookworm (Debian 12, the default: integr8scode-testhost:latest),
# jammy and noble (Ubuntu 22.04 / 24.04: integr8scode-testhost:<suite>), the
# declared targets of the collection.
#
# Usage: tests/images/build-test-image.sh [--print-name]
# Env:   TEST_IMAGE_SUITE (default bookworm), TEST_IMAGE_REPO (default
#        integr8scode-testhost), DEBIAN_MIRROR (default: the URIs: line of
#        /etc/apt/sources.list.d/debian.sources), UBUNTU_MIRROR (default
#        http://archive.ubuntu.com/ubuntu: a Debian host has no Ubuntu source
#        to read one from)
set -euo pipefail

suite=${TEST_IMAGE_SUITE:-bookworm}
packages=systemd,systemd-sysv,python3,python3-apt,python3-cryptography,python3-cffi-backend,python3-yaml,iproute2,iptables,ca-certificates,sudo,dbus,procps,curl,kmod,sqlite3,less,git,nftables
repo=${TEST_IMAGE_REPO:-integr8scode-testhost}
# Debian's archive keyring is on every Debian host; Ubuntu's is not packaged
# for bookworm, so debootstrap gets Ubuntu's own keyring package, pinned by
# digest (the trust anchor for the Release files it then verifies).
ubuntu_keyring_deb=pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb
ubuntu_keyring_sha256=36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8

case "$suite" in
  bookworm) family=debian alias=latest ;;
  jammy | noble) family=ubuntu alias=$suite ;;
  *)
    echo "TEST_IMAGE_SUITE=$suite: expected bookworm, jammy or noble" >&2
    exit 2
    ;;
esac

# The tag is the hash of everything that shapes the image.
recipe_hash=$( { echo "$suite $packages"; cat "$0"; } | sha256sum | cut -c1-12)
if [ "$family" = debian ]; then image="$repo:$recipe_hash"; else image="$repo:$suite-$recipe_hash"; fi

if [ "${1:-}" = "--print-name" ]; then
  echo "$image"
  exit 0
fi

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "test image $image is cached"
  docker tag "$image" "$repo:$alias"
  exit 0
fi

debootstrap_args=(--variant=minbase --include="$packages")
if [ "$family" = debian ]; then
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
  components=main
  pockets=("$suite" "$suite-updates")
  script=()
else
  mirror=${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
  # A stock Ubuntu install enables universe, where docker.io and
  # python3-kubernetes live.
  components=main,universe
  pockets=("$suite" "$suite-updates" "$suite-security")
  keyring_dir=$(mktemp -d /tmp/ubuntu-keyring.XXXXXX)
  curl -fsS -o "$keyring_dir/keyring.deb" "$mirror/$ubuntu_keyring_deb"
  echo "$ubuntu_keyring_sha256  $keyring_dir/keyring.deb" | sha256sum -c --quiet
  dpkg-deb -x "$keyring_dir/keyring.deb" "$keyring_dir/root"
  debootstrap_args+=(--keyring="$keyring_dir/root/usr/share/keyrings/ubuntu-archive-keyring.gpg" --components="$components")
  # Bookworm's debootstrap predates noble; every Ubuntu suite uses the gutsy script.
  script=(/usr/share/debootstrap/scripts/gutsy)
fi

rootfs=$(mktemp -d /tmp/testhost-rootfs.XXXXXX)
trap 'rm -rf "$rootfs" ${keyring_dir:+"$keyring_dir"}' EXIT
echo "debootstrap $suite from $mirror into $rootfs"
log=/tmp/debootstrap-$suite.log
debootstrap "${debootstrap_args[@]}" "$suite" "$rootfs" "$mirror" "${script[@]}" >"$log" 2>&1 || {
  tail -n 30 "$log" >&2
  exit 1
}

# Apt inside the test host uses the same mirror the build used.
for pocket in "${pockets[@]}"; do
  echo "deb $mirror $pocket ${components//,/ }"
done >"$rootfs/etc/apt/sources.list"
# Units that make no sense in a container and slow or break boot.
for unit in systemd-resolved.service systemd-timesyncd.service getty.target console-getty.service \
  systemd-logind.service sys-kernel-config.mount sys-kernel-debug.mount systemd-remount-fs.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
echo 'integr8scode-testhost' >"$rootfs/etc/hostname"
# Docker mounts /proc/sys read-only in an unprivileged container, where a real
# host has it writable. Docker Engine 29 (Ubuntu's docker.io) writes
# /proc/sys/net/ipv6/conf/eth0/disable_ipv6 in every new container's network
# namespace and refuses to start the container when it cannot (measured on
# jammy and noble: "failed to configure ipv6: failed to disable IPv6 on
# container's interface eth0"; Debian's 20.10 only logs it). /proc/sys/net
# resolves per network namespace, so making just that subtree writable reaches
# nothing outside the test host's own namespaces.
cat >"$rootfs/etc/systemd/system/i8c-proc-sys-net-rw.service" <<'UNIT'
[Unit]
Description=Writable /proc/sys/net, as on a real host (test host only)
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net'

[Install]
WantedBy=sysinit.target
UNIT
mkdir -p "$rootfs/etc/systemd/system/sysinit.target.wants"
ln -sf ../i8c-proc-sys-net-rw.service "$rootfs/etc/systemd/system/sysinit.target.wants/i8c-proc-sys-net-rw.service"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# dpkg without an fsync per unpacked file (force-unsafe-io): a test host is
# thrown away, never crashes half-written, and every scenario installs
# packages (Docker, python3-kubernetes, the package switches of `docker`).
echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/i8c-unsafe-io"

tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
docker tag "$image" "$repo:$alias"
echo "built test image $image ($repo:$alias)"
