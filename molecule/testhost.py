"""Helpers shared by the verifiers that walk a converged host through network changes
(recover-sqlite, recover-etcd, default). pytest puts this directory on sys.path for
molecule/conftest.py, so tests `import testhost`.

Only the test host's own interfaces and loopback are involved: addresses, routes and rules are
changed inside the test host, and nothing on the controller sends traffic to them.
"""

from __future__ import annotations

import json
import os
import time

import yaml

STACK = "/opt/Integr8sCode"
CONFIG = "/etc/rancher/k3s/config.yaml"
# The stack's compose project name when a scenario sets stack_project_name (its molecule.yml
# passes it to the verifier); empty: the directory's name, as docker compose derives it.
STACK_PROJECT = os.environ.get("I8C_STACK_PROJECT", "")
DOCKER_COMPOSE = f"COMPOSE_PROJECT_NAME={STACK_PROJECT} docker compose" if STACK_PROJECT else "docker compose"


def flat(output: str) -> str:
    """The output with line wrapping undone (the yaml callback folds long messages)."""
    return " ".join(output.split())


def sh(host, cmd: str) -> str:
    result = host.run(cmd)
    assert result.rc == 0, f"{cmd!r} failed ({result.rc}): {result.stdout}{result.stderr}"
    return result.stdout


def wait_until(check, what: str, limit: float = 180, interval: float = 1.0):
    """Poll a state until it holds; the limit only bounds a hang (nothing here is a timing claim)."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(interval)


def eth0_ip(host) -> str:
    return sh(host, "ip -4 -o addr show dev eth0").split()[3].split("/")[0]


def change_address(host, new_ip: str, gateway: str) -> str:
    """A network switch as the host sees it: new address on eth0, old one gone, default route
    moved. Nothing is restarted (a running k3s keeps its old addresses, k3s #1977)."""
    old = sh(host, "ip -4 -o addr show dev eth0").split()[3]
    sh(
        host,
        f"ip addr add {new_ip}/24 dev eth0 && ip addr del {old} dev eth0 && "
        f"ip route replace default via {gateway} dev eth0 onlink",
    )
    return old.split("/")[0]


def switch_ip(host, new_ip: str, gateway: str) -> str:
    """A VPN/network switch (change_address); then k3s restarts (as after a reboot or a service
    restart), which is when it meets the new address."""
    old = change_address(host, new_ip, gateway)
    sh(host, "systemctl restart k3s || true")
    return old


def unit(host, name: str = "k3s") -> dict:
    out = sh(host, f"systemctl show {name} --property=ActiveState,SubState,NRestarts")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def compose(host, args: str) -> str:
    return sh(host, f"cd {STACK} && {DOCKER_COMPOSE} {args}")


def health(host, service: str) -> dict:
    cid = compose(host, f"ps -q {service}").strip()
    return json.loads(sh(host, f"docker inspect -f '{{{{json .State.Health}}}}' {cid}"))


def k3s_config(host) -> dict:
    return yaml.safe_load(sh(host, f"cat {CONFIG}"))


def app_kubeconfig(host) -> dict:
    return yaml.safe_load(sh(host, f"cat {STACK}/backend/kubeconfig.yaml"))


# The k3s stand-in's start-to-Ready delay (K3S_STANDIN_READY_DELAY in /etc/default/k3s, one of
# the unit's EnvironmentFiles; read at each start). Real k3s: roughly 30-60 s from start to node
# Ready (k3s #4340, #4360); tests/molecule/k3s_release.yml sets the short one for tests that do
# not measure it.
REALISTIC_READY_DELAY = 30
SHORT_READY_DELAY = 2


def set_ready_delay(host, seconds: int) -> None:
    sh(host, f"sed -i 's/^K3S_STANDIN_READY_DELAY=.*/K3S_STANDIN_READY_DELAY={seconds}/' /etc/default/k3s")


def shim_pids(host) -> list[str]:
    """The stand-in's containerd-shim processes: the pods `systemctl stop k3s` leaves (k3s #2624)."""
    out = host.run("pgrep -f '^/usr/bin/python3 /var/lib/rancher/k3s/data/[^/]+/bin/containerd-shim-runc-v2 '")
    return sorted(out.stdout.split())
