"""stack_state absent: compose down keeps the volumes unless asked; runs last."""

import json

from stackhost import PROJECT


def project_volumes(host):
    return set(host.check_output(f"docker volume ls -q --filter label=com.docker.compose.project={PROJECT}").split())


def test_absent_takes_the_stack_down_and_keeps_volumes(host, ansible_playbook):
    volumes = project_volumes(host)
    assert f"{PROJECT}_mongo_data" in volumes
    run = ansible_playbook("stack-only.yml", "-e", json.dumps({"stack_state": "absent"}))
    assert run.returncode == 0, run.output[-3000:]
    assert host.check_output(f"docker ps -aq --filter label=com.docker.compose.project={PROJECT}") == ""
    assert project_volumes(host) == volumes
    assert not host.file("/etc/systemd/system/integr8scode-kubeconfig-refresh.timer").exists
    again = ansible_playbook("stack-only.yml", "-e", json.dumps({"stack_state": "absent"}))
    assert again.returncode == 0
    assert again.total("changed") == 0, again.changed_tasks()


def test_absent_with_remove_volumes_deletes_them(host, ansible_playbook):
    extra = {"stack_state": "absent", "stack_remove_volumes": True}
    run = ansible_playbook("stack-only.yml", "-e", json.dumps(extra))
    assert run.returncode == 0, run.output[-3000:]
    assert project_volumes(host) == set()
