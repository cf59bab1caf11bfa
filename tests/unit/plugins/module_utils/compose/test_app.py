"""The parts of the app's readiness that the workers' container state cannot show: a worker that
kept running through cert-generator's rewrite still holds the old kubeconfig (upstream's workers
read it only at start-up), and a failure message quotes the failing worker's last log lines."""

from __future__ import annotations

import os

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.compose import app
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.app import (
    AppError,
    read_refresh,
    record_refresh,
    refresh_main,
    refresh_status_line,
    stale_workers,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.probe import with_log_tail
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import Definition

WRITTEN = 1_700_000_100  # the kubeconfig's mtime, whole seconds (app_kubeconfig.judge)


def test_a_worker_started_before_the_kubeconfig_was_written_is_stale():
    services = {
        "k8s-worker": dict(started_at=WRITTEN - 30.5, ready=True),
        "pod-monitor": dict(started_at=WRITTEN + 2.25, ready=True),
    }
    assert stale_workers(services, WRITTEN) == {"k8s-worker": WRITTEN - 30.5}


def test_a_worker_started_in_the_second_the_file_was_written_is_not_stale():
    # mtime is truncated to the second; a start 0.4 s into that second came after the write.
    assert stale_workers({"k8s-worker": dict(started_at=WRITTEN + 0.4)}, WRITTEN) == {}


def test_without_a_start_time_or_mtime_nothing_is_judged_stale():
    assert stale_workers({"k8s-worker": dict(started_at=None)}, WRITTEN) == {}
    assert stale_workers({"k8s-worker": dict(started_at=WRITTEN - 99)}, None) == {}


def test_the_message_ends_with_each_failing_services_last_log_lines():
    logs = {
        "pod-monitor": ["pod-monitor: using https://10.0.0.5:6443", "ERROR: start-up request failed: 401"],
        "k8s-worker": ["a", "b", "c", "ERROR: k8s-worker: start-up request to the k3s API failed: 401"],
    }
    message = with_log_tail("k8s-worker, pod-monitor did not become ready: crash loop", logs)
    assert message == (
        "k8s-worker, pod-monitor did not become ready: crash loop. Last log lines: "
        "k8s-worker: b | c | ERROR: k8s-worker: start-up request to the k3s API failed: 401; "
        "pod-monitor: pod-monitor: using https://10.0.0.5:6443 | ERROR: start-up request failed: 401"
    )


def test_no_logs_leave_the_message_alone():
    assert with_log_tail("x did not become ready", {"x": []}) == "x did not become ready"
    assert with_log_tail("x did not become ready", {}) == "x did not become ready"


def test_a_refresh_outcome_is_kept_and_a_failure_keeps_the_last_success(tmp_path):
    path = str(tmp_path / "state" / "kubeconfig-refresh.json")
    assert read_refresh(path) is None
    assert refresh_status_line(None) == "never ran"
    record_refresh(True, "kubeconfig refreshed", path, now=1_700_000_000)
    assert refresh_status_line(read_refresh(path), now=1_700_000_000 + 600).startswith("ok at ")
    assert "(10 min ago)" in refresh_status_line(read_refresh(path), now=1_700_000_000 + 600)
    state = record_refresh(False, "cert-generator exited 0 but ... is not usable", path, now=1_700_043_200)
    assert state["last_success"] == 1_700_000_000
    line = refresh_status_line(read_refresh(path))
    assert line.startswith("FAILED at ") and line.endswith("cert-generator exited 0 but ... is not usable")
    assert "(last success: " in line and "never" not in line
    assert oct((tmp_path / "state" / "kubeconfig-refresh.json").stat().st_mode & 0o777) == "0o644"


# ------------------------------------------------------------------ the refresh program's entry point


def refresh_settings(tmp_path):
    """What the stack role writes into integr8scode-kubeconfig-refresh.json (stack__refresh_settings)."""
    config = tmp_path / "config.yaml"
    config.write_text("node-ip: 10.0.0.5\nflannel-iface: eth0\n")
    return dict(
        stack_dir=str(tmp_path / "stack"), project_name="", compose_files=["docker-compose.yaml"],
        kubeconfig=str(tmp_path / "stack/backend/kubeconfig.yaml"), kubeconfig_mode="0600", generator="cert-generator",
        workers=["k8s-worker", "pod-monitor"], k3s_config=str(config), api_port=6443, timeout=600,
        home=str(tmp_path / "home"),
    )  # fmt: skip


class Api:
    def __init__(self):
        self.stopped = []

    def stop(self, cid, timeout):
        self.stopped.append((cid, timeout))


class Client:
    def __init__(self):
        self.api = Api()


@pytest.fixture
def seams(monkeypatch):
    """The refresh's Docker side replaced where it meets the program: the definition, the containers
    and the reconnect (the recovery's own, tested with a fake Engine in test_k3s_rebuild)."""
    seen = {}
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setattr(app, "load_definition", lambda runner, client, src, name, files: seen.update(
        definition=(runner, src, name, files)) or Definition("integr8scode", ["k8s-worker"], [], "test"))  # fmt: skip
    monkeypatch.setattr(app, "containers_of", lambda client, project, service: [f"{project}-{service}"])
    return seen


def test_refresh_status_says_never_ok_or_failed_with_its_exit_code(tmp_path, capsys):
    state = str(tmp_path / "kubeconfig-refresh.json")
    assert refresh_main(["--status"], {}, state=state) == 3
    assert capsys.readouterr().out == "kubeconfig refresh: never ran\n"
    record_refresh(True, "kubeconfig refreshed", state)
    assert refresh_main(["--status"], {}, state=state) == 0
    assert capsys.readouterr().out.startswith("kubeconfig refresh: ok at ")
    record_refresh(False, "cert-generator exited 1", state)
    assert refresh_main(["--status"], {}, state=state) == 1
    assert "FAILED at " in capsys.readouterr().out


def test_refresh_reconnects_with_the_roles_settings_and_records_success(tmp_path, monkeypatch, capsys, seams):
    state = str(tmp_path / "kubeconfig-refresh.json")
    client = Client()

    def reconnect(client_, definition, **kw):
        seams.update(kw)
        kw["before_workers"]()
        return {"probe_status": 200}

    monkeypatch.setattr(app, "reconnect_app", reconnect)
    assert refresh_main([], refresh_settings(tmp_path), state=state, client_factory=lambda: client) == 0
    assert seams["definition"][1:] == (str(tmp_path / "stack"), None, ["docker-compose.yaml"])
    assert seams["node_ip"] == "10.0.0.5" and seams["mode"] == 0o600 and seams["api_port"] == 6443
    assert seams["timeout"] == 600 and seams["workers"] == ["k8s-worker", "pod-monitor"]
    assert seams["kubeconfig"] == str(tmp_path / "stack/backend/kubeconfig.yaml")
    assert client.api.stopped == [("integr8scode-k8s-worker", 10), ("integr8scode-pod-monitor", 10)]
    assert os.environ["HOME"] == str(tmp_path / "home")
    message = "kubeconfig refreshed; restarted k8s-worker, pod-monitor; the API accepted the new token (200)"
    assert capsys.readouterr().out == message + "\n"
    assert read_refresh(state)["ok"] and read_refresh(state)["message"] == message


def test_a_failed_refresh_prints_errors_with_the_logs_and_is_recorded(tmp_path, monkeypatch, capsys, seams):
    state = str(tmp_path / "kubeconfig-refresh.json")

    def reconnect(client_, definition, **kw):
        raise AppError("cert-generator exited 1", logs={"cert-generator": ["kueue: timed out"]})

    monkeypatch.setattr(app, "reconnect_app", reconnect)
    assert refresh_main([], refresh_settings(tmp_path), state=state, client_factory=Client) == 1
    assert capsys.readouterr().out == (
        "<3>kubeconfig refresh failed: cert-generator exited 1\n<3>cert-generator: kueue: timed out\n"
    )
    assert read_refresh(state)["ok"] is False and read_refresh(state)["message"] == "cert-generator exited 1"


def test_docker_down_is_a_failed_refresh_too(tmp_path, seams):
    state = str(tmp_path / "kubeconfig-refresh.json")

    def down():
        raise OSError("[Errno 2] No such file or directory: '/var/run/docker.sock'")

    with pytest.raises(OSError):
        refresh_main([], refresh_settings(tmp_path), state=state, client_factory=down)
    assert read_refresh(state)["message"].startswith("OSError: [Errno 2]")
    assert read_refresh(state)["ok"] is False
