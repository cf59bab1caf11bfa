"""k3s_registries (issue 18): rendered to /etc/rancher/k3s/registries.yaml in k3s's own format
(docs.k3s.io "Private Registry Configuration": mirrors with endpoint/rewrite, configs with auth/tls),
mode 0600 and never logged (it holds a registry password); k3s reads it only at start, so a change
restarts k3s once through the handler and a rerun changes nothing; emptied, the file is removed."""

from __future__ import annotations

import json

import yaml

REGISTRIES_FILE = "/etc/rancher/k3s/registries.yaml"
PASSWORD = "registry-pw-4b7c"
REGISTRIES = {
    "mirrors": {
        "docker.io": {
            "endpoint": ["https://mirror.i8c.test:5000"],
            "rewrite": {"^rancher/(.*)": "mirrorproject/rancher-images/$1"},
        }
    },
    "configs": {
        "mirror.i8c.test:5000": {
            "auth": {"username": "puller", "password": PASSWORD},
            "tls": {"ca_file": "/etc/ssl/certs/ca-certificates.crt"},
        }
    },
}
RESTART = "RUNNING HANDLER [integr8scode.provision.k3s : Restart k3s]"


def k3s_started(host) -> str:
    """When k3s.service last entered active (changes with every restart), and its main PID."""
    return host.check_output("systemctl show -p ActiveEnterTimestampMonotonic -p MainPID k3s.service")


def run_k3s(ansible_playbook, registries):
    return ansible_playbook("battery.yml", "-e", json.dumps({"battery_playbook": "k3s", "k3s_registries": registries}))


def test_registries_written_restarted_once_and_idempotent(host, ansible_playbook):
    assert not host.file(REGISTRIES_FILE).exists
    started = k3s_started(host)

    run = run_k3s(ansible_playbook, REGISTRIES)
    try:
        assert run.returncode == 0, run.output[-3000:]
        assert PASSWORD not in run.output
        written = host.file(REGISTRIES_FILE)
        assert (written.user, written.group, written.mode) == ("root", "root", 0o600)
        assert yaml.safe_load(written.content_string) == REGISTRIES
        assert run.output.count(RESTART) == 1, run.changed_tasks()
        assert k3s_started(host) != started
        assert host.service("k3s").is_running

        started = k3s_started(host)
        again = run_k3s(ansible_playbook, REGISTRIES)
        assert again.returncode == 0, again.output[-3000:]
        assert again.total("changed") == 0, again.changed_tasks()
        assert RESTART not in again.output
        assert k3s_started(host) == started

        check = ansible_playbook(
            "battery.yml", "--check", "-e", json.dumps({"battery_playbook": "k3s", "k3s_registries": REGISTRIES})
        )
        check.assert_no_changes("check mode with k3s_registries")
    finally:
        started = k3s_started(host)
        emptied = run_k3s(ansible_playbook, {})
    assert emptied.returncode == 0, emptied.output[-3000:]
    assert not host.file(REGISTRIES_FILE).exists
    assert emptied.output.count(RESTART) == 1
    assert k3s_started(host) != started
