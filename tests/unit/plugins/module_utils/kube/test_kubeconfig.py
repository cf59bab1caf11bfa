"""module_utils/kube/kubeconfig.py: reading kubeconfigs, classifying real transport errors, and
comparing a kubeconfig's server and CA with the cluster's."""

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.kube import kubeconfig as kc
from k3s_files import kubeconfig
from waitlib_kubeapi import write_kubeconfig
from waitlib_servers import ServerThread, free_port, tls_context
from waitlib_tls import CA

COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", "collections"))


def test_read_and_current_server(pki, tmp_path):
    path = write_kubeconfig(tmp_path / "k.yaml", "https://10.77.0.5:6443", pki)
    config = kc.read_kubeconfig(path)
    assert kc.current_server(config) == "https://10.77.0.5:6443"
    assert kc.server_host("https://10.77.0.5:6443") == ("10.77.0.5", 6443)
    assert kc.current_server(config, context="nope") == "https://10.77.0.5:6443"  # the only cluster


@pytest.mark.parametrize(
    ("content", "kind", "fragment"),
    [
        (None, "missing", "does not exist"),
        ("clusters: [\n", "invalid", "not valid YAML"),
        ("apiVersion: v1\nkind: Config\n", "invalid", "has no clusters"),
    ],
)
def test_read_errors(tmp_path, content, kind, fragment):
    path = tmp_path / "k.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(kc.KubeconfigError, match=fragment) as info:
        kc.read_kubeconfig(str(path))
    assert info.value.kind == kind


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(kc.KubeconfigError, match="is a directory") as info:
        kc.read_kubeconfig(str(tmp_path))
    assert info.value.kind == "unreadable"


def test_permission_denied_as_an_unprivileged_user():
    if os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("needs root to run a check as the unprivileged user nobody")
    base = tempfile.mkdtemp(prefix="utwait-kc-")  # /tmp itself, so nobody can traverse to the file
    try:
        os.chmod(base, 0o755)
        path = os.path.join(base, "k3s.yaml")
        with open(path, "w") as handle:
            handle.write("clusters: [{name: a, cluster: {server: 'https://127.0.0.1:6443'}}]\n")
        os.chmod(path, 0o600)
        code = (
            "import sys; sys.path.insert(0, sys.argv[1])\n"
            "from ansible_collections.integr8scode.provision.plugins.module_utils.kube import kubeconfig as kc\n"
            "try:\n    kc.read_kubeconfig(sys.argv[2])\nexcept kc.KubeconfigError as e:\n    print(e.kind, e)\n"
        )
        proc = subprocess.run(
            ["/usr/bin/python3", "-c", code, COLLECTIONS, path], capture_output=True, text=True, user=65534, check=False
        )
    finally:
        shutil.rmtree(base)
    assert proc.stdout.startswith("unreadable "), proc
    assert "Permission denied" in proc.stdout and "become" in proc.stdout


