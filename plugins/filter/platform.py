# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The declared target platforms (docs: undeclared_platform.yml beside this file).

undeclared_platform: why a host is not one of the platforms this collection declares and tests
('' when it is). The roles that depend on the distribution (docker: apt sources and packages; k3s:
packages; nordvpn: the client's repository) refuse an undeclared one before anything changes.
The roles' meta/main.yml `platforms` list the same table (a unit test compares them).
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# distribution -> release codename -> version, as Ansible's distribution facts name them.
DECLARED = {
    "Debian": {"bookworm": "12"},
    "Ubuntu": {"jammy": "22.04", "noble": "24.04"},
}


def declared_text():
    return ", ".join(
        "%s %s (%s)" % (name, version, codename)
        for name, releases in DECLARED.items()
        for codename, version in releases.items()
    )


def undeclared_platform(facts):
    """'' when ``facts`` (ansible_facts with the distribution subset) name a declared platform,
    else the line saying what the host is and what is declared."""
    if not isinstance(facts, Mapping):
        raise AnsibleFilterError("undeclared_platform input must be ansible_facts, got %s" % type(facts).__name__)
    if "distribution" not in facts:
        raise AnsibleFilterError("undeclared_platform needs the distribution facts (setup gather_subset distribution)")
    name = facts.get("distribution")
    codename = facts.get("distribution_release")
    if codename in DECLARED.get(name, {}):
        return ""
    return "the host runs %s %s (%s), which this collection does not declare; declared: %s" % (
        name,
        facts.get("distribution_version", "?"),
        codename,
        declared_text(),
    )


class FilterModule:
    def filters(self):
        return {"undeclared_platform": undeclared_platform}
