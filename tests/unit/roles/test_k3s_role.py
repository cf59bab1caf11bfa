"""Role `k3s` on the controller: the input checks of the airgap image archives, which fail in the
first validation task, before anything on the host is looked at or changed.

Copy, import and restart run against the k3s stand-in in molecule (scenario k3s).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from roleplay import ansible_playbook, flat_output, write_playbook

VAR = "k3s_airgap_images_src / k3s_airgap_image_archives"


@pytest.fixture(scope="module")
def playbook(tmp_path_factory) -> Path:
    return write_playbook(
        tmp_path_factory.mktemp("k3s-role"),
        """\
        - name: Role k3s, validation only
          hosts: all
          gather_facts: false
          roles:
            - role: integr8scode.provision.k3s
        """,
    )


def archive(directory: Path, name: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"an archive")
    return str(path)


@pytest.mark.parametrize(
    ("names", "line"),
    [
        # k3s skips these without a word (watcher.go isFileSupported is case-sensitive).
        (["ok.tar", "images.tar.xz"], f'{VAR} (names k3s does not import) = ["images.tar.xz"]'),
        (["images.TAR"], f'{VAR} (names k3s does not import) = ["images.TAR"]'),
        # A pull list makes k3s ask a registry: not an archive.
        (["images.txt"], f'{VAR} (names k3s does not import) = ["images.txt"]'),
        (["a/x.tar.zst", "b/x.tar.zst"], f'{VAR} (file names) = ["x.tar.zst", "x.tar.zst"]'),
    ],
)
def test_archive_names_k3s_would_not_import_are_refused(playbook, tmp_path, names, line):
    paths = [archive(tmp_path, name) for name in names]
    run = ansible_playbook(playbook, "--tags", "k3s_validate", "-e", json.dumps({"k3s_airgap_image_archives": paths}))
    output = flat_output(run)
    assert run.returncode != 0, output[-3000:]
    assert line in output, output[-3000:]
    assert "changed=0" in output, output[-1000:]


def test_a_missing_archive_is_refused_and_good_names_pass(playbook, tmp_path):
    good = [archive(tmp_path, name) for name in ("a.tar", "b.tar.gz", "c.tgz", "d.tar.zst", "e.tzst", "f.tbz")]
    missing = str(tmp_path / "missing.tar")
    run = ansible_playbook(
        playbook,
        "--tags",
        "k3s_validate",
        "-e",
        json.dumps(
            {"k3s_airgap_image_archives": [*good, missing], "k3s_airgap_images_src": archive(tmp_path, "g.tar.bz2")}
        ),
    )
    output = flat_output(run)
    assert run.returncode != 0
    assert f'k3s_airgap_image_archives (files missing on the controller) = ["{missing}"]' in output, output[-3000:]
    # Only the missing file is named: every other name is one k3s imports.
    assert "(names k3s does not import)" not in output
    assert "(file names)" not in output
