"""Bad-input battery (issue 18): one wrong input per case, across every role and the recovery
playbook, on the converged host. Each case must fail with a message whose first line names the
variable, report only that input (one line), change nothing (recap and host state: config.yaml,
daemon.json, .env, the secrets file, the k3s binary and registries.yaml by checksum; docker and
k3s by unit start; every container by id and start time), and never print a secret.

The table (case, variable, message first line) is printed for the closing note (pytest -s).
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

# Everything a failed validation must leave as it was, in one round trip.
STATE_CMD = r"""
sha256sum /etc/rancher/k3s/config.yaml /etc/docker/daemon.json /opt/Integr8sCode/.env \
  /etc/integr8scode/secrets.env "$(readlink -f /usr/local/bin/k3s)" \
  /usr/local/lib/docker/cli-plugins/docker-compose 2>&1
ls -l /etc/rancher/k3s/registries.yaml 2>&1
systemctl show -p ActiveEnterTimestamp -p MainPID -p ActiveState docker.service k3s.service
docker ps -aq --no-trunc | sort | xargs docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}} {{.State.Status}}'
"""

ZEROS = "0" * 64
SECRET = "battery-s3cret-value"

# (case, playbook, extra vars, the variable the message must name first)
CASES = [
    ("docker users", "docker", {"docker_users": ["Bad User"]}, "docker_users"),
    (
        "docker unknown daemon key",
        "docker",
        {"docker_daemon_options": {"no-such-option": True}},
        "docker_daemon_options",
    ),
    (
        "docker numeric log-opt",
        "docker",
        {"docker_daemon_options": {"log-opts": {"max-file": 3}}},
        "docker_daemon_options",
    ),
    (
        "docker pool overlaps k3s",
        "docker",
        {"docker_address_pools": [{"base": "10.40.0.0/14", "size": 24}]},
        "docker_address_pools",
    ),
    ("docker avoid not a CIDR", "docker", {"docker_address_pools_avoid": ["not-a-cidr"]}, "docker_address_pools_avoid"),
    (
        "docker plugin src missing",
        "docker",
        {"docker_compose_plugin_src": "/nonexistent/docker-compose"},
        "docker_compose_plugin_src",
    ),
    (
        "docker plugin dir relative",
        "docker",
        {"docker_compose_plugin_dir": "lib/cli-plugins"},
        "docker_compose_plugin_dir",
    ),
    (
        "docker key fingerprint",
        "docker",
        {"docker_install_source": "docker", "docker_apt_key_fingerprint": "abc"},
        "docker_apt_key_fingerprint",
    ),
    (
        "docker plugin checksum",
        "docker",
        {
            "docker_compose_plugin_src": "",
            "docker_compose_plugin_url": "file:///usr/bin/true",
            "docker_compose_plugin_sha256": ZEROS,
        },
        "docker_compose_plugin_sha256",
    ),
    ("k3s kubeconfig mode 0777", "k3s", {"k3s_write_kubeconfig_mode": "0777"}, "k3s_write_kubeconfig_mode"),
    ("k3s kubeconfig mode 0644", "k3s", {"k3s_write_kubeconfig_mode": "0644"}, "k3s_write_kubeconfig_mode"),
    ("k3s version", "k3s", {"k3s_version": "1.32"}, "k3s_version"),
    ("k3s tls-san", "k3s", {"k3s_tls_san": ["bad name!"]}, "k3s_tls_san"),
    ("k3s bind address", "k3s", {"k3s_bind_address": "300.1.1.1"}, "k3s_bind_address"),
    ("k3s managed key in extra", "k3s", {"k3s_extra_config": {"node-ip": "192.0.2.1"}}, "k3s_extra_config"),
    ("k3s data dir relative", "k3s", {"k3s_data_dir": "var/lib/k3s"}, "k3s_data_dir"),
    (
        "k3s registries endpoint",
        "k3s",
        {"k3s_registries": {"mirrors": {"docker.io": {"endpoint": "https://m:5000"}}}},
        "k3s_registries",
    ),
    (
        "k3s registries auth key",
        "k3s",
        {"k3s_registries": {"configs": {"m:5000": {"auth": {"username": "u", "password": SECRET, "token": "x"}}}}},
        "k3s_registries",
    ),
    ("k3s kubeconfig user", "k3s", {"k3s_kubeconfig_user": "no-such-user"}, "k3s_kubeconfig_user"),
    ("k3s binary checksum", "k3s", {"k3s_sha256": ZEROS}, "k3s_sha256"),
    ("stack unknown profile", "stack", {"stack_compose_profiles": ["no-such-profile"]}, "stack_compose_profiles"),
    ("stack kubeconfig mode", "stack", {"stack_kubeconfig_mode": "0664"}, "stack_kubeconfig_mode"),
    ("stack dir relative", "stack", {"stack_dir": "opt/Integr8sCode"}, "stack_dir"),
    ("stack image tag", "stack", {"stack_image_tag": "bad tag"}, "stack_image_tag"),
    ("stack env_extra redefines", "stack", {"stack_env_extra": {"IMAGE_TAG": "x"}}, "stack_env_extra"),
    ("stack default password", "stack", {"stack_redis_password": "redispassword"}, "stack_redis_password"),
    # Upstream puts the password into mongo's healthcheck shell string (issue 28).
    ("stack password breaks a shell string", "stack", {"stack_mongo_password": SECRET + " $x"}, "stack_mongo_password"),
    # A pinned commit under a floating image tag (issue 28).
    ("stack unpinned images", "stack", {"stack_source": "git", "stack_image_tag": "latest"}, "stack_image_tag"),
    (
        "stack app settings nested",
        "stack",
        {"stack_app_settings": {"LOGGING": {"level": "INFO"}}},
        "stack_app_settings",
    ),
    ("nordvpn allowlist CIDR", "nordvpn", {"nordvpn_allowlist_subnets": ["10.42.0.0"]}, "nordvpn_allowlist_subnets"),
    ("nordvpn interface name", "nordvpn", {"nordvpn_interface": "way-too-long-interface"}, "nordvpn_interface"),
    (
        "recover backup root",
        "recover",
        {"k3s_recover_backup_root": "/var/lib/rancher/k3s/server/backups"},
        "k3s_recover_backup_root",
    ),
    ("recover node ip", "recover", {"k3s_recover_node_ip": "10.0.0.300"}, "k3s_recover_node_ip"),
    ("recover watch interval", "recover", {"k3s_recover_watch_interval": "soon"}, "k3s_recover_watch_interval"),
    (
        "recover kubeconfig mode",
        "recover",
        {"k3s_recover_app_kubeconfig_mode": "0666"},
        "k3s_recover_app_kubeconfig_mode",
    ),
]

WORKERS = 4


def failure_message(output: str) -> list[str]:
    """The msg of the task that failed the play (the last failure printed: a rescued download's own
    failure comes before the rescue's message), as lines (a list msg is one line per wrong input)."""
    marker = "FAILED! => "
    at = output.rfind(marker)
    assert at >= 0, f"no failed task in the output:\n{output[-3000:]}"
    result, _end = json.JSONDecoder().raw_decode(output[at + len(marker) :])
    msg = result.get("msg", "")
    return [str(line) for line in msg] if isinstance(msg, list) else str(msg).splitlines()


def host_state(name: str) -> str:
    """STATE_CMD on the test host, through docker exec (testinfra's ansible backend costs a playbook run)."""
    proc = subprocess.run(["docker", "exec", name, "bash", "-c", STATE_CMD], capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture(scope="module")
def battery(host, ansible_playbook):
    """Every case run once, WORKERS at a time (each fails in validation and changes nothing, so they
    can share the host), with the host's state before and after all of them."""
    name = host.backend.get_hostname()
    before = host_state(name)

    def run(case):
        _case, playbook, extra, _var = case
        return ansible_playbook(
            "battery.yml",
            "-e",
            json.dumps({"battery_playbook": playbook, **extra}),
            env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
        )

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        runs = dict(zip((c[0] for c in CASES), pool.map(run, CASES), strict=True))
    after = host_state(name)
    table = []
    for case, _playbook, _extra, var in CASES:
        out = runs[case].output
        lines = failure_message(out) if "FAILED! => " in out else []
        table.append((case, var, lines[0] if lines else "(no failure)"))
    width = max(len(case) for case, _var, _line in table)
    print("\n\nBad-input battery (case | variable | message first line):")
    for case, var, line in table:
        print(f"{case:<{width}} | {var} | {line}")
    return {"runs": runs, "before": before, "after": after}


def test_the_battery_has_at_least_25_cases_over_every_playbook():
    assert len(CASES) >= 25
    assert {c[1] for c in CASES} == {"docker", "k3s", "stack", "nordvpn", "recover"}


@pytest.mark.parametrize("bad", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_variable_and_changes_nothing(battery, bad):
    case, _playbook, _extra, var = bad
    run = battery["runs"][case]
    assert run.returncode != 0, f"{case}: the play succeeded:\n{run.output[-2000:]}"
    lines = failure_message(run.output)
    assert lines and lines[0].startswith(var), f"{case}: the message does not start with {var}: {lines}"
    assert len(lines) == 1, f"{case}: more than the one wrong input reported: {lines}"
    assert SECRET not in run.output
    assert "redispassword" not in run.output.replace("stack_redis_password", "")
    assert run.total("changed") == 0, f"{case}: changed {run.changed_tasks()}"
    assert battery["after"] == battery["before"], "the host changed during the battery"
