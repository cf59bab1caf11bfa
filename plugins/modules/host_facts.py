#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_facts
short_description: Read, in one round trip, the host state a role compares against
version_added: "0.3.0"
description:
  - The docker, k3s and stack roles each look at the host once (files, users, groups, packages,
    units, tools, command outputs) and run their write, install and start tasks only where the
    host differs from what they want, so a rerun on a converged host is fast. This module is that
    one look, returning structured results for C(when:) conditions.
  - Read-only; runs the same in check mode. Commands are run only when their program exists.
options:
  paths:
    description:
      - Paths to describe; C(~user/...) is expanded on the host and reported under the path as
        given. Each is reported as C({}) when missing, else C(type) (C(file), C(dir), C(link)),
        and C(mode), C(owner), C(gid) (C(file), C(dir)), C(sha1) (C(file)), C(target) (C(link)).
    type: list
    elements: str
    default: []
  sha256:
    description: Paths (among O(paths)) whose C(sha256) is reported as well (large files cost a read).
    type: list
    elements: str
    default: []
  tree:
    description:
      - C(root) and C(files) (relative paths) reported under RV(tree) as O(paths) are, e.g. a
        checkout compared file by file with the controller's copy.
    type: dict
  users:
    description: Accounts reported under RV(users) (C({}) when missing).
    type: list
    elements: str
    default: []
  groups:
    description: Groups whose members are reported under RV(groups) (null when missing).
    type: list
    elements: str
    default: []
  packages:
    description: Debian packages whose C(dpkg) status is reported under RV(packages).
    type: list
    elements: str
    default: []
  units:
    description: systemd units whose C(enabled) and C(active) states are reported under RV(units).
    type: list
    elements: str
    default: []
  which:
    description: Program names looked up on C(PATH), reported under RV(which) (null when absent).
    type: list
    elements: str
    default: []
  images:
    description:
      - Docker image references whose image ID (C(docker image inspect)) is reported under RV(images).
    type: list
    elements: str
    default: []
  image_record:
    description:
      - JSON file mapping each reference to the ID its C(docker save) archive names (C(archive_id)) and the
        ID the engine gave it when the archive was loaded (C(engine_id)). An engine ID found there is reported
        under RV(images) as the archive's ID, so a comparison with the archive holds for Docker's containerd
        image store too, which reports manifest digests as image IDs. A missing or unreadable file is empty.
    type: path
  platform:
    description:
      - Also return the distribution and platform facts (C(ansible_facts.distribution),
        C(distribution_version), C(distribution_release), C(architecture), ...), from the same
        collectors as M(ansible.builtin.setup) with C(gather_subset=[distribution, platform]),
        so a role needs no separate fact-gathering round trip.
    type: bool
    default: false
  commands:
    description:
      - Name to argv; each is run when its program exists and reported under RV(commands) as
        C(rc) and C(stdout) (stripped); C(rc) is null when the program does not exist.
    type: dict
    default: {}
author:
  - integr8scode.provision maintainers (@integr8scode)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Look at the host
  integr8scode.provision.host_facts:
    paths: [/etc/rancher/k3s, /etc/rancher/k3s/config.yaml, "~alice/.kube/config"]
    users: [alice]
    packages: [python3-yaml]
    units: [k3s.service]
    which: [kubectl]
    commands:
      compose: [docker, compose, version, --short]
  register: host

- name: Install kubectl's link only where the probe found none
  ansible.builtin.file:
    src: /usr/local/bin/k3s
    dest: /usr/local/bin/kubectl
    state: link
  when: host.which.kubectl is none
"""

RETURN = r"""
ansible_facts:
  description: With O(platform), the distribution and platform facts (as M(ansible.builtin.setup) names them).
  returned: when O(platform=true)
  type: dict
  sample: {distribution: Debian, distribution_version: "12.11", distribution_release: bookworm, architecture: x86_64}
paths:
  description: Per path in O(paths), its description (see O(paths)).
  returned: always
  type: dict
  sample: {/etc/rancher/k3s: {type: dir, mode: "0755", owner: root, gid: 0}, /nowhere: {}}
tree:
  description: Per relative path of O(tree), its description.
  returned: always
  type: dict
users:
  description: Per account, C(uid), C(gid), C(home), C(shell), or C({}) when missing.
  returned: always
  type: dict
groups:
  description: Per group, its member list, or null when the group is missing.
  returned: always
  type: dict
packages:
  description: Per package, its dpkg status (C(installed), C(not-installed), ...).
  returned: always
  type: dict
missing_packages:
  description: The packages of O(packages) that are not installed.
  returned: always
  type: list
  elements: str
units:
  description: Per unit, C(enabled) and C(active) as systemctl reports them.
  returned: always
  type: dict
which:
  description: Per program name, its path on C(PATH), or null.
  returned: always
  type: dict
images:
  description:
    - Per image reference, the image ID the engine has for it (translated through O(image_record)), or null.
  returned: always
  type: dict
image_record:
  description: The content of O(image_record) as read (empty when not given, missing or unreadable).
  returned: always
  type: dict
commands:
  description: Per command name, C(rc) and C(stdout).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.host import (
    describe_path,
    group_members,
    image_ids,
    package_status,
    platform_facts,
    run_if_present,
    unit_states,
    user_entry,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="str", default=[]),
            sha256=dict(type="list", elements="str", default=[]),
            tree=dict(type="dict"),
            users=dict(type="list", elements="str", default=[]),
            groups=dict(type="list", elements="str", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            units=dict(type="list", elements="str", default=[]),
            which=dict(type="list", elements="str", default=[]),
            images=dict(type="list", elements="str", default=[]),
            image_record=dict(type="path"),
            commands=dict(type="dict", default={}),
            platform=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    sha256 = set(p["sha256"])
    result = dict(changed=False)
    result["paths"] = {path: describe_path(path, path in sha256) for path in p["paths"]}
    tree = p["tree"] or {}
    root = tree.get("root") or ""
    result["tree"] = {rel: describe_path("%s/%s" % (root.rstrip("/"), rel)) for rel in tree.get("files") or []}
    result["users"] = {name: user_entry(name) for name in p["users"]}
    result["groups"] = {name: group_members(name) for name in p["groups"]}
    result["packages"] = package_status(module.run_command, p["packages"])
    result["missing_packages"] = [name for name in p["packages"] if result["packages"].get(name) != "installed"]
    result["units"] = unit_states(module.run_command, p["units"])
    result["which"] = {name: module.get_bin_path(name) for name in p["which"]}
    result["images"], result["image_record"] = image_ids(
        module.run_command, module.get_bin_path, p["images"], p["image_record"]
    )
    result["commands"] = {
        name: run_if_present(module.run_command, module.get_bin_path, argv) for name, argv in p["commands"].items()
    }
    if p["platform"]:
        result["ansible_facts"] = platform_facts(module)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
