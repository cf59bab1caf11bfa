"""Role `k3s_recover` on the controller: its defaults that name the k3s and stack roles' variables
resolve to those roles' own defaults (their one home: tasks/validate.yml imports the two roles for
their defaults, and none of their tasks runs), an inventory value wins over them, the node IP is
judged by the ipv4_address test, and the one confirmation (tasks/confirm.yml, shared by the
recovery, the rollback and playbooks/reset.yml) stops a run nobody confirmed.

Only validation and the confirmation run here (tag k3s_recover_validate, tasks_from confirm.yml):
nothing on the controller is looked at or changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from roleplay import ROOT, ansible_playbook, flat_output, write_playbook

SETTINGS = {
    "node_ip": "k3s_recover_node_ip",
    "node_interface": "k3s_recover_node_interface",
    "flannel_iface": "k3s_recover_flannel_iface",
    "user": "k3s_recover_kubeconfig_user",
    "lock": "k3s_recover_lock_path",
    "stack_dir": "k3s_recover_stack_dir",
    "project": "k3s_recover_project_name",
    "files": "k3s_recover_compose_files",
    "app": "k3s_recover_app_kubeconfig",
    "mode": "k3s_recover_app_kubeconfig_mode",
    "insecure": "k3s_recover_allow_insecure_kubeconfig_mode",
    "cert_generator": "k3s_recover_cert_generator_service",
    "workers": "k3s_recover_worker_services",
}


def defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="module")
def playbook(tmp_path_factory) -> Path:
    play = {
        "name": "Role k3s_recover, validation only",
        "hosts": "all",
        "gather_facts": False,
        "roles": [{"role": "integr8scode.provision.k3s_recover"}],
        "post_tasks": [
            {
                "name": "Print the settings the recovery would use",
                "ansible.builtin.debug": {"msg": {key: "{{ " + var + " }}" for key, var in SETTINGS.items()}},
                "tags": ["always"],
            }
        ],
    }
    return write_playbook(tmp_path_factory.mktemp("k3s-recover-role"), yaml.safe_dump([play], sort_keys=False))


def settings(run) -> dict:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tasks = json.loads(run.stdout)["plays"][0]["tasks"]
    return tasks[-1]["hosts"]["localhost"]["msg"]


def run_role(playbook: Path, *args: str):
    return ansible_playbook(playbook, "--tags", "k3s_recover_validate", *args, callback="ansible.posix.json")


def test_the_defaults_are_the_k3s_and_stack_roles_own(playbook):
    k3s, stack = defaults("k3s"), defaults("stack")
    found = settings(run_role(playbook))
    assert found["node_ip"] == k3s["k3s_node_ip"]
    assert found["node_interface"] == k3s["k3s_node_interface"]
    assert found["flannel_iface"] == k3s["k3s_flannel_iface"]
    assert found["lock"] == k3s["k3s_lock_path"]
    assert found["stack_dir"] == stack["stack_dir"]
    assert found["project"] == stack["stack_project_name"]
    assert found["files"] == stack["stack_compose_files"]
    assert found["app"] == f"{stack['stack_dir']}/{stack['stack_kubeconfig']}"
    assert found["mode"] == stack["stack_kubeconfig_mode"]
    assert found["insecure"] == stack["stack_allow_insecure_kubeconfig_mode"]
    assert found["cert_generator"] == stack["stack_cert_generator_service"]
    assert found["workers"] == stack["stack_kubeconfig_consumers"]


def test_the_kubeconfig_user_is_the_one_the_k3s_role_wrote_for(playbook):
    """k3s_kubeconfig_user's own default (ansible_user, else the controller's user, else root): the
    recovery refreshes the copy the k3s role wrote, not root's by a second default."""
    assert settings(run_role(playbook, "-e", "ansible_user=deploy"))["user"] == "deploy"


def test_the_inventory_wins_over_the_other_roles_defaults(playbook):
    found = settings(
        run_role(playbook, "-e", "stack_dir=/srv/i8c", "-e", "stack_kubeconfig=k.yaml", "-e", "k3s_node_ip=10.77.0.5")
    )
    assert found["stack_dir"] == "/srv/i8c" and found["app"] == "/srv/i8c/k.yaml" and found["node_ip"] == "10.77.0.5"
    assert settings(run_role(playbook, "-e", "k3s_recover_stack_dir=/opt/other"))["stack_dir"] == "/opt/other"


