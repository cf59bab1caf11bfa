# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""File tree filters (docs: tree_drift.yml beside this file).

tree_drift: which files of a controller tree a copy would change on the host, judged from
ansible.builtin.find on the controller and the `tree` that host_facts read on the host. The
roles stack (its checkout) and host_library (the module_utils the host's programs import) copy
only these.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError


def tree_drift(files, root, host_tree, owner, gid, *, mode=None):
    """Relative paths of ``files`` (find's results under ``root``) whose host copy differs."""
    if not isinstance(files, Sequence) or isinstance(files, (str, bytes)):
        raise AnsibleFilterError(
            "tree_drift input must be the 'files' list of ansible.builtin.find, got %s" % type(files).__name__
        )
    if not isinstance(host_tree, Mapping):
        raise AnsibleFilterError(
            "tree_drift: host_tree must be host_facts' 'tree' mapping, got %s" % type(host_tree).__name__
        )
    base = str(root).rstrip("/") or "/"
    drift = []
    for entry in files:
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise AnsibleFilterError("tree_drift: every file must be a find result with a 'path', got %r" % (entry,))
        rel = os.path.relpath(entry["path"], base)
        have = host_tree.get(rel) or {}
        if entry.get("islnk"):
            # The copy follows a symlink of the controller's tree: its result cannot be predicted.
            drift.append(rel)
        elif entry.get("isdir"):
            if have.get("type") != "dir":
                drift.append(rel)
        else:
            want_mode = mode if mode else "%04o" % int(str(entry.get("mode", "0644")), 8)
            want = {"type": "file", "mode": want_mode, "owner": owner, "gid": int(gid), "sha1": entry.get("checksum")}
            if dict(have) != want:
                drift.append(rel)
    return drift


def file_entries(items, key="path", into="", **common):
    """host_files entries from a list: ``{key: item}`` plus ``common``; with ``into``, ``path`` is
    ``into/<basename of item>`` (e.g. controller files copied into one directory)."""
    if not isinstance(items, (list, tuple)):
        raise AnsibleFilterError("file_entries input must be a list, got %s" % type(items).__name__)
    entries = []
    for item in items:
        entry = {key: item}
        if into:
            entry["path"] = "%s/%s" % (into.rstrip("/"), posixpath.basename(str(item)))
        entry.update(common)
        entries.append(entry)
    return entries


class FilterModule:
    def filters(self):
        return {"tree_drift": tree_drift, "file_entries": file_entries}
