"""host_files through its real entry point, on real files (the tests run as root, as the module does)."""

import json
import os
import stat
import subprocess
import sys

import pytest
from conftest import COLLECTIONS


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
    files = [entry(tmp_path / "s", content="pw=1\n", mode="0600", diff=False)]
    result = run_module("host_files", {"files": files, "_ansible_diff": True})
    assert result["changed"] and "diff" not in result


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(path="relative", content="x"), "path 'relative' is not absolute"),
        (dict(path="/x/a", content="x", mode="rw-r--r--"), "/x/a has mode 'rw-r--r--', not an octal mode"),
        (dict(path="/x/a"), "/x/a has state=file and needs exactly one of content, secret_content, src and remote_src"),
        (dict(path="/x/a", content="x", validate="true"), "/x/a validate command has no %s"),
    ],
)
def test_bad_entries_are_refused_before_anything_changes(run_module, tmp_path, bad, message):
    bad.setdefault("mode", "0644")
    good = entry(tmp_path / "first", content="x")
    result = run_module("host_files", {"files": [good, bad]})
    assert result.get("failed") and message in result["msg"], result
    assert not (tmp_path / "first").exists()


def _play(tmp_path, files, *args):
    """Run one host_files task through ansible-playbook (its action plugin) on this machine."""
    playbook = tmp_path / "play.yml"
    task = {"integr8scode.provision.host_files": {"files": files}, "register": "out"}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task, {"ansible.builtin.debug": {"var": "out"}}]}]
    playbook.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=" + sys.executable,
            str(playbook),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    return tasks[0]["hosts"]["localhost"]


def test_a_controller_file_is_transferred_only_when_it_differs(tmp_path):
    source = tmp_path / "plugin.bin"
    source.write_bytes(bytes(range(256)) * 4096)
    dest = tmp_path / "dest" / "docker-compose"
    dest.parent.mkdir()
    files = [dict(path=str(dest), src=str(source), mode="0755")]
    checked = _play(tmp_path, files, "--check")
    assert checked["changed"] and not dest.exists(), checked
    first = _play(tmp_path, files)
    assert first["changed"] and first["files"][0]["reasons"] == ["missing"], first
    # Content written by the first execution and a transfer in the second, two files of one
    # basename: both reported, both written.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mixed = [
        dict(path=str(tmp_path / "a" / "__init__.py"), content="# a\n", mode="0644"),
        dict(path=str(tmp_path / "b" / "__init__.py"), src=str(source), mode="0644"),
        dict(path=str(tmp_path / "c" / "__init__.py"), src=str(source), mode="0644"),
    ]
    (tmp_path / "c").mkdir()
    both = _play(tmp_path, mixed)
    assert both["changed_paths"] == [entry["path"] for entry in mixed], both
    assert [f["reasons"] for f in both["files"]] == [["missing"]] * 3
    assert (tmp_path / "a" / "__init__.py").read_text() == "# a\n"
    assert (tmp_path / "c" / "__init__.py").read_bytes() == source.read_bytes()
    assert dest.read_bytes() == source.read_bytes() and mode_of(dest) == 0o755
    second = _play(tmp_path, files)
    assert not second["changed"] and second["needs_src"] == [], second
    os.chmod(dest, 0o700)
    meta = _play(tmp_path, files)
    assert meta["files"][0]["reasons"] == ["mode 0700 -> 0755"] and mode_of(dest) == 0o755
    source.write_bytes(b"new")
    third = _play(tmp_path, files)
    assert third["files"][0]["reasons"] == ["content"] and dest.read_bytes() == b"new", third


def test_links_secret_content_and_remote_src(run_module, tmp_path):
    (tmp_path / "k3s-v1").write_text("binary")
    (tmp_path / "k3s").write_text("a plain file the installer left")
    (tmp_path / "admin.yaml").write_text("token: admin-secret\n")
    files = [
        dict(path=str(tmp_path / "k3s"), state="link", target=str(tmp_path / "k3s-v1")),
        dict(path=str(tmp_path / "env"), secret_content="K3S_TOKEN=hunter2\n", mode="0600"),
        dict(path=str(tmp_path / "config"), remote_src=str(tmp_path / "admin.yaml"), mode="0600"),
        dict(path=str(tmp_path / "unit"), content="[Unit]\n", mode="0644"),
    ]
    first = run_module("host_files", {"files": files, "_ansible_diff": True})
    assert first["changed_paths"] == [f["path"] for f in files], first
    assert os.readlink(tmp_path / "k3s") == str(tmp_path / "k3s-v1")
    assert (tmp_path / "env").read_text() == "K3S_TOKEN=hunter2\n"
    assert (tmp_path / "config").read_text() == "token: admin-secret\n"
    assert [d["before_header"] for d in first["diff"]] == [str(tmp_path / "unit")]
    assert "hunter2" not in str(first) and "admin-secret" not in str(first)
    assert not run_module("host_files", {"files": files})["changed"]
    (tmp_path / "admin.yaml").write_text("token: rotated\n")
    assert run_module("host_files", {"files": files})["changed_paths"] == [str(tmp_path / "config")]
    gone = run_module("host_files", {"files": [dict(path=str(tmp_path / "k3s"), state="absent")]})
    assert gone["changed"] and not os.path.lexists(tmp_path / "k3s")


def test_a_missing_remote_src_is_a_change_in_check_mode_and_an_error_otherwise(run_module, tmp_path):
    files = [dict(path=str(tmp_path / "config"), remote_src=str(tmp_path / "k3s.yaml"), mode="0600", group="0")]
    checked = run_module("host_files", {"files": files}, check_mode=True)
    assert checked["changed"] and checked["files"][0]["reasons"] == [f"remote_src {tmp_path}/k3s.yaml missing"]
    real = run_module("host_files", {"files": files})
    assert real.get("failed") and f"cannot read remote_src {tmp_path}/k3s.yaml" in real["msg"], real


def test_an_optional_remote_src_that_is_missing_waits(run_module, tmp_path):
    files = [
        dict(
            path=str(tmp_path / "config"), remote_src=str(tmp_path / "k3s.yaml"), mode="0600", remote_src_optional=True
        )
    ]
    result = run_module("host_files", {"files": files})
    assert not result["changed"] and result["waiting"] == [str(tmp_path / "config")], result
    assert not (tmp_path / "config").exists()
    (tmp_path / "k3s.yaml").write_text("apiVersion: v1\n")
    written = run_module("host_files", {"files": files})
    assert written["changed_paths"] == [str(tmp_path / "config")] and written["waiting"] == []
