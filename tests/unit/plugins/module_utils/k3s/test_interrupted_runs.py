"""Interrupted and failed recoveries (issue 27 items 4 and 5): the journal of steps on disk, the
signal guard, and what Rebuild does with them, over a recording runner with the real run lock,
the real journal file and real signals sent to this process. The host steps that need systemd,
k3s and Compose (backup, killall, restore) are replaced by recorders of the calls; the recover
scenarios run them for real (test_safety.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import backup as backup_mod  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import rebuild as rebuild_mod  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.journal import (  # noqa: E402
    Interrupted,
    Journal,
    SignalGuard,
    journal_path,
    read_journal,
    writer_alive,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (  # noqa: E402
    ModuleFailure,
    Rebuild,
    StepError,
    execute,
    with_defaults,
)


class Runner:
    """Records every command; systemctl show reports k3s active."""

    def __init__(self):
        self.calls = []
        self.warnings = []

    def run_command(self, argv, cwd=None):
        self.calls.append([str(a) for a in argv])
        if "show" in argv:
            return 0, "ActiveState=active\nSubState=running\n", ""
        return 0, "", ""

    @staticmethod
    def get_bin_path(name, required=False):
        return "/usr/bin/" + name

    def warn(self, message):
        self.warnings.append(message)

    def ran(self, *words):
        return [c for c in self.calls if all(w in c for w in words)]


class HostSteps(Rebuild):
    """Rebuild with the host steps recorded instead of done; ``on`` maps a step to an action
    (a callable) run when it is reached."""

    def __init__(self, params, runner, on=None):
        super().__init__(params, runner)
        self.on = on or {}
        self.steps = []

    def step(self, name):
        self.steps.append(name)
        action = self.on.get(name)
        if action:
            action(self)

    def recheck_drift(self):
        self.step("recheck")

    def backup(self):
        self.step("backup")

    def verified(self):
        self.step("verify")
        self.result["backup"] = dict(ok=True, backup_dir=self.p["backup_dir"])

    def killall(self):
        self.step("killall")

    def target_still_assigned(self):
        self.step("target")

    def start_k3s(self, verb):
        self.step("start_k3s")

    def wait_ready(self, require_ready=True):
        self.step("ready" if require_ready else "serving")

    def refresh_user_kubeconfig(self, user, user_host):
        self.step("user_kubeconfig")

    def write_config(self):
        self.step("write_config")
        return {}

    def roll_back(self, app, wait):
        self.step("roll_back")
        self.result["restored"] = ["config.yaml", "server/db", "server/tls"]


def params(tmp_path, **extra):
    data = tmp_path / "k3s"
    (data / "server" / "db").mkdir(parents=True, exist_ok=True)
    (data / "server" / "tls").mkdir(parents=True, exist_ok=True)
    values = dict(state="rebuilt", run_id="run-2", node_ip="10.0.0.5", backup_dir=str(tmp_path / "backups" / "new"),
                  data_dir=str(data), config_file=str(tmp_path / "config.yaml"),
                  lock_path=str(tmp_path / "lock" / "recover.lock"), ready_timeout=5, stop_timeout=5)  # fmt: skip
    values.update(extra)
    return with_defaults(**values)


def kill_self(signum):
    def action(_job):
        os.kill(os.getpid(), signum)

    return action


def fail_with(stage):
    def action(_job):
        raise StepError("k3s did not report ready", stage=stage)

    return action


# ----------------------------------------------------------------------------- journal, guard


def test_the_journal_records_each_stage_and_is_gone_once_cleared(tmp_path):
    journal = Journal(str(tmp_path), "run-1", node_ip="10.0.0.5", backup_dir="/b/1")
    journal.note("stopping")
    journal.note("backed_up")
    entry = read_journal(str(tmp_path))
    assert entry["stage"] == "backed_up" and [s for s, _at in entry["steps"]] == ["stopping", "backed_up"]
    assert oct(os.stat(journal_path(str(tmp_path))).st_mode & 0o777) == "0o600"
    journal.clear()
    assert read_journal(str(tmp_path)) is None


def test_a_signal_interrupts_until_the_run_is_critical_and_is_recorded_after(tmp_path):
    with SignalGuard() as guard:
        with pytest.raises(Interrupted, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
        guard.critical = True
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, the run goes on
        os.kill(os.getpid(), signal.SIGHUP)
    assert guard.received == [signal.SIGTERM, signal.SIGTERM, signal.SIGHUP]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ----------------------------------------------------------------------------- rebuild


def test_sigterm_during_the_backup_starts_k3s_and_the_workers_again_and_releases_the_lock(tmp_path, monkeypatch):
    runner = Runner()
    job = HostSteps(params(tmp_path, stack_dir=str(tmp_path), app_kubeconfig=str(tmp_path / "kubeconfig.yaml")),
                    runner, on={"backup": kill_self(signal.SIGTERM)})  # fmt: skip
    (tmp_path / "kubeconfig.yaml").write_text("apiVersion: v1\n")
    monkeypatch.setattr(rebuild_mod, "docker_client", lambda: None)
    monkeypatch.setattr(rebuild_mod, "load_definition", lambda *_a, **_k: None)
    with pytest.raises(ModuleFailure, match="Interrupted by SIGTERM during the backup"):
        execute(job)
    assert job.result["stage"] == "interrupted" and "killall" not in job.steps
    assert runner.ran("start", "k3s"), runner.calls
    assert runner.ran("compose", "restart"), runner.calls
    assert not os.path.exists(params(tmp_path)["lock_path"]) and read_journal(job.p["data_dir"]) is None


def test_sigterm_after_the_wipe_began_is_deferred_and_the_recovery_finishes(tmp_path):
    runner = Runner()
    job = HostSteps(params(tmp_path), runner, on={"start_k3s": kill_self(signal.SIGTERM)})
    result = execute(job)
    assert result["changed"] is True and result["signals_deferred"] == ["SIGTERM"]
    assert job.steps[-3:] == ["serving", "user_kubeconfig", "ready"] and read_journal(job.p["data_dir"]) is None


def test_a_failure_after_the_wipe_rolls_back_and_says_so(tmp_path):
    runner = Runner()
    job = HostSteps(params(tmp_path), runner, on={"serving": fail_with("k3s_ready")})
    with pytest.raises(ModuleFailure) as raised:
        execute(job)
    assert "ROLLED BACK: config.yaml, server/db, server/tls restored from the verified backup" in str(raised.value)
    assert job.result["rolled_back"] is True and job.result["stage"] == "k3s_ready"
    assert job.steps[-1] == "roll_back" and read_journal(job.p["data_dir"]) is None


def test_a_rollback_that_fails_too_keeps_the_journal_for_the_next_run(tmp_path):
    runner = Runner()

    def broken(_job):
        raise OSError(28, "No space left on device")

    job = HostSteps(params(tmp_path), runner, on={"serving": fail_with("k3s_ready"), "roll_back": broken})
    with pytest.raises(ModuleFailure, match="The automatic rollback failed too: .*No space left on device"):
        execute(job)
    assert job.result["rolled_back"] is False
    assert read_journal(job.p["data_dir"])["stage"] == "wiped"


def test_a_run_killed_after_the_wipe_is_finished_by_the_next_from_its_backup(tmp_path):
    """SIGKILL (or a power cut) leaves the journal; the next run takes no new backup of the
    half-built datastore, verifies the killed run's backup and finishes onto its own address."""
    first = params(tmp_path, run_id="run-1", backup_dir=str(tmp_path / "backups" / "old"))
    Journal(first["data_dir"], "run-1", node_ip="10.0.0.4", backup_dir=first["backup_dir"]).note("wiped")
    runner = Runner()
    job = HostSteps(params(tmp_path), runner)
    result = execute(job)
    assert "backup" not in job.steps and "verify" in job.steps and "write_config" in job.steps
    assert job.p["backup_dir"] == first["backup_dir"] and result["interrupted_run"]["run_id"] == "run-1"
    assert any("finishing an interrupted recovery run-1" in w for w in runner.warnings)
    assert read_journal(job.p["data_dir"]) is None


