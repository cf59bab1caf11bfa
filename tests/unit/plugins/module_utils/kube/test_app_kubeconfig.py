"""The app kubeconfig's judgement and token proof, against a real TLS Kubernetes API fixture."""

from __future__ import annotations

import os
import time

import pytest
import yaml
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.app_kubeconfig import (
    judge,
    prove_token,
    secure,
)
from waitlib_kubeapi import KubeAPI, write_kubeconfig


@pytest.fixture
def api(pki):
    with KubeAPI(pki) as server:
        yield server


def test_a_fresh_file_at_the_node_address_is_usable(tmp_path, pki, api):
    path = write_kubeconfig(tmp_path / "kubeconfig.yaml", api.url(), pki)
    host, port = api.url().split("//")[1].rstrip("/").split(":")
    config, facts = judge(path, host, int(port), written_after=time.time() - 5)
    assert facts["problems"] == [], facts
    assert facts["server"] == facts["expected_server"] == f"https://{host}:{port}"
    assert prove_token(config, "/api/v1/nodes") == (True, 200, "")


def test_every_problem_is_named(tmp_path, pki, api):
    path = tmp_path / "kubeconfig.yaml"
    write_kubeconfig(path, "https://10.5.0.2:6443", pki)
    data = yaml.safe_load(path.read_text())
    del data["users"][0]["user"]["token"]
    path.write_text(yaml.safe_dump(data))
    os.utime(path, (1000, 1000))
    _config, facts = judge(str(path), "192.168.1.20", 6443, written_after=2000)
    assert facts["problems"] == [
        "not rewritten by the latest cert-generator run (it exits 0 even when its Kubernetes setup failed)",
        "no ServiceAccount token",
        "server https://10.5.0.2:6443, expected https://192.168.1.20:6443 (the node address)",
    ]


def test_a_missing_file_is_a_problem_not_an_exception(tmp_path):
    config, facts = judge(str(tmp_path / "none.yaml"), "192.168.1.20")
    assert config is None and "none.yaml" in facts["problems"][0]


def test_403_accepts_the_token_401_does_not(tmp_path, pki, api):
    config = yaml.safe_load(open(write_kubeconfig(tmp_path / "k", api.url(), pki)))
    api.force_status = 403
    assert prove_token(config, "/api/v1/namespaces")[:2] == (True, 403)
    api.force_status = None
    wrong = yaml.safe_load(open(write_kubeconfig(tmp_path / "w", api.url(), pki, token="not-the-token")))
    accepted, status, _error = prove_token(wrong, "/api/v1/nodes")
    assert (accepted, status) == (False, 401)
    assert "not-the-token" not in repr(prove_token(wrong, "/api/v1/nodes"))


def test_a_server_the_ca_does_not_vouch_for_is_refused(tmp_path, pki, api):
    config = yaml.safe_load(open(write_kubeconfig(tmp_path / "k", api.url(), pki, ca="other_ca")))
    accepted, status, error = prove_token(config, "/api/v1/nodes")
    assert (accepted, status) == (False, None) and "CERTIFICATE_VERIFY_FAILED" in error


def test_secure_puts_the_token_file_at_its_mode_once(tmp_path):
    path = tmp_path / "kubeconfig.yaml"
    path.write_text("token: x\n")
    path.chmod(0o644)  # what upstream's cert-generator leaves
    assert secure(str(path), 0o600, check_mode=True) is True and path.stat().st_mode & 0o777 == 0o644
    assert secure(str(path), 0o600) is True and path.stat().st_mode & 0o777 == 0o600
    assert secure(str(path), 0o600) is False
