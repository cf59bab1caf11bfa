"""tests/ci/skiplist.py: with I8C_SKIP_LIST set, a skip (or xfail) no entry allows fails the
session; listed ones pass and are summed up; without it, nothing is checked. Each case runs an
inner pytest session (pytester) with the plugin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("skiplist", ROOT / "tests/ci/skiplist.py")
skiplist = importlib.util.module_from_spec(spec)
spec.loader.exec_module(skiplist)

TESTS = """
import pytest

def test_passes():
    pass

def test_no_docker():
    pytest.skip("needs a Docker engine")

@pytest.mark.skipif(True, reason="not on this datastore")
def test_marked():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    pytest.skip(f"param {n}")
"""


@pytest.fixture
def inner(pytester, monkeypatch):
    """Runs the inner session with the plugin and the given list (None: I8C_SKIP_LIST unset)."""
    monkeypatch.delenv("MOLECULE_SCENARIO_NAME", raising=False)
    monkeypatch.delenv(skiplist.ENV, raising=False)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # testinfra, hypothesis: seconds a run

    def run(entries, *args, tests=TESTS):
        pytester.makepyfile(test_mod=tests)
        if entries is not None:
            pytester.makefile(".yml", skips=yaml.safe_dump(entries, sort_keys=False))
            monkeypatch.setenv(skiplist.ENV, "skips.yml")  # relative: to the invocation directory
        return pytester.runpytest(*args, plugins=[skiplist])

    return run


def entry(nodeid, reason, **extra):
    return {"nodeid": nodeid, "reason": reason, "why": "by design", **extra}


ALL_LISTED = [
    entry("test_mod.py::test_no_docker", "needs a Docker engine"),
    entry("test_mod.py::test_marked", "not on this datastore"),
    {"nodeid": "test_mod.py::test_param", "reason_regex": r"param \d", "why": "by design"},
]


def test_inactive_without_the_environment_variable(inner):
    result = inner(None)
    assert result.ret == 0
    result.assert_outcomes(passed=1, skipped=4)
    assert "skips:" not in result.stdout.str()


def test_every_skip_listed_passes_with_a_summary(inner):
    result = inner(ALL_LISTED)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["skips: 4 listed (1x needs a Docker engine; 1x not on this datastore; 1x param 1; 1x param 2), 0 unlisted"]
    )
    assert "stale entry" not in result.stdout.str()


def test_an_unlisted_skip_fails_the_session_and_is_named(inner):
    result = inner(ALL_LISTED[1:])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=4)  # the tests themselves did not fail
    result.stdout.fnmatch_lines(
        [
            "*skips not on the list skips.yml*",
            "ERROR test_mod.py::test_no_docker - unlisted skip: needs a Docker engine",
            "skips: 3 listed (*), 1 unlisted",
        ]
    )


def test_the_reason_must_match_exactly(inner):
    entries = [entry("test_mod.py::test_no_docker", "needs a Docker"), *ALL_LISTED[1:]]
    result = inner(entries)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR test_mod.py::test_no_docker - unlisted skip: needs a Docker engine"])


def test_a_reason_regex_must_match_the_whole_reason(inner):
    entries = [{**ALL_LISTED[2], "reason_regex": "param"}, *ALL_LISTED[:2]]
    result = inner(entries)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR test_mod.py::test_param[[]1] - unlisted skip: param 1", "*, 2 unlisted"])


def test_node_id_patterns(inner):
    # * spans the file's tests; [ ] are literal: test_param[1] names one parametrized id only.
    entries = [
        entry("test_mod.py::*", "needs a Docker engine"),
        entry("test_mod.py::test_mark?d", "not on this datastore"),
        entry("test_mod.py::test_param[1]", "param 1"),
        entry("test_mod.py::test_param[2]", "param 1"),
    ]
    result = inner(entries)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR test_mod.py::test_param[[]2] - unlisted skip: param 2", "*, 1 unlisted"])
    assert "test_no_docker - unlisted" not in result.stdout.str()
    # The wrong one is stale: its test ran and did not skip with that reason.
    result.stdout.fnmatch_lines(["warning: stale entry in skips.yml: test_mod.py::test_param[[]2]: 1 matching*"])


def test_other_directories_do_not_match(inner, pytester):
    pytester.mkpydir("sub").joinpath("test_mod.py").write_text(TESTS)
    result = inner(ALL_LISTED, "sub")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR sub/test_mod.py::test_no_docker - unlisted skip: needs a Docker engine"])


def test_a_module_skipped_at_collection_counts(inner):
    tests = 'import pytest\npytest.importorskip("no_such_module_i8c")\n\ndef test_x():\n    pass\n'
    result = inner([], tests=tests)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR test_mod.py - unlisted skip: could not import 'no_such_module_i8c'*"])
    listed = inner([{"nodeid": "test_mod.py", "reason_regex": "could not import .*", "why": "x"}], tests=tests)
    assert listed.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # pytest's own status, left as it is
    listed.stdout.fnmatch_lines(["skips: 1 listed (*), 0 unlisted"])


XFAIL = """
import pytest

