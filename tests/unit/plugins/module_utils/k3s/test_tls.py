"""The node addresses k3s wrote into its serving certificates (real X.509 from the shared test CA)."""

from __future__ import annotations

import base64
import json

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.tls import recorded_tls_ips
from k3s_files import serving_cert
from waitlib_tls import CA


def test_serving_certificate_sans_minus_loopback_and_service_ip(tmp_path):
    ca = CA("k3s-server-ca@1700000000")
    (tmp_path / "serving-kube-apiserver.crt").write_bytes(
        serving_cert(ca, ["127.0.0.1", "10.53.0.1", "10.9.9.9", "172.17.0.3", "::1"])
    )
    ips, files, errors = recorded_tls_ips(str(tmp_path), {"service-cidr": "10.53.0.0/16"})
    assert (ips, errors) == (["10.9.9.9", "172.17.0.3"], [])
    assert files == [str(tmp_path / "serving-kube-apiserver.crt")]


def test_dynamic_listener_secret_json_is_read(tmp_path):
    pem = serving_cert(CA("k3s-server-ca@1700000000"), ["127.0.0.1", "192.168.1.20"])
    secret = {"kind": "Secret", "data": {"tls.crt": base64.b64encode(pem).decode(), "tls.key": ""}}
    (tmp_path / "dynamic-cert.json").write_text(json.dumps(secret))
    ips, _files, errors = recorded_tls_ips(str(tmp_path), {})
    assert (ips, errors) == (["192.168.1.20"], [])


def test_unreadable_certificate_is_reported_not_raised(tmp_path):
    (tmp_path / "serving-kube-apiserver.crt").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")
    ips, _files, errors = recorded_tls_ips(str(tmp_path), {})
    assert ips == []
    assert len(errors) == 1 and "serving-kube-apiserver.crt" in errors[0]
