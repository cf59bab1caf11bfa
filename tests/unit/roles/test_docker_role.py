"""Role `docker` on the controller only: input validation and template rendering.

Runs real ansible-playbook against localhost, limited to what changes nothing:
the role's `docker_validate` tag (controller-side asserts and a read-only fact
gathering), and the role's templates rendered into a temporary directory. The
docker apt repository path cannot be exercised here (download.docker.com is
unreachable), so its deb822 source is checked as rendered.
"""

from __future__ import annotations

import json
import platform
import subprocess
import textwrap
from pathlib import Path

import pytest
from roleplay import ROOT, ansible_playbook, flat_output, write_playbook

ROLE = ROOT / "roles" / "docker"


@pytest.fixture(scope="module")
def validate_playbook(tmp_path_factory) -> Path:
    return write_playbook(
        tmp_path_factory.mktemp("docker-validate"),
        """\
        - name: Validate the docker role's input only
          hosts: all
          gather_facts: false
          roles:
            - role: integr8scode.provision.docker
        """,
    )


def validate(playbook: Path, extra: dict) -> subprocess.CompletedProcess:
    return ansible_playbook(playbook, "--tags", "docker_validate", "-e", json.dumps(extra))


def test_defaults_and_offline_values_pass(validate_playbook):
    run = validate(validate_playbook, {})
    assert run.returncode == 0, run.stdout[-3000:]
    offline = ansible_playbook(
        validate_playbook, "--tags", "docker_validate", "-e", f"@{ROOT / 'tests/molecule/offline_docker.yml'}"
    )
    assert offline.returncode == 0, offline.stdout[-3000:]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"docker_install_source": "snap"}, "docker_install_source"),
        ({"docker_apt_key_fingerprint": "1234"}, "docker_apt_key_fingerprint = '1234': 40 hex digits"),
        ({"docker_apt_repository_url": "https://example.invalid/"}, "docker_apt_repository_url"),
        ({"docker_install_source": "distro"}, "docker_compose_plugin_src"),
        (
            {"docker_install_source": "distro", "docker_compose_plugin_url": "https://x.invalid/c"},
            "docker_compose_plugin_sha256",
        ),
        (
            {"docker_daemon_options": {"log-opt": {"max-size": "1m"}}},
            'docker_daemon_options = ["log-opt"]: keys dockerd knows',
        ),
        ({"docker_address_pools": [{"base": "10.0.0.0/8", "size": 24}]}, "10.0.0.0/8 overlaps 10.42.0.0/16"),
        ({"docker_address_pools": [{"base": "172.20.0.0/33", "size": 24}]}, "docker_address_pools"),
        ({"docker_address_pools_avoid": ["not-a-cidr"]}, "docker_address_pools_avoid"),
        ({"docker_daemon_options": {"default-address-pools": [{"base": "10.5.0.0/16", "size": 24}]}}, "overlaps"),
        ({"docker_apt_update_retries": 0}, "docker_apt_update_retries = 0: at least 1"),
    ],
    ids=[
        "source",
        "fingerprint",
        "repo-url",
        "no-plugin",
        "url-without-sha",
        "unknown-key",
        "k3s-overlap",
        "bad-cidr",
        "bad-avoid",
        "nordlynx-overlap",
        "no-apt-try",
    ],
)
def test_bad_input_is_named(validate_playbook, extra, expected):
    run = validate(validate_playbook, extra)
    assert run.returncode != 0
    output = flat_output(run)
    assert expected in output, output[-3000:]


def test_unknown_keys_allowed_when_check_is_off(validate_playbook):
    run = validate(validate_playbook, {"docker_daemon_check_keys": False, "docker_daemon_options": {"new-key": 1}})
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """The role's two templates rendered by Ansible with the role's defaults and vars."""
    out = tmp_path_factory.mktemp("docker-render")
    playbook = out / "render.yml"
    playbook.write_text(
        textwrap.dedent(
            f"""\
            - name: Render the docker role's templates
              hosts: all
              gather_facts: false
              tasks:
                - name: Load the role's defaults and internal vars
                  ansible.builtin.include_vars:
                    file: "{{{{ item }}}}"
                  loop:
                    - {ROLE}/defaults/main.yml
                    - {ROLE}/vars/main.yml
                - name: Gather this machine's distribution and architecture
                  ansible.builtin.setup:
                    gather_subset: ["!all", "!min", distribution, platform]
                - name: Merge daemon options as the role does
                  ansible.builtin.set_fact:
                    docker__daemon_config: >-
                      {{{{ docker__daemon_defaults | combine(docker_daemon_options, recursive=True) }}}}
                - name: Render
                  ansible.builtin.template:
                    src: "{ROLE}/templates/{{{{ item }}}}.j2"
                    dest: "{out}/{{{{ item }}}}"
                    mode: "0644"
                  loop: [docker.sources, daemon.json]
            """
        )
    )
    # Extra vars: they win over the role defaults loaded by include_vars.
    options = {"docker_daemon_options": {"log-opts": {"max-size": "50m"}, "live-restore": True}}
    run = ansible_playbook(playbook, "-e", json.dumps(options))
    assert run.returncode == 0, run.stdout[-3000:]
    return out


def os_release() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return {key: value.strip('"') for key, value in pairs}


def test_deb822_source(rendered):
    release = os_release()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    fields = dict(
        line.split(": ", 1) for line in (rendered / "docker.sources").read_text().splitlines() if ": " in line
    )
    fields = {k: v for k, v in fields.items() if not k.startswith("#")}
    assert fields == {
        "Types": "deb",
        "URIs": f"https://download.docker.com/linux/{release['ID']}",
        "Suites": release["VERSION_CODENAME"],
        "Components": "stable",
        "Architectures": arch,
        "Signed-By": "/etc/apt/keyrings/docker.asc",
    }


def test_daemon_json_merges_over_defaults(rendered):
    assert json.loads((rendered / "daemon.json").read_text()) == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "50m", "max-file": "3"},
        "default-address-pools": [{"base": "172.20.0.0/14", "size": 24}],
        "live-restore": True,
    }
