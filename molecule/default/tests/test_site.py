"""site.yml took a bare host to a healthy installation; a rerun changes nothing."""

import json
import os
import time
from pathlib import Path

import modulecount
import yaml
from testhost import worker_state


def node_ip(host):
    config = yaml.safe_load(host.file("/etc/rancher/k3s/config.yaml").content_string)
    return config["node-ip"]


def test_docker_engine_and_compose(host):
    assert host.service("docker").is_running
    assert host.service("docker").is_enabled
    version = host.check_output("docker compose version --short").lstrip("v")
    assert tuple(int(part) for part in version.split(".")[:2]) >= (2, 18)


def test_k3s_node_ready_at_node_ip(host):
    assert host.service("k3s").is_running
    ip = node_ip(host)
    assert host.interface("eth0").addresses and ip in host.interface("eth0").addresses
    nodes = json.loads(host.check_output("k3s kubectl get nodes -o json"))["items"]
    assert len(nodes) == 1
    status = nodes[0]["status"]
    ready = {c["type"]: c["status"] for c in status["conditions"]}["Ready"]
    internal = [a["address"] for a in status["addresses"] if a["type"] == "InternalIP"]
    assert ready == "True"
    assert internal == [ip]


def test_stack_containers_healthy(host):
    rows = host.check_output(
        "docker ps -a --filter label=com.docker.compose.project "
        "--format '{{.Label \"com.docker.compose.service\"}} {{.State}} {{.Status}}'"
    ).splitlines()
    services = {row.split()[0]: row for row in rows}
    for service in ("backend", "redis"):
        assert service in services, f"{service} missing: {rows}"
        assert "running" in services[service] and "(healthy)" in services[service], services[service]
    # The workers have no healthcheck, as upstream's: running, and their own token accepted.
    for worker in ("k8s-worker", "pod-monitor"):
        up, detail = worker_state(host, worker)
        assert up, detail
    for oneshot in ("cert-generator", "user-seed"):
        assert "Exited (0)" in services[oneshot], services[oneshot]


def test_backend_health_json(host):
    body = host.check_output("curl -sk https://localhost/api/v1/health/live")
    assert json.loads(body)["status"] == "ok"


def test_app_kubeconfig_token_accepted_by_api(host):
    """The kubeconfig cert-generator wrote works against the k3s API: its CA
    verifies the server at the node IP and its token lists namespaces."""
    path = "/opt/Integr8sCode/backend/kubeconfig.yaml"
    kubeconfig = host.file(path)
    assert kubeconfig.mode == 0o600
    config = yaml.safe_load(kubeconfig.content_string)
    assert config["clusters"][0]["cluster"]["server"] == f"https://{node_ip(host)}:6443"
    probe = host.run(
        "python3 - <<'EOF'\n"
        "import base64, json, ssl, tempfile, urllib.request, yaml\n"
        f"c = yaml.safe_load(open('{path}'))\n"
        "cluster, user = c['clusters'][0]['cluster'], c['users'][0]['user']\n"
        "ca = tempfile.NamedTemporaryFile(delete=False)\n"
        "ca.write(base64.b64decode(cluster['certificate-authority-data'])); ca.close()\n"
        "ctx = ssl.create_default_context(cafile=ca.name)\n"
        "req = urllib.request.Request(cluster['server'] + '/api/v1/namespaces',\n"
        "    headers={'Authorization': 'Bearer ' + user['token']})\n"
        "items = json.load(urllib.request.urlopen(req, context=ctx))['items']\n"
        "print(json.dumps([n['metadata']['name'] for n in items]))\n"
        "EOF"
    )
    assert probe.rc == 0, probe.stderr
    assert "integr8scode" in json.loads(probe.stdout)


def test_check_mode_changes_nothing(converge_in_check_mode):
    converge_in_check_mode.assert_no_changes("check-mode run")


def test_no_change_rerun(host, ansible_playbook_on_host):
    """Runs site.yml once more on the converged host and prints its figures
    (the issue's target is at most 30 s; printed, not asserted). Where the scenario runs on several
    platforms at once, each host's rerun runs alone, so each platform gets its own figure."""
    counting = modulecount.start(host.backend.host, Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]))
    start = time.monotonic()
    run = ansible_playbook_on_host("converge.yml", *counting)
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.output[-4000:]
    assert run.total("changed") == 0, f"changed on rerun: {run.changed_tasks()}"
    tasks = sum(run.total(key) for key in ("ok", "changed", "skipped", "failed"))
    print(
        f"\nPERF default ({host.backend.host}): no-change rerun of site.yml {elapsed:.1f}s, "
        f"{tasks} tasks, ok={run.total('ok')} changed={run.total('changed')} skipped={run.total('skipped')}, "
        f"{modulecount.executions(host.backend.host)} module executions on the host"
    )
