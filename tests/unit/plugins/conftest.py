"""Fixtures for the wait modules' tests: run a module through its real entry point."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(REPO, "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

import waitlib_tls  # noqa: E402


def run_module(name, args, check_mode=False, env=None, timeout=600):
    """Run integr8scode.provision.<name> as Ansible does (JSON args on stdin); return its JSON result."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    environ = dict(os.environ)
    environ["PYTHONPATH"] = COLLECTIONS + os.pathsep + environ.get("PYTHONPATH", "")
    environ.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.integr8scode.provision.plugins.modules." + name],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode(),
        capture_output=True,
        env=environ,
        timeout=timeout,
        check=False,
    )
    out = proc.stdout.decode()
    try:
        start = out.index("{")
        result = json.loads(out[start:])
    except ValueError as exc:
        raise AssertionError(f"module {name} printed no JSON (rc={proc.returncode}): {out} {proc.stderr}") from exc
    result["_rc"] = proc.returncode
    result["_stderr"] = proc.stderr.decode()
    return result


@pytest.fixture(name="run_module")
def run_module_fixture():
    return run_module


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1, one for another address only, and a client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    ca = waitlib_tls.CA()
    other_ca = waitlib_tls.CA("utwait-other-ca")
    files = {"ca": waitlib_tls.write(directory, "ca.crt", ca.pem, 0o644)}
    files["other_ca"] = waitlib_tls.write(directory, "other-ca.crt", other_ca.pem, 0o644)
    cert, key = ca.issue("127.0.0.1", ips=["127.0.0.1"], dns=["localhost"])
    files["server_cert"] = waitlib_tls.write(directory, "server.crt", cert, 0o644)
    files["server_key"] = waitlib_tls.write(directory, "server.key", key)
    cert, key = ca.issue("10.99.0.1", ips=["10.99.0.1"])
    files["wrong_san_cert"] = waitlib_tls.write(directory, "wrong-san.crt", cert, 0o644)
    files["wrong_san_key"] = waitlib_tls.write(directory, "wrong-san.key", key)
    cert, key = ca.issue("system:admin", client=True)
    files["client_cert"] = waitlib_tls.write(directory, "client.crt", cert, 0o644)
    files["client_key"] = waitlib_tls.write(directory, "client.key", key)
    files["ca_obj"] = ca
    return files


@pytest.fixture
def k3s_files(tmp_path):
    """A k3s tree under tmp_path/k3s: config.yaml, token, tls and a WAL-mode kine datastore with
    uncheckpointed writes (the connection stays open, as with a live k3s). Yields (tree, connection)."""
    src = tmp_path / "k3s"
    (src / "server" / "tls").mkdir(parents=True)
    (src / "server" / "db").mkdir(parents=True)
    (src / "config.yaml").write_text("node-ip: 172.17.0.3\nflannel-iface: eth0\n")
    (src / "server" / "token").write_text("K10abc::server:secret\n")
    (src / "server" / "tls" / "server-ca.crt").write_text("-----BEGIN CERTIFICATE-----\nx\n")
    conn = sqlite3.connect(str(src / "server" / "db" / "state.db"))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB, deleted INTEGER)")
    conn.execute("INSERT INTO kine (name, value, deleted) VALUES ('/registry/minions/n', x'00', 0)")
    conn.commit()
    yield src, conn
    conn.close()
