#!/usr/bin/env bash
# TEST ONLY. Lays the k3s stand-in out like a k3s GitHub release so the k3s
# role's normal download + sha256 path can install it offline:
#   OUTDIR/VERSION/k3s                            the stand-in, VERSION baked in
#   OUTDIR/VERSION/sha256sum-amd64.txt            "<sha256>  <asset>" lines, as upstream
#   OUTDIR/VERSION/k3s-airgap-images-amd64.tar.gz a small real tarball
# VERSION looks like v1.32.11+k3s1 (the directory keeps the literal "+"; an HTTP
# server decodes the %2B a client sends).
#
# Usage: tests/standins/k3s/build-release.sh VERSION OUTDIR
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 VERSION OUTDIR   (VERSION like v1.32.11+k3s1)" >&2
  exit 2
fi
version=$1
outdir=$2
if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$ ]]; then
  echo "VERSION '$version' is not a k3s release tag like v1.32.11+k3s1" >&2
  exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
release="$outdir/$version"
mkdir -p "$release"

# The stand-in is a package (tests/standins/k3s/k3s_standin); the release's
# `k3s` is one executable built from it with zipapp, the version baked into
# common.py, the shebang the system python3 where the test host's
# python3-cryptography lives.
work_app=$(mktemp -d)
cp -r "$here/k3s_standin" "$work_app/"
find "$work_app" -name __pycache__ -prune -exec rm -rf {} +
sed -i "s|^K3S_STANDIN_VERSION = \".*\"  # replaced by build-release.sh$|K3S_STANDIN_VERSION = \"$version\"  # baked in by build-release.sh|" \
  "$work_app/k3s_standin/common.py"
if ! grep -q "^K3S_STANDIN_VERSION = \"$version\"" "$work_app/k3s_standin/common.py"; then
  echo "failed to bake the version into the stand-in" >&2
  exit 1
fi
# One executable like zipapp's, written in a fixed order with fixed
# timestamps so the same VERSION always yields the same checksum.
python3 - "$work_app" "$release/k3s.tmp" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
main = "from k3s_standin.cli import run\nrun()\n"
with open(out, "wb") as handle:
    handle.write(b"#!/usr/bin/python3\n")
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        names = sorted(
            os.path.relpath(os.path.join(d, f), src) for d, _, files in os.walk(src) for f in files if f.endswith(".py")
        )
        entries = [("__main__.py", main.encode())] + [(n, open(os.path.join(src, n), "rb").read()) for n in names]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
PY
rm -rf "$work_app"
chmod 0755 "$release/k3s.tmp"
mv "$release/k3s.tmp" "$release/k3s"

# A tiny but real airgap tarball: one OCI-layout-like index naming the version.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '{"schemaVersion":2,"manifests":[],"annotations":{"k3s.standin/version":"%s"}}\n' "$version" >"$work/index.json"
printf '{"imageLayoutVersion":"1.0.0"}\n' >"$work/oci-layout"
# Fixed mtime/owner so the same VERSION always yields the same checksum.
tar --sort=name --mtime='2025-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
  -C "$work" -cf - index.json oci-layout | gzip -n >"$release/k3s-airgap-images-amd64.tar.gz"

(cd "$release" && sha256sum k3s k3s-airgap-images-amd64.tar.gz >sha256sum-amd64.txt)
echo "$release"