def test_a_run_killed_before_the_wipe_has_its_stops_undone_then_the_next_goes_on(tmp_path):
    first = params(tmp_path, run_id="run-1")
    Journal(first["data_dir"], "run-1", node_ip="10.0.0.4", backup_dir="/b/old", was_active=True, app=False).note(
        "backed_up"
    )
    runner = Runner()
    job = HostSteps(params(tmp_path), runner)
    execute(job)
    assert runner.ran("start", "k3s") and "backup" in job.steps
    assert any("undoing the stops of an interrupted recovery run-1" in w for w in runner.warnings)
    assert json.dumps(job.result["interrupted_run"]).count("run-1") >= 1


# ----------------------------------------------------------------------------- full disk


def test_a_backup_that_fails_on_a_full_disk_removes_what_it_wrote_and_starts_k3s_again(tmp_path):
    runner = Runner()

    def half_written(job):
        folder = Path(job.p["backup_dir"], "files", "var")
        folder.mkdir(parents=True)
        (folder / "state.db").write_bytes(b"x" * 4096)
        raise OSError(28, "No space left on device")

    job = HostSteps(params(tmp_path), runner, on={"backup": half_written})
    with pytest.raises(ModuleFailure, match="No space left on device.*the partial backup was removed"):
        execute(job)
    assert not os.path.exists(job.p["backup_dir"]) and job.result["discarded_backup"] == job.p["backup_dir"]
    assert runner.ran("start", "k3s") and "killall" not in job.steps


