"""k3s_ready through its entry point, against an HTTPS Kubernetes API fixture (real TLS, generated CA)."""

import os
import threading

import pytest
from waitlib_kubeapi import KubeAPI, write_kubeconfig
from waitlib_servers import free_port

FAST = dict(interval=0.05, backoff=1.5, max_interval=0.2)
RECOVER = "host IP has probably changed; run playbooks/recover.yml (integr8scode.provision.recover)"


@pytest.fixture
def api(pki):
    with KubeAPI(pki) as server:
        server.set_node("host1", ready=True, ip="10.77.0.5")
        yield server


def later(seconds, fn):
    timer = threading.Timer(seconds, fn)
    timer.daemon = True
    timer.start()
    return timer


def test_ready_with_node_ip_and_deployment(run_module, api, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki, auth="client_cert")
    api.set_deployment("kube-system/coredns", replicas=1, available=1)
    res = run_module(
        "k3s_ready",
        dict(kubeconfig=kubeconfig, node_ip="10.77.0.5", deployments=["kube-system/coredns"], timeout=30),
    )
    assert res["_rc"] == 0, res
    assert res["ready"] is True and res["changed"] is False and res["readyz"] == "ok"
    assert res["server"] == api.url()
    assert res["nodes"] == [{"name": "host1", "ready": True, "internal_ip": ["10.77.0.5"]}]
    assert res["deployments"]["kube-system/coredns"]["available"] is True
    assert res["attempts"] == 1


def test_waits_through_readyz_node_and_deployment_coming_up(run_module, api, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki)
    api.readyz = (500, "[+]ping ok\n[-]poststarthook/start-apiextensions-controllers failed: reason withheld\n")
    api.nodes["host1"] = (False, "10.77.0.5")
    hits = {}

    def advance(path):
        # The cluster comes up one step per probe of each stage, like k3s after a start.
        hits[path] = hits.get(path, 0) + 1
        if path == "/readyz" and hits[path] == 2:
            api.readyz = (200, "ok")
        elif path == "/api/v1/nodes/host1" and hits[path] == 2:
            api.nodes["host1"] = (True, "10.77.0.5")
        elif path.endswith("/deployments/coredns"):
            api.deployments["kube-system/coredns"] = (2, min(2, hits[path] - 1))

    api.hook = advance
    res = run_module(
        "k3s_ready",
        dict(kubeconfig=kubeconfig, node_name="host1", deployments=["kube-system/coredns"], timeout=60, **FAST),
    )
    assert res["_rc"] == 0, res
    # 1: readyz 500. 2: node NotReady, deployment 0/2. 3: deployment 1/2. 4: 2/2, ready.
    assert res["attempts"] == 4
    assert res["deployments"]["kube-system/coredns"] == dict(
        found=True, available=True, replicas=2, available_replicas=2
    )


def test_readyz_failing_times_out_naming_the_failed_check(run_module, api, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki)
    api.readyz = (500, "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n")
    res = run_module("k3s_ready", dict(kubeconfig=kubeconfig, timeout=0.5, **FAST))
    assert res["failed"] and res["error_kind"] == "not_ready"
    assert "answers 500: [-]etcd failed" in res["msg"] and "not ready after 0.5s" in res["msg"]


def test_wrong_node_ip_times_out_with_recovery_hint(run_module, api, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki)
    res = run_module("k3s_ready", dict(kubeconfig=kubeconfig, node_ip="192.168.5.9", timeout=0.3, **FAST))
    assert res["failed"] and "no node has InternalIP 192.168.5.9 (seen host1=10.77.0.5)" in res["msg"]
    assert RECOVER in res["msg"]


def test_missing_deployment_and_node_times_out(run_module, api, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki)
    res = run_module(
        "k3s_ready", dict(kubeconfig=kubeconfig, node_name="ghost", deployments=["kube-system/coredns"], timeout=0)
    )
    assert res["failed"] and "node ghost is not registered yet" in res["msg"]
    assert "deployment kube-system/coredns not found (yet)" in res["msg"]
    assert res["deployments"]["kube-system/coredns"]["found"] is False


def test_unauthorized_fails_at_once(run_module, api, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki, token="expired-token")
    res = run_module("k3s_ready", dict(kubeconfig=kubeconfig, timeout=300, **FAST))
    assert res["failed"] and res["error_kind"] == "unauthorized" and res["attempts"] == 1
    assert "401 Unauthorized" in res["msg"] and "expired" in res["msg"] and "older CA" in res["msg"]
    assert "expired-token" not in repr(res)


