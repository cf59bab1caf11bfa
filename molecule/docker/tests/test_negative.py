"""Bad input fails the play with an error naming the variable; the host stays as it was.

Each case runs negative.yml (the docker playbook with the offline sources) once
on every converged test host (one run per case, not one per host, where a lane
item runs the scenario on several platforms) with bad extra vars. Afterwards
daemon.json and the Compose plugin are byte-for-byte the same on each host and
each engine still answers.
"""

import json

import pytest

PLUGIN = "/usr/local/lib/docker/cli-plugins/docker-compose"
# A real OpenPGP key file the test host has: the distribution's own archive key.
ARCHIVE_KEYS = (
    "/usr/share/keyrings/debian-archive-bookworm-stable.gpg",
    "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
)
CLOSED_PORT_REPO = "http://127.0.0.1:9/linux/debian"
SHARED_KEY = "/tmp/i8c-archive-key.gpg"


def snapshot(hosts):
    return {
        host.backend.host: {
            "daemon.json": host.file("/etc/docker/daemon.json").sha256sum,
            "plugin": host.file(PLUGIN).sha256sum,
            "backups": sorted(host.check_output("ls /etc/docker").split()),
        }
        for host in hosts
    }


def assert_engine_up(hosts):
    for host in hosts:
        assert host.service("docker").is_running, host.backend.host
        assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0, host.backend.host


def run_bad(ansible_playbook, extra: dict):
    run = ansible_playbook("negative.yml", "-e", json.dumps(extra))
    assert run.returncode != 0, f"play succeeded with {extra}:\n{run.output[-2000:]}"
    return run


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"docker_install_source": "bogus"}, ["docker_install_source", "bogus"]),
        ({"docker_daemon_options": {"no-such-option": True}}, ["docker_daemon_options", "no-such-option"]),
        ({"docker_daemon_options": {"log-opts": {"max-file": 3}}}, ["docker_daemon_options", "log-opts"]),
        (
            {"docker_address_pools": [{"base": "10.40.0.0/14", "size": 24}]},
            ["docker_address_pools", "10.40.0.0/14 overlaps 10.42.0.0/16"],
        ),
        ({"docker_address_pools_avoid": ["172.21.0.0/16"]}, ["172.20.0.0/14 overlaps 172.21.0.0/16"]),
        ({"docker_address_pools": [{"base": "172.20.0.0/14", "size": 12}]}, ["docker_address_pools", "/12"]),
        ({"docker_compose_plugin_src": "/nonexistent/docker-compose"}, ["docker_compose_plugin_src", "not a file"]),
        ({"docker_users": ["Bad User"]}, ["docker_users", "Bad User"]),
    ],
    ids=["install-source", "unknown-key", "log-opt-type", "k3s-overlap", "user-avoid", "pool-size", "src", "users"],
)
def test_bad_input_fails_before_changing_anything(all_hosts, ansible_playbook, extra, expected):
    before = snapshot(all_hosts)
    run = run_bad(ansible_playbook, extra)
    for text in expected:
        assert text in run.output, f"{text!r} missing from the error:\n{run.output[-2000:]}"
    assert run.total("changed") == 0, run.changed_tasks()
    assert snapshot(all_hosts) == before
    assert_engine_up(all_hosts)


def test_option_the_engine_rejects_restores_previous_daemon_json(all_hosts, ansible_playbook):
    """A value only dockerd itself judges: an unknown log level passes the role's checks.

    Engine >= 23 rejects it in `dockerd --validate` (the file never lands);
    Engine 20.10 (Debian 12) fails to start with it, and the handler chain puts
    the previous file back and starts docker again. Either way the play fails.
    """
    before = snapshot(all_hosts)
    run = run_bad(ansible_playbook, {"docker_daemon_options": {"log-level": "chatty"}})
    assert "docker_daemon_options" in run.output, run.output[-2000:]
    assert "previous" in run.output, run.output[-2000:]
    after = snapshot(all_hosts)
    for host in all_hosts:
        name = host.backend.host
        assert after[name]["daemon.json"] == before[name]["daemon.json"], name
        assert after[name]["plugin"] == before[name]["plugin"], name
        assert "log-level" not in json.loads(host.file("/etc/docker/daemon.json").content_string), name
    assert_engine_up(all_hosts)


