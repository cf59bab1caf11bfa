"""The opt-in kubeconfig refresh timer: installed, and its service works when triggered."""

import json
from pathlib import Path

from stackhost import APP_TOKEN_CMD, KUBECONFIG, api_status, app_kubeconfig, containers, env_values
from testhost import wait_worker_up

UNIT = "integr8scode-kubeconfig-refresh"
PROGRAM = f"/usr/local/sbin/{UNIT}"
# Every program the roles install is this launcher (role host_library): module_utils/programs.py.
LAUNCHER = "#!/usr/bin/python3\n" + (
    Path(__file__).resolve().parents[3] / "plugins/module_utils/programs.py"
).read_text(encoding="utf-8")


def test_timer_is_enabled_and_scheduled(host):
    timer = host.service(f"{UNIT}.timer")
    assert timer.is_enabled
    assert timer.is_running
    assert "OnCalendar=*-*-* 00/12:00:00" in host.file(f"/etc/systemd/system/{UNIT}.timer").content_string
    # Enabling it did not fire it: nothing ran during converge.
    assert host.run(f"systemctl show -p ExecMainStartTimestampMonotonic --value {UNIT}.service").stdout.strip() == "0"


def test_the_program_is_the_launcher_with_a_settings_file_without_secrets(host):
    """No template: the launcher under the program's name, its settings beside the others'
    (0644: they hold paths and names, no secret of .env), the timer enabled by its link."""
    program = host.file(PROGRAM)
    assert program.mode == 0o755 and program.content_string == LAUNCHER
    settings_file = host.file(f"/etc/integr8scode-provision/{UNIT}.json")
    assert settings_file.mode == 0o644 and settings_file.user == "root"
    document = json.loads(settings_file.content_string)
    assert document["entry"] == "compose.app:refresh_main"
    assert document["settings"]["kubeconfig"] == KUBECONFIG and document["settings"]["kubeconfig_mode"] == "0600"
    assert document["settings"]["workers"] == ["k8s-worker", "pod-monitor"]
    secrets = {k: v for k, v in env_values(host).items() if ("PASSWORD" in k or "SECRET" in k) and v}
    assert secrets
    for key, value in secrets.items():
        assert value not in settings_file.content_string, f"{key} is in the refresh settings"
    link = host.file(f"/etc/systemd/system/timers.target.wants/{UNIT}.timer")
    assert link.is_symlink and link.linked_to == f"/etc/systemd/system/{UNIT}.timer"
    status = host.run(f"{PROGRAM} --status")
    assert status.stdout.startswith("kubeconfig refresh: ") and status.rc in (0, 3), status.stdout + status.stderr


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