def _urlopen_error(url, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        urllib.request.urlopen(url, context=ctx, timeout=5)
    except Exception as exc:  # the real exception object is what is classified
        return exc
    raise AssertionError("no error")


def test_classifies_real_errors(pki):
    server = f"https://127.0.0.1:{free_port()}"
    kind, message = kc.classify_error(_urlopen_error(server, pki["ca"]), server)
    assert kind == kc.REFUSED and "connection refused by " + server in message

    wrong = tls_context(pki["wrong_san_cert"], pki["wrong_san_key"])
    with ServerThread(lambda _r: (200, {}, "ok"), wrong) as srv:
        url = srv.url("")
        kind, message = kc.classify_error(_urlopen_error(url, pki["ca"]), url)
    assert kind == kc.TLS_NAME and kc.RECOVER_HINT in message and "127.0.0.1" in message

    good = tls_context(pki["server_cert"], pki["server_key"])
    with ServerThread(lambda _r: (200, {}, "ok"), good) as srv:
        url = srv.url("")
        kind, message = kc.classify_error(_urlopen_error(url, pki["other_ca"]), url)
    assert kind == kc.TLS_CA and "regenerated" in message


def test_classifies_statuses_and_wrapping():
    class ApiLike(Exception):
        def __init__(self, status, body=""):
            super().__init__(status)
            self.status = status
            self.body = body

    assert kc.classify_error(ApiLike(401), "https://x:6443")[0] == kc.UNAUTHORIZED
    assert "older CA" in kc.classify_error(ApiLike(401))[1]
    assert kc.classify_error(ApiLike(403))[0] == kc.FORBIDDEN
    kind, message = kc.classify_error(ApiLike(500, b"boom"))
    assert kind == kc.OTHER and "boom" in message
    # urllib3-style wrapping: the cause sits in .reason of an outer exception.
    outer = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    assert kc.classify_error(RuntimeError("retries exceeded"), None)[0] == kc.OTHER
    wrapper = Exception("Max retries exceeded")
    wrapper.reason = outer
    assert kc.classify_error(wrapper)[0] == kc.REFUSED
    assert kc.classify_error(TimeoutError("timed out"))[0] == kc.TIMEOUT
    assert kc.classify_error(OSError(113, "No route to host"))[0] == kc.UNREACHABLE


def test_classifies_urllib3_1_26_hostname_error():
    # The shape urllib3 1.26 (Debian 12's python3-urllib3) raises for a certificate without the address.
    class CertificateError(ValueError):
        pass

    class SSLError(Exception):
        pass

    inner = CertificateError("hostname '10.77.0.9' doesn't match '10.77.0.5'")
    outer = SSLError(inner)
    kind, message = kc.classify_error(outer, "https://10.77.0.9:6443")
    assert kind == kc.TLS_NAME and "does not cover the address 10.77.0.9" in message
    assert kc.RECOVER_HINT in message


def test_kubeconfig_server_and_ca(tmp_path):
    ca_pem = CA("k3s-server-ca@1700000000").pem
    other_pem = CA("k3s-server-ca@1700000001").pem
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(kubeconfig("https://172.17.0.3:6443", ca_pem))
    info = kc.kubeconfig_info(str(path), ca_pem)
    assert (info["server_host"], info["ca_matches"]) == ("172.17.0.3", True)
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    info = kc.kubeconfig_info(str(path), other_pem)
    assert info["ca_matches"] is False
    assert kc.kubeconfig_info(str(tmp_path / "none"), ca_pem)["exists"] is False


K3S_YAML = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://127.0.0.1:6443
  name: default
- cluster:
    server: https://localhost:7443
  name: local
- cluster:
    server: "https://[::1]:6443"
  name: six
- cluster:
    server: https://10.0.0.9:6443
  name: remote
contexts: []
# server: https://127.0.0.1:6443 in a comment is not a key
users:
- name: default
  user:
    token: abc:127.0.0.1:6443
"""


def test_point_kubeconfig_at_rewrites_only_loopback_servers():
    out = kc.point_kubeconfig_at(K3S_YAML, "10.77.0.5")
    assert "    server: https://10.77.0.5:6443\n" in out
    assert "    server: https://10.77.0.5:7443\n" in out
    # The quoted [::1] URL is left alone: its line does not start with the URL (k3s never writes it so).
    assert '    server: "https://[::1]:6443"\n' in out
    assert "    server: https://10.0.0.9:6443\n" in out
    assert "# server: https://127.0.0.1:6443 in a comment" in out
    assert "token: abc:127.0.0.1:6443" in out
    # Nothing else changed, byte for byte.
    assert out.replace("10.77.0.5:6443", "127.0.0.1:6443", 1).replace("10.77.0.5:7443", "localhost:7443") == K3S_YAML


def test_point_kubeconfig_at_brackets_ipv6_and_keeps_text_without_a_loopback_server():
    assert kc.point_kubeconfig_at("  server: https://[::1]:6443\n", "fd00::5") == "  server: https://[fd00::5]:6443\n"
    remote = "  server: https://10.0.0.9:6443\n"
    assert kc.point_kubeconfig_at(remote, "10.77.0.5") == remote
    assert kc.point_kubeconfig_at("", "10.77.0.5") == ""


def test_point_kubeconfig_at_matches_the_k3s_roles_former_jinja_rewrite():
    """The regex_replace roles/k3s/tasks/kubeconfig.yml used before the filter, applied by Python's
    re as Jinja's regex_replace does: the same output for k3s's admin kubeconfig."""
    jinja = re.sub(
        r"(?m)^(\s*server:\s*https://)(127\.0\.0\.1|localhost|\[::1\])(:\d+)",
        r"\g<1>" + "10.77.0.5" + r"\g<3>",
        K3S_YAML,
    )
    assert kc.point_kubeconfig_at(K3S_YAML, "10.77.0.5") == jinja
