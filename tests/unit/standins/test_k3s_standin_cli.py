"""Stand-in command line: version, release build, config merging, kubectl, certificate rotate."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import ssl
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography import x509

STANDIN = Path(__file__).resolve().parents[2] / "standins" / "k3s" / "k3s_standin"
BUILD_RELEASE = STANDIN.parent / "build-release.sh"


def test_version_format(k3s):
    for flag in ("--version", "-v"):
        result = k3s.run(flag)
        assert result.returncode == 0
        first, second = result.stdout.splitlines()
        assert re.fullmatch(r"k3s version v1\.32\.11\+k3s1 \([0-9a-f]{8}\)", first)
        assert re.fullmatch(r"go version go1\.\d+\.\d+", second)


def test_build_release_bakes_version_and_checksums(tmp_path):
    for version in ("v1.31.4+k3s1", "v1.32.11+k3s1"):
        out = subprocess.run([str(BUILD_RELEASE), version, str(tmp_path)], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        release = tmp_path / version
        binary = release / "k3s"
        assert os.access(binary, os.X_OK)
        assert binary.read_bytes().startswith(b"#!/usr/bin/python3\n")
        ran = subprocess.run([sys.executable, str(binary), "--version"], capture_output=True, text=True, check=True)
        assert ran.stdout.startswith(f"k3s version {version} (")
        sums = dict(reversed(line.split("  ")) for line in (release / "sha256sum-amd64.txt").read_text().splitlines())
        assert set(sums) == {"k3s", "k3s-airgap-images-amd64.tar.gz"}
        for name, digest in sums.items():
            assert hashlib.sha256((release / name).read_bytes()).hexdigest() == digest
        with tarfile.open(release / "k3s-airgap-images-amd64.tar.gz") as tar:
            assert "index.json" in tar.getnames()


def test_build_release_rejects_bad_version(tmp_path):
    out = subprocess.run([str(BUILD_RELEASE), "1.32", str(tmp_path)], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "VERSION '1.32' is not a k3s release tag" in out.stderr
    assert not any(tmp_path.iterdir())


def serving_sans(k3s) -> set[str]:
    pem = ssl.get_server_certificate(("127.0.0.1", k3s.port))
    ext = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return {str(v) for v in ext.value.get_values_for_type(x509.IPAddress)} | set(
        ext.value.get_values_for_type(x509.DNSName)
    )


def test_config_dropins_append_override_and_flags_win(k3s):
    k3s.base_config("127.0.0.2", extra="tls-san: [one.example]\nunknown-thing: 5\n")
    k3s.write_config("tls-san+:\n  - two.example\nnode-ip: 127.0.0.4\n", "config.yaml.d/10-extra.yaml")
    started = k3s.up("--node-ip", "127.0.0.5", "--tls-san=three.example")
    assert 'level=warning msg="Unknown flag --unknown-thing found in config.yaml, skipping"' in started.log
    sans = serving_sans(k3s)
    assert {"one.example", "two.example", "three.example", "127.0.0.5"} <= sans
    assert "127.0.0.4" not in sans  # the CLI flag overrode the drop-in's node-ip
    node = k3s.latest("/registry/minions/standin-node")
    assert node["status"]["addresses"][0]["address"] == "127.0.0.5"
    k3s.stop(started)


def test_config_flag_points_elsewhere(k3s):
    alt = k3s.root / "alt.yaml"
    alt.write_text(f"node-ip: 127.0.0.6\nbind-address: 127.0.0.1\nhttps-listen-port: {k3s.port}\nnode-name: alt\n")
    started = k3s.up("--config", str(alt))
    assert k3s.latest("/registry/minions/alt")["status"]["addresses"][0]["address"] == "127.0.0.6"
    k3s.stop(started)


def test_bad_config_is_fatal_naming_the_file(k3s):
    k3s.write_config("node-ip: 127.0.0.2\n  nested: nope\n")
    started = k3s.start()
    assert started.proc.wait(timeout=60) == 1
    assert f"failed to parse {k3s.etc}/config.yaml: line 2" in started.log
    assert not k3s.data.exists()


def test_bad_node_ip_is_fatal(k3s):
    k3s.base_config("not-an-ip")
    started = k3s.start()
    assert started.proc.wait(timeout=60) == 1
    assert "invalid node-ip not-an-ip" in started.log


def test_port_in_use_is_fatal(k3s, k3s_running):
    other = k3s_running.run(
        "server",
        "--data-dir",
        str(k3s.data),
        "--node-ip",
        "127.0.0.2",
        "--bind-address",
        "127.0.0.1",
        f"--https-listen-port={k3s_running.port}",
    )
    assert other.returncode == 1
    assert f"listen tcp 127.0.0.1:{k3s_running.port}: bind: address already in use" in other.stderr


def test_kubectl_get_delete_and_argv0_dispatch(k3s_running, tmp_path):
    table = k3s_running.run("kubectl", "get", "nodes")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert row.split()[:3] == ["standin-node", "Ready", "control-plane,master"]
    wide = k3s_running.run("kubectl", "get", "nodes", "-o", "wide")
    assert "127.0.0.2" in wide.stdout.splitlines()[1].split()
    as_json = k3s_running.run("kubectl", "get", "namespaces", "-o", "json")
    assert '"kube-system"' in as_json.stdout
    link = tmp_path / "kubectl"
    link.symlink_to(STANDIN)
    via_link = k3s_running.run("get", "namespaces", argv0=str(link))
    assert via_link.returncode == 0, via_link.stderr
    assert [line.split()[0] for line in via_link.stdout.splitlines()] == [
        "NAME",
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
    ]
    missing = k3s_running.run("kubectl", "delete", "node", "ghost")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): nodes "ghost" not found'


def test_kubectl_against_stopped_server(k3s):
    k3s.base_config()
    assert k3s.stop(k3s.up()) == 0
    result = k3s.run("kubectl", "get", "nodes")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"The connection to the server 127.0.0.1:{k3s.port} was refused - did you specify the right host or port?"
    )


def test_certificate_rotate_keeps_cas_and_backs_up(k3s):
    k3s.base_config()
    assert k3s.stop(k3s.up()) == 0
    tls = k3s.data / "server/tls"
    ca_before = (tls / "server-ca.crt").read_bytes()
    admin_before = (tls / "client-admin.crt").read_bytes()
    kubeconfig_before = k3s.kubeconfig.read_text()
    result = k3s.run("certificate", "rotate", "--data-dir", str(k3s.data))
    assert result.returncode == 0, result.stderr
    backups = list((k3s.data / "server").glob("tls-*"))
    assert len(backups) == 1 and re.fullmatch(r"tls-\d{10}", backups[0].name)
    assert (backups[0] / "client-admin.crt").read_bytes() == admin_before
    assert "please restart k3s server or agent to rotate certificates" in result.stderr
    assert (tls / "server-ca.crt").read_bytes() == ca_before
    assert (tls / "client-admin.crt").read_bytes() != admin_before
    started = k3s.up()
    assert k3s.kubeconfig.read_text() != kubeconfig_before
    assert k3s.run("kubectl", "get", "nodes").returncode == 0
    k3s.stop(started)


def test_fatal_uses_logrus_terminal_format_on_a_tty(k3s):
    pid, fd = pty.fork()
    if pid == 0:  # child: stderr is the pty
        os.environ.update(k3s.cmd_env())
        os.execv(sys.executable, [sys.executable, str(STANDIN), "etcd-snapshot", "save", "--data-dir", str(k3s.data)])
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    status = os.waitpid(pid, 0)[1]
    output = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 1
    assert re.search(r"FATA\[\d{4}\] open \S+/server/token: no such file or directory", output), output


@pytest.mark.parametrize("tool", ["crictl", "ctr"])
def test_runtime_tools_say_they_are_not_modelled(k3s, tmp_path, tool):
    link = tmp_path / tool
    link.symlink_to(STANDIN)
    result = k3s.run("ps", argv0=str(link))
    assert result.returncode == 1
    assert "not modelled by the k3s test stand-in" in result.stderr


def test_defaults_match_real_k3s():
    source = "".join(path.read_text() for path in sorted(STANDIN.glob("*.py")))
    assert 'DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"' in source
    assert 'os.environ.get("K3S_STANDIN_ETC_DIR", "/etc/rancher/k3s")' in source
    assert 'int(opts.get("https-listen-port") or 6443)' in source
    assert 'opts.get("bind-address") or "0.0.0.0"' in source
    assert 'str(opts.get("write-kubeconfig-mode") or "0600")' in source
