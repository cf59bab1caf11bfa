"""The recovery's last word (module_utils/k3s/rebuild.py ``check_after``, ``release_hold``): the
drift check once more in the rebuild's own process, on what it rebuilt, over a k3s tree with real
certificates and a real kine table and a host runner answering `ip` and `systemctl`; and the end of
a hold the watcher keeps after a rollback."""

from __future__ import annotations

import json

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import detect
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (
    ModuleFailure,
    Rebuild,
    with_defaults,
)
from hostnet import HostRunner, default, nic
from k3s_files import kine_db, kubeconfig, node_json, serving_cert
from waitlib_tls import CA

NEW, OLD = "10.77.0.5", "192.168.1.20"


class Runner(HostRunner):
    def __init__(self):
        super().__init__([nic("eth0", f"{NEW}/24")], [default("eth0", "10.77.0.1")])
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


def k3s_tree(tmp_path, tls_ip=NEW, store_ip=NEW, app_ip=NEW, datastore="sqlite"):
    """What a recovery onto NEW leaves: config.yaml, server/tls, the datastore, k3s.yaml, the
    user's and the app's kubeconfigs; ``*_ip`` put an old address back where the test wants one."""
    etc, data = tmp_path / "etc", tmp_path / "data"
    (data / "server" / "tls").mkdir(parents=True)
    (data / "server" / "db").mkdir(parents=True)
    etc.mkdir()
    config = [f"node-ip: {NEW}", "flannel-iface: eth0"] + (["cluster-init: true"] if datastore == "etcd" else [])
    (etc / "config.yaml").write_text("\n".join(config) + "\n")
    ca = CA("k3s-server-ca@1700000000")
    (data / "server" / "tls" / "server-ca.crt").write_bytes(ca.pem)
    (data / "server" / "tls" / "serving-kube-apiserver.crt").write_bytes(serving_cert(ca, ["127.0.0.1", tls_ip]))
    if datastore == "sqlite":
        kine_db(str(data / "server" / "db" / "state.db"), [("/registry/minions/node1", node_json(store_ip), 0)])
    else:
        (data / "server" / "db" / "etcd").mkdir()
        (data / "server" / "db" / "etcd" / "config").write_text(f"advertise-client-urls: https://{store_ip}:2379\n")
    (etc / "k3s.yaml").write_text(kubeconfig("https://127.0.0.1:6443", ca.pem))
    (tmp_path / "user.yaml").write_text(kubeconfig("https://127.0.0.1:6443", ca.pem))
    (tmp_path / "app.yaml").write_text(kubeconfig(f"https://{app_ip}:6443", ca.pem))
    return with_defaults(
        state="rebuilt", run_id="t", node_ip=NEW, node_name="node1", backup_dir=str(tmp_path / "backup"),
        config_file=str(etc / "config.yaml"), data_dir=str(data), admin_kubeconfig=str(etc / "k3s.yaml"),
        user_kubeconfig=str(tmp_path / "user.yaml"), app_kubeconfig=str(tmp_path / "app.yaml"),
        stack_dir=str(tmp_path), final_check=True, datastore=datastore,
    )  # fmt: skip


def finished(params, runner, reconnected=True, nodes=("node1",)):
    """A Rebuild as it stands once the recovery succeeded (what check_after reads of it)."""
    job = Rebuild(params, runner)
    job.result.update(changed=True, app=dict(reconnected=reconnected), nodes=[dict(name=n, ready=True) for n in nodes])
    return job


def test_a_clean_rebuild_passes_and_reports_the_check(tmp_path):
    job = finished(k3s_tree(tmp_path), Runner())
    job.check_after()
    after = job.result["after"]
    assert after["drift"] is False and after["findings"] == [], after
    assert after["node_ip"]["config"] == NEW and after["node_ip"]["recorded_tls"] == [NEW]
    assert "final_check" in job.result["timings"]


@pytest.mark.parametrize(
    ("where", "check"),
    [({"tls_ip": OLD}, "tls_san"), ({"store_ip": OLD}, "datastore_node_ip"), ({"app_ip": OLD}, "kubeconfig_server")],
)
def test_what_still_drifts_fails_the_run_and_names_it(tmp_path, where, check):
    job = finished(k3s_tree(tmp_path, **where), Runner())
    with pytest.raises(ModuleFailure) as failed:
        job.check_after()
    assert job.result["stage"] == "final_check" and job.result["changed"] is True
    assert [f["check"] for f in job.result["after"]["findings"] if f["severity"] == "drift"] == [check]
    message = str(failed.value)
    assert f"k3s was rebuilt on {NEW} (backup kept at {tmp_path}/backup)" in message
    assert "still finds" in message and OLD in message


def test_the_apps_kubeconfig_counts_only_once_it_was_reconnected(tmp_path):
    """As recover.yml's check did: an app that was not reconnected keeps its old kubeconfig."""
    job = finished(k3s_tree(tmp_path, app_ip=OLD), Runner(), reconnected=False)
    job.check_after()
    assert job.result["after"]["drift"] is False


def test_without_final_check_nothing_is_read(tmp_path):
    params = dict(k3s_tree(tmp_path, tls_ip=OLD), final_check=False)
    runner = Runner()
    runner.run_command = lambda argv, cwd=None: pytest.fail(f"ran {argv}")
    job = finished(params, runner)
    job.check_after()
    assert "after" not in job.result


def test_the_nodes_the_run_saw_stand_for_the_api_listing_with_etcd(tmp_path):
    """With etcd the drift check lists the nodes through the API (`k3s kubectl get nodes`); after the
    recovery it takes the nodes the run saw Ready instead: no k3s command runs."""
    params = k3s_tree(tmp_path, datastore="etcd")
    runner = Runner()
    runner.get_bin_path = lambda name, required=False: "/usr/bin/" + name
    calls = []
    answer = runner.run_command

    def run_command(argv, cwd=None):
        calls.append(argv)
        return answer(argv, cwd)

    runner.run_command = run_command
    finished(params, runner).check_after()
    assert not [argv for argv in calls if "kubectl" in argv], calls
    drift_params = dict(params["recheck"] or {}, config_file=params["config_file"], data_dir=params["data_dir"],
                        service="k3s", node_name="node1", node_ip=NEW, node_interface=None, flannel_iface=None,
                        kubeconfigs=[params["admin_kubeconfig"]], hung_start_after=300.0)  # fmt: skip
    result = detect(runner, drift_params, known_nodes=["node1", "agent-7"])[0]
    assert result["refused"] == [
        "the datastore holds other nodes (agent-7): a rebuild would drop them; agents are not supported by the "
        "recovery yet"
    ]


def test_a_hold_ends_once_the_recovery_succeeded(tmp_path):
    state_dir = tmp_path / "watch-state"
    state_dir.mkdir()
    (state_dir / "hold.json").write_text(json.dumps({"at": 1, "by": "rollback.yml from /b/x"}))
    params = k3s_tree(tmp_path)
    job = finished(dict(params, release_hold=str(state_dir)), Runner())
    job.result["changed"] = False
    job.release_hold()
    assert job.result["hold_released"] is True and job.result["changed"] is True
    assert not (state_dir / "hold.json").exists()
    again = finished(dict(params, release_hold=str(state_dir)), Runner())
    again.release_hold()
    assert again.result["hold_released"] is False
    absent = finished(dict(params, release_hold=str(tmp_path / "no-watcher")), Runner())
    absent.release_hold()
    assert absent.result["hold_released"] is False
    unset = finished(params, Runner())
    unset.release_hold()
    assert "hold_released" not in unset.result
