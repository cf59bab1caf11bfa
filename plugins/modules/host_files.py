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
          - V(file) with O(files[].content), O(files[].secret_content), O(files[].src) or
            O(files[].remote_src); V(directory); V(link) to O(files[].target) (a file or link in its
            place is replaced, as C(ln -sf)); or V(absent) (a file, link or empty directory is
            removed; a non-empty directory is refused).
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description: The file's text (O(files[].state=file)); or O(files[].src).
        type: str
      secret_content:
        description:
          - Like O(files[].content) for a file holding secrets (a token, passwords). The value is
            hidden from the result and the task's log (no_log) and never shown in a diff, while the
            other entries of the same task keep their diff.
        type: str
      remote_src:
        description:
          - A file on the host whose content this file must have (e.g. a copy of a kubeconfig).
          - Not shown in a diff.
        type: path
      remote_src_optional:
        description:
          - A missing O(files[].remote_src) leaves the entry as it is (unchanged, listed in
            RV(waiting)) instead of failing, for a file another program writes later (k3s writes
            its k3s.yaml at its first start); the caller writes it with a later call.
        type: bool
        default: false
      target:
        description: The link's target (O(files[].state=link)).
        type: str
      src:
        description:
          - A file on the controller to copy (relative paths are looked up in the role's C(files/)),
            compared by sha1 on the host; its bytes are transferred only when they differ (a second
            execution then writes them).
          - Handled by the action plugin, which passes O(files[].src_sha1) and O(files[].staged).
        type: path
      src_sha1:
        description: Internal (set by the action plugin), the sha1 of O(files[].src).
        type: str
      staged:
        description: Internal (set by the action plugin), the transferred copy of O(files[].src).
        type: path
      mode:
        description: Octal mode, e.g. V("0644"). Required for V(file) and V(directory).
        type: str
      owner:
        description: User name or numeric uid.
        type: str
        default: root
      group:
        description: Group name or numeric gid.
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
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
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
waiting:
  description: The paths whose O(files[].remote_src_optional) source is missing (not written).
  returned: always
  type: list
  elements: str
needs_src:
  description: Internal (for the action plugin), the paths whose O(files[].src) must be transferred.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.files import ENTRY_SPEC, converge_entry


def entry_problem(entry):
    """Why ``entry`` cannot be converged, or None (named by its path, before anything changes)."""
    path, state = entry["path"], entry["state"]
    if not os.path.isabs(path):
        return "files: path %r is not absolute" % path
    sources = [key for key in ("content", "secret_content", "src_sha1", "remote_src") if entry[key] is not None]
    if state == "file" and len(sources) != 1:
        return "files: %s has state=file and needs exactly one of content, secret_content, src and remote_src" % path
    if (state == "link") != (entry["target"] is not None):
        return "files: %s: target is for state=link and required there" % path
    if entry["src"] is not None and entry["src_sha1"] is None:
        return "files: %s has src but was not run through the host_files action plugin" % path
    if state in ("file", "directory"):
        mode = entry["mode"]
        if mode is None:
            return "files: %s has no mode" % path
        try:
            if not 0 <= int(mode, 8) <= 0o7777:
                raise ValueError(mode)
        except ValueError:
            return 'files: %s has mode %r, not an octal mode like "0644"' % (path, mode)
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
    needs_src = [r["path"] for r in results if r.pop("needs_src", False)]
    waiting = [r["path"] for r in results if r.pop("waiting", False)]
    changed_paths = [r["path"] for r in results if r["changed"]]
    result = dict(
        changed=bool(changed_paths), changed_paths=changed_paths, files=results, needs_src=needs_src, waiting=waiting
    )
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
