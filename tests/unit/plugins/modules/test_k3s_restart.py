"""k3s_restart run as Ansible runs it, with a recording `systemctl` (keeping the unit's state in a
file, as `systemctl show` reports it) and `journalctl` first on PATH and the real run lock (a
directory under tmp_path): the restart waits for a recovery's lock, fails naming its holder without
restarting, takes over the lock site.yml's config.yaml write kept, and is bounded (the unit has
TimeoutStartSec=0); state=started leaves a running unit alone and, after waiting for a recovery,
does not start what the recovery started."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import RunLock  # noqa: E402


def fake_tools(tmp_path, restart="exit 0", active="active", enabled="enabled", load="loaded"):
    """systemctl and journalctl that append their arguments to calls.log (all but `show`);
    systemctl keeps ActiveState/UnitFileState/LoadState in files, which start/restart/enable set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    unit = tmp_path / "unit"
    unit.mkdir()
    for name, value in (("ActiveState", active), ("UnitFileState", enabled), ("LoadState", load)):
        (unit / name).write_text(value + "\n")
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = show ]; then for p in ActiveState UnitFileState LoadState; do echo "$p=$(cat {unit}/$p)"; done; '
        "exit 0; fi\n"
        f'echo "systemctl $*" >> {log}\n'
        f'case "$1" in restart) {restart}; echo active > {unit}/ActiveState;; '
        f"start) echo active > {unit}/ActiveState;; "
        f"enable) echo enabled > {unit}/UnitFileState;; esac\nexit 0\n"
    )
    (bin_dir / "journalctl").write_text(f'#!/bin/sh\necho "journalctl $*" >> {log}\necho "k3s: last words"\n')
    for tool in ("systemctl", "journalctl"):
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_restarts_under_the_lock_and_releases_it(tmp_path, run_module):
    env, log = fake_tools(tmp_path)
    result = run_module("k3s_restart", {"lock_path": str(tmp_path / "lock"), "timeout": 30}, env=env)
    assert result["_rc"] == 0 and result["changed"] is True, result
    assert calls(log) == ["systemctl daemon-reload", "systemctl restart k3s"]
    assert result["lock"]["taken_over"] is False and not (tmp_path / "lock").exists()


def test_a_recovery_holding_the_lock_makes_it_wait_then_fail_naming_it_without_restarting(tmp_path, run_module):
    env, log = fake_tools(tmp_path)
    lock = RunLock(str(tmp_path / "lock"), "watch-20260101T000000Z",
                   "integr8scode-k3s-drift-check (k3s_recover_watch_mode=recover)")  # fmt: skip
    lock.acquire()
    started = time.monotonic()
    result = run_module("k3s_restart", {"lock_path": lock.path, "lock_wait": 1}, env=env)
    assert time.monotonic() - started >= 1
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["msg"].startswith(
        "k3s was not restarted: waited 1s for the run lock: integr8scode-k3s-drift-check "
        f"(k3s_recover_watch_mode=recover) holds {lock.path} (run watch-20260101T000000Z, "
    )
    assert result["holder"]["run_id"] == "watch-20260101T000000Z"
    assert calls(log) == [] and os.path.isdir(lock.path)


def test_it_takes_over_and_releases_the_lock_site_yml_kept_for_it(tmp_path, run_module):
    env, log = fake_tools(tmp_path)
    kept = RunLock(str(tmp_path / "lock"), "k3s_config-20260101T000000Z-7", "site.yml")
    kept.acquire()
    kept.keep(300)
    args = {"lock_path": str(tmp_path / "lock"), "lock_wait": 0, "run_id": "k3s_config-20260101T000000Z-7"}
    result = run_module("k3s_restart", args, env=env)
    assert result["_rc"] == 0, result
    assert result["lock"]["taken_over"] is True and result["lock"]["waited"] < 0.5
    assert calls(log)[-1] == "systemctl restart k3s" and not (tmp_path / "lock").exists()


def test_check_mode_neither_waits_nor_restarts(tmp_path, run_module):
    env, log = fake_tools(tmp_path)
    RunLock(str(tmp_path / "lock"), "someone").acquire()
    result = run_module("k3s_restart", {"lock_path": str(tmp_path / "lock")}, check_mode=True, env=env)
    assert result["_rc"] == 0 and result["changed"] is True and "lock" not in result
    assert calls(log) == []


def test_a_restart_that_never_returns_is_bounded_and_reports_the_journal(tmp_path, run_module):
    env, log = fake_tools(tmp_path, restart="sleep 30")
    result = run_module(
        "k3s_restart", {"lock_path": str(tmp_path / "lock"), "timeout": 1, "daemon_reload": False}, env=env
    )
    assert result["_rc"] == 1
    assert result["msg"].startswith("systemctl restart k3s did not finish within 1s. Last lines of its journal:")
    assert result["journal_tail"] == "k3s: last words"
    assert calls(log)[0] == "systemctl restart k3s" and not (tmp_path / "lock").exists()


def test_started_leaves_a_running_enabled_unit_alone_without_the_lock(tmp_path, run_module):
    env, log = fake_tools(tmp_path)
    RunLock(str(tmp_path / "lock"), "a-recovery").acquire()
    result = run_module("k3s_restart", {"state": "started", "lock_path": str(tmp_path / "lock"), "lock_wait": 0},
                        env=env)  # fmt: skip
    assert result["_rc"] == 0 and result["changed"] is False, result
    assert result["unit"]["active_state"] == "active" and "lock" not in result and calls(log) == []


def test_started_enables_and_starts_a_stopped_unit_under_the_lock(tmp_path, run_module):
    env, log = fake_tools(tmp_path, active="inactive", enabled="disabled")
    args = {"state": "started", "lock_path": str(tmp_path / "lock"), "daemon_reload": False}
    result = run_module("k3s_restart", args, env=env)
    assert result["_rc"] == 0 and result["changed"] is True, result
    assert result["done"] == ["enable", "start"] and calls(log) == ["systemctl enable k3s", "systemctl start k3s"]
    assert not (tmp_path / "lock").exists()
    again = run_module("k3s_restart", args, env=env)
    assert again["changed"] is False and len(calls(log)) == 2


def test_started_after_waiting_for_a_recovery_does_not_start_what_the_recovery_started(tmp_path, run_module):
    """The first site.yml start must not race a recovery that stopped k3s to wipe its datastore."""
    env, log = fake_tools(tmp_path, active="inactive")
    recovery = RunLock(str(tmp_path / "lock"), "watch-1", "integr8scode-k3s-drift-check")
    recovery.acquire()

    def recovered():
        (tmp_path / "unit" / "ActiveState").write_text("active\n")
        recovery.release()

    threading.Timer(1.5, recovered).start()
    args = {"state": "started", "lock_path": str(tmp_path / "lock"), "lock_wait": 30, "daemon_reload": False}
    result = run_module("k3s_restart", args, env=env)
    assert result["_rc"] == 0 and result["changed"] is False, result
    assert result["lock"]["waited"] >= 1 and calls(log) == [] and not (tmp_path / "lock").exists()


def test_check_mode_on_a_bare_host_reports_the_start_and_does_not_fail(tmp_path, run_module):
    env, log = fake_tools(tmp_path, active="inactive", enabled="", load="not-found")
    result = run_module("k3s_restart", {"state": "started", "lock_path": str(tmp_path / "lock")},
                        check_mode=True, env=env)  # fmt: skip
    assert result["_rc"] == 0 and result["changed"] is True and "enable and start" in result["msg"]
    assert calls(log) == []
