"""host_files through its real entry point, on real files (the tests run as root, as the module does)."""

import os
import stat

import pytest


def entry(path, **kwargs):
    kwargs.setdefault("mode", "0644")
    return dict(path=str(path), **kwargs)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def _root():
    if os.geteuid() != 0:
        pytest.skip("host_files sets owners: run as root (CI does)")


def test_writes_then_changes_nothing(run_module, tmp_path):
    target = tmp_path / "a.conf"
    files = [entry(tmp_path / "d", state="directory", mode="0750"), entry(target, content="x=1\n", mode="0600")]
    first = run_module("host_files", {"files": files, "_ansible_diff": True})
    assert first["changed"], first
    assert first["changed_paths"] == [str(tmp_path / "d"), str(target)]
    assert [f["reasons"] for f in first["files"]] == [["missing"], ["missing"]]
    assert target.read_text() == "x=1\n" and mode_of(target) == 0o600 and mode_of(tmp_path / "d") == 0o750
    assert first["diff"] == [dict(before_header=str(target), after_header=str(target), before="", after="x=1\n")]
    second = run_module("host_files", {"files": files})
    assert not second["changed"] and second["changed_paths"] == [], second


def test_reports_each_difference(run_module, tmp_path):
    target = tmp_path / "a.conf"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    result = run_module("host_files", {"files": [entry(target, content="new\n", mode="0600")]})
    assert result["files"][0]["reasons"] == ["content", "mode 0640 -> 0600"]
    assert target.read_text() == "new\n" and mode_of(target) == 0o600


def test_check_mode_writes_nothing_and_accepts_owners_not_made_yet(run_module, tmp_path):
    target = tmp_path / "sub" / "a.conf"
    files = [entry(target, content="x\n", owner="i8c-no-such-user", group="i8c-no-such-group")]
    result = run_module("host_files", {"files": files}, check_mode=True)
    assert result["changed"] and result["changed_paths"] == [str(target)], result
    assert not target.parent.exists()
    real = run_module("host_files", {"files": files})
    assert real.get("failed") and "user i8c-no-such-user and group i8c-no-such-group does not exist" in real["msg"]
    assert str(target) in real["msg"]


def test_a_file_that_fails_validation_never_replaces_the_previous_one(run_module, tmp_path):
    target = tmp_path / "daemon.json"
    target.write_text("{}\n")
    check = 'python3 -c "import json, sys; json.load(open(sys.argv[1]))" %s'
    result = run_module("host_files", {"files": [entry(target, content="{not json\n", validate=check)]})
    assert result.get("failed") and "failed validation" in result["msg"] and str(target) in result["msg"]
    assert target.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]
    good = run_module("host_files", {"files": [entry(target, content='{"a": 1}\n', validate=check, backup=True)]})
    assert good["changed"] and target.read_text() == '{"a": 1}\n'
    assert open(good["files"][0]["backup_file"]).read() == "{}\n"


def test_absent_removes_files_and_empty_directories_only(run_module, tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("x")
    absent = [entry(tmp_path / name, state="absent") for name in ("f", "empty", "gone")]
    result = run_module("host_files", {"files": absent})
    assert result["changed_paths"] == [str(tmp_path / "f"), str(tmp_path / "empty")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    refused = run_module("host_files", {"files": [entry(tmp_path / "full", state="absent")]})
    assert refused.get("failed") and "non-empty directory" in refused["msg"]
    assert (tmp_path / "full" / "keep").exists()


def test_secret_entries_stay_out_of_the_diff(run_module, tmp_path):
    result = run_module(
        "host_files", {"files": [entry(tmp_path / "s", content="pw=1\n", mode="0600", diff=False)], "_ansible_diff": True}
    )
    assert result["changed"] and "diff" not in result


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(path="relative", content="x"), "path 'relative' is not absolute"),
        (dict(path="/x/a", content="x", mode="rw-r--r--"), "/x/a has mode 'rw-r--r--', not an octal mode"),
        (dict(path="/x/a"), "/x/a has state=file but no content"),
        (dict(path="/x/a", content="x", validate="true"), "/x/a validate command has no %s"),
    ],
)
def test_bad_entries_are_refused_before_anything_changes(run_module, tmp_path, bad, message):
    bad.setdefault("mode", "0644")
    good = entry(tmp_path / "first", content="x")
    result = run_module("host_files", {"files": [good, bad]})
    assert result.get("failed") and message in result["msg"], result
    assert not (tmp_path / "first").exists()
