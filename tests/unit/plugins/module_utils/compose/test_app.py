"""The parts of the app's readiness that the workers' container state cannot show: a worker that
kept running through cert-generator's rewrite still holds the old kubeconfig (upstream's workers
read it only at start-up), and a failure message quotes the failing worker's last log lines."""

from __future__ import annotations

from ansible_collections.integr8scode.provision.plugins.module_utils.compose.app import (
    read_refresh,
    record_refresh,
    refresh_status_line,
    stale_workers,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.probe import with_log_tail

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
