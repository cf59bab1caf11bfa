"""Scheduled backups and recoveries share one run lock (module_utils/k3s/backup.py RunLock): a
scheduled backup (watch.py ``backup`` -> rebuild.py ``Rebuild.scheduled``) that finds a recovery
holding the lock waits a bounded time, then exits 1 naming the holder and writes nothing; a
recovery (rebuild.py ``execute``) that finds a scheduled backup holding it waits for it, where
another recovery's lock still fails it at once. Real lock directories, a real WAL-mode kine
datastore (conftest ``k3s_files``), real time (waits of a second or two)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.host import LocalRunner  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import RunLock  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (  # noqa: E402
    SCHEDULED_RUN_ID,
    ModuleFailure,
    Rebuild,
    execute,
    with_defaults,
)

RECOVERY = "recover.yml (ansible-playbook on box)"


def settings(tmp_path, src):
    return dict(
        config_file=str(src / "config.yaml"), data_dir=str(src), binary="/usr/local/bin/k3s",
        admin_kubeconfig=str(src / "k3s.yaml"), backup_root=str(tmp_path / "backups"), pv_paths=[], keep_backups=5,
        lock_path=str(tmp_path / "recover.lock"),
    )  # fmt: skip


def held_by_a_recovery(tmp_path, run_id="20260101T000000Z-1", by=RECOVERY):
    """The lock as a running recovery holds it (this process: its pid and start time are alive)."""
    lock = RunLock(str(tmp_path / "recover.lock"), run_id, by)
    lock.acquire()
    return lock


def release_after(lock, seconds):
    timer = threading.Timer(seconds, lock.release)
    timer.start()
    return timer


def test_a_scheduled_backup_waits_for_a_recovery_then_fails_naming_it_and_writes_nothing(tmp_path, k3s_files, capsys):
    src, _conn = k3s_files
    held_by_a_recovery(tmp_path)
    started = time.monotonic()
    assert watch.backup(settings(tmp_path, src), LocalRunner, lock_wait=1.0) == 1
    assert time.monotonic() - started >= 1.0, "it must wait before giving up"
    out = " ".join(capsys.readouterr().out.split())
    assert "<3>ERROR: Scheduled backup not taken, nothing was written: waited 1s for the run lock: " in out
    assert f"{RECOVERY} holds {tmp_path / 'recover.lock'} (run 20260101T000000Z-1, " in out
    assert f"process {os.getpid()}" in out
    assert not (tmp_path / "backups").exists(), "no backup directory may be left"
    owner = json.loads((tmp_path / "recover.lock" / "owner").read_text())
    assert owner["run_id"] == "20260101T000000Z-1", "the recovery's lock must stay"


def test_scheduled_fails_at_stage_lock_before_creating_the_backup_directory(tmp_path, k3s_files):
    src, _conn = k3s_files
    held_by_a_recovery(tmp_path, run_id="watch-20260101T000000Z-7", by="integr8scode-k3s-drift-check")
    params = with_defaults(
        state="backed_up", datastore="sqlite", backup_dir=str(tmp_path / "backups" / "20260101T000001Z"),
        config_file=str(src / "config.yaml"), data_dir=str(src), lock_path=str(tmp_path / "recover.lock"),
        run_id=SCHEDULED_RUN_ID + "20260101T000001Z-2", lock_owner="scheduled backup",
    )  # fmt: skip
    job = Rebuild(params, LocalRunner)
    with pytest.raises(ModuleFailure, match=r"integr8scode-k3s-drift-check holds .*run watch-20260101T000000Z-7"):
        job.scheduled(lock_wait=0.5)
    assert job.result["stage"] == "lock"
    assert not (tmp_path / "backups").exists()


def test_a_scheduled_backup_holds_the_lock_while_it_copies_and_releases_it(tmp_path, k3s_files, monkeypatch, capsys):
    src, _conn = k3s_files
    seen = {}
    store = Rebuild.store_backup

    def spying(self, *args, **kwargs):
        seen.update(json.loads((tmp_path / "recover.lock" / "owner").read_text()))
        return store(self, *args, **kwargs)

    monkeypatch.setattr(Rebuild, "store_backup", spying)
    assert watch.backup(settings(tmp_path, src), LocalRunner, lock_wait=1.0) == 0, capsys.readouterr().out
    assert seen["run_id"].startswith(SCHEDULED_RUN_ID) and seen["run_id"].endswith(f"-{os.getpid()}")
    assert seen["by"] == "integr8scode-k3s-drift-check --backup (scheduled backup)"
    assert not (tmp_path / "recover.lock").exists(), "released after the backup"
    assert len(list((tmp_path / "backups").iterdir())) == 1


def test_a_scheduled_backup_runs_once_a_recovery_released_the_lock_within_the_wait(tmp_path, k3s_files, capsys):
    src, _conn = k3s_files
    timer = release_after(held_by_a_recovery(tmp_path), 0.5)
    try:
        assert watch.backup(settings(tmp_path, src), LocalRunner, lock_wait=30.0) == 0, capsys.readouterr().out
    finally:
        timer.cancel()
    assert "verified" in capsys.readouterr().out
    assert not (tmp_path / "recover.lock").exists()


class Recovery:
    """The part of Rebuild that execute() drives, recording what it saw of the lock."""

    def __init__(self, tmp_path):
        self.p = dict(lock_path=str(tmp_path / "recover.lock"), run_id="20260101T000002Z-3", lock_owner=RECOVERY,
                      state="rebuilt")  # fmt: skip
        self.result = {}
        self.owner = None

    def rebuilt(self):
        self.owner = json.loads(Path(self.p["lock_path"], "owner").read_text())

    def fail(self, stage, msg, **extra):
        self.result.update(extra, stage=stage)
        raise ModuleFailure(msg)


def test_a_recovery_waits_for_a_scheduled_backup_that_holds_the_lock(tmp_path):
    backup = held_by_a_recovery(tmp_path, run_id=SCHEDULED_RUN_ID + "20260101T000000Z-9", by="scheduled backup")
    timer = release_after(backup, 1.0)
    job = Recovery(tmp_path)
    try:
        execute(job, scheduled_wait=30.0)
    finally:
        timer.cancel()
    assert job.owner["run_id"] == "20260101T000002Z-3"
    assert job.result["lock"]["waited"] >= 0.9
    assert not (tmp_path / "recover.lock").exists()


def test_a_recovery_gives_up_on_a_scheduled_backup_after_the_bounded_wait(tmp_path):
    held_by_a_recovery(tmp_path, run_id=SCHEDULED_RUN_ID + "20260101T000000Z-9", by="scheduled backup")
    job = Recovery(tmp_path)
    with pytest.raises(ModuleFailure, match=r"waited 1s for the run lock: scheduled backup holds "):
        execute(job, scheduled_wait=1.0)
    assert job.result["stage"] == "lock" and job.owner is None


def test_a_recovery_still_fails_at_once_on_another_recoverys_lock(tmp_path):
    held_by_a_recovery(tmp_path, run_id="watch-20260101T000000Z-7", by="integr8scode-k3s-drift-check")
    job = Recovery(tmp_path)
    started = time.monotonic()
    with pytest.raises(ModuleFailure, match=r"^integr8scode-k3s-drift-check holds "):
        execute(job, scheduled_wait=30.0)
    assert time.monotonic() - started < 5 and job.result["stage"] == "lock" and job.owner is None
