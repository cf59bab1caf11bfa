"""A small image archive laid out as `docker save` writes it, for the airgap tests (tests only):
the stand-in's unit tests and role k3s's molecule scenario build theirs here.

manifest.json (Config, RepoTags, Layers), the config blob, one layer tar; byte-for-byte the same
for the same arguments (fixed mtimes), so the role's copy is idempotent. Also returns the digest
containerd gives the image (the docker schema2 manifest its importer writes, compact as Go
marshals it), which `k3s ctr images ls` shows.

    python3 image_archive.py OUT.tar REPO:TAG [CONTENT]
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile


def tar(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in entries.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            member.mtime = 1735689600
            archive.addfile(member, io.BytesIO(data))
    return out.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_save(tags: list[str], content: bytes = b"standin\n") -> tuple[bytes, str]:
    """The archive's bytes and the manifest digest containerd gives the image."""
    layer = tar({"hello.txt": content})
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}},
        sort_keys=True,
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": [layer_name]}]
    archive = tar({config_name: config, layer_name: layer, "manifest.json": json.dumps(manifest).encode()})
    written = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": sha(layer), "size": len(layer)}
            ],
        },
        separators=(",", ":"),
    ).encode()
    return archive, sha(written)


def write_docker_save(path: str, tag: str, content: str = "standin\n") -> str:
    """docker_save of one tag written to ``path``; returns the digest."""
    archive, digest = docker_save([tag], content.encode())
    with open(path, "wb") as handle:
        handle.write(archive)
    return digest


if __name__ == "__main__":
    print(write_docker_save(*sys.argv[1:4]))
