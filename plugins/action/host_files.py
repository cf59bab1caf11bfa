# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Action plugin of host_files: entries with ``src`` (a controller file) are compared by sha1 on the
host in the module's one execution; only files that differ are transferred, and a second execution
writes them. ansible.builtin.copy needs two executions (stat, then file) even when nothing changed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import checksum

MODULE = "integr8scode.provision.host_files"


def merge_outcomes(first, second):
    """The result of a two-execution call: the second's, with the first's changes kept."""
    if second.get("failed"):
        return second
    written = set(first.get("changed_paths") or [])
    merged = dict(second)
    merged["files"] = [
        dict(
            entry,
            changed=entry["changed"] or entry["path"] in written,
            reasons=entry["reasons"]
            or next((f["reasons"] for f in first.get("files") or [] if f["path"] == entry["path"]), []),
        )
        for entry in second.get("files") or []
    ]
    merged["changed_paths"] = [entry["path"] for entry in merged["files"] if entry["changed"]]
    merged["changed"] = bool(merged["changed_paths"])
    if first.get("diff") or second.get("diff"):
        merged["diff"] = (first.get("diff") or []) + (second.get("diff") or [])
    return merged


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = copy.deepcopy(self._task.args)
        local = {}
        for entry in args.get("files") or []:
            if isinstance(entry, dict) and entry.get("src"):
                try:
                    found = self._find_needle("files", entry["src"])
                except AnsibleError as exc:
                    result.update(failed=True, msg="files: %s: src %s: %s" % (entry.get("path"), entry["src"], exc))
                    return result
                local[entry["path"]] = found
                entry["src_sha1"] = checksum(found)
                del entry["src"]
        try:
            outcome = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
            needed = outcome.get("needs_src") or []
            if needed and not outcome.get("failed") and not self._task.check_mode:
                if not self._connection._shell.tmpdir:
                    self._make_tmp_path()
                staged = []
                for index, entry in enumerate(args["files"]):
                    if entry.get("path") in needed:
                        # Numbered: entries of one call may share a basename (__init__.py).
                        remote = self._connection._shell.join_path(
                            self._connection._shell.tmpdir, "staged-%d-%s" % (index, os.path.basename(entry["path"]))
                        )
                        self._transfer_file(local[entry["path"]], remote)
                        entry["staged"] = remote
                        staged.append(remote)
                self._fixup_perms2([self._connection._shell.tmpdir] + staged)
                first = outcome
                outcome = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
                # What the first execution wrote (content, directories, links) is done then and
                # unchanged in the second: the result reports both, so handlers keyed on
                # changed_paths see every change.
                outcome = merge_outcomes(first, outcome)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(outcome)
        return result
