#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_files
short_description: Converge a set of files and directories in one round trip
version_added: "0.6.0"
description:
  - Compares each entry of O(files) with the host (content, mode, owner, group) and writes only
    what differs, in the order given, in one module execution. A role states each file's desired
    state once, here, instead of a C(when:) guard that repeats a template's mode and checksum
    before the template task compares them again.
  - Files are written atomically (a temporary file in the same directory with its mode and owner
    set before the rename, then fsynced), so a reader such as k3s or a worker never sees a
    half-written file.
  - An entry with C(validate) is written to the temporary file first and checked with the command
    (C(%s) is the temporary file); a file that fails never replaces the previous one and the
    module fails with the command's output.
  - In check mode nothing is written; owners that do not exist yet and missing parent directories
    (made by an earlier task of a real run) are reported as changes, not failures, so check mode
    works on a bare host.
  - Tasks writing secrets set C(no_log), and their entries C(diff=false).
options:
  files:
    description: The entries, converged in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description:
          - V(file) with O(files[].content), V(directory), or V(absent) (a file or an empty
            directory is removed; a non-empty directory is refused).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The file's text (O(files[].state=file)).
        type: str
      mode:
        description: Octal mode, e.g. V("0644"). Required for V(file) and V(directory).
        type: str
      owner:
        description: User name.
        type: str
        default: root
      group:
        description: Group name.
        type: str
        default: root
      validate:
        description: Command run on the new content before it replaces the file; C(%s) is its path.
        type: str
      backup:
        description: Keep the previous content as a timestamped copy beside the file when it changes.
        type: bool
        default: false
      diff:
        description: Include the content in the diff (V(false) for secrets).
        type: bool
        default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - integr8scode.provision maintainers (@integr8scode)
"""

EXAMPLES = r"""
- name: Write the k3s unit and its environment file
  integr8scode.provision.host_files:
    files:
      - path: /etc/systemd/system/k3s.service
        content: "{{ lookup('ansible.builtin.template', 'k3s.service.j2') }}"
        mode: "0644"
      - path: /etc/systemd/system/k3s.service.env
        content: "{{ k3s__env_content }}"
        mode: "0600"
        diff: false
  register: k3s__files
  notify: Restart k3s

- name: Remove a file the role no longer wants
  integr8scode.provision.host_files:
    files:
      - path: /etc/rancher/k3s/registries.yaml
        state: absent
"""

RETURN = r"""
changed_paths:
  description: The entries' paths that were (check mode - would be) written, created or removed.
  returned: always
  type: list
  elements: str
files:
  description: Per entry, what was observed and done.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The entry's path.
      type: str
    changed:
      description: Whether it was (would be) changed.
      type: bool
    reasons:
      description: What differed, e.g. V(missing), V(content), V(mode 0640 -> 0600), V(owner).
      type: list
      elements: str
    backup_file:
      description: The backup's path, when O(files[].backup) made one.
      type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.files import converge_entry

ENTRY_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["file", "directory", "absent"], default="file"),
    content=dict(type="str"),
    mode=dict(type="str"),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
    validate=dict(type="str"),
    backup=dict(type="bool", default=False),
    diff=dict(type="bool", default=True),
)


def entry_problem(entry):
    """Why ``entry`` cannot be converged, or None (named by its path, before anything changes)."""
    path, state = entry["path"], entry["state"]
    if not os.path.isabs(path):
        return "files: path %r is not absolute" % path
    if state == "file" and entry["content"] is None:
        return "files: %s has state=file but no content" % path
    if state != "absent":
        mode = entry["mode"]
        if mode is None:
            return "files: %s has no mode" % path
        try:
            if not 0 <= int(mode, 8) <= 0o7777:
                raise ValueError(mode)
        except ValueError:
            return "files: %s has mode %r, not an octal mode like \"0644\"" % (path, mode)
    if entry["validate"] is not None and "%s" not in entry["validate"]:
        return "files: %s validate command has no %%s" % path
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(files=dict(type="list", elements="dict", required=True, options=ENTRY_SPEC)),
        supports_check_mode=True,
    )
    entries = module.params["files"]
    problems = [p for p in (entry_problem(e) for e in entries) if p]
    if problems:
        module.fail_json(msg="; ".join(problems))
    results, diffs = [], []
    for entry in entries:
        try:
            outcome = converge_entry(entry, module.check_mode, module.run_command, module.backup_local)
        except (OSError, ValueError) as exc:
            module.fail_json(
                msg="%s: %s" % (entry["path"], exc),
                files=results,
                changed_paths=[r["path"] for r in results if r["changed"]],
                changed=any(r["changed"] for r in results),
            )
        diff = outcome.pop("diff", None)
        if diff is not None and module._diff:
            diffs.append(diff)
        results.append(outcome)
    changed_paths = [r["path"] for r in results if r["changed"]]
    result = dict(changed=bool(changed_paths), changed_paths=changed_paths, files=results)
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