def test_checksum_mismatch_keeps_the_plugin(all_hosts, ansible_playbook):
    before = snapshot(all_hosts)
    run = run_bad(
        ansible_playbook,
        {
            "docker_compose_plugin_src": "",
            "docker_compose_plugin_url": "file:///usr/bin/true",
            "docker_compose_plugin_sha256": "0" * 64,
        },
    )
    assert "docker_compose_plugin_sha256" in run.output, run.output[-2000:]
    assert "did not match" in run.output or "checksum" in run.output.lower(), run.output[-2000:]
    assert snapshot(all_hosts) == before
    for host in all_hosts:
        assert host.run("docker compose version").rc == 0, host.backend.host
    assert_engine_up(all_hosts)


def shared_archive_key(hosts) -> str:
    """One distribution archive key (a real OpenPGP key file) at the same path on every host, so
    one run with one set of extra vars serves all of them: the first host's, copied to the rest."""
    source = hosts[0]
    key = next(path for path in ARCHIVE_KEYS if source.file(path).exists)
    data = source.check_output(f"base64 -w0 {key}")
    for host in hosts:
        host.check_output(f"echo {data} | base64 -d > {SHARED_KEY}")
    return SHARED_KEY


def test_docker_repository_key_and_reachability(all_hosts, ansible_playbook):
    """docker source offline, one run per case on every host: a key with the wrong fingerprint,
    then an unreachable repository.

    download.docker.com is unreachable here, so the key comes from a file:// URL (a
    distribution's own archive key) and the repository is a closed loopback port.
    Neither failure may leave the key or the .sources file behind on any host.
    """
    archive_key = shared_archive_key(all_hosts)
    docker_source = {
        "docker_install_source": "docker",
        "docker_apt_key_url": f"file://{archive_key}",
        "docker_apt_repository_url": CLOSED_PORT_REPO,
    }
    run = run_bad(ansible_playbook, docker_source)
    assert_failed_on_each(run, all_hosts)
    assert_no_docker_source(all_hosts)

    # The role installed gpg for the check above; read the key's real primary fingerprints with it.
    colons = (
        all_hosts[0]
        .check_output(
            f"home=$(mktemp -d) && gpg --batch --homedir $home --show-keys --with-colons {archive_key}; rm -rf $home"
        )
        .splitlines()
    )
    primaries = [fpr.split(":")[9] for pub, fpr in zip(colons, colons[1:], strict=False) if pub.startswith("pub:")]
    assert primaries, colons
    fingerprint = primaries[0]
    # The error names the variable, the expected and the actual fingerprints: the key was really read.
    message = " ".join(run.output.split())
    assert "docker_apt_key_fingerprint" in message, run.output[-2000:]
    expected = f"primary fingerprint(s) {' '.join(primaries)}, not docker_apt_key_fingerprint"
    assert message.count(expected) >= len(all_hosts), run.output[-2000:]
    assert "9DC858229FC7DD38854AE2D88D81803C0EBFCD88" in message
    # One try: apt's backoff between five (1+2+4+8+12 s) measures nothing here.
    run = run_bad(
        ansible_playbook, {**docker_source, "docker_apt_key_fingerprint": fingerprint, "docker_apt_update_retries": 1}
    )
    assert_failed_on_each(run, all_hosts)
    assert "docker_apt_repository_url" in run.output, run.output[-2000:]
    assert CLOSED_PORT_REPO in run.output
    # Nothing of the distribution's engine was removed for a repository that does not answer.
    assert "Removed docker.io" not in run.output
    for host in all_hosts:
        installed = host.run("dpkg-query -W -f '${db:Status-Status}' docker.io containerd runc").stdout
        assert installed == "installed" * 3, (host.backend.host, installed)
    assert_no_docker_source(all_hosts)
    assert_engine_up(all_hosts)


def assert_failed_on_each(run, hosts) -> None:
    for host in hosts:
        assert run.recap.get(host.backend.host, {}).get("failed", 0) >= 1, (host.backend.host, run.recap)


def assert_no_docker_source(hosts) -> None:
    for host in hosts:
        assert not host.file("/etc/apt/keyrings/docker.asc").exists, host.backend.host
        assert not host.file("/etc/apt/sources.list.d/docker.sources").exists, host.backend.host


def test_host_is_still_converged(all_hosts, ansible_playbook):
    """After every failure above, the good input converges with zero changes."""
    run = ansible_playbook("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    assert run.total("changed") == 0, run.changed_tasks()
    assert_engine_up(all_hosts)
