"""Filter tree_drift (plugins/filter/files.py), called directly with find results and host_facts trees."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.filter.files import FilterModule, file_entries, tree_drift

ROOT = "/src/tree/"


def found(rel, checksum="a" * 40, mode="0644", isdir=False, islnk=False):
    return {"path": "/src/tree/" + rel, "checksum": checksum, "mode": mode, "isdir": isdir, "islnk": islnk}


def held(checksum="a" * 40, mode="0644", owner="app", gid=1000):
    return {"type": "file", "mode": mode, "owner": owner, "gid": gid, "sha1": checksum}


def test_registered_under_its_name():
    assert FilterModule().filters() == {"tree_drift": tree_drift, "file_entries": file_entries}


def test_a_host_copy_equal_in_content_owner_group_and_mode_is_no_drift():
    assert tree_drift([found("a.py"), found("pkg/b.py")], ROOT, {"a.py": held(), "pkg/b.py": held()}, "app", 1000) == []


@pytest.mark.parametrize(
    "host, why",
    [
        ({}, "missing on the host"),
        ({"a.py": held(checksum="b" * 40)}, "other content"),
        ({"a.py": held(owner="root")}, "other owner"),
        ({"a.py": held(gid=0)}, "other group"),
        ({"a.py": held(mode="0600")}, "other mode"),
        ({"a.py": {"type": "dir"}}, "a directory where the file belongs"),
    ],
)
def test_each_difference_is_drift(host, why):
    assert tree_drift([found("a.py")], ROOT, host, "app", "1000") == ["a.py"], why


def test_the_mode_argument_overrides_the_controller_files_mode():
    files = [found("a.py", mode="0755")]
    assert tree_drift(files, ROOT, {"a.py": held(mode="0644", owner="root", gid=0)}, "root", 0, mode="0644") == []
    assert tree_drift(files, ROOT, {"a.py": held(mode="0644", owner="root", gid=0)}, "root", 0) == ["a.py"]


def test_directories_need_a_directory_and_symlinks_always_drift():
    files = [found("d", isdir=True), found("e", isdir=True), found("link", islnk=True)]
    host = {"d": {"type": "dir"}, "e": {}, "link": held()}
    assert tree_drift(files, ROOT, host, "app", 1000) == ["e", "link"]


@pytest.mark.parametrize(
    "files, host, message",
    [
        ("a.py", {}, "input must be the 'files' list"),
        ([found("a.py")], [], "host_tree must be host_facts' 'tree' mapping"),
        ([{"checksum": "x"}], {}, "every file must be a find result with a 'path'"),
    ],
)
def test_bad_input_names_what_is_wrong(files, host, message):
    with pytest.raises(AnsibleFilterError, match=message):
        tree_drift(files, ROOT, host, "app", 1000)


def test_file_entries_build_host_files_entries():
    assert file_entries(["/b/kubectl"], state="link", target="/b/k3s") == [
        {"path": "/b/kubectl", "state": "link", "target": "/b/k3s"}
    ]
    assert file_entries(["/ctl/a.tar.zst"], key="src", into="/d/images/", mode="0644") == [
        {"src": "/ctl/a.tar.zst", "path": "/d/images/a.tar.zst", "mode": "0644"}
    ]
    with pytest.raises(AnsibleFilterError, match="file_entries input must be a list, got str"):
        file_entries("/b/kubectl")
