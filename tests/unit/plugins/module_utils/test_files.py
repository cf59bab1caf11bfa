"""The one atomic write: mode and owner set before the rename, nothing left behind on failure."""

from __future__ import annotations

import os

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write, write_if_changed


def test_new_file_is_0600_and_an_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "config.yaml"
    atomic_write(str(target), "a: 1\n")
    assert target.read_text() == "a: 1\n" and target.stat().st_mode & 0o777 == 0o600
    target.chmod(0o640)
    atomic_write(str(target), b"a: 2\n")
    assert target.read_text() == "a: 2\n" and target.stat().st_mode & 0o777 == 0o640


def test_write_if_changed_reports_content_and_mode_changes(tmp_path):
    target = str(tmp_path / "f")
    assert write_if_changed(target, "x", 0o600) == (True, None)
    assert write_if_changed(target, "x", 0o600) == (False, "x")
    os.chmod(target, 0o644)
    assert write_if_changed(target, "x", 0o600) == (True, "x")
    assert os.stat(target).st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "f"
    target.write_text("old")

    def broken_rename(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write(str(target), "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
