"""The stand-in's first start, its HTTPS API and its credentials, driven like real clients do."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import socket
import ssl
import stat
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

# The RBAC subject model was renamed between the clients we support (Debian 22.6, venv 37).
SUBJECT = getattr(client, "RbacV1Subject", None) or client.V1Subject


def api(k3s) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(k3s.kubeconfig))


def bearer_client(k3s, token: str) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = k3s.url
    conf.ssl_ca_cert = str(k3s.data / "server/tls/server-ca.crt")
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def anonymous(k3s, path: str) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(k3s.data / "server/tls/server-ca.crt"))
    try:
        with urllib.request.urlopen(k3s.url + path, context=ctx, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_first_start_writes_k3s_layout(k3s_running):
    data, tls = k3s_running.data, k3s_running.data / "server/tls"
    for name in ("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key", "service.key", "client-admin.crt"):
        assert (tls / name).is_file(), name
    for key in tls.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    token = (data / "server/token").read_text().strip()
    assert re.fullmatch(r"K10[0-9a-f]{64}::server:[0-9a-f]{32}", token)
    assert stat.S_IMODE((data / "server/token").stat().st_mode) == 0o600
    assert (data / "server/db/state.db").is_file()
    assert not (data / "server/db/etcd").exists()
    assert (data / "server/manifests").is_dir()
    assert (data / "server/manifests/coredns.yaml").is_file()
    assert not (data / "server/manifests/metrics-server.yaml").exists()
    node = k3s_running.latest("/registry/minions/standin-node")
    assert {"type": "InternalIP", "address": "127.0.0.2"} in node["status"]["addresses"]


def test_kubeconfig_points_at_loopback_with_admin_cert_and_default_mode(k3s_running):
    text = k3s_running.kubeconfig.read_text()
    assert f"server: https://127.0.0.1:{k3s_running.port}\n" in text
    assert stat.S_IMODE(k3s_running.kubeconfig.stat().st_mode) == 0o600
    ca = re.search(r"certificate-authority-data: (\S+)", text).group(1)
    assert base64.b64decode(ca) == (k3s_running.data / "server/tls/server-ca.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(base64.b64decode(re.search(r"client-certificate-data: (\S+)", text).group(1)))
    assert cert.subject.rfc4514_string() == "CN=system:admin,O=system:masters"


def test_write_kubeconfig_mode_is_honoured(k3s):
    k3s.base_config(extra='write-kubeconfig-mode: "0644"\n')
    started = k3s.up()
    assert stat.S_IMODE(k3s.kubeconfig.stat().st_mode) == 0o644
    k3s.stop(started)


def test_serving_cert_sans(k3s):
    k3s.base_config(extra="tls-san:\n  - host.docker.internal\n  - 10.9.9.9\n")
    started = k3s.up()
    pem = ssl.get_server_certificate(("127.0.0.1", k3s.port))
    san = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    ips = {str(v) for v in san.value.get_values_for_type(x509.IPAddress)}
    names = set(san.value.get_values_for_type(x509.DNSName))
    assert {"127.0.0.2", "127.0.0.1", "10.9.9.9"} <= ips
    assert {"localhost", "kubernetes", "kubernetes.default", "host.docker.internal"} <= names
    k3s.stop(started)


def test_health_and_version_are_anonymous_everything_else_401(k3s_running):
    assert anonymous(k3s_running, "/readyz") == (200, b"ok")
    assert anonymous(k3s_running, "/livez") == (200, b"ok")
    assert anonymous(k3s_running, "/healthz") == (200, b"ok")
    code, body = anonymous(k3s_running, "/version")
    assert code == 200 and json.loads(body)["gitVersion"].startswith("v1.")
    for path in ("/api/v1/nodes", "/api/v1/namespaces", "/apis/apps/v1/namespaces/kube-system/deployments"):
        code, body = anonymous(k3s_running, path)
        assert code == 401, path
        assert json.loads(body)["reason"] == "Unauthorized"


def test_kubernetes_client_core_calls(k3s_running):
    with api(k3s_running) as c:
        core = client.CoreV1Api(c)
        nodes = core.list_node().items
        assert [n.metadata.name for n in nodes] == ["standin-node"]
        addresses = {a.type: a.address for a in nodes[0].status.addresses}
        assert addresses == {"InternalIP": "127.0.0.2", "Hostname": "standin-node"}
        assert [(cond.type, cond.status) for cond in nodes[0].status.conditions] == [("Ready", "True")]
        assert core.read_namespace("kube-system").status.phase == "Active"
        names = {ns.metadata.name for ns in core.list_namespace().items}
        assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="integr8scode")))
        with pytest.raises(ApiException) as exc:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="integr8scode")))
        assert exc.value.status == 409
        assert json.loads(exc.value.body)["reason"] == "AlreadyExists"
        with pytest.raises(ApiException) as exc:
            core.read_namespace("nope")
        assert exc.value.status == 404
        assert json.loads(exc.value.body)["message"] == 'namespaces "nope" not found'
        # A namespace gets its default ServiceAccount, as the SA controller does.
        assert core.read_namespaced_service_account("default", "integr8scode").metadata.name == "default"


def test_kubernetes_client_apps_deployments(k3s_running):
    with api(k3s_running) as c:
        apps = client.AppsV1Api(c)
        for name in ("coredns", "local-path-provisioner"):
            dep = apps.read_namespaced_deployment(name, "kube-system")
            assert dep.status.available_replicas == 1
            assert ("Available", "True") in [(cond.type, cond.status) for cond in dep.status.conditions]
        with pytest.raises(ApiException) as exc:  # disabled in the k3s_running fixture's config
            apps.read_namespaced_deployment("metrics-server", "kube-system")
        assert exc.value.status == 404


def test_token_request_honours_expiration_and_authenticates(k3s_running):
    with api(k3s_running) as c:
        core = client.CoreV1Api(c)
        core.create_namespaced_service_account(
            "default", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="integr8scode-sa"))
        )
        before = dt.datetime.now(dt.timezone.utc)
        tr = core.create_namespaced_service_account_token(
            "integr8scode-sa",
            "default",
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=86400)),
        )
        lifetime = (tr.status.expiration_timestamp - before).total_seconds()
        assert 86400 - 120 < lifetime <= 86400 + 120
        token = tr.status.token
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_service_account_token(
                "integr8scode-sa",
                "default",
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=60)
                ),
            )
        assert exc.value.status == 422
    with bearer_client(k3s_running, token) as c:
        assert "default" in {ns.metadata.name for ns in client.CoreV1Api(c).list_namespace().items}
    with bearer_client(k3s_running, token[:-4] + "AAAA") as c:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(c).list_namespace()
        assert exc.value.status == 401
    # Bound token: deleting its ServiceAccount invalidates it.
    with api(k3s_running) as c:
        client.CoreV1Api(c).delete_namespaced_service_account("integr8scode-sa", "default")
    with bearer_client(k3s_running, token) as c:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(c).list_namespace()
        assert exc.value.status == 401


def test_secrets_configmaps_patch_put_delete(k3s_running):
    with api(k3s_running) as c:
        core = client.CoreV1Api(c)
        core.create_namespaced_secret(
            "default", client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"})
        )
        secret = core.read_namespaced_secret("s", "default")
        assert secret.data == {"k": base64.b64encode(b"v").decode()} and secret.type == "Opaque"
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"a": "1"})
        )
        core.patch_namespaced_config_map("cm", "default", {"data": {"b": "2"}})
        assert core.read_namespaced_config_map("cm", "default").data == {"a": "1", "b": "2"}
        cm = core.read_namespaced_config_map("cm", "default")
        cm.data = {"c": "3"}
        core.replace_namespaced_config_map("cm", "default", cm)
        assert core.read_namespaced_config_map("cm", "default").data == {"c": "3"}
        core.delete_namespaced_config_map("cm", "default")
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_config_map("cm", "default")
        assert exc.value.status == 404
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_config_map("missing-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
        assert exc.value.status == 404
        assert core.list_namespaced_pod("default").items == []
        # Legacy SA token secret is populated by the "token controller".
        core.create_namespaced_secret(
            "default",
            client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name="sa-tok", annotations={"kubernetes.io/service-account.name": "default"}
                ),
                type="kubernetes.io/service-account-token",
            ),
        )
        data = core.read_namespaced_secret("sa-tok", "default").data
        assert base64.b64decode(data["ca.crt"]) == (k3s_running.data / "server/tls/server-ca.crt").read_bytes()
        legacy = base64.b64decode(data["token"]).decode()
    with bearer_client(k3s_running, legacy) as c:
        assert client.CoreV1Api(c).list_node().items


def test_rbac_and_networkpolicy_are_stored(k3s_running):
    meta = client.V1ObjectMeta
    with api(k3s_running) as c:
        rbac, net = client.RbacAuthorizationV1Api(c), client.NetworkingV1Api(c)
        rule = [client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"])]
        subject = [SUBJECT(kind="ServiceAccount", name="default", namespace="default")]
        rbac.create_namespaced_role("default", client.V1Role(metadata=meta(name="r"), rules=rule))
        rbac.create_namespaced_role_binding(
            "default",
            client.V1RoleBinding(
                metadata=meta(name="rb"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="r"),
                subjects=subject,
            ),
        )
        rbac.create_cluster_role(client.V1ClusterRole(metadata=meta(name="cr"), rules=rule))
        rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=meta(name="crb"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cr"),
                subjects=subject,
            )
        )
        net.create_namespaced_network_policy(
            "default",
            client.V1NetworkPolicy(
                metadata=meta(name="np"), spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector())
            ),
        )
        assert [r.metadata.name for r in rbac.list_namespaced_role("default").items] == ["r"]
        assert rbac.read_namespaced_role_binding("rb", "default").role_ref.name == "r"
        assert rbac.read_cluster_role("cr").rules[0].verbs == ["get"]
        assert rbac.read_cluster_role_binding("crb").subjects[0].name == "default"
        assert net.read_namespaced_network_policy("np", "default").metadata.name == "np"
        rbac.delete_cluster_role("cr")
        assert [r.metadata.name for r in rbac.list_cluster_role().items] == []


def test_dynamic_client_discovery(k3s_running):
    with api(k3s_running) as c:
        dyn = DynamicClient(c)
        ns_api = dyn.resources.get(api_version="v1", kind="Namespace")
        assert "kube-system" in [i.metadata.name for i in ns_api.get().items]
        deploy = dyn.resources.get(api_version="apps/v1", kind="Deployment")
        assert deploy.get(name="coredns", namespace="kube-system").status.availableReplicas == 1


def test_objects_persist_and_db_wipe_gives_fresh_cluster(k3s):
    k3s.base_config()
    started = k3s.up()
    with api(k3s) as c:
        client.CoreV1Api(c).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="keepme")))
    assert k3s.stop(started) == 0
    started = k3s.up()
    with api(k3s) as c:
        assert client.CoreV1Api(c).read_namespace("keepme").metadata.name == "keepme"
    k3s.stop(started)
    shutil.rmtree(k3s.data / "server/db")
    started = k3s.up()
    with api(k3s) as c:
        names = {ns.metadata.name for ns in client.CoreV1Api(c).list_namespace().items}
    assert names == {"default", "kube-system", "kube-public", "kube-node-lease"}
    k3s.stop(started)


def test_tls_wipe_rejects_old_kubeconfig_and_old_tokens(k3s):
    k3s.base_config()
    started = k3s.up()
    with api(k3s) as c:
        core = client.CoreV1Api(c)
        core.create_namespaced_service_account(
            "default", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="app"))
        )
        old_token = core.create_namespaced_service_account_token(
            "app", "default", client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
        ).status.token
    old_kubeconfig = k3s.root / "old-k3s.yaml"
    shutil.copy(k3s.kubeconfig, old_kubeconfig)
    old_ca = (k3s.data / "server/tls/server-ca.crt").read_bytes()
    k3s.stop(started)
    shutil.rmtree(k3s.data / "server/tls")
    started = k3s.up()
    assert (k3s.data / "server/tls/server-ca.crt").read_bytes() != old_ca
    with config.new_client_from_config(config_file=str(old_kubeconfig)) as c:
        with pytest.raises(Exception) as exc:  # urllib3 wraps the SSL error
            client.CoreV1Api(c).list_node()
        assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value) or "certificate verify failed" in str(exc.value)
    # Old kubeconfig's client cert against the new server, CA check aside: rejected.
    ctx = ssl.create_default_context(cafile=str(k3s.data / "server/tls/server-ca.crt"))
    text = old_kubeconfig.read_text()
    (k3s.root / "old.crt").write_bytes(base64.b64decode(re.search(r"client-certificate-data: (\S+)", text).group(1)))
    (k3s.root / "old.key").write_bytes(base64.b64decode(re.search(r"client-key-data: (\S+)", text).group(1)))
    ctx.load_cert_chain(str(k3s.root / "old.crt"), str(k3s.root / "old.key"))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        with urllib.request.urlopen(k3s.url + "/api/v1/nodes", context=ctx, timeout=30) as resp:
            resp.read()
    with bearer_client(k3s, old_token) as c:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(c).list_namespace()
        assert exc.value.status == 401
    with api(k3s) as c:  # the new kubeconfig works
        assert client.CoreV1Api(c).list_node().items
    k3s.stop(started)


def test_ready_is_sent_only_once_the_api_serves(k3s):
    k3s.base_config()
    started = k3s.up()
    # READY=1 arrived (k3s.up); the very first connection right after must succeed.
    with socket.create_connection(("127.0.0.1", k3s.port), timeout=10):
        pass
    status, body = anonymous(k3s, "/readyz")
    assert (status, body) == (200, b"ok")
    assert k3s.stop(started) == 0
