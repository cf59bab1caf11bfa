"""The one atomic writer is durable (issue 27 item 7): the data is fsynced before the rename and
the directory after it, and the rollback writes config.yaml through it (a new inode: never a file
k3s could read half-written)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils import files  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (  # noqa: E402
    create_backup,
    restore,
)


def test_atomic_write_fsyncs_the_file_then_its_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    target = tmp_path / "config.yaml"
    files.atomic_write(str(target), "node-ip: 10.0.0.5\n", 0o600)
    assert target.read_text() == "node-ip: 10.0.0.5\n"
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / ".config.yaml.")) and synced[1] == str(tmp_path)


def test_the_rollback_writes_config_yaml_atomically_with_the_saved_owner_and_mode(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("node-ip: 10.0.0.4\n")
    os.chmod(config, 0o600)
    (tmp_path / "token").write_text("K10abc::server:x\n")
    folder = tmp_path / "backups" / "20260101T000000Z"
    # A backup of config.yaml and the token only: with "sqlite" verify would ask for a state.db copy.
    create_backup(str(folder), [str(config), str(tmp_path / "token")], datastore="etcd", db_dir=str(tmp_path / "db"),
                  required=[str(config)])  # fmt: skip
    config.write_text("node-ip: 10.0.0.9\n")
    before = os.stat(config).st_ino
    assert restore(str(folder), [str(config)]) == [str(config)]
    assert config.read_text() == "node-ip: 10.0.0.4\n"
    assert os.stat(config).st_ino != before, "written in place: a reader could see it half-written"
    assert oct(os.stat(config).st_mode & 0o777) == "0o600"
