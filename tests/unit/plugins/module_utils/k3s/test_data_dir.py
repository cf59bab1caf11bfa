"""k3s's data directory has one source of truth (config.py ``effective_data_dir``): config.yaml's
``data-dir`` with its drop-ins as k3s merges them (the k3s role writes k3s_data_dir there when it is
not the default), else /var/lib/rancher/k3s; k3s_recover_data_dir overrides it only when set. The
drift check, the recovery (k3s_rebuild), its validation and the watcher's scheduled backup all
follow it; none keeps a default of its own (issue 27 item 8: with a custom data dir the recovery
inspected, backed up and wiped the default one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.host import LocalRunner  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (  # noqa: E402
    DEFAULT_DATA_DIR,
    effective_data_dir,
    render_config,
    role_settings,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import detect  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (  # noqa: E402
    ARGUMENT_SPEC,
    Rebuild,
    validate,
    with_defaults,
)

ROLE = ROOT / "roles" / "k3s_recover"


def config_file(tmp_path, text, dropins=None):
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "config.yaml").write_text(text)
    for name, body in (dropins or {}).items():
        (etc / "config.yaml.d").mkdir(exist_ok=True)
        (etc / "config.yaml.d" / name).write_text(body)
    return str(etc / "config.yaml")


def test_without_a_config_file_it_is_k3s_default(tmp_path):
    assert effective_data_dir(str(tmp_path / "absent.yaml")) == DEFAULT_DATA_DIR == "/var/lib/rancher/k3s"


def test_config_yaml_without_data_dir_is_k3s_default(tmp_path):
    assert effective_data_dir(config_file(tmp_path, "node-ip: 10.0.0.5\n")) == DEFAULT_DATA_DIR


@pytest.mark.parametrize("override", [None, ""])
def test_config_yaml_data_dir_is_followed_when_nothing_overrides_it(tmp_path, override):
    path = config_file(tmp_path, "node-ip: 10.0.0.5\ndata-dir: /srv/k3s-data/\n")
    assert effective_data_dir(path, override) == "/srv/k3s-data"


def test_a_drop_in_wins_as_k3s_merges_them(tmp_path):
    path = config_file(tmp_path, "data-dir: /srv/a\n", {"50-data.yaml": "data-dir: /srv/b\n"})
    assert effective_data_dir(path) == "/srv/b"


def test_an_explicit_override_wins_and_already_read_settings_are_used(tmp_path):
    path = config_file(tmp_path, "data-dir: /srv/a\n")
    assert effective_data_dir(path, "/data/k3s") == "/data/k3s"
    assert effective_data_dir(path, None, {"data-dir": "/srv/c"}) == "/srv/c"


@pytest.mark.parametrize("data_dir", ["/srv/k3s-data", DEFAULT_DATA_DIR])
def test_the_k3s_roles_value_reaches_the_file_and_is_read_back(tmp_path, data_dir):
    """k3s_data_dir: render_config writes data-dir only when it is not the default."""
    text = render_config(role_settings("10.0.0.5", "eth0", data_dir=data_dir))
    assert ("data-dir:" in text) == (data_dir != DEFAULT_DATA_DIR)
    assert effective_data_dir(config_file(tmp_path, text)) == data_dir


class Runner:
    """A host with one LAN address and nothing else: no systemctl, no k3s binary."""

    @staticmethod
    def get_bin_path(name, required=False):
        return "/usr/sbin/ip" if name == "ip" else None

    @staticmethod
    def run_command(argv, cwd=None):
        if argv[:4] == ["ip", "-d", "-j", "addr"]:
            return 0, json.dumps([{"ifname": "eth0", "addr_info": [
                {"family": "inet", "local": "10.0.0.5", "prefixlen": 24, "scope": "global"}]}]), ""  # fmt: skip
        return 0, "[]", ""

    @staticmethod
    def warn(message):
        pass


def custom_host(tmp_path, k3s_files):
    """k3s_files' tree as k3s's data dir, named only by config.yaml's data-dir."""
    src, _conn = k3s_files
    return config_file(tmp_path, f"node-ip: 10.0.0.5\nflannel-iface: eth0\ndata-dir: {src}\n"), src


def test_the_drift_check_inspects_config_yamls_data_dir(tmp_path, k3s_files):
    path, src = custom_host(tmp_path, k3s_files)
    params = dict(config_file=path, data_dir="", service="k3s", node_name="n", node_ip=None, node_interface=None,
                  flannel_iface=None, kubeconfigs=[], hung_start_after=300.0)  # fmt: skip
    result = detect(Runner, params)[0]
    assert result["data_dir"] == str(src) and result["datastore"] == "sqlite" and result["installed"]
    assert result["node_ip"]["recorded_datastore"] == [] and result["refused"] == []


def test_an_override_the_file_contradicts_is_refused(tmp_path, k3s_files):
    path, src = custom_host(tmp_path, k3s_files)
    params = dict(config_file=path, data_dir=DEFAULT_DATA_DIR, service="k3s", node_name="n", node_ip=None,
                  node_interface=None, flannel_iface=None, kubeconfigs=[], hung_start_after=300.0)  # fmt: skip
    refused = " ".join(detect(Runner, params)[0]["refused"])
    assert f"k3s's data-dir is {src} (in {path}) but the recovery is set to {DEFAULT_DATA_DIR}" in refused


def test_the_recovery_has_no_default_of_its_own_and_follows_the_file(tmp_path, k3s_files):
    path, src = custom_host(tmp_path, k3s_files)
    assert ARGUMENT_SPEC["data_dir"].get("default") is None
    job = Rebuild(with_defaults(state="verified", backup_dir=str(tmp_path / "b"), config_file=path, run_id="t"),
                  LocalRunner)  # fmt: skip
    assert (job.p["data_dir"], job.db_dir, job.tls_dir) == (str(src), f"{src}/server/db", f"{src}/server/tls")


def test_the_recoverys_validation_guards_the_custom_data_dir(tmp_path, k3s_files):
    path, src = custom_host(tmp_path, k3s_files)
    params = with_defaults(state="rebuilt", node_ip="10.0.0.5", backup_dir=f"{src}/server/backups", config_file=path,
                           run_id="t")  # fmt: skip
    assert f"backup_dir {src}/server/backups must be outside {src}/server, which a wipe deletes" in validate(params)


def test_the_scheduled_backup_copies_the_custom_data_dir(tmp_path, k3s_files, capsys):
    path, src = custom_host(tmp_path, k3s_files)
    settings = dict(config_file=path, data_dir="", binary="/usr/local/bin/k3s", admin_kubeconfig=str(src / "k3s.yaml"),
                    backup_root=str(tmp_path / "backups"), pv_paths=[], keep_backups=5,
                    lock_path=str(tmp_path / "recover.lock"))  # fmt: skip
    assert watch.backup(settings, LocalRunner, lock_wait=1.0) == 0, capsys.readouterr().out
    (folder,) = (tmp_path / "backups").iterdir()
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert f"files{src}/server/token" in files and f"files{src}/server/db/state.db" in files


def test_the_role_follows_config_yaml_unless_set():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    assert defaults["k3s_recover_data_dir"] == ""
    assert spec["argument_specs"]["main"]["options"]["k3s_recover_data_dir"]["default"] == ""