def test_none_of_the_other_roles_tasks_runs_or_is_queued(playbook):
    run = ansible_playbook(playbook, "--tags", "k3s_recover_validate")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "integr8scode.provision.k3s :" not in run.stdout and "integr8scode.provision.stack :" not in run.stdout
    listed = ansible_playbook(playbook, "--list-tasks")
    assert listed.returncode == 0, listed.stderr
    assert "integr8scode.provision.k3s :" not in listed.stdout
    assert "integr8scode.provision.stack :" not in listed.stdout
    assert "integr8scode.provision.k3s_recover : Check the recovery variables" in listed.stdout


def test_the_imported_roles_define_only_their_own_names():
    """Their defaults and vars become the play's (vars above the inventory): a name without the
    role's prefix there would reach every role of the play."""
    for role, prefix in (("k3s", "k3s_"), ("stack", "stack_")):
        for part in ("defaults", "vars"):
            names = yaml.safe_load((ROOT / "roles" / role / part / "main.yml").read_text()) or {}
            assert all(name.startswith(prefix) for name in names), (role, part, sorted(names))


@pytest.mark.parametrize(
    ("node_ip", "refused"),
    [
        ("10.77.0.5", False),
        ("", False),
        ("010.77.0.5", True),
        ("10.77.0.256", True),
        ("10.77.0.5/24", True),
        ("fd00::5", True),
    ],
)
def test_the_node_ip_is_judged_by_the_ipv4_address_test(playbook, node_ip, refused):
    run = ansible_playbook(playbook, "--tags", "k3s_recover_validate", "-e", f"k3s_recover_node_ip='{node_ip}'")
    text = flat_output(run)
    if refused:
        assert run.returncode != 0
        assert f"k3s_recover_node_ip = '{node_ip}': an IPv4 address" in text, text[-2000:]
    else:
        assert run.returncode == 0, text[-2000:]


@pytest.fixture(scope="module")
def confirm_playbook(tmp_path_factory) -> Path:
    return write_playbook(
        tmp_path_factory.mktemp("k3s-recover-confirm"),
        """\
        - name: The one confirmation, as playbooks/reset.yml asks it
          hosts: all
          gather_facts: false
          vars:
            reset_confirm: false
          tasks:
            - name: Confirm the reset
              ansible.builtin.include_role:
                name: integr8scode.provision.k3s_recover
                tasks_from: confirm.yml
              vars:
                k3s_recover__ask:
                  confirmed: "{{ reset_confirm }}"
                  switch: reset_confirm
                  prompt: "{{ inventory_hostname }} will be reset as listed above"
                  refusal: "It would have reset {{ inventory_hostname }}."

            - name: Go on only when confirmed
              ansible.builtin.debug:
                msg: confirmed
        """,
    )


def test_a_run_nobody_can_ask_stops_with_nothing_changed(confirm_playbook):
    run = ansible_playbook(confirm_playbook)
    text = flat_output(run)
    assert run.returncode != 0
    assert (
        "Not confirmed: reset_confirm is not true and nobody typed yes (a non-interactive run cannot be asked). "
        "Nothing was changed. It would have reset localhost. Re-run with -e reset_confirm=true to proceed." in text
    ), text[-2000:]
    assert "msg: confirmed" not in text


def test_the_switch_goes_on_without_asking(confirm_playbook):
    run = ansible_playbook(confirm_playbook, "-e", "reset_confirm=true")
    text = flat_output(run)
    assert run.returncode == 0, text[-2000:]
    assert "msg: confirmed" in text and "Type yes" not in text


def test_an_include_of_the_validation_alone_sees_the_same_defaults(tmp_path):
    """playbooks/status.yml includes tasks/validate.yml alone (public) and reads the recovery's
    settings after it: the other roles' defaults come with that file."""
    play = {
        "name": "As playbooks/status.yml takes the recovery's settings",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Take the paths and pins from the recovery's settings",
                "ansible.builtin.include_role": {
                    "name": "integr8scode.provision.k3s_recover",
                    "tasks_from": "validate.yml",
                    "public": True,
                },
            },
            {
                "name": "Print them",
                "ansible.builtin.debug": {"msg": {key: "{{ " + var + " }}" for key, var in SETTINGS.items()}},
            },
        ],
    }
    path = write_playbook(tmp_path, yaml.safe_dump([play], sort_keys=False))
    run = ansible_playbook(path, callback="ansible.posix.json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tasks = json.loads(run.stdout)["plays"][0]["tasks"]
    assert [t["task"]["name"] for t in tasks if "integr8scode.provision.k3s :" in t["task"]["name"]] == []
    found = tasks[-1]["hosts"]["localhost"]["msg"]
    stack = defaults("stack")
    assert found["stack_dir"] == stack["stack_dir"] and found["workers"] == stack["stack_kubeconfig_consumers"]
    assert found["node_ip"] == defaults("k3s")["k3s_node_ip"]