def test_the_free_space_check_refuses_before_anything_is_stopped_naming_root_and_sizes(tmp_path, monkeypatch):
    source = tmp_path / "db"
    source.mkdir()
    (source / "state.db").write_bytes(b"x" * (3 * 2**20))

    class Full:
        f_bavail, f_frsize = 100, 4096  # 400 KiB free

    monkeypatch.setattr(backup_mod.os, "statvfs", lambda _path: Full)
    with pytest.raises(backup_mod.BackupError) as raised:
        backup_mod.check_free_space(str(tmp_path / "backups"), [str(source)])
    assert str(raised.value).startswith(
        f"not enough free space for the backup in {tmp_path}/backups (filesystem of {tmp_path}): it needs about 259 "
        "MiB (3 MiB to copy plus 256 MiB kept free), 0 MiB are free. Nothing was stopped or deleted"
    )
    Full.f_bavail = 2**20  # 4 GiB
    assert backup_mod.check_free_space(str(tmp_path / "backups"), [str(source)])["estimate"] == 3 * 2**20


# ----------------------------------------------------------------------------- the unit's timeout


def test_the_watcher_asks_systemd_for_its_backups_share_of_time(tmp_path, monkeypatch):
    """The unit's TimeoutStartSec holds the bounded waits; the backup's share (k3s_recover_pv_paths
    are unbounded) is asked for over the notify socket, as systemd's sd_notify protocol reads it."""
    volume = tmp_path / "pv" / "volume.img"
    volume.parent.mkdir()
    volume.write_bytes(b"\0" * (20 * 2**20))
    assert watch.backup_budget([str(volume.parent)]) == 4.0  # 20 MiB read and written, read again, 10 MiB/s

    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "notify"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        assert watch.extend_unit_timeout(1234.5) is True
        assert server.recv(100) == b"EXTEND_TIMEOUT_USEC=1234500000"
    finally:
        server.close()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert watch.extend_unit_timeout(10) is False


def test_the_journal_of_a_run_in_progress_is_not_an_interrupted_recovery(tmp_path):
    """The drift check (the watcher's, recover.yml's) runs while a recovery works: its journal names
    a live process, so it is reported as in progress, not as an interrupted run to finish."""
    live = Journal(str(tmp_path), "run-1", node_ip="10.0.0.5", backup_dir="/b/1")
    live.note("app")
    assert writer_alive(read_journal(str(tmp_path))) is True
    live.entry["pid"] = 2**22 + 1
    live.note("app")
    assert writer_alive(read_journal(str(tmp_path))) is False
