"""module_utils/k3s/rebuild.py over a recording runner: every systemctl call is bounded, and a k3s
that never reports ready (the unit has TimeoutStartSec=0; embedded etcd's "not a member" loop,
k3s #7558) fails the recovery with the unit's journal tail and is stopped. The whole recovery
against systemd and the stand-in is proven by the recover scenarios (test_safety.py's hang test)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (  # noqa: E402
    Rebuild,
    StepError,
    with_defaults,
)

TAIL = 'level=info msg="Failed to test data store connection: this server is a not a member of the etcd cluster."'


class Runner:
    def __init__(self, start_rc=124, stop_rc=0):
        self.calls = []
        self.rc = {"start": start_rc, "stop": stop_rc}

    def run_command(self, argv, cwd=None):
        self.calls.append(argv)
        if "journalctl" in argv[2]:
            return 0, TAIL + "\n", ""
        verb = argv[3] if len(argv) > 3 else ""
        return self.rc.get(verb, 0), "", ""

    @staticmethod
    def get_bin_path(name, required=False):
        return "/usr/bin/" + name

    @staticmethod
    def warn(message):
        pass


def job(runner, **extra):
    params = with_defaults(state="rebuilt", run_id="t", node_ip="10.0.0.5", backup_dir="/b/x", ready_timeout=7,
                           stop_timeout=11, **extra)  # fmt: skip
    return Rebuild(params, runner)


def test_every_systemctl_call_runs_under_a_time_limit():
    runner = Runner(start_rc=0)
    rebuild = job(runner)
    rebuild.systemctl("stop")
    rebuild.start_k3s("start")
    assert runner.calls[0] == ["/usr/bin/timeout", "11", "/usr/bin/systemctl", "stop", "k3s"]
    assert runner.calls[1][:2] == ["/usr/bin/timeout", "7"] and runner.calls[1][2:] == [
        "/usr/bin/systemctl",
        "start",
        "k3s",
    ]


def test_a_k3s_that_never_reports_ready_fails_with_the_journal_tail_and_is_stopped():
    runner = Runner(start_rc=124)
    with pytest.raises(StepError) as raised:
        job(runner).start_k3s("start")
    message = str(raised.value)
    assert "k3s did not report ready within k3s_recover_ready_timeout (7s)" in message
    assert "systemctl start k3s did not finish within 7s" in message
    assert TAIL in message and "k3s was stopped" in message
    assert raised.value.details["stage"] == "k3s_ready" and TAIL in raised.value.details["journal_tail"]
    assert ["/usr/bin/timeout", "11", "/usr/bin/systemctl", "stop", "k3s"] in runner.calls


def test_a_stop_that_hangs_too_is_reported():
    runner = Runner(start_rc=124, stop_rc=124)
    with pytest.raises(StepError) as raised:
        job(runner).start_k3s("start")
    assert "stopping k3s failed too: systemctl stop k3s did not finish within 11s" in str(raised.value)
