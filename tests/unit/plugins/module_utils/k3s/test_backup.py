"""module_utils/k3s_backup: the verified backup, restore, pruning, run lock and config.yaml edit
that k3s_rebuild performs on the host, run against real files and a real WAL-mode SQLite kine
datastore with uncheckpointed writes (as a live k3s leaves it)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import backup as k3s_backup  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (  # noqa: E402
    LOCK_PATH,
    BackupError,
    LockHeld,
    RunLock,
    create_backup,
    restore,
    verify,
    wait_for_lock,
)


def backup(tmp_path, src, name="20260101T000000Z", keep=0):
    return create_backup(
        str(tmp_path / "backups" / name),
        [str(src / "config.yaml"), str(src / "server" / "token"), str(src / "server" / "tls"),
         str(src / "server" / "db"), str(src / "absent.yaml")],
        datastore="sqlite",
        db_dir=str(src / "server" / "db"),
        required=[str(src / "config.yaml"), str(src / "server" / "token"), str(src / "server" / "db" / "state.db")],
        meta={"run_id": "t"},
        keep=keep,
    )  # fmt: skip


def test_backup_copies_checksums_and_verifies(tmp_path, k3s_files):
    src, _conn = k3s_files
    assert (src / "server" / "db" / "state.db-wal").stat().st_size > 0
    result = backup(tmp_path, src)
    assert result["ok"] and result["integrity_check"] == "ok" and result["skipped"] == [str(src / "absent.yaml")]
    folder = tmp_path / "backups" / "20260101T000000Z"
    manifest = json.loads((folder / "manifest.json").read_text())
    rel = "files" + str(src / "config.yaml")
    assert manifest["files"][rel]["sha256"] == hashlib.sha256((src / "config.yaml").read_bytes()).hexdigest()
    assert (folder / rel).read_bytes() == (src / "config.yaml").read_bytes()
    assert oct((tmp_path / "backups").stat().st_mode & 0o777) == "0o700"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert "k3s_recover_rollback_from=" in (folder / "RESTORE.txt").read_text()


def test_files_written_into_the_backup_directory_are_in_the_manifest(tmp_path, k3s_files):
    """The etcd snapshot is saved straight into the backup directory; it must be checksummed too."""
    src, _conn = k3s_files
    snap = tmp_path / "backups" / "20260101T000000Z" / "etcd-snapshot"
    snap.mkdir(parents=True)
    (snap / "recover-node-1").write_bytes(b"snapshot-bytes")
    backup(tmp_path, src)
    manifest = json.loads((tmp_path / "backups" / "20260101T000000Z" / "manifest.json").read_text())
    assert manifest["files"]["etcd-snapshot/recover-node-1"]["size"] == len(b"snapshot-bytes")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "bytes, the source had"),
        (lambda p: p.write_bytes(b"X" + p.read_bytes()[1:]), "does not match its sha256"),
        (lambda p: p.unlink(), "is missing"),
    ],
)
def test_verify_catches_a_damaged_copy(tmp_path, k3s_files, damage, message):
    src, _conn = k3s_files
    backup(tmp_path, src)
    folder = tmp_path / "backups" / "20260101T000000Z"
    damage(folder / ("files" + str(src / "config.yaml")))
    result = verify(str(folder))
    assert result["ok"] is False
    assert any(message in error for error in result["errors"]), result["errors"]


def test_verify_of_a_directory_without_manifest(tmp_path):
    result = verify(str(tmp_path))
    assert result["ok"] is False and "manifest" in result["errors"][0]


def test_backup_of_an_empty_required_file_fails(tmp_path, k3s_files):
    src, _conn = k3s_files
    (src / "server" / "token").write_text("")
    with pytest.raises(BackupError, match="required .*token is empty"):
        backup(tmp_path, src)


def test_backup_of_a_missing_required_file_fails(tmp_path, k3s_files):
    src, _conn = k3s_files
    (src / "server" / "token").unlink()
    with pytest.raises(BackupError, match="required files are missing"):
        backup(tmp_path, src)


def test_backup_of_a_corrupt_datastore_fails_integrity_check(tmp_path, k3s_files):
    src, conn = k3s_files
    conn.close()
    db = src / "server" / "db" / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"garbage-not-sqlite" + db.read_bytes()[18:])
    with pytest.raises(BackupError, match="PRAGMA integrity_check"):
        backup(tmp_path, src)


def test_backup_of_a_sqlite_file_without_kine_fails(tmp_path, k3s_files):
    src, conn = k3s_files
    conn.execute("DROP TABLE kine")
    conn.commit()
    with pytest.raises(BackupError, match="no kine table"):
        backup(tmp_path, src)


def test_backup_that_cannot_be_written_fails(tmp_path, k3s_files):
    src, _conn = k3s_files
    (tmp_path / "backups").write_text("a file where the backup root should be")
    with pytest.raises((BackupError, OSError)):
        backup(tmp_path, src)


def test_only_a_verified_backup_prunes_older_ones(tmp_path, k3s_files):
    src, _conn = k3s_files
    for name in ("20260101T000001Z", "20260101T000002Z", "20260101T000003Z"):
        backup(tmp_path, src, name=name)
    (src / "server" / "token").write_text("")
    with pytest.raises(BackupError):
        backup(tmp_path, src, name="20260101T000004Z", keep=1)
    assert len(list((tmp_path / "backups").iterdir())) == 4
    (src / "server" / "token").write_text("K10abc::server:secret\n")
    result = backup(tmp_path, src, name="20260101T000005Z", keep=2)
    # The failed 000004Z has a manifest but counts as a backup by name; the newest two are kept.
    assert result["pruned"] == ["20260101T000001Z", "20260101T000002Z", "20260101T000003Z"]
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == ["20260101T000004Z", "20260101T000005Z"]


def test_restore_puts_files_and_directories_back_with_their_modes(tmp_path, k3s_files):
    src, conn = k3s_files
    (src / "config.yaml").chmod(0o600)
    backup(tmp_path, src)
    conn.close()
    (src / "config.yaml").write_text("node-ip: 10.77.0.5\n")
    (src / "config.yaml").chmod(0o644)
    shutil.rmtree(src / "server" / "tls")
    targets = [str(src / "config.yaml"), str(src / "server" / "tls")]
    restored = restore(str(tmp_path / "backups" / "20260101T000000Z"), targets)
    assert restored == targets
    assert (src / "config.yaml").read_text() == "node-ip: 172.17.0.3\nflannel-iface: eth0\n"
    assert (src / "config.yaml").stat().st_mode & 0o777 == 0o600
    assert (src / "server" / "tls" / "server-ca.crt").exists()


def test_restore_from_a_damaged_backup_restores_nothing(tmp_path, k3s_files):
    src, _conn = k3s_files
    backup(tmp_path, src)
    folder = tmp_path / "backups" / "20260101T000000Z"
    (folder / ("files" + str(src / "server" / "token"))).write_text("tampered\n")
    (src / "config.yaml").write_text("node-ip: 10.77.0.5\n")
    with pytest.raises(BackupError, match="did not verify, nothing restored"):
        restore(str(folder), [str(src / "config.yaml")])
    assert (src / "config.yaml").read_text() == "node-ip: 10.77.0.5\n"


def test_lock_is_exclusive_expires_and_is_released_only_by_its_owner(tmp_path):
    path = str(tmp_path / "recover.lock")
    first = RunLock(path, "a")
    first.acquire()
    with pytest.raises(BackupError, match=r"another k3s recovery holds .* \(run a,"):
        RunLock(path, "b").acquire()
    other = RunLock(path, "b")
    other.held = True  # a run that thinks it holds the lock must not remove a's
    assert other.release() is False and os.path.isdir(path)
    assert first.release() is True and not os.path.exists(path)
    # A run that died: its lock expired, the next run takes it over.
    RunLock(path, "dead", ttl=0).acquire()
    taker = RunLock(path, "c")
    taker.acquire()
    assert taker.taken_over["run_id"] == "dead"


class Clock:
    def __init__(self, on_sleep=None):
        self.now, self.on_sleep = 0.0, on_sleep

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.now)


def test_a_waiting_run_takes_the_lock_once_its_holder_released_it(tmp_path):
    path = str(tmp_path / "recover.lock")
    holder = RunLock(path, "watch-1", by="integr8scode-k3s-drift-check")
    holder.acquire()
    clock = Clock(on_sleep=lambda now: now >= 30 and holder.release())
    waiter = RunLock(path, "site-1", ttl=60, by="site.yml (role k3s)")
    owner, waited = wait_for_lock(waiter, 900, clock=clock, sleep=clock.sleep)
    assert owner["run_id"] == "site-1" and owner["by"] == "site.yml (role k3s)"
    assert 30 <= waited < 33 and waiter.held


def test_a_wait_that_runs_out_names_the_holder_and_leaves_its_lock(tmp_path):
    path = str(tmp_path / "recover.lock")
    RunLock(path, "20260101T000000Z-1", by="recover.yml (ansible-playbook on box)").acquire()
    clock = Clock()
    with pytest.raises(LockHeld) as raised:
        wait_for_lock(RunLock(path, "site-1"), 5, clock=clock, sleep=clock.sleep)
    assert str(raised.value).startswith(
        f"waited 5s for the run lock: recover.yml (ansible-playbook on box) holds {path} (run 20260101T000000Z-1, "
    )
    assert raised.value.owner["run_id"] == "20260101T000000Z-1" and clock.now == 5
    assert json.loads(Path(path, "owner").read_text())["run_id"] == "20260101T000000Z-1"


def test_the_same_run_takes_over_the_lock_it_kept_without_waiting(tmp_path):
    """site.yml's config.yaml write keeps the lock for its restart (k3s_config lock_hold, then
    k3s_restart with the same run id)."""
    path = str(tmp_path / "recover.lock")
    RunLock(path, "k3s_config-1", by="site.yml").acquire()
    clock = Clock()
    restart = RunLock(path, "k3s_config-1", ttl=420)
    assert wait_for_lock(restart, 0, clock=clock, sleep=clock.sleep)[1] == 0
    assert restart.taken_over is None and restart.release() is True and not os.path.exists(path)


def test_an_empty_lock_path_is_the_collections_lock():
    assert RunLock("", "x").path == LOCK_PATH == "/run/lock/integr8scode-k3s-recover.lock"


def test_remove_path_handles_files_links_and_trees(tmp_path):
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "tree")
    assert k3s_backup.remove_path(str(tmp_path / "link")) is True
    assert (tmp_path / "tree").is_dir(), "removing a symlink must not follow it"
    assert k3s_backup.remove_path(str(tmp_path / "tree")) is True
    assert k3s_backup.remove_path(str(tmp_path / "file")) is True
    assert k3s_backup.remove_path(str(tmp_path / "file")) is False


def recovery_backup(tmp_path, src, name, strategy="wipe", keep=0):
    return create_backup(
        str(tmp_path / "backups" / name),
        [str(src / "config.yaml"), str(src / "server" / "token"), str(src / "server" / "db")],
        datastore="sqlite",
        db_dir=str(src / "server" / "db"),
        required=[str(src / "config.yaml")],
        meta={"run_id": name, "strategy": strategy},
        keep=keep,
    )


def test_retention_keeps_the_first_pre_wipe_backup_after_more_recoveries_than_keep(tmp_path, k3s_files):
    """A watcher recovering again and again (each wipe starts an empty datastore) must not push the
    cluster as it was before the first wipe out of the backup root."""
    src, _conn = k3s_files
    names = [f"20260101T00000{i}Z" for i in range(1, 7)]
    for name in names:
        recovery_backup(tmp_path, src, name, keep=2)
    left = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert left == [names[0], names[-2], names[-1]]
    assert verify(str(tmp_path / "backups" / names[0]))["ok"]


def test_retention_skips_a_first_backup_that_does_not_verify(tmp_path, k3s_files):
    src, _conn = k3s_files
    for name in ("20260101T000001Z", "20260101T000002Z", "20260101T000003Z", "20260101T000004Z"):
        recovery_backup(tmp_path, src, name)
    (tmp_path / "backups" / "20260101T000001Z" / "files").joinpath(
        *str(src / "config.yaml").lstrip("/").split("/")
    ).write_text("x")
    recovery_backup(tmp_path, src, "20260101T000005Z", strategy="scheduled", keep=1)
    # 000001Z no longer verifies: 000002Z is the oldest pre-wipe restore point, 000004Z the newest.
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [
        "20260101T000002Z", "20260101T000004Z", "20260101T000005Z",
    ]  # fmt: skip


def test_retention_keeps_the_newest_verified_backup_when_newer_ones_are_damaged(tmp_path, k3s_files):
    """protected_backups on a root whose newest backups do not verify: the newest one that does
    is the restore point and stays, whatever the count."""
    src, _conn = k3s_files
    for name in ("20260101T000001Z", "20260101T000002Z", "20260101T000003Z"):
        recovery_backup(tmp_path, src, name, strategy="reset")
    for name in ("20260101T000002Z", "20260101T000003Z"):
        (tmp_path / "backups" / name / "manifest.json").write_text("{}")
    root = str(tmp_path / "backups")
    names = k3s_backup.backup_names(root)
    # A run that has not written its own backup yet (current is not among them).
    why = k3s_backup.protected_backups(root, names, root + "/20260101T000004Z")
    assert why["20260101T000001Z"] == "the newest verified backup"
    assert k3s_backup.prune(root, 1, root + "/20260101T000004Z") == ["20260101T000002Z"]


def test_online_copy_of_a_live_wal_datastore_verifies_and_restores(tmp_path, k3s_files):
    """The scheduled backup's SQLite path: the online backup API while a writer keeps writing
    (uncheckpointed WAL frames included), then PRAGMA integrity_check and a restore."""
    src, conn = k3s_files
    for i in range(200):
        conn.execute("INSERT INTO kine (name, value, deleted) VALUES (?, x'01', 0)", (f"/registry/x/{i}",))
    conn.commit()
    assert (src / "server" / "db" / "state.db-wal").stat().st_size > 0
    folder = tmp_path / "backups" / "20260101T000000Z"
    k3s_backup.prepare_backup_dir(str(folder))
    k3s_backup.sqlite_online_copy(str(src / "server" / "db" / "state.db"), str(folder))
    conn.execute("INSERT INTO kine (name, value, deleted) VALUES ('/registry/after', x'02', 0)")
    conn.commit()
    result = create_backup(
        str(folder), [str(src / "config.yaml"), str(src / "server" / "token")], datastore="sqlite",
        db_dir=str(src / "server" / "db"), required=[str(src / "server" / "db" / "state.db")],
        meta={"kind": "scheduled"},
    )  # fmt: skip
    assert result["ok"] and result["integrity_check"] == "ok"
    rel = "files" + str(src / "server" / "db" / "state.db")
    assert rel in json.loads((folder / "manifest.json").read_text())["files"]
    conn.close()
    restored = restore(str(folder), [str(src / "server" / "db")])
    assert restored == [str(src / "server" / "db")]
    check = sqlite3.connect(str(src / "server" / "db" / "state.db"))
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = {row[0] for row in check.execute("SELECT name FROM kine")}
    finally:
        check.close()
    assert "/registry/x/199" in names and "/registry/after" not in names
