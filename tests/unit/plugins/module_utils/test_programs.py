"""module_utils/programs.py: the one launcher of the programs the roles install on the host
(k3s-killall.sh, k3s-uninstall.sh, integr8scode-kubeconfig-refresh, integr8scode-k3s-drift-check).
It reads <settings dir>/<its own name>.json, puts the library on sys.path and runs the entry point;
here with the checkout as the library, as a function and as a program. The installed programs on
a host are run by the k3s, stack and recover-sqlite scenarios."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
LIBRARY = str(ROOT / "collections")
sys.path.insert(0, LIBRARY)

from ansible_collections.integr8scode.provision.plugins.module_utils import programs  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402

LAUNCHER = ROOT / "plugins" / "module_utils" / "programs.py"
# The roles' files that name an entry point ('entry': '<module>:<function>').
ROLE_FILES = ("roles/k3s/tasks/programs.yml", "roles/stack/tasks/refresh.yml", "roles/k3s_recover/tasks/watch.yml")


def install(settings_dir, name, entry, settings, library=LIBRARY):
    path = Path(settings_dir) / (name + ".json")
    path.write_text(json.dumps({"library": library, "entry": entry, "settings": settings}, indent=4) + "\n")
    return path


def test_the_launcher_runs_the_entry_point_with_its_settings(tmp_path, capsys):
    state_dir = tmp_path / "watch"
    install(tmp_path, "integr8scode-k3s-drift-check", "k3s.watch:main", {"state_dir": str(state_dir)})
    argv = ["/usr/local/sbin/integr8scode-k3s-drift-check", "--status"]
    assert programs.launch(argv, str(tmp_path)) == 0
    assert capsys.readouterr().out == f"no check yet ({state_dir})\n"
    assert programs.launch(argv[:1] + ["--hold", "a", "person"], str(tmp_path)) == 0
    assert json.loads((state_dir / "hold.json").read_text())["by"] == "a person"
    assert programs.launch(argv[:1] + ["--release"], str(tmp_path)) == 0
    assert capsys.readouterr().out == "released\n"


def test_a_missing_or_broken_settings_file_is_named_and_exits_2(tmp_path, capsys):
    assert programs.launch(["/usr/local/bin/k3s-killall.sh"], str(tmp_path)) == programs.BROKEN == 2
    assert (
        capsys.readouterr().err
        == "k3s-killall.sh: cannot read %s: No such file or directory " % (tmp_path / "k3s-killall.sh.json")
        + "(installed by integr8scode.provision)\n"
    )
    (tmp_path / "k3s-killall.sh.json").write_text("{not json")
    assert programs.launch(["k3s-killall.sh"], str(tmp_path)) == 2
    assert "k3s-killall.sh.json is not JSON" in capsys.readouterr().err
    for document in ([], {"library": "/x", "entry": "k3s.teardown", "settings": {}}, {"library": "/x", "entry": "a:b"}):
        (tmp_path / "k3s-killall.sh.json").write_text(json.dumps(document))
        assert programs.launch(["k3s-killall.sh"], str(tmp_path)) == 2
        assert "does not hold library, entry (module:function) and settings" in capsys.readouterr().err


def test_run_as_a_program_it_reads_the_settings_named_after_itself(tmp_path):
    """The installed file: the launcher with an interpreter line, under the program's name. Its
    settings directory is the host's; a name nobody installs shows what it looked for."""
    program = tmp_path / "i8c-unit-test-no-such-program"
    program.write_text(f"#!{sys.executable}\n" + LAUNCHER.read_text())
    program.chmod(0o755)
    run = subprocess.run([str(program), "--status"], capture_output=True, text=True, check=False)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(
        "i8c-unit-test-no-such-program: cannot read /etc/integr8scode-provision/i8c-unit-test-no-such-program.json"
    )


def test_the_settings_directory_is_the_one_the_role_writes_into():
    """SETTINGS_DIR is written twice, here and in role host_library (the launcher cannot import
    the library before it has read where it is): this keeps them equal."""
    role_vars = yaml.safe_load((ROOT / "roles/host_library/vars/main.yml").read_text())
    assert role_vars["host_library__settings_dir"] == programs.SETTINGS_DIR == "/etc/integr8scode-provision"
    install_tasks = (ROOT / "roles/host_library/tasks/main.yml").read_text()
    assert "host_library__src ~ '/programs.py'" in install_tasks
    assert "'#!/usr/bin/python3\\n' ~ lookup('ansible.builtin.file'" in install_tasks


def test_the_library_dir_is_written_once():
    """host_library's default is the one place of /usr/local/lib/integr8scode-provision (its
    argument spec documents it); the roles that install programs read it from the fact
    host_library_installed."""
    hits = []
    for path in sorted((ROOT / "roles").rglob("*")):
        if not path.is_file() or path.suffix not in (".yml", ".j2") or path.name == "argument_specs.yml":
            continue
        for line in path.read_text().splitlines():
            if "/usr/local/lib/integr8scode-provision" in line and not line.strip().startswith("#"):
                hits.append(str(path.relative_to(ROOT)))
    assert hits == ["roles/host_library/defaults/main.yml"]


@pytest.mark.parametrize("role_file", ROLE_FILES)
def test_the_roles_include_the_library_once_per_run(role_file):
    """Each include of host_library is skipped once its fact is set: one look at the host per run."""
    tasks = yaml.safe_load((ROOT / role_file).read_text())
    includes = [t for t in tasks if (t.get("ansible.builtin.include_role") or {}).get("name", "").endswith("library")]
    assert len(includes) == 1 and includes[0]["when"] == "host_library_installed is not defined", role_file


# Where each role names its programs' entry points (the k3s role's teardown programs are entries of
# its one host_files call, built in its vars).
ENTRY_FILES = ("roles/k3s/vars/main.yml", "roles/stack/tasks/refresh.yml", "roles/k3s_recover/tasks/watch.yml")


@pytest.mark.parametrize("role_file", ENTRY_FILES)
def test_every_entry_point_the_roles_name_exists(role_file):
    entries = re.findall(r"'entry': '([^']+)'", (ROOT / role_file).read_text())
    assert entries, role_file
    for entry in entries:
        module, function = entry.split(":")
        imported = __import__(f"{programs.PACKAGE}.{module}", fromlist=[function])
        assert callable(getattr(imported, function)), entry


def test_installed_settings_read_the_watchers_settings_file(tmp_path):
    program = tmp_path / "integr8scode-k3s-drift-check"
    assert watch.installed_settings(str(program), str(tmp_path)) is None
    program.write_text("launcher")
    with pytest.raises(ValueError, match="cannot read"):
        watch.installed_settings(str(program), str(tmp_path))
    install(tmp_path, program.name, "k3s.watch:main", {"mode": "recover", "state_dir": "/s"})
    assert watch.installed_settings(str(program), str(tmp_path)) == {"mode": "recover", "state_dir": "/s"}


def test_settings_path_is_named_after_the_program():
    assert programs.settings_path("/usr/local/bin/k3s-killall.sh") == "/etc/integr8scode-provision/k3s-killall.sh.json"
    assert programs.settings_path("x", "/tmp/d") == os.path.join("/tmp/d", "x.json")
