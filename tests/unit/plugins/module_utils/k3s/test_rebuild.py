"""module_utils/k3s/rebuild.py over a recording runner: every systemctl call is bounded, and a k3s
that never reports ready (the unit has TimeoutStartSec=0; embedded etcd's "not a member" loop,
k3s #7558) fails the recovery with the unit's journal tail and is stopped. The whole recovery
against systemd and the stand-in is proven by the recover scenarios (test_safety.py's hang test)."""

from __future__ import annotations

import json
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

TAIL = 'level=info msg="Failed to test etcd connection: this server is a not a member of the etcd cluster."'


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


class NodeRunner(Runner):
    """kubectl get node answers with ``node`` (a dict), NotFound (None) or fails ``failures`` times."""

    def __init__(self, node, failures=0):
        super().__init__(start_rc=0)
        self.node, self.failures = node, failures

    def run_command(self, argv, cwd=None):
        if "kubectl" in argv:
            self.calls.append(argv)
            if self.failures:
                self.failures -= 1
                return 1, "", "The connection to the server 127.0.0.1:6443 was refused"
            if self.node is None:
                return 1, "", 'Error from server (NotFound): nodes "node1" not found'
            return 0, json.dumps(self.node), ""
        return super().run_command(argv, cwd)


def node(*ips):
    return {"status": {"addresses": [{"type": "InternalIP", "address": ip} for ip in ips]}}


def test_a_stale_internal_ip_after_a_reset_is_seen_once_the_api_answers():
    """--cluster-reset never touches Node objects; on releases with k3s #12844 the InternalIP
    stays the old one, and the reset strategy then deletes the node and restarts k3s."""
    assert job(NodeRunner(node("10.9.9.9"), failures=2), node_name="Node1").stale_internal_ip() is True
    assert job(NodeRunner(node("10.0.0.5"))).stale_internal_ip() is False
    assert job(NodeRunner(None)).stale_internal_ip() is False
    runner = NodeRunner(node("10.9.9.9"))
    job(runner, node_name="Node1").stale_internal_ip()
    assert runner.calls[-1][-6:] == ["kubectl", "get", "node", "node1", "-o", "json"]
