"""Filters failed_checks and credential_mode_problem (plugins/filter/checks.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.filter.checks import (
    FilterModule,
    checksum_mismatch,
    credential_mode_problem,
    failed_checks,
)


def test_registered_under_their_names():
    assert FilterModule().filters() == {
        "failed_checks": failed_checks,
        "credential_mode_problem": credential_mode_problem,
        "checksum_mismatch": checksum_mismatch,
    }


def test_only_failing_rules_give_lines_in_order():
    rules = [
        {"var": "a", "value": "x", "ok": True, "expect": "fine"},
        {"var": "b", "value": "0777", "ok": False, "expect": "a private mode"},
        {"var": "c", "value": ["p", 1], "ok": False, "expect": "a list of names"},
        {"var": "d", "ok": False, "expect": "set when e is true"},
    ]
    assert failed_checks(rules) == [
        "b = '0777': a private mode",
        'c = ["p", 1]: a list of names',
        "d: set when e is true",
    ]


def test_all_valid_gives_no_lines():
    assert failed_checks([{"var": "a", "value": 1, "ok": True, "expect": "x"}]) == []


def test_a_secret_value_is_never_printed():
    lines = failed_checks([{"var": "pw", "value": "hunter2", "ok": False, "expect": "12 characters", "secret": True}])
    assert lines == ["pw: 12 characters"]


@pytest.mark.parametrize(
    "rules",
    [
        "not a list",
        [{"var": "a", "ok": False}],
        [["a", False, "x"]],
        [{"var": "a", "ok": "False", "expect": "x"}],
    ],
    ids=["string", "missing-expect", "not-a-mapping", "ok-not-bool"],
)
def test_malformed_rules_fail_the_template(rules):
    with pytest.raises(AnsibleFilterError):
        failed_checks(rules)


@pytest.mark.parametrize(
    "mode, problem",
    [
        ("0600", ""),
        ("600", ""),
        ("0640", ""),
        ("0400", ""),
        ("0644", "world-readable"),
        ("0660", "group-writable"),
        ("0602", "world-writable"),
        ("0777", "group-writable, world-writable, world-readable"),
        ("rw-r--r--", "not an octal mode string such as '0600' (quote it in YAML)"),
        (420, "not an octal mode string such as '0600' (quote it in YAML)"),
    ],
)
def test_credential_modes(mode, problem):
    assert credential_mode_problem(mode) == problem


def test_a_get_url_checksum_mismatch_names_variable_source_and_both_digests():
    # get_url's own message (ansible-core 2.19 modules/get_url.py)
    result = {"failed": True, "msg": f"The checksum for /tmp/tmpab12 did not match {'A' * 64}; it was {'b' * 64}."}
    assert checksum_mismatch(result, "k3s_sha256", "http://x/k3s", "a" * 64) == (
        f"k3s_sha256: the sha256 checksum of http://x/k3s is {'b' * 64}, expected {'a' * 64}"
    )
    assert checksum_mismatch(result, "v", "u") == f"v: the sha256 checksum of u is {'b' * 64}, expected {'a' * 64}"


def test_other_failures_are_not_checksum_mismatches():
    assert checksum_mismatch({"msg": "Request failed: <urlopen error [Errno 111]>"}, "v", "u") == ""
    assert checksum_mismatch(None, "v", "u") == ""
