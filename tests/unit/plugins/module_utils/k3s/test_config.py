"""config.yaml: reading it, and the one renderer the k3s role and the recovery share.

The property that matters: after a recovery rewrote the file for a new address, the k3s role
with the same variables renders the same bytes, so a rerun of site.yml changes nothing.
"""

from __future__ import annotations

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import config as k3s_config
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    ConfigError,
    first_node_ip,
    read_config,
    readdress,
    render_config,
    role_settings,
    settings_from_text,
)

ROLE_VARS = dict(
    bind_address="0.0.0.0",
    tls_san=["i8c.example.test"],
    disable=["traefik"],
    write_kubeconfig_mode="0600",
    cluster_init=True,
    data_dir="/var/lib/rancher/k3s",
    extra={"cluster-cidr": "10.52.0.0/16", "kubelet-arg": ["max-pods=50"], "secrets-encryption": True},
)


def test_render_is_the_documented_layout():
    text = render_config(role_settings("192.168.1.20", "eth0", **ROLE_VARS))
    assert text == (
        "# Managed by integr8scode.provision (role k3s); edit the k3s_* variables instead.\n"
        "# node-ip stays a top-level scalar: upstream Integr8sCode's cert-generator\n"
        "# reads it with a line grep.\n"
        "node-ip: 192.168.1.20\n"
        "# flannel otherwise follows the default route, not node-ip (k3s #12459, #12056, #1365).\n"
        "flannel-iface: eth0\n"
        "bind-address: 0.0.0.0\n"
        "tls-san:\n"
        '  - "host.docker.internal"\n'
        '  - "192.168.1.20"\n'
        '  - "i8c.example.test"\n'
        "disable:\n"
        "  - traefik\n"
        'write-kubeconfig-mode: "0600"\n'
        "cluster-init: true\n"
        'cluster-cidr: "10.52.0.0/16"\n'
        "kubelet-arg:\n"
        '  - "max-pods=50"\n'
        "secrets-encryption: true\n"
    )


@pytest.mark.parametrize("has_yaml", [True, False])
def test_recovery_then_role_render_the_same_bytes(monkeypatch, has_yaml):
    monkeypatch.setattr(k3s_config, "HAS_YAML", has_yaml)
    before = render_config(role_settings("172.17.0.3", "eth0", **ROLE_VARS))
    recovered = render_config(readdress(settings_from_text(before), "10.77.0.5", "eth0"))
    rerun = render_config(role_settings("10.77.0.5", "eth0", **ROLE_VARS))
    assert recovered == rerun
    assert "172.17.0.3" not in recovered


def test_readdress_replaces_the_old_address_in_tls_san_and_keeps_the_rest():
    settings = settings_from_text(
        "node-ip: 172.17.0.3\nflannel-iface: eth0\ntls-san: [172.17.0.3, box.lan]\nwrite-kubeconfig-mode: 0644\n"
        "node-name: box\n"
    )
    new = readdress(settings, "10.77.0.5", "wlan0")
    assert new["tls-san"] == ["host.docker.internal", "10.77.0.5", "box.lan"]
    assert (new["node-ip"], new["flannel-iface"], new["node-name"]) == ("10.77.0.5", "wlan0", "box")
    # YAML 1.1 reads an unquoted 0644 as the integer 420.
    assert new["write-kubeconfig-mode"] == "0644"


def test_extra_config_may_not_set_a_managed_key():
    with pytest.raises(ConfigError, match="k3s_extra_config must not set node-ip"):
        role_settings("10.0.0.2", "eth0", extra={"node-ip": "10.0.0.3"})


def test_render_refuses_settings_without_node_ip():
    with pytest.raises(ConfigError, match="node-ip is required"):
        render_config(settings_from_text("flannel-iface: eth0\n"))


def test_first_node_ip_accepts_scalar_dual_stack_and_list():
    assert first_node_ip("10.0.0.2") == "10.0.0.2"
    assert first_node_ip("fd00::2,10.0.0.2") == "10.0.0.2"
    assert first_node_ip(["10.0.0.3", "fd00::3"]) == "10.0.0.3"
    assert first_node_ip(None) is None


@pytest.mark.parametrize("has_yaml", [True, False])
def test_config_and_dropins_merge_as_k3s_merges_them(monkeypatch, tmp_path, has_yaml):
    monkeypatch.setattr(k3s_config, "HAS_YAML", has_yaml)
    config = tmp_path / "config.yaml"
    config.write_text(
        "# managed\nnode-ip: 172.17.0.3\nflannel-iface: 'eth0'\ntls-san:\n  - host.docker.internal\n"
        'disable: [traefik]\nwrite-kubeconfig-mode: "0644"\n'
    )
    dropins = tmp_path / "config.yaml.d"
    dropins.mkdir()
    (dropins / "50-vpn.yaml").write_text("node-ip: 10.77.0.5\n")
    merged, sources, errors = read_config(str(config))
    assert errors == []
    assert merged["node-ip"] == "10.77.0.5"
    assert sources["node-ip"] == str(dropins / "50-vpn.yaml")
    assert merged["flannel-iface"] == "eth0"
    assert merged["tls-san"] == ["host.docker.internal"]
    assert merged["disable"] == ["traefik"]
