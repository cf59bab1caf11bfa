"""Role `docker` on the converged systemd test host (distro source, offline)."""

import ipaddress
import json

POOL = ipaddress.ip_network("172.20.0.0/14")
AVOID = [ipaddress.ip_network(n) for n in ("10.42.0.0/16", "10.43.0.0/16", "10.0.0.0/10")]


def test_service_running_and_enabled(host):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_engine_answers(host):
    out = host.check_output("docker info --format '{{.ServerVersion}}'")
    assert out.strip(), "docker info printed no server version"


def test_compose_v2_at_least_2_18(host):
    out = host.check_output("docker compose version --short").strip().removeprefix("v")
    major, minor = (int(part) for part in out.split(".")[:2])
    assert (major, minor) >= (2, 18), f"docker compose version {out}"
    plugin = host.file("/usr/local/lib/docker/cli-plugins/docker-compose")
    assert plugin.is_file
    assert plugin.mode == 0o755


def test_daemon_json_content(host):
    daemon = host.file("/etc/docker/daemon.json")
    assert daemon.mode == 0o644
    assert daemon.user == "root"
    assert json.loads(daemon.content_string) == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "default-address-pools": [{"base": "172.20.0.0/14", "size": 24}],
    }


def test_engine_uses_the_address_pools(host):
    """docker0 and a new network take their subnets from the pool, clear of k3s and NordVPN."""
    bridge = host.check_output("docker network inspect bridge --format '{{(index .IPAM.Config 0).Subnet}}'")
    name = "i8c-docker-pool-probe"
    host.run(f"docker network rm {name}")
    host.check_output(f"docker network create {name}")
    try:
        created = host.check_output(f"docker network inspect {name} --format '{{{{(index .IPAM.Config 0).Subnet}}}}'")
    finally:
        host.run(f"docker network rm {name}")
    for subnet in (bridge, created):
        net = ipaddress.ip_network(subnet.strip())
        assert net.subnet_of(POOL), f"{net} not in {POOL}"
        assert not any(net.overlaps(avoid) for avoid in AVOID)


def test_container_from_loaded_image_runs(host):
    out = host.check_output("docker run --rm integr8scode-testhost:latest /bin/sh -c 'echo inner-ok; id -u'")
    assert out.split() == ["inner-ok", "0"]


def test_community_docker_api_modules_run_without_the_sdk(host):
    """community.docker's Engine API modules need only requests on the host; the Docker SDK for
    Python is not installed (Ubuntu 24.04's python3-docker fails against its urllib3)."""
    assert host.package("python3-requests").is_installed
    assert not host.package("python3-docker").is_installed
    info = host.ansible("community.docker.docker_host_info", "", check=False, become=True)
    assert not info.get("failed"), info.get("msg")
    assert info["host_info"]["ServerVersion"]


def test_users_in_docker_group(host):
    user = host.user("i8c-operator")
    assert user.exists
    assert "docker" in user.groups
    # Membership is what grants the socket: the user reaches the engine.
    out = host.check_output("sudo -u i8c-operator docker info --format '{{.ServerVersion}}'")
    assert out.strip()


def test_no_compose_v1(host):
    assert not host.package("docker-compose").is_installed


def test_check_mode_changes_nothing(converge_in_check_mode):
    converge_in_check_mode.assert_no_changes("check-mode run")
