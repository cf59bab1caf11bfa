"""Role `nordvpn` on the controller, where no NordVPN client is installed: the skip path in normal
and check mode, the defaults that follow the k3s and docker roles' variables, and input validation.

The client-present paths (LAN discovery, allowlist, routes, connected) run against the client
stand-in in molecule (scenarios nordvpn and vpn).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from roleplay import ansible_playbook, flat_output, write_playbook


@pytest.fixture(scope="module")
def playbook(tmp_path_factory) -> Path:
    return write_playbook(
        tmp_path_factory.mktemp("nordvpn-role"),
        """\
        - name: Role nordvpn, then what its variables resolved to
          hosts: all
          gather_facts: false
          roles:
            - role: integr8scode.provision.nordvpn
          tasks:
            - name: Print the resolved variables
              tags: [always]
              ansible.builtin.debug:
                msg:
                  protected: "{{ nordvpn_protected_cidrs }}"
                  docker: "{{ nordvpn_docker_cidrs }}"
                  node_ip: "{{ nordvpn_node_ip }}"
                  node_interface: "{{ nordvpn_node_interface }}"
        """,
    )


def resolved(playbook: Path, extra: dict) -> dict:
    run = ansible_playbook(
        playbook, "--tags", "nordvpn_validate", "-e", json.dumps(extra), callback="ansible.posix.json"
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tasks = json.loads(run.stdout)["plays"][0]["tasks"]
    return tasks[-1]["hosts"]["localhost"]["msg"]


def test_absent_client_is_skipped_in_normal_and_check_mode(playbook):
    if shutil.which("nordvpn"):
        pytest.skip("this controller has a NordVPN client on PATH")
    for args in ((), ("--check",), ("-e", "nordvpn_lan_discovery=false")):
        run = ansible_playbook(playbook, *args)
        output = " ".join(run.stdout.split())
        assert run.returncode == 0, (args, run.stdout[-3000:], run.stderr[-3000:])
        assert "NordVPN client not found on this host" in output, output[-3000:]
        assert "changed=0" in output and "failed=0" in output, output[-1000:]
        # No template in the skipped tasks (names, loops) may be left undefined.
        assert "template error" not in run.stderr, run.stderr[-3000:]


def test_defaults_follow_k3s_and_docker_defaults(playbook):
    assert resolved(playbook, {}) == {
        "protected": ["10.42.0.0/16", "10.43.0.0/16"],
        "docker": ["172.20.0.0/14"],
        "node_ip": "",
        "node_interface": "",
    }


def test_defaults_follow_the_k3s_and_docker_roles_variables(playbook):
    extra = {
        # Dual-stack values: the IPv6 parts are left out (the allowlist takes IPv4 subnets).
        "k3s_extra_config": {"cluster-cidr": "10.52.0.0/16,fd00:42::/56", "service-cidr": "10.53.0.0/16"},
        "docker_address_pools": [{"base": "192.168.100.0/22", "size": 24}, {"base": "172.30.0.0/16", "size": 24}],
        "k3s_node_ip": "192.168.1.20",
        "k3s_node_interface": "wlp2s0",
    }
    assert resolved(playbook, extra) == {
        "protected": ["10.52.0.0/16", "10.53.0.0/16"],
        "docker": ["192.168.100.0/22", "172.30.0.0/16"],
        "node_ip": "192.168.1.20",
        "node_interface": "wlp2s0",
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"docker_address_pools": [{"base": "172.20.0.0", "size": 24}]},
            'nordvpn_docker_cidrs = ["172.20.0.0"]: IPv4 CIDRs',
        ),
        ({"k3s_extra_config": {"cluster-cidr": "10.52.0.0"}}, 'nordvpn_protected_cidrs = ["10.52.0.0"]: IPv4 CIDRs'),
        (
            {"nordvpn_allowlist_subnets": ["192.168.5.0/24"]},
            'nordvpn_allowlist_subnets = ["192.168.5.0/24"]: no private subnets while nordvpn_lan_discovery is true',
        ),
        (
            {"nordvpn_node_interface": "an-interface-name-too-long"},
            "nordvpn_node_interface = 'an-interface-name-too-long': empty or a network interface name",
        ),
    ],
    ids=["docker-pool", "cluster-cidr", "private-allowlisted", "node-interface"],
)
def test_bad_input_is_named(playbook, extra, expected):
    run = ansible_playbook(playbook, "--tags", "nordvpn_validate", "-e", json.dumps(extra))
    assert run.returncode != 0
    output = flat_output(run)
    assert expected in output, output[-3000:]
