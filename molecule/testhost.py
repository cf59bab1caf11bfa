"""Helpers shared by the verifiers that walk a converged host through network changes
(recover-sqlite, recover-etcd, default). pytest puts this directory on sys.path for
molecule/conftest.py, so tests `import testhost`.

Only the test host's own interfaces and loopback are involved: addresses, routes and rules are
changed inside the test host, and nothing on the controller sends traffic to them.
"""

from __future__ import annotations

import json
import os
import re
import time

import yaml

STACK = "/opt/Integr8sCode"
CONFIG = "/etc/rancher/k3s/config.yaml"
# k3s's data directory: the scenario's k3s_data_dir when it sets one (its molecule.yml passes the
# same value to the verifier, recover-etcd: a custom one); else k3s's default.
DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
DATA = os.environ.get("I8C_K3S_DATA_DIR", DEFAULT_DATA_DIR)
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
    return change_addresses(host, [(new_ip, gateway)], 0)


def change_addresses(host, changes: list[tuple[str, str]], gap: float) -> str:
    """change_address for each (address, gateway) in turn, ``gap`` seconds apart, in one command
    on the host: the gaps are the host's own, not those of `docker exec` calls, whose latency
    grows with the machine's load. Returns the address eth0 had before."""
    old = sh(host, "ip -4 -o addr show dev eth0").split()[3]
    steps, previous = [], old
    for new_ip, gateway in changes:
        steps.append(
            f"ip addr add {new_ip}/24 dev eth0 && ip addr del {previous} dev eth0 && "
            f"ip route replace default via {gateway} dev eth0 onlink"
        )
        previous = f"{new_ip}/24"
    sh(host, f" && sleep {gap} && ".join(steps))
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


def assert_not_stopped(host, services) -> None:
    """Each service has a container that runs, or is in Docker's restart loop (its kubeconfig's
    k3s still starting): a recovery or rollback never leaves a worker stopped."""
    for service in services:
        state = compose(host, f"ps -a --format '{{{{.State}}}}' {service}").strip()
        assert state in ("running", "restarting"), f"{service} left {state or 'without a container'}"


def health(host, service: str) -> dict:
    cid = compose(host, f"ps -q {service}").strip()
    return json.loads(sh(host, f"docker inspect -f '{{{{json .State.Health}}}}' {cid}"))


# The fixture's workers log every change of the answer their own token gets from the k3s API
# (tests/fixtures/stack/image/fixture.py, `worker`).
API_ANSWER = re.compile(r"k3s API answered (.+)$", re.MULTILINE)


def worker_view(host, service: str) -> dict:
    """A worker's container state, restart count, and the last answer its own kubeconfig got
    from the k3s API since its last start (None before the first), with its log tail."""
    cid = compose(host, f"ps -q {service}").strip()
    if not cid:
        return dict(service=service, state=None, restarts=None, answer=None, tail="no container")
    info = json.loads(sh(host, f"docker inspect {cid}"))[0]
    log = host.run(f"docker logs --since {info['State']['StartedAt']} {cid} 2>&1").stdout
    answers = API_ANSWER.findall(log)
    return dict(
        service=service,
        state=info["State"],
        restarts=info["RestartCount"],
        answer=answers[-1].strip() if answers else None,
        tail=" | ".join(log.strip().splitlines()[-3:]),
    )


def worker_state(host, service: str) -> tuple[bool, str]:
    """(up, detail) of a worker. The workers have no healthcheck, as upstream's; up is what would
    show on upstream: the container runs and is not restarting, and the last answer its own
    kubeconfig got from the k3s API since its last start is 200 (it exits when its start-up
    request fails, so a bad kubeconfig is a crash loop, never up)."""
    found = worker_view(host, service)
    state = found["state"]
    if state is None:
        return False, f"{service}: no container"
    up = state["Status"] == "running" and not state["Restarting"] and found["answer"] == "200"
    return up, (
        f"{service}: {state['Status']}, restarting={state['Restarting']}, exit code {state['ExitCode']}, "
        f"{found['restarts']} restarts, started {state['StartedAt']}, last k3s API answer {found['answer']!r}; "
        f"log since start: {found['tail']}"
    )


def wait_worker_up(host, service: str, limit: float = 180) -> str:
    """Poll worker_state until the worker is up (a state it reaches on its own); the failure
    carries the last detail seen. The limit only bounds a hang."""
    seen = {}

    def check():
        up, seen["detail"] = worker_state(host, service)
        return up

    try:
        wait_until(check, f"{service} up", limit)
    except AssertionError:
        raise AssertionError(f"{service} never was up: {seen['detail']}") from None
    return seen["detail"]


def k3s_config(host) -> dict:
    return yaml.safe_load(sh(host, f"cat {CONFIG}"))


def scenario_datastore(host) -> str:
    """The datastore the scenario configured (cluster-init in config.yaml): it holds while a test
    has server/db deleted or a recovery half done, unlike what is on disk at that moment."""
    return "etcd" if k3s_config(host).get("cluster-init") else "sqlite"


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
    out = host.run(f"pgrep -f '^/usr/bin/python3 {DATA}/data/[^/]+/bin/containerd-shim-runc-v2 '")
    return sorted(out.stdout.split())
