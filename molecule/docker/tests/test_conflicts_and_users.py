"""Issue 18 on the converged hosts (distro source): packages of the other source present when the
role installs are removed first and listed; a user added to the docker group is told it takes
effect at the next login, and the play reconnects when its own user was added.

The switch is a host that ran Docker's own packages: docker-ce, docker-ce-cli and containerd.io
(stand-ins that give dpkg the real packages' records, tests/standins/docker-ce; Docker's
repository is unreachable here) in place of the distribution's docker.io, containerd and runc,
plus the real Compose v1 (`docker-compose`, Debian/Ubuntu's package, which Docker's install
guide removes too). The docker-source direction is covered where it can fail here: with
Docker's repository unreachable nothing is removed (test_negative.py,
test_docker_repository_key_and_reachability)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from testhost import flat


def dpkg_status(host, package: str) -> str:
    out = host.run(f"dpkg-query -W -f '${{db:Status-Status}}' {package}")
    return out.stdout.strip() if out.rc == 0 else "not-installed"


STANDIN_DEBS = (
    Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3])) / "tests/standins/docker-ce"
)
DOCKER_CE = ("docker-ce", "docker-ce-cli", "containerd.io")
# /var/cache/apt/archives is shared by every test host (the base config's cache volume): wait out
# another host's apt run, as the roles' apt tasks do.
APT = "for try in $(seq 30); do DEBIAN_FRONTEND=noninteractive apt-get {} 2>&1 && exit 0; sleep 10; done; exit 1"


def build_and_install(host) -> None:
    """The stand-in packages built on the host from their control files and installed with dpkg."""
    script = ["set -e", "rm -rf /tmp/i8c-debs", "mkdir -p /tmp/i8c-debs"]
    for name in DOCKER_CE:
        control = (STANDIN_DEBS / f"{name}.control").read_text()
        script += [
            f"mkdir -p /tmp/i8c-debs/{name}/DEBIAN",
            f"cat > /tmp/i8c-debs/{name}/DEBIAN/control <<'CONTROL'\n{control}CONTROL",
            f"dpkg-deb --build /tmp/i8c-debs/{name} /tmp/i8c-debs/{name}.deb",
        ]
    script.append("dpkg -i " + " ".join(f"/tmp/i8c-debs/{name}.deb" for name in DOCKER_CE))
    out = host.run("\n".join(script))
    assert out.rc == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_switching_from_docker_ce_removes_its_packages_and_compose_v1_first(all_hosts, ansible_playbook):
    for host in all_hosts:
        # What the user cares about outlives the switch: /var/lib/docker is kept.
        assert host.run("docker volume create i8c-switch-keep").rc == 0
        # Docker's packages conflict with docker.io, containerd.io with containerd and runc:
        # a host runs one source or the other.
        removed = host.run(APT.format("remove -y docker.io containerd runc"))
        assert removed.rc == 0, removed.stdout[-2000:]
        compose_v1 = host.run(APT.format("install -y --no-install-recommends docker-compose"))
        assert compose_v1.rc == 0, compose_v1.stdout[-2000:]
        build_and_install(host)
        for name in DOCKER_CE + ("docker-compose",):
            assert dpkg_status(host, name) == "installed", name
        assert dpkg_status(host, "docker.io") != "installed"

    run = ansible_playbook("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    removed = (
        "Removed docker-ce, docker-ce-cli, containerd.io, docker-compose: "
        "they conflict with docker_install_source=distro."
    )
    assert flat(run.output).count(removed) == len(all_hosts), flat(run.output)[-3000:]
    for host in all_hosts:
        for name in DOCKER_CE + ("docker-compose",):
            assert dpkg_status(host, name) != "installed", name
        for name in ("docker.io", "containerd", "runc"):
            assert dpkg_status(host, name) == "installed", name
        assert host.service("docker").is_running
        assert host.run("docker compose version --short").rc == 0
        assert host.run("docker volume inspect i8c-switch-keep").rc == 0

    again = ansible_playbook("converge.yml")
    assert again.returncode == 0, again.output[-3000:]
    assert again.total("changed") == 0, again.changed_tasks()
    assert "Removed" not in again.output

    for host in all_hosts:
        host.run("docker volume rm i8c-switch-keep")
        # The role removes what conflicts and, like Docker's install guide, leaves the packages
        # that came with it (Compose v1 pulled in the Docker SDK, python3-docker). This test
        # installed them, so it takes them away again: test_docker.py holds the role to not
        # installing the SDK.
        cleanup = host.run(APT.format("autoremove --purge -y"))
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
