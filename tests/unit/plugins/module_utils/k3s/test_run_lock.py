"""The run lock's directory (issue 27 item 6): in world-writable /run/lock any local user could
pre-create the lock or its guard and refuse every recovery; the lock now lives in a directory only
its user (root on a host) may write, and refuses any other."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (  # noqa: E402
    LOCK_PATH,
    BackupError,
    RunLock,
)


def test_the_default_lock_is_not_in_world_writable_run_lock():
    assert os.path.dirname(LOCK_PATH) == "/run/integr8scode"


def test_a_missing_lock_directory_is_created_private(tmp_path):
    lock = RunLock(str(tmp_path / "integr8scode" / "k3s-recover.lock"), "run-1")
    lock.acquire()
    assert oct(os.stat(tmp_path / "integr8scode").st_mode & 0o777) == "0o700"
    assert lock.release() is True


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o775, 0o757])
def test_a_lock_directory_others_may_write_is_refused_before_anything_is_created(tmp_path, mode):
    shared = tmp_path / "lock"
    shared.mkdir()
    os.chmod(shared, mode)
    with pytest.raises(BackupError, match=rf"the run lock's directory {shared} must be a directory owned by uid"):
        RunLock(str(shared / "k3s-recover.lock"), "run-1").acquire()
    assert list(shared.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root (CI and the hosts run as root)")
def test_a_lock_directory_of_another_user_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(BackupError, match=r"found a directory, uid 65534, mode 0700"):
        RunLock(str(theirs / "k3s-recover.lock"), "run-1").acquire()
