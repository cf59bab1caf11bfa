"""k3s_drift: parsing of each input it reads, the assessment, and the module run end to end.

The end-to-end tests run the module as Ansible does (a JSON args file, a subprocess) against a
temporary k3s tree with real X.509 certificates (cryptography), a real SQLite kine table and
the real `ip` output of this machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / "collections"
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.integr8scode.provision.plugins.modules import k3s_drift  # noqa: E402
from waitlib_tls import CA  # noqa: E402

# ----------------------------------------------------------------------------- fixtures


def serving_cert(ca, ips):
    """A k3s-like serving certificate (kube-apiserver) with these IP SANs."""
    return ca.issue("kube-apiserver", ips=ips, dns=("kubernetes", "localhost"))[0]


def kine_db(path, rows):
    """A kine table as k3s's SQLite datastore holds it; rows = [(name, value_bytes, deleted)]."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER,"
        " create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)"
    )
    for name, value, deleted in rows:
        conn.execute(
            "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
            " VALUES (?, 0, ?, 0, 0, 0, ?, NULL)",
            (name, deleted, value),
        )
    conn.commit()
    conn.close()


def node_json(ip):
    return json.dumps(
        {
            "kind": "Node",
            "metadata": {"name": "node1", "annotations": {"k3s.io/internal-ip": ip}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "node1"}]},
        }
    ).encode()


def node_protobuf_like(ip):
    """The bytes Kubernetes protobuf puts around a NodeAddress: length-prefixed type then address."""
    return b"k8s\x00\n\x0c\n\x02v1\x12\x04Node" + b"\n\nInternalIP\x12" + bytes([len(ip)]) + ip.encode() + b"\x1a\x00"


def kubeconfig(server, ca_pem, token="secret-token"):
    ca = base64.b64encode(ca_pem).decode()
    return (
        f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n"
        f"    server: {server}\n  name: default\ncontexts:\n- context: {{cluster: default, user: default}}\n"
        f"  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    token: {token}\n"
    )


def host_ips():
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return k3s_drift.parse_ip_addr_json(out)


def unused_ip():
    taken = {a["address"] for a in host_ips()}
    for candidate in ("198.51.100.77", "203.0.113.77", "100.64.77.77"):
        if candidate not in taken:
            return candidate
    raise AssertionError("no unused documentation address on this machine")


@pytest.fixture
def k3s_tree(tmp_path):
    """A k3s config + data dir; returns a builder taking the node IPs to record."""

    def build(config_ip, recorded_ip, datastore="sqlite", flannel_iface=None, kube_server=None):
        etc = tmp_path / "etc"
        data = tmp_path / "data"
        tls = data / "server" / "tls"
        db = data / "server" / "db"
        tls.mkdir(parents=True)
        db.mkdir(parents=True)
        etc.mkdir()
        lines = [f"node-ip: {config_ip}", "tls-san:", "  - host.docker.internal", "  - 10.9.9.9"]
        if flannel_iface:
            lines.append(f"flannel-iface: {flannel_iface}")
        if datastore == "etcd":
            lines.append("cluster-init: true")
        (etc / "config.yaml").write_text("\n".join(lines) + "\n")
        ca = CA("k3s-server-ca@1700000000")
        ca_pem = ca.pem
        (tls / "server-ca.crt").write_bytes(ca_pem)
        (tls / "serving-kube-apiserver.crt").write_bytes(
            serving_cert(ca, ["127.0.0.1", "10.43.0.1", "10.9.9.9", recorded_ip])
        )
        if datastore == "sqlite":
            kine_db(str(db / "state.db"), [("/registry/minions/node1", node_json(recorded_ip), 0)])
        else:
            (db / "etcd").mkdir()
            (db / "etcd" / "config").write_text(
                f"advertise-client-urls: https://{recorded_ip}:2379\n"
                f"initial-advertise-peer-urls: https://{recorded_ip}:2380\n"
                f"listen-peer-urls: https://127.0.0.1:2380,https://{recorded_ip}:2380\n"
            )
        server = kube_server or "https://127.0.0.1:6443"
        (etc / "k3s.yaml").write_text(kubeconfig("https://127.0.0.1:6443", ca_pem))
        (tmp_path / "app-kubeconfig.yaml").write_text(kubeconfig(server, ca_pem))
        return {
            "config_file": str(etc / "config.yaml"),
            "data_dir": str(data),
            "node_name": "node1",
            "service": "i8c-no-such-unit",
            "kubeconfigs": [str(etc / "k3s.yaml"), str(tmp_path / "app-kubeconfig.yaml"), str(tmp_path / "absent")],
        }

    return build


