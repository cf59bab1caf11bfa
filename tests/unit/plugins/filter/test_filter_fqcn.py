"""The filters resolve by FQCN (integr8scode.provision.<name>) in a real ansible-playbook run, with their docs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
FILTERS = [
    "cidr_overlaps",
    "cidr_networks",
    "cidr_within",
    "route_overlaps",
    "compose_oneshots",
    "compose_drift",
    "mask_secrets",
]


def ansible_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def test_filters_by_fqcn_in_a_playbook(tmp_path):
    playbook = tmp_path / "filters.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - name: Call each filter by its FQCN
              hosts: localhost
              gather_facts: false
              vars:
                routes: >-
                  [{"dst": "default", "dev": "nordlynx", "table": "205"}, {"dst": "10.0.0.0/10", "dev": "nordlynx"}]
                config: {services: {web: {depends_on: {init: {condition: service_completed_successfully}}}}}
              tasks:
                - name: Print what the filters return
                  ansible.builtin.debug:
                    msg:
                      cidr: "{{ ['10.0.0.0/8'] | integr8scode.provision.cidr_overlaps(['10.42.0.0/16']) }}"
                      networks: "{{ ['192.168.1.20/24'] | integr8scode.provision.cidr_networks }}"
                      within: >-
                        {{ ['10.0.0.0/7'] | integr8scode.provision.cidr_within(['10.0.0.0/8'], address_only=true) }}
                      routes: >-
                        {{ routes | from_json | integr8scode.provision.route_overlaps(['10.42.0.0/16'], 'nordlynx') }}
                      oneshots: "{{ config | integr8scode.provision.compose_oneshots }}"
                      drift: "{{ [] | integr8scode.provision.compose_drift({'web': 'h'}, ['init'], pulled=true) }}"
                      masked: "{{ 'pw=abc123' | integr8scode.provision.mask_secrets(['abc123', '']) }}"
            """
        )
    )
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
        + [str(playbook)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    msg = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg == {
        "cidr": [["10.0.0.0/8", "10.42.0.0/16"]],
        "networks": ["192.168.1.0/24"],
        "within": ["10.0.0.0/7"],
        "routes": ["10.0.0.0/10 dev nordlynx overlaps 10.42.0.0/16"],
        "oneshots": ["init"],
        "drift": ["web: no container", "images pulled"],
        "masked": "pw=********",
    }


def test_every_filter_has_documentation():
    run = subprocess.run(
        ["ansible-doc", "-t", "filter", "--json"] + ["integr8scode.provision." + name for name in FILTERS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ansible_env(),
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    docs = json.loads(run.stdout)
    assert sorted(docs) == sorted("integr8scode.provision." + name for name in FILTERS)
    for name, doc in docs.items():
        assert doc["doc"]["name"] == name.rsplit(".", 1)[1]
        assert doc["examples"].strip(), name
        assert "_value" in doc["return"], name
