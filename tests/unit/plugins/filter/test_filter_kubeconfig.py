"""Filter point_kubeconfig_at (plugins/filter/kubeconfig.py): the recovery's rewrite of a
kubeconfig's loopback server, for the k3s role; by FQCN in a real ansible-playbook run with its docs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.filter.kubeconfig import FilterModule, point_kubeconfig_at
from ansible_collections.integr8scode.provision.plugins.module_utils.kube import kubeconfig as kc

ROOT = Path(__file__).resolve().parents[4]
ADMIN = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\n"


def test_registered_under_its_name():
    assert FilterModule().filters() == {"point_kubeconfig_at": point_kubeconfig_at}


def test_is_the_recoverys_rewrite():
    assert point_kubeconfig_at(ADMIN, "10.77.0.5") == kc.point_kubeconfig_at(ADMIN, "10.77.0.5")
    assert "server: https://10.77.0.5:6443" in point_kubeconfig_at(ADMIN, "10.77.0.5")


@pytest.mark.parametrize(
    ("text", "address", "fragment"),
    [
        (None, "10.77.0.5", "input must be a kubeconfig's text"),
        ({"clusters": []}, "10.77.0.5", "input must be a kubeconfig's text"),
        (ADMIN, "", "address must be a host address"),
        (ADMIN, None, "address must be a host address"),
        (ADMIN, " 10.77.0.5", "address must be a host address"),
    ],
)
def test_refuses_what_is_not_text_and_an_address(text, address, fragment):
    with pytest.raises(AnsibleFilterError, match=fragment):
        point_kubeconfig_at(text, address)


def ansible_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def test_by_fqcn_in_a_playbook_as_the_k3s_role_calls_it(tmp_path):
    """slurp's content, decoded, through the filter: the same text as the k3s role's former
    regex_replace."""
    playbook = tmp_path / "filter.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - name: Point a kubeconfig at the node IP
              hosts: localhost
              gather_facts: false
              vars:
                node_ip: 10.77.0.5
                content: "{{ admin | b64encode }}"
              tasks:
                - name: Print the filter's output and the former regex_replace's
                  ansible.builtin.debug:
                    msg:
                      filter: "{{ content | b64decode | integr8scode.provision.point_kubeconfig_at(node_ip) }}"
                      former: >-
                        {{ content | b64decode
                           | regex_replace('(?m)^(\\s*server:\\s*https://)(127\\.0\\.0\\.1|localhost|\\[::1\\])(:\\d+)',
                                           '\\g<1>' ~ node_ip ~ '\\g<3>') }}
            """
        )
    )
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
        + ["-e", json.dumps({"admin": ADMIN}), str(playbook)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    msg = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg["filter"] == ADMIN.replace("127.0.0.1", "10.77.0.5")
    assert msg["filter"] == msg["former"]


def test_has_documentation():
    run = subprocess.run(
        ["ansible-doc", "-t", "filter", "--json", "integr8scode.provision.point_kubeconfig_at"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ansible_env(),
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)["integr8scode.provision.point_kubeconfig_at"]
    assert doc["doc"]["name"] == "point_kubeconfig_at"
    assert doc["doc"]["positional"] == "address"
    assert doc["examples"].strip() and "_value" in doc["return"]
