"""Helpers the stack scenario's tests share (reading the test host)."""

from __future__ import annotations

import json

import yaml

STACK_DIR = "/opt/Integr8sCode"
KUBECONFIG = f"{STACK_DIR}/backend/kubeconfig.yaml"
PROJECT = "integr8scode"
DEPLOY_USER = "i8c-operator"
ONESHOTS = {"base", "shared-ca", "cert-generator", "user-seed"}
LONG_RUNNING = {"mongo", "redis", "kafka", "backend", "frontend", "k8s-worker", "pod-monitor", "result-processor"}


def containers(host) -> dict[str, dict]:
    """The project's containers by service, from `docker inspect`."""
    ids = host.check_output(f"docker ps -aq --filter label=com.docker.compose.project={PROJECT}").split()
    assert ids, "no containers of the compose project on the test host"
    inspected = json.loads(host.check_output("docker inspect " + " ".join(ids)))
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}


def env_values(host) -> dict[str, str]:
    """KEY -> value of the deployed .env (values are single-quoted by the role)."""
    out = {}
    for line in host.file(f"{STACK_DIR}/.env").content_string.splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value[1:-1] if value.startswith("'") and value.endswith("'") else value
    return out


def node_ip(host) -> str:
    for line in host.file("/etc/rancher/k3s/config.yaml").content_string.splitlines():
        if line.startswith("node-ip:"):
            return line.split(":", 1)[1].strip().strip("\"'")
    raise AssertionError("no top-level node-ip in /etc/rancher/k3s/config.yaml")


def app_kubeconfig(host) -> dict:
    return yaml.safe_load(host.file(KUBECONFIG).content_string)


def api_status(host, server: str, token_cmd: str) -> int:
    """Status the k3s API answers, from the test host, to the bearer token `token_cmd` prints there."""
    out = host.run(
        f"token=$({token_cmd}); curl -sk -o /dev/null -w '%{{http_code}}' "
        f'-H "Authorization: Bearer $token" {server}/api/v1/namespaces/integr8scode'
    )
    return int(out.stdout.strip() or 0)


# Prints the app kubeconfig's token on the test host (it never leaves the host).
APP_TOKEN_CMD = f"awk '$1 == \"token:\" {{print $2}}' {KUBECONFIG} | tr -d '\"'"


def secret_values(host) -> list[str]:
    """Every secret the role wrote, plus the app kubeconfig's token."""
    env = env_values(host)
    keys = ["SECRET_KEY", "MONGO_PASSWORD", "REDIS_PASSWORD", "DEFAULT_USER_PASSWORD", "ADMIN_USER_PASSWORD"]
    keys.append("GRAFANA_ADMIN_PASSWORD")
    values = [env[k] for k in keys]
    values.append(app_kubeconfig(host)["users"][0]["user"]["token"])
    return values
