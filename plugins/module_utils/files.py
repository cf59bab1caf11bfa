# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The one atomic file write: a temporary file in the target's directory, its mode and owner set
before it is renamed over the target, so a reader (k3s, cert-generator, a worker) never sees a
half-written or briefly world-readable file; the data and then the rename are fsynced, so a power
cut right after a recovery does not leave an empty config.yaml (ext4 delayed allocation)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile


def atomic_write(path, data, mode=None, uid=None, gid=None):
    """Write ``data`` (str or bytes) to ``path`` atomically.

    ``mode``/``uid``/``gid`` default to the existing file's (0600 root for a new file)."""
    try:
        stat = os.stat(path)
        mode = stat.st_mode & 0o7777 if mode is None else mode
        uid = stat.st_uid if uid is None else uid
        gid = stat.st_gid if gid is None else gid
    except OSError:
        mode = 0o600 if mode is None else mode
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if not isinstance(data, bytes) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid is not None or gid is not None:
            os.chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory):
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_differs(path, text, mode=None, uid=None, gid=None):
    """(differs, before): whether ``path`` lacks ``text`` or that mode/owner (None: not compared);
    ``before`` is its content, None when it is missing or unreadable."""
    before = None
    try:
        with open(path) as handle:
            before = handle.read()
        stat = os.stat(path)
        same_meta = (
            (mode is None or stat.st_mode & 0o7777 == mode)
            and (uid is None or stat.st_uid == uid)
            and (gid is None or stat.st_gid == gid)
        )
    except OSError:
        same_meta = False
    return not (before == text and same_meta), before


def write_if_changed(path, text, mode=None, uid=None, gid=None):
    """(changed, before) after writing ``text`` unless the file already holds it with that mode."""
    differs, before = file_differs(path, text, mode, uid, gid)
    if not differs:
        return False, before
    atomic_write(path, text, mode, uid, gid)
    return True, before
