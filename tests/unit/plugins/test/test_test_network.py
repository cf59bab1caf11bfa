"""Jinja tests ipv4_address and ipv4_cidr (plugins/test/network.py): unit cases, and by FQCN in a
real ansible-playbook run with their docs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible_collections.integr8scode.provision.plugins.test import network
from ansible_collections.integr8scode.provision.plugins.test.network import ipv4_address, ipv4_cidr

ROOT = Path(__file__).resolve().parents[4]

ADDRESSES = ["0.0.0.0", "10.77.0.5", "192.168.1.20", "255.255.255.255", "100.64.0.1", "127.0.0.1", "1.2.3.4"]
NOT_ADDRESSES = [
    "",
    "10.77.0",
    "10.77.0.5.6",
    "256.1.1.1",
    "1.2.3.256",
    "999.1.1.1",
    "010.77.0.5",  # leading zero: octal to inet_aton, decimal to Python
    "10.77.00.5",
    "10.77.0.05",
    "00.1.1.1",
    " 10.77.0.5",
    "10.77.0.5 ",
    "10.77.0.5\n",  # `$` in a regex would let this through
    "10.77.0.5/24",
    "::1",
    "fe80::1",
    "::ffff:10.77.0.5",
    "10.77.0.+5",
    "10.77.0.-5",
    "١٠.77.0.5",  # Arabic-Indic digits: int() reads them, an address may not hold them
    "a.b.c.d",
    "10..0.5",
    ".10.77.0",
]
NOT_STRINGS = [None, 167772165, 10.5, True, ["10.77.0.5"], {"address": "10.77.0.5"}, b"10.77.0.5"]


def test_registered_under_their_names():
    # Imported through its module: pytest would collect a TestModule class as tests.
    assert network.TestModule().tests() == {"ipv4_address": ipv4_address, "ipv4_cidr": ipv4_cidr}


@pytest.mark.parametrize("value", ADDRESSES)
def test_addresses(value):
    assert ipv4_address(value) is True


@pytest.mark.parametrize("value", NOT_ADDRESSES + NOT_STRINGS)
def test_not_addresses(value):
    assert ipv4_address(value) is False


@pytest.mark.parametrize(
    "value", ["10.42.0.0/16", "10.42.7.9/16", "0.0.0.0/0", "192.168.1.20/32", "10.0.0.0/8", "172.16.0.0/12"]
)
def test_cidrs(value):
    assert ipv4_cidr(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "10.42.0.0",
        "10.42.0.0/",
        "/16",
        "10.42.0.0/33",
        "10.42.0.0/99",
        "10.42.0.0/-1",
        "10.42.0.0/016",
        "10.42.0.0/00",
        "10.42.0.0/1 6",
        "10.42.0.0/16/8",
        "10.42.0.0/16\n",
        "010.42.0.0/16",
        "256.42.0.0/16",
        "10.42.0.0/255.255.0.0",
        "10.42.0.0/١٦",
        "fd00::/8",
        "10.42.0.0 /16",
    ]
    + NOT_STRINGS,
)
def test_not_cidrs(value):
    assert ipv4_cidr(value) is False


def test_every_prefix_from_0_to_32():
    assert [p for p in range(0, 40) if ipv4_cidr(f"10.0.0.0/{p}")] == list(range(0, 33))


def test_each_octet_from_0_to_255_and_no_further():
    accepted = [n for n in range(0, 300) if ipv4_address(f"10.{n}.0.1")]
    assert accepted == list(range(0, 256))
    assert not any(ipv4_address(f"10.0{n}.0.1") for n in range(0, 100))


def ansible_env() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def test_tests_by_fqcn_in_a_playbook(tmp_path):
    playbook = tmp_path / "tests.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - name: Call each test by its FQCN
              hosts: localhost
              gather_facts: false
              vars:
                values: ['10.77.0.5', '010.77.0.5', '10.42.0.0/16', '10.42.0.0/33', '', 42]
              tasks:
                - name: Print what the tests say
                  ansible.builtin.debug:
                    msg:
                      addresses: "{{ values | select('integr8scode.provision.ipv4_address') | list }}"
                      cidrs: "{{ values | select('integr8scode.provision.ipv4_cidr') | list }}"
                      is_address: "{{ '10.77.0.5' is integr8scode.provision.ipv4_address }}"
                      is_not_cidr: "{{ '10.77.0.5' is not integr8scode.provision.ipv4_cidr }}"
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
        "addresses": ["10.77.0.5"],
        "cidrs": ["10.42.0.0/16"],
        "is_address": True,
        "is_not_cidr": True,
    }


def test_every_test_has_documentation():
    names = ["integr8scode.provision.ipv4_address", "integr8scode.provision.ipv4_cidr"]
    run = subprocess.run(
        ["ansible-doc", "-t", "test", "--json"] + names,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ansible_env(),
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    docs = json.loads(run.stdout)
    assert sorted(docs) == names
    for name, doc in docs.items():
        assert doc["doc"]["name"] == name.rsplit(".", 1)[1]
        assert doc["examples"].strip(), name
        assert "_value" in doc["return"], name
