"""Filter undeclared_platform, and the roles' meta/main.yml platforms against the same table."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.filter.platform import DECLARED, undeclared_platform

ROOT = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize(
    "name, version, codename",
    [("Debian", "12", "bookworm"), ("Ubuntu", "22.04", "jammy"), ("Ubuntu", "24.04", "noble")],
)
def test_declared_platforms_pass(name, version, codename):
    facts = {"distribution": name, "distribution_version": version, "distribution_release": codename}
    assert undeclared_platform(facts) == ""


@pytest.mark.parametrize(
    "name, version, codename",
    [
        ("Debian", "13", "trixie"),
        ("Ubuntu", "20.04", "focal"),
        ("Linuxmint", "22", "wilma"),
        ("Fedora", "41", ""),
    ],
)
def test_undeclared_platforms_name_the_host_and_the_declared_ones(name, version, codename):
    reason = undeclared_platform(
        {"distribution": name, "distribution_version": version, "distribution_release": codename}
    )
    assert f"the host runs {name} {version}" in reason
    assert "declared: Debian 12 (bookworm), Ubuntu 22.04 (jammy), Ubuntu 24.04 (noble)" in reason


def test_facts_without_the_distribution_subset_are_an_error():
    with pytest.raises(AnsibleFilterError, match="distribution facts"):
        undeclared_platform({"architecture": "x86_64"})
    with pytest.raises(AnsibleFilterError, match="must be ansible_facts"):
        undeclared_platform("Debian")


@pytest.mark.parametrize("role", sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/main.yml")))
def test_role_meta_platforms_are_the_declared_ones(role):
    meta = yaml.safe_load((ROOT / "roles" / role / "meta" / "main.yml").read_text())
    listed = {p["name"]: sorted(p["versions"]) for p in meta["galaxy_info"]["platforms"]}
    assert listed == {name: sorted(releases) for name, releases in DECLARED.items()}
