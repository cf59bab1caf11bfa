"""Airgap image archives in <data-dir>/agent/images: imported at start as k3s does, seen with ctr.

Archives are built here the way `docker save` lays them out (manifest.json with RepoTags, the
config blob, one layer tar) or as an OCI layout (oci-layout + index.json with containerd's name
annotation), then compressed as the file name says.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import shutil
import subprocess

import pytest
from conftest import STANDIN
from image_archive import docker_save, sha, tar


def oci_layout(name: str) -> tuple[bytes, str]:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": 2},
            "layers": [],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sha(manifest),
                    "size": len(manifest),
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1.0"},
                }
            ],
        }
    ).encode()
    blobs = {f"blobs/sha256/{sha(b)[7:]}": b for b in (config, manifest)}
    return tar({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index, **blobs}), sha(manifest)


def compress(data: bytes, name: str) -> bytes:
    if name.endswith((".tar.gz", ".tgz")):
        return gzip.compress(data)
    if name.endswith((".tar.bz2", ".tbz")):
        return bz2.compress(data)
    if name.endswith((".tar.zst", ".tzst")):
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    return data


def place(k3s, name: str, data: bytes) -> str:
    images = k3s.data / "agent" / "images"
    images.mkdir(parents=True, exist_ok=True)
    (images / name).write_bytes(compress(data, name))
    return str(images / name)


def ctr_rows(k3s) -> dict[str, list[str]]:
    listing = k3s.run("ctr", "images", "ls")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    return {line.split()[0]: line.split() for line in lines[1:]}


@pytest.mark.skipif(not shutil.which("zstd"), reason="the zstd program makes the .tar.zst archive")
def test_archives_in_agent_images_are_imported_at_start_and_listed_by_ctr(k3s, tmp_path):
    busybox, busybox_digest = docker_save(["busybox:1.36"])
    python, python_digest = docker_save(["python:3.11-slim"], b"python\n")
    kueue, kueue_digest = oci_layout("registry.k8s.io/kueue/kueue:v0.16.1")
    plain = place(k3s, "busybox.tar", busybox)
    zst = place(k3s, "python.tar.zst", python)
    gz = place(k3s, "kueue.tar.gz", kueue)
    # Not a name k3s imports (watcher.go isFileSupported is case-sensitive): never opened.
    place(k3s, "ignored.TAR", busybox)
    place(k3s, "README.md", b"not an image\n")
    k3s.base_config()
    started = k3s.up()
    log = started.log
    for path in (plain, zst, gz):
        assert f"Importing images from {path}" in log
        assert f"Imported images from {path} in " in log
    assert "ignored.TAR" not in log and "README.md" not in log
    assert "Imported docker.io/library/busybox:1.36" in log
    assert f"Tagged docker.io/library/busybox@{busybox_digest}" in log

    rows = ctr_rows(k3s)
    assert sorted(rows) == sorted(
        [
            "docker.io/library/busybox:1.36",
            f"docker.io/library/busybox@{busybox_digest}",
            "docker.io/library/python:3.11-slim",
            f"docker.io/library/python@{python_digest}",
            "registry.k8s.io/kueue/kueue:v0.16.1",
            f"registry.k8s.io/kueue/kueue@{kueue_digest}",
        ]
    )
    row = rows["docker.io/library/busybox:1.36"]
    assert row[1] == "application/vnd.docker.distribution.manifest.v2+json"
    assert row[2] == busybox_digest
    assert row[5] == "linux/amd64"
    assert row[6] == "io.cattle.k3s.pinned=pinned,io.cri-containerd.pinned=pinned"
    assert rows["registry.k8s.io/kueue/kueue:v0.16.1"][2] == kueue_digest

    # `ctr` through its own name (the install script's symlink) and -q, as users type it.
    link = tmp_path / "ctr"
    link.symlink_to(STANDIN)
    quiet = k3s.run("-n", "k8s.io", "images", "ls", "-q", argv0=str(link))
    assert quiet.returncode == 0, quiet.stderr
    assert "docker.io/library/python:3.11-slim" in quiet.stdout.splitlines()
    assert k3s.stop(started) == 0


def test_a_bad_archive_is_logged_and_the_next_one_is_imported(k3s):
    good, digest = docker_save(["busybox:1.36"])
    garbage = place(k3s, "a-garbage.tar", b"this is not a tar archive at all" * 40)
    bad_gzip = place(k3s, "b-not-gzip.tar.gz", b"")
    (k3s.data / "agent/images/b-not-gzip.tar.gz").write_bytes(b"plain bytes")
    no_manifest = place(k3s, "c-no-manifest.tar", tar({"hello.txt": b"hi"}))
    later = place(k3s, "d-good.tar", good)
    k3s.base_config()
    started = k3s.up()
    log = started.log
    # processNextEventForImages logs the error and the queue goes on with the next file.
    assert (
        f'level=error msg="Failed to process image event: failed to import {garbage}: failed to import images '
        f'from {garbage}: archive/tar: invalid tar header"' in log
    )
    assert f'Failed to process image event: failed to import {bad_gzip}: gzip: invalid header"' in log
    assert (
        f"Failed to process image event: failed to import {no_manifest}: failed to import images from "
        f'{no_manifest}: unrecognized image format"' in log
    )
    assert f"Imported images from {later} in " in log
    for path in (garbage, bad_gzip, no_manifest):
        assert f"Imported images from {path} in " not in log
    assert sorted(ctr_rows(k3s)) == ["docker.io/library/busybox:1.36", f"docker.io/library/busybox@{digest}"]
    assert k3s.stop(started) == 0


def test_an_archive_placed_while_stopped_is_imported_at_the_next_start_and_pins_follow_the_files(k3s):
    k3s.base_config()
    first = k3s.up()
    assert ctr_rows(k3s) == {}
    assert k3s.stop(first) == 0
    archive, digest = docker_save(["python:3.12-slim"])
    path = place(k3s, "python.tar", archive)
    second = k3s.up()
    assert f"Imported images from {path} in " in second.log
    assert ctr_rows(k3s)["docker.io/library/python:3.12-slim"][2] == digest
    assert k3s.stop(second) == 0
    # Without the file the image stays in containerd's store, but k3s no longer pins it
    # (PreloadImages clearLabels at every start).
    os.unlink(path)
    third = k3s.up()
    assert "Importing images from" not in third.log
    assert ctr_rows(k3s)["docker.io/library/python:3.12-slim"][6] == "-"
    assert k3s.stop(third) == 0


def test_with_a_cache_file_an_unchanged_archive_is_not_imported_again(k3s):
    archive = docker_save(["busybox:1.36"])[0]
    path = place(k3s, "busybox.tar", archive)
    (k3s.data / "agent/images/.cache.json").write_text("")
    k3s.base_config()
    first = k3s.up()
    assert f"Imported images from {path} in " in first.log
    assert k3s.stop(first) == 0
    assert path in json.loads((k3s.data / "agent/images/.cache.json").read_text())
    second = k3s.up()
    assert f"Importing images from {path}" not in second.log
    assert k3s.stop(second) == 0


def test_ctr_without_a_running_k3s_cannot_dial_containerd(k3s):
    result = k3s.run("ctr", "images", "ls")
    assert result.returncode == 1
    assert result.stderr.startswith(f'ctr: failed to dial "{k3s.root / "containerd.sock"}"')
