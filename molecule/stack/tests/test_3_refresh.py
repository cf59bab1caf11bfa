"""The opt-in kubeconfig refresh timer: installed, and its service works when triggered."""

from stackhost import APP_TOKEN_CMD, KUBECONFIG, api_status, app_kubeconfig, containers
from testhost import wait_worker_up

UNIT = "integr8scode-kubeconfig-refresh"


def test_timer_is_enabled_and_scheduled(host):
    timer = host.service(f"{UNIT}.timer")
    assert timer.is_enabled
    assert timer.is_running
    assert "OnCalendar=*-*-* 00/12:00:00" in host.file(f"/etc/systemd/system/{UNIT}.timer").content_string
    # Enabling it did not fire it: nothing ran during converge.
    assert host.run(f"systemctl show -p ExecMainStartTimestampMonotonic --value {UNIT}.service").stdout.strip() == "0"


def test_triggered_refresh_writes_a_new_token_and_restarts_the_workers(host):
    before = containers(host)
    old_token = app_kubeconfig(host)["users"][0]["user"]["token"]
    old_mtime = host.file(KUBECONFIG).mtime
    result = host.run(f"systemctl start {UNIT}.service")
    assert result.rc == 0, host.run(f"journalctl -u {UNIT}.service --no-pager -n 40").stdout
    assert app_kubeconfig(host)["users"][0]["user"]["token"] != old_token
    assert host.file(KUBECONFIG).mtime > old_mtime
    assert host.file(KUBECONFIG).mode == 0o600
    after = containers(host)
    for name in ("k8s-worker", "pod-monitor"):
        assert after[name]["State"]["StartedAt"] != before[name]["State"]["StartedAt"], f"{name} not restarted"
    for name in ("backend", "mongo", "redis"):
        assert after[name]["State"]["StartedAt"] == before[name]["State"]["StartedAt"], f"{name} restarted"
    server = app_kubeconfig(host)["clusters"][0]["cluster"]["server"]
    assert api_status(host, server, APP_TOKEN_CMD) == 200


def test_workers_run_with_the_new_token(host):
    # No healthcheck on the workers (as upstream): running, not restarting, and their own start-up
    # request with the new token answered 200; a state they reach on their own, polled (bounded).
    for name in ("k8s-worker", "pod-monitor"):
        wait_worker_up(host, name)
