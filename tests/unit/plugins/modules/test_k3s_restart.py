"""k3s_restart run as Ansible runs it, with a recording `systemctl` and `journalctl` first on PATH
and the real run lock (a directory under tmp_path): the restart waits for a recovery's lock, fails
naming its holder without restarting, takes over the lock site.yml's config.yaml write kept, and is
bounded (the unit has TimeoutStartSec=0)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import RunLock  # noqa: E402


def fake_tools(tmp_path, restart="exit 0"):
    """systemctl and journalctl that append their arguments to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "systemctl $*" >> {log}\nif [ "$1" = restart ]; then {restart}; fi\nexit 0\n'
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
    lock = RunLock(str(tmp_path / "lock"), "watch-20260101T000000Z", 3600,
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
    RunLock(str(tmp_path / "lock"), "k3s_config-20260101T000000Z-7", 900, "site.yml").acquire()
    args = {"lock_path": str(tmp_path / "lock"), "lock_wait": 0, "run_id": "k3s_config-20260101T000000Z-7"}
    result = run_module("k3s_restart", args, env=env)
    assert result["_rc"] == 0, result
    assert result["lock"]["taken_over"] is True and result["lock"]["waited"] < 0.5
    assert calls(log)[-1] == "systemctl restart k3s" and not (tmp_path / "lock").exists()


def test_check_mode_neither_waits_nor_restarts(tmp_path, run_module):
    env, log = fake_tools(tmp_path)
    RunLock(str(tmp_path / "lock"), "someone", 3600).acquire()
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
