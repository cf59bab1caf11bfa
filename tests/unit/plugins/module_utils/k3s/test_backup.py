"""module_utils/k3s_backup: the verified backup, restore, pruning, run lock and config.yaml edit
that k3s_rebuild performs on the host, run against real files and a real WAL-mode SQLite kine
datastore with uncheckpointed writes (as a live k3s leaves it)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
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


def test_lock_is_exclusive_and_is_released_only_by_its_owner(tmp_path):
    path = str(tmp_path / "recover.lock")
    first = RunLock(path, "a")
    first.acquire()
    with pytest.raises(
        BackupError, match=rf"another k3s recovery holds .* \(run a, started .*, process {os.getpid()}\)"
    ):
        RunLock(path, "b").acquire()
    other = RunLock(path, "b")
    other.held = True  # a run that thinks it holds the lock must not remove a's
    assert other.release() is False and os.path.isdir(path)
    assert first.release() is True and not os.path.exists(path)


HOLD_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[2])
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import RunLock
RunLock(sys.argv[1], "recover-1", "recover.yml").acquire()
print("held", flush=True)
time.sleep(600)
"""


def holder_process(path):
    """Another process holding the lock, as a recovery's k3s_rebuild does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, path, str(ROOT / "collections")], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_long_run_keeps_the_lock_while_its_process_lives_and_a_killed_one_loses_it_at_once(tmp_path):
    """A backup of large pv_paths may take longer than any fixed age; SIGKILL runs no finally."""
    path = str(tmp_path / "recover.lock")
    proc = holder_process(path)
    try:
        owner = json.loads(Path(path, "owner").read_text())
        owner["started"] = 0  # 1970: older than any ttl the lock ever had
        Path(path, "owner").write_text(json.dumps(owner))
        with pytest.raises(LockHeld, match=rf"recover.yml holds .*process {proc.pid}"):
            RunLock(path, "watch-1").acquire()
    finally:
        proc.kill()
        proc.wait()
    taker = RunLock(path, "watch-1")
    taker.acquire()
    assert taker.taken_over["run_id"] == "recover-1" and taker.taken_over["pid"] == proc.pid


def test_a_reused_pid_is_not_the_holder(tmp_path):
    """After the holder died the kernel may give its pid to another process (its start time
    differs), and after a reboot the boot id differs."""
    path = str(tmp_path / "recover.lock")
    for process in (
        [k3s_backup.process_identity(os.getpid())[0], 1],
        ["another-boot", k3s_backup.process_identity(os.getpid())[1]],
    ):
        os.makedirs(path)
        Path(path, "owner").write_text(json.dumps(dict(run_id="dead", started=0, pid=os.getpid(), process=process)))
        taker = RunLock(path, "next")
        taker.acquire()
        assert taker.taken_over["run_id"] == "dead"
        taker.release()


def test_a_kept_lock_holds_until_its_expiry_for_other_runs_and_not_for_its_own(tmp_path, monkeypatch):
    """site.yml's config.yaml write keeps the lock for its restart handler (k3s_config lock_hold);
    a play that stopped before the handler blocks the recovery for the kept time only."""
    path = str(tmp_path / "recover.lock")
    write = RunLock(path, "k3s_config-1", "site.yml")
    write.acquire()
    kept = write.keep(300)
    assert kept["pid"] is None and write.held is False and os.path.isdir(path)
    assert write.release() is False and os.path.isdir(path)
    with pytest.raises(LockHeld, match=r"site.yml holds .*kept until "):
        RunLock(path, "watch-1").acquire()
    restart = RunLock(path, "k3s_config-1")
    restart.acquire()
    assert restart.taken_over is None and json.loads(Path(path, "owner").read_text())["pid"] == os.getpid()
    restart.keep(300)
    later = kept["expires"] + 1
    monkeypatch.setattr(k3s_backup.time, "time", lambda: later)
    taker = RunLock(path, "watch-1")
    taker.acquire()
    assert taker.taken_over["run_id"] == "k3s_config-1"


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
    holder = RunLock(path, "watch-1", "integr8scode-k3s-drift-check")
    holder.acquire()
    clock = Clock(on_sleep=lambda now: now >= 30 and holder.release())
    waiter = RunLock(path, "site-1", "site.yml (role k3s)")
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
    restart = RunLock(path, "k3s_config-1")
    assert wait_for_lock(restart, 0, clock=clock, sleep=clock.sleep)[1] == 0
    assert restart.taken_over is None and restart.release() is True and not os.path.exists(path)


def test_an_empty_lock_path_is_the_collections_lock():
    assert RunLock("", "x").path == LOCK_PATH == "/run/integr8scode/k3s-recover.lock"


def test_remove_path_handles_files_links_and_trees(tmp_path):
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "tree")
    assert k3s_backup.remove_path(str(tmp_path / "link")) is True
    assert (tmp_path / "tree").is_dir(), "removing a symlink must not follow it"
    assert k3s_backup.remove_path(str(tmp_path / "tree")) is True
    assert k3s_backup.remove_path(str(tmp_path / "file")) is True
    assert k3s_backup.remove_path(str(tmp_path / "file")) is False


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