def test_server_cert_not_covering_address_fails_at_once_with_recovery_hint(run_module, pki, tmp_path):
    with KubeAPI(pki, cert="wrong_san_cert", key="wrong_san_key") as api:
        api.set_node("host1")
        kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki)
        res = run_module("k3s_ready", dict(kubeconfig=kubeconfig, timeout=300, **FAST))
    assert res["failed"] and res["error_kind"] == "tls_name_mismatch" and res["attempts"] == 1, res
    assert "does not cover the address 127.0.0.1" in res["msg"]
    assert RECOVER in res["msg"]


def test_server_cert_from_another_ca_fails_at_once(run_module, api, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", api.url(), pki, ca="other_ca")
    res = run_module("k3s_ready", dict(kubeconfig=kubeconfig, timeout=300, **FAST))
    assert res["failed"] and res["error_kind"] == "tls_unknown_ca" and res["attempts"] == 1, res
    assert "not signed by the CA in the kubeconfig" in res["msg"]


def test_connection_refused_is_retried_then_named(run_module, pki, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "k3s.yaml", f"https://127.0.0.1:{free_port()}", pki)
    res = run_module("k3s_ready", dict(kubeconfig=kubeconfig, timeout=3, **FAST))
    assert res["failed"] and res["error_kind"] == "connection_refused" and res["attempts"] > 1, res
    assert "connection refused by https://127.0.0.1:" in res["msg"] and "crash-looping" in res["msg"]


def test_missing_kubeconfig_is_waited_for(run_module, api, pki, tmp_path):
    path = tmp_path / "k3s.yaml"
    res = run_module("k3s_ready", dict(kubeconfig=str(path), timeout=1, **FAST))
    assert res["failed"] and res["error_kind"] == "kubeconfig_missing"
    assert f"kubeconfig {path} does not exist" in res["msg"]

    assert res["attempts"] > 1  # retried until the timeout, not failed at once

    # It appears while the module waits (written whole, then renamed into place).
    def appear():
        write_kubeconfig(tmp_path / "k3s.yaml.tmp", api.url(), pki)
        os.rename(str(tmp_path / "k3s.yaml.tmp"), str(path))

    later(0.7, appear)
    res = run_module("k3s_ready", dict(kubeconfig=str(path), timeout=60, **FAST))
    assert res["_rc"] == 0 and res["ready"] is True, res


def test_unreadable_and_invalid_kubeconfig_fail_at_once(run_module, tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    res = run_module("k3s_ready", dict(kubeconfig=str(tmp_path / "dir.yaml"), timeout=300))
    assert res["failed"] and res["error_kind"] == "kubeconfig_unreadable" and "is a directory" in res["msg"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [\n")
    res = run_module("k3s_ready", dict(kubeconfig=str(bad), timeout=300))
    assert res["failed"] and res["error_kind"] == "kubeconfig_invalid" and "not valid YAML" in res["msg"]
    if os.geteuid() == 0:
        return  # root reads any file; the permission case is covered in test_kubeconfig_utils as a non-root user
    unreadable = tmp_path / "secret.yaml"
    unreadable.write_text("clusters: []\n")
    unreadable.chmod(0)
    res = run_module("k3s_ready", dict(kubeconfig=str(unreadable), timeout=300))
    assert res["failed"] and res["error_kind"] == "kubeconfig_unreadable"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (dict(deployments=["coredns"]), "deployments entries must be namespace/name, got 'coredns'"),
        (dict(node_ip="10.0.0.300"), "node_ip must be an IP address"),
        (dict(timeout=-1), "timeout must be zero or a positive"),
        (dict(request_timeout=0), "request_timeout must be a positive"),
    ],
)
def test_bad_arguments(run_module, args, fragment):
    for check_mode in (False, True):
        res = run_module("k3s_ready", args, check_mode=check_mode)
        assert res["failed"] and fragment in res["msg"], res


def test_check_mode_skips_without_reading_the_kubeconfig(run_module, tmp_path):
    res = run_module("k3s_ready", dict(kubeconfig=str(tmp_path / "absent.yaml")), check_mode=True)
    assert res["_rc"] == 0 and res["skipped"] is True and res["changed"] is False