@pytest.mark.xfail(reason="upstream bug 123")
def test_known_bug():
    assert False

@pytest.mark.xfail(reason="upstream bug 456")
def test_xpass():
    pass
"""


def test_an_xfail_needs_an_entry_with_outcome_xfailed(inner):
    result = inner([entry("test_mod.py::test_known_bug", "upstream bug 123")], tests=XFAIL)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR test_mod.py::test_known_bug - unlisted xfail: upstream bug 123"])
    listed = inner([entry("test_mod.py::test_known_bug", "upstream bug 123", outcome="xfailed")], tests=XFAIL)
    assert listed.ret == 0  # the XPASS passed: it hides nothing and needs no entry
    listed.stdout.fnmatch_lines(["skips: 1 listed (1x upstream bug 123), 0 unlisted"])


def test_an_entry_with_a_scenario_applies_only_in_that_scenario(inner, monkeypatch):
    entries = [entry("test_mod.py::test_no_docker", "needs a Docker engine", scenario="recover-etcd"), *ALL_LISTED[1:]]
    assert inner(entries).ret == 1
    monkeypatch.setenv("MOLECULE_SCENARIO_NAME", "recover-sqlite")
    assert inner(entries).ret == 1
    monkeypatch.setenv("MOLECULE_SCENARIO_NAME", "recover-etcd")
    assert inner(entries).ret == 0


def test_stale_entries_are_warnings_and_a_subset_run_is_quiet(inner):
    entries = [
        *ALL_LISTED,
        entry("test_mod.py::test_passes", "gone"),
        entry("test_mod.py::test_renamed", "gone"),
        entry("test_gone.py::test_x", "gone"),
        entry("elsewhere/test_*.py::test_x", "gone"),
    ]
    result = inner(entries)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "warning: stale entry in skips.yml: test_mod.py::test_passes: 1 matching test(s) ran, none skipped",
            "warning: stale entry in skips.yml: test_mod.py::test_renamed: matches no test of its file",
            "warning: stale entry in skips.yml: test_gone.py::test_x: no such test file",
            "warning: stale entry in skips.yml: elsewhere/test_*.py::test_x: no such test file",
        ]
    )
    subset = inner(ALL_LISTED, "-k", "test_passes")
    assert subset.ret == 0
    assert "stale entry" not in subset.stdout.str()
    subset.stdout.fnmatch_lines(["skips: 0 listed, 0 unlisted"])


def test_a_failing_test_keeps_its_exit_status(inner):
    tests = "import pytest\n\ndef test_fails():\n    assert False\n\ndef test_s():\n    pytest.skip('x')\n"
    result = inner([], tests=tests)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR test_mod.py::test_s - unlisted skip: x"])


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"nodeid": "x"}, "expected a list"),
        ([{"nodeid": "x", "why": "y"}], "needs exactly one of 'reason' and 'reason_regex'"),
        ([{"nodeid": "x", "reason": "r"}], "'why' must be a non-empty string"),
        ([{"nodeid": "x", "reason": "r", "why": "y", "reson": 1}], "unknown keys ['reson']"),
        ([{"nodeid": "x", "reason_regex": "(", "why": "y"}], "reason_regex '('"),
        ([{"nodeid": "x", "reason": "r", "why": "y", "outcome": "failed"}], "outcome must be one of"),
    ],
)
def test_a_malformed_list_is_a_usage_error(inner, entries, message):
    result = inner(entries)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_missing_list_is_a_usage_error(inner, monkeypatch):
    monkeypatch.setenv(skiplist.ENV, "no-such-list.yml")
    result = inner(None)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "I8C_SKIP_LIST=no-such-list.yml: no such file" in result.stderr.str()


def test_the_checked_in_list_names_existing_tests():
    """Every entry of tests/ci/allowed-skips.yml loads and names a test file and function that
    exist (the molecule entries are used only in their scenario's verifier)."""
    entries = skiplist.load(ROOT / "tests/ci/allowed-skips.yml")
    assert entries
    for item in entries:
        assert item.why.strip() and "\n" not in item.why, item.nodeid
        path, _sep, name = item.nodeid.partition("::")
        assert (ROOT / path).is_file(), item.nodeid
        if name and "*" not in name and "?" not in name:
            assert f"def {name.split('[')[0]}(" in (ROOT / path).read_text(), item.nodeid
