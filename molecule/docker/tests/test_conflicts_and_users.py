"""Issue 18 on the converged host (distro source): packages of the other source present when the
role installs are removed first and listed; a user added to the docker group is told it takes
effect at the next login, and the play reconnects when its own user was added.

The other source's packages here are the real ones the distribution has: Compose v1
(`docker-compose`, Debian/Ubuntu's package, which Docker's install guide removes too).
Docker's own docker-ce packages cannot be had offline; the docker-source direction is covered
where it can fail here: with Docker's repository unreachable nothing is removed
(test_negative.py, test_docker_repository_key_and_reachability)."""

from __future__ import annotations

import json


def flat(output: str) -> str:
    """The output with line wrapping undone (the yaml callback folds long messages)."""
    return " ".join(output.split())


def dpkg_status(host, package: str) -> str:
    out = host.run(f"dpkg-query -W -f '${{db:Status-Status}}' {package}")
    return out.stdout.strip() if out.rc == 0 else "not-installed"


def test_compose_v1_is_removed_before_the_distro_install_and_listed(host, ansible_playbook_on_host):
    # /var/cache/apt/archives is shared by every test host (the base config's cache volume):
    # wait out another host's apt run, as the roles' apt tasks do.
    install = host.run(
        "for try in $(seq 30); do DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
        " docker-compose 2>&1 && exit 0; sleep 10; done; exit 1"
    )
    assert install.rc == 0, install.stdout[-2000:]
    assert dpkg_status(host, "docker-compose") == "installed"

    run = ansible_playbook_on_host("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    assert "Removed docker-compose: they conflict with docker_install_source=distro." in flat(run.output)
    assert run.changed_tasks() == [
        "integr8scode.provision.docker : Remove the packages that conflict with docker_install_source"
    ]
    assert dpkg_status(host, "docker-compose") != "installed"
    assert dpkg_status(host, "docker.io") == "installed"
    assert host.run("docker compose version --short").rc == 0
    assert host.service("docker").is_running

    again = ansible_playbook_on_host("converge.yml")
    assert again.returncode == 0, again.output[-3000:]
    assert again.total("changed") == 0, again.changed_tasks()
    assert "Removed" not in again.output

    # The role removes what conflicts and, like Docker's install guide, leaves the packages that
    # came with it (Compose v1 pulled in the Docker SDK, python3-docker). This test installed
    # them, so it takes them away again: test_docker.py holds the role to not installing the SDK.
    cleanup = host.run("DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y 2>&1")
    assert cleanup.rc == 0, cleanup.stdout[-2000:]
    assert dpkg_status(host, "python3-docker") == "not-installed"


def test_a_new_docker_group_member_is_told_about_the_next_login(host, ansible_playbook_on_host):
    assert host.run("gpasswd -d i8c-operator docker").rc == 0
    run = ansible_playbook_on_host("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    assert "Added i8c-operator to the docker group. It takes effect at the next login" in flat(run.output)
    assert "The play reconnects" not in run.output
    assert "docker" in host.user("i8c-operator").groups


def test_the_play_reconnects_when_its_own_user_joined(host, ansible_playbook_on_host):
    # The docker connection runs as ansible_user; root is the test host's own user.
    extra = {"ansible_user": "root", "docker_users": ["i8c-operator", "root"]}
    try:
        run = ansible_playbook_on_host("converge.yml", "-e", json.dumps(extra))
        assert run.returncode == 0, run.output[-3000:]
        assert "Added root to the docker group." in flat(run.output)
        assert "The play reconnects so its own user (root) has it from here on." in flat(run.output)
        # The tasks after the reset ran on a new connection (the play went on and succeeded).
        assert run.total("failed") == 0
    finally:
        host.run("gpasswd -d root docker")
    assert "docker" not in host.user("root").groups