def run_module(tmp_path, args):
    """Run the module the way Ansible does: a JSON args file, a child interpreter."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.integr8scode.provision.plugins.modules.k3s_drift", str(args_file)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    result = json.loads(proc.stdout)
    return proc.returncode, result


# ----------------------------------------------------------------------------- parsing

IP_ADDR_JSON = json.dumps(
    [
        {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "link_type": "loopback", "addr_info": [
            {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
        {"ifname": "eth0", "flags": ["BROADCAST", "UP"], "link_type": "ether", "addr_info": [
            {"family": "inet", "local": "10.77.0.5", "prefixlen": 24, "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
        {"ifname": "docker0", "flags": ["BROADCAST", "UP"], "link_type": "ether", "addr_info": [
            {"family": "inet", "local": "172.18.0.1", "prefixlen": 16, "scope": "global"}]},
        {"ifname": "nordlynx", "flags": ["POINTOPOINT", "NOARP", "UP"], "link_type": "none", "addr_info": [
            {"family": "inet", "local": "10.5.0.2", "prefixlen": 32, "scope": "global"}]},
    ]
)  # fmt: skip


def test_parse_ip_addr_keeps_global_addresses_and_marks_tunnels_and_bridges():
    addrs = {a["address"]: a for a in k3s_drift.parse_ip_addr_json(IP_ADDR_JSON)}
    assert set(addrs) == {"10.77.0.5", "172.18.0.1", "10.5.0.2"}
    assert addrs["10.5.0.2"]["tunnel"] is True
    assert addrs["10.77.0.5"]["tunnel"] is False
    assert addrs["172.18.0.1"]["tunnel"] is True, "docker0 never carries the node address"


def test_default_route_on_vpn_tunnel_is_marked():
    route = k3s_drift.parse_default_route_json('[{"dst":"default","dev":"nordlynx","flags":[]}]')
    assert route == {"interface": "nordlynx", "gateway": None, "tunnel": True}
    route = k3s_drift.parse_default_route_json('[{"dst":"default","dev":"eth0","gateway":"10.77.0.1","flags":[]}]')
    assert route == {"interface": "eth0", "gateway": "10.77.0.1", "tunnel": False}


def test_a_node_ip_on_the_tunnel_is_drift_even_while_assigned():
    """A config.yaml a tunnel-bound rerun once wrote: the address is on the host, but the policy
    never chooses a tunnel, so the recovery moves the node back to the LAN."""
    found = k3s_drift.assess(facts(config_ip="10.5.0.2", node_address_reason="eth0 carries the default route"))
    assert checks(found) == ["config_node_ip_policy"]
    assert "10.5.0.2" in found[0]["message"] and "10.77.0.5" in found[0]["message"]


def test_no_usable_address_names_the_pins():
    found = k3s_drift.assess(
        facts(expected_ip=None, node_address_error="No usable IPv4 address ... Set k3s_node_ip or k3s_node_interface.")
    )
    assert "node_ip_available" in checks(found)
    assert "k3s_node_ip" in next(f for f in found if f["check"] == "node_ip_available")["message"]


def test_serving_certificate_sans_minus_loopback_and_service_ip(tmp_path):
    ca = CA("k3s-server-ca@1700000000")
    (tmp_path / "serving-kube-apiserver.crt").write_bytes(
        serving_cert(ca, ["127.0.0.1", "10.53.0.1", "10.9.9.9", "172.17.0.3", "::1"])
    )
    ips, files, errors = k3s_drift.recorded_tls_ips(str(tmp_path), {"service-cidr": "10.53.0.0/16"})
    assert (ips, errors) == (["10.9.9.9", "172.17.0.3"], [])
    assert files == [str(tmp_path / "serving-kube-apiserver.crt")]


def test_dynamic_listener_secret_json_is_read(tmp_path):
    pem = serving_cert(CA("k3s-server-ca@1700000000"), ["127.0.0.1", "192.168.1.20"])
    secret = {"kind": "Secret", "data": {"tls.crt": base64.b64encode(pem).decode(), "tls.key": ""}}
    (tmp_path / "dynamic-cert.json").write_text(json.dumps(secret))
    ips, _files, errors = k3s_drift.recorded_tls_ips(str(tmp_path), {})
    assert (ips, errors) == (["192.168.1.20"], [])


def test_unreadable_certificate_is_reported_not_raised(tmp_path):
    (tmp_path / "serving-kube-apiserver.crt").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")
    ips, _files, errors = k3s_drift.recorded_tls_ips(str(tmp_path), {})
    assert ips == []
    assert len(errors) == 1 and "serving-kube-apiserver.crt" in errors[0]


def test_sqlite_node_record_json_protobuf_and_deletion(tmp_path):
    db = tmp_path / "state.db"
    kine_db(
        str(db),
        [
            ("/registry/minions/node1", node_json("172.17.0.3"), 0),
            ("/registry/minions/node1", node_protobuf_like("172.17.0.9"), 0),
            ("/registry/minions/gone", node_json("172.17.0.50"), 0),
            ("/registry/minions/gone", b"", 1),
            ("/registry/namespaces/default", node_json("1.1.1.1"), 0),
        ],
    )
    assert k3s_drift.sqlite_node_ips(str(db), "node1") == (["172.17.0.9"], None)
    # Unknown name: every live node (the deleted one is gone).
    assert k3s_drift.sqlite_node_ips(str(db), "other") == (["172.17.0.9"], None)


def test_sqlite_without_kine_table_is_an_error_message(tmp_path):
    db = tmp_path / "state.db"
    sqlite3.connect(str(db)).close()
    ips, error = k3s_drift.sqlite_node_ips(str(db), "node1")
    assert ips == [] and "cannot read node records" in error


def test_etcd_member_urls(tmp_path):
    (tmp_path / "config").write_text(
        '{"initial-advertise-peer-urls":"https://172.17.0.3:2380",'
        '"listen-peer-urls":"https://127.0.0.1:2380,https://172.17.0.3:2380"}'
    )
    assert k3s_drift.etcd_member_ips(str(tmp_path)) == (["172.17.0.3"], None)


def test_kubeconfig_server_and_ca(tmp_path):
    ca_pem = CA("k3s-server-ca@1700000000").pem
    other_pem = CA("k3s-server-ca@1700000001").pem
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(kubeconfig("https://172.17.0.3:6443", ca_pem))
    info = k3s_drift.kubeconfig_info(str(path), ca_pem)
    assert (info["server_host"], info["ca_matches"]) == ("172.17.0.3", True)
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    info = k3s_drift.kubeconfig_info(str(path), other_pem)
    assert info["ca_matches"] is False
    assert k3s_drift.kubeconfig_info(str(tmp_path / "none"), ca_pem)["exists"] is False


def facts(**overrides):
    base = {
        "config_file": "/etc/rancher/k3s/config.yaml",
        "config_ip": "10.77.0.5",
        "config_ip_file": "/etc/rancher/k3s/config.yaml",
        "expected_ip": "10.77.0.5",
        "addresses": k3s_drift.parse_ip_addr_json(IP_ADDR_JSON),
        "interfaces": ["lo", "eth0", "docker0", "nordlynx"],
        "default_route": {"interface": "eth0", "gateway": "10.77.0.1", "tunnel": False},
        "flannel_iface": "eth0",
        "recommended_iface": "eth0",
        "recorded_tls": ["10.77.0.5"],
        "recorded_datastore": ["10.77.0.5"],
        "datastore": "sqlite",
        "kubeconfigs": [{"path": "/app", "exists": True, "server": "https://10.77.0.5:6443",
                         "server_host": "10.77.0.5", "ca_matches": True}],
        "service": {"active_state": "active", "sub_state": "running", "n_restarts": 0},
        "crash_looping": False,
    }  # fmt: skip
    base.update(overrides)
    return base


def checks(findings, severity="drift"):
    return sorted(f["check"] for f in findings if f["severity"] == severity)


def test_converged_host_has_no_findings():
    assert k3s_drift.assess(facts()) == []


def test_ip_change_is_found_everywhere_it_shows():
    found = k3s_drift.assess(
        facts(
            config_ip="172.17.0.3",
            recorded_tls=["172.17.0.3"],
            recorded_datastore=["172.17.0.3"],
            kubeconfigs=[{"path": "/app", "exists": True, "server": "https://172.17.0.3:6443",
                          "server_host": "172.17.0.3", "ca_matches": True}],
            crash_looping=True,
        )
    )  # fmt: skip
    assert checks(found) == ["config_node_ip_on_host", "datastore_node_ip", "kubeconfig_server", "tls_san"]
    assert checks(found, "warning") == ["service_running"]
    message = next(f for f in found if f["check"] == "config_node_ip_on_host")["message"]
    assert "172.17.0.3" in message and "/etc/rancher/k3s/config.yaml" in message


def test_config_already_rewritten_but_tls_stale_is_drift():
    assert checks(k3s_drift.assess(facts(recorded_tls=["172.17.0.3"]))) == ["tls_san"]


def test_loopback_and_hostname_servers_are_not_compared():
    kcs = [
        {"path": "/a", "exists": True, "server": "https://127.0.0.1:6443", "server_host": "127.0.0.1"},
        {"path": "/b", "exists": True, "server": "https://host.docker.internal:6443",
         "server_host": "host.docker.internal"},
        {"path": "/c", "exists": False, "server": None, "server_host": None},
    ]  # fmt: skip
    assert k3s_drift.assess(facts(kubeconfigs=kcs)) == []


def test_stale_ca_in_a_kubeconfig_is_drift():
    kcs = [{"path": "/home/u/.kube/config", "exists": True, "server": "https://127.0.0.1:6443",
            "server_host": "127.0.0.1", "ca_matches": False}]  # fmt: skip
    assert checks(k3s_drift.assess(facts(kubeconfigs=kcs))) == ["kubeconfig_ca"]


def test_vpn_default_route_is_only_a_warning():
    found = k3s_drift.assess(facts(default_route={"interface": "nordlynx", "gateway": None, "tunnel": True}))
    assert checks(found) == [] and checks(found, "warning") == ["default_route_tunnel"]


def test_missing_flannel_interface_is_drift():
    assert checks(k3s_drift.assess(facts(flannel_iface="enp0s3"))) == ["flannel_iface_exists"]


# ----------------------------------------------------------------------------- module end to end


def test_module_reports_no_drift_when_k3s_matches_the_host(tmp_path, k3s_tree):
    here = next(a for a in host_ips() if a["family"] == "inet" and not a["tunnel"])
    args = k3s_tree(here["address"], here["address"], kube_server=f"https://{here['address']}:6443")
    rc, result = run_module(tmp_path, args)
    assert rc == 0, result
    assert result["changed"] is False
    assert result["installed"] is True
    assert result["datastore"] == "sqlite"
    assert result["drift"] is False, result["findings"]
    assert result["node_ip"]["recorded_tls"] == ["10.9.9.9", here["address"]]
    assert result["node_ip"]["recorded_datastore"] == [here["address"]]
    assert [k["exists"] for k in result["kubeconfigs"]] == [True, True, False]
    assert all(k["ca_matches"] for k in result["kubeconfigs"][:2])


@pytest.mark.parametrize("datastore", ["sqlite", "etcd"])
def test_module_reports_drift_after_an_ip_change(tmp_path, k3s_tree, datastore):
    old = unused_ip()
    args = k3s_tree(old, old, datastore=datastore, kube_server=f"https://{old}:6443")
    rc, result = run_module(tmp_path, args)
    assert rc == 0, result
    assert result["changed"] is False
    assert result["drift"] is True
    assert result["datastore"] == datastore
    found = {f["check"] for f in result["findings"] if f["severity"] == "drift"}
    assert {"config_node_ip_on_host", "tls_san", "datastore_node_ip", "kubeconfig_server"} <= found
    recommended = result["recommended_node_ip"]
    assert recommended in {a["address"] for a in host_ips()}
    assert result["node_ip"]["recorded_datastore"] == [old]


def test_module_on_a_host_without_k3s(tmp_path):
    rc, result = run_module(
        tmp_path,
        {"config_file": str(tmp_path / "none.yaml"), "data_dir": str(tmp_path / "none"), "service": "i8c-no-unit"},
    )
    assert rc == 0, result
    assert (result["installed"], result["drift"], result["datastore"], result["findings"]) == (False, False, None, [])


def test_module_rejects_a_node_ip_that_is_not_an_address(tmp_path):
    rc, result = run_module(tmp_path, {"node_ip": "10.0.0.300"})
    assert rc == 1
    assert result["failed"] is True
    assert "node_ip" in result["msg"] and "10.0.0.300" in result["msg"]
