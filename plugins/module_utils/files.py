# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The one atomic file write: a temporary file in the target's directory, its mode and owner set
before it is renamed over the target, so a reader (k3s, cert-generator, a worker) never sees a
half-written or briefly world-readable file; the data and then the rename are fsynced, so a power
cut right after a recovery does not leave an empty config.yaml (ext4 delayed allocation)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import hashlib
import os
import pwd
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


def _ids(owner, group):
    """(uid, gid, missing): the ids of ``owner``/``group`` (names or numeric ids); names that do not exist
    are in ``missing``."""
    missing = []
    uid = _id(owner, lambda name: pwd.getpwnam(name).pw_uid, "user", missing)
    gid = _id(group, lambda name: grp.getgrnam(name).gr_gid, "group", missing)
    return uid, gid, missing


# The shape of one desired file, directory or link (module host_files' option `files`, whose
# argument spec this is); converge_entry reads it, file_entry fills its defaults for callers
# that build entries in Python (compose_env_file).
ENTRY_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["file", "directory", "link", "absent"], default="file"),
    content=dict(type="str"),
    secret_content=dict(type="str", no_log=True),
    remote_src=dict(type="path"),
    remote_src_optional=dict(type="bool", default=False),
    target=dict(type="str"),
    src=dict(type="path"),
    src_sha1=dict(type="str"),
    staged=dict(type="path"),
    mode=dict(type="str"),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
    validate=dict(type="str"),
    backup=dict(type="bool", default=False),
    diff=dict(type="bool", default=True),
)


def file_entry(path, **values):
    """An entry as host_files' argument spec would complete it: ENTRY_SPEC's defaults, then ``values``."""
    entry = dict((key, spec.get("default")) for key, spec in ENTRY_SPEC.items())
    entry.update(values, path=path)
    return entry


def _id(name, lookup, kind, missing):
    """The numeric id of ``name`` (or ``name`` itself when numeric); None, noted in ``missing``, when
    there is no such user or group."""
    if str(name).isdigit():
        return int(name)
    try:
        return lookup(name)
    except KeyError:
        missing.append("%s %s" % (kind, name))
        return None


def _meta_reasons(stat, mode, ids, owner, group):
    uid, gid = ids
    reasons = []
    if stat.st_mode & 0o7777 != mode:
        reasons.append("mode %04o -> %04o" % (stat.st_mode & 0o7777, mode))
    if uid is None or stat.st_uid != uid:
        reasons.append("owner -> " + owner)
    if gid is None or stat.st_gid != gid:
        reasons.append("group -> " + group)
    return reasons


def converge_entry(entry, check_mode, run_command, backup_local):
    """Converge one file/directory entry (host_files' option shape); return what was observed and done.

    Raises OSError/ValueError with a message naming what failed; in check mode nothing is written
    and names that do not exist yet are reported as changes."""
    path, state = entry["path"], entry["state"]
    outcome = dict(path=path, changed=False, reasons=[])
    try:
        stat = os.lstat(path)
    except OSError:
        stat = None
    if state == "absent":
        if stat is not None:
            outcome.update(changed=True, reasons=["present"])
            if not check_mode:
                if os.path.isdir(path) and not os.path.islink(path):
                    if os.listdir(path):
                        raise ValueError("a non-empty directory is not removed")
                    os.rmdir(path)
                else:
                    os.unlink(path)
                fsync_dir(os.path.dirname(path))
        return outcome
    if state == "link":
        return _converge_link(entry, stat, check_mode, outcome)
    mode = int(entry["mode"], 8)
    uid, gid, missing = _ids(entry["owner"], entry["group"])
    if missing and not check_mode:
        raise ValueError("%s does not exist" % " and ".join(missing))
    if state == "directory":
        if stat is not None and not os.path.isdir(path):
            raise ValueError("exists and is not a directory")
        reasons = ["missing"] if stat is None else _meta_reasons(stat, mode, (uid, gid), entry["owner"], entry["group"])
        outcome.update(changed=bool(reasons), reasons=reasons)
        if reasons and not check_mode:
            if stat is None:
                os.makedirs(path, mode)
            os.chmod(path, mode)
            os.chown(path, uid, gid)
        return outcome
    if stat is not None and (not os.path.isfile(path) or os.path.islink(path)):
        raise ValueError("exists and is not a regular file")
    if entry.get("src_sha1"):
        return _converge_copy(entry, stat, (mode, uid, gid), check_mode, outcome)
    text = entry["content"] if entry.get("secret_content") is None else entry["secret_content"]
    if entry.get("remote_src"):
        try:
            with open(entry["remote_src"], "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except OSError as exc:
            if entry.get("remote_src_optional"):
                # Not there yet (k3s writes k3s.yaml at its first start): left for a later call.
                outcome["reasons"] = ["remote_src %s missing" % entry["remote_src"]]
                outcome["waiting"] = True
                return outcome
            if not check_mode:
                raise ValueError("cannot read remote_src %s: %s" % (entry["remote_src"], exc.strerror)) from None
            # Check mode on a bare host: an earlier task of a real run makes it (k3s writes k3s.yaml).
            outcome.update(changed=True, reasons=["remote_src %s missing" % entry["remote_src"]])
            return outcome
    before = None
    if stat is not None:
        with open(path, "rb") as handle:
            before = handle.read().decode("utf-8", "replace")
    reasons = ["missing"] if stat is None else []
    if stat is not None:
        if before != text:
            reasons.append("content")
        reasons += _meta_reasons(stat, mode, (uid, gid), entry["owner"], entry["group"])
    outcome.update(changed=bool(reasons), reasons=reasons)
    if entry["diff"] and entry.get("secret_content") is None and not entry.get("remote_src") and before != text:
        outcome["diff"] = dict(before_header=path, after_header=path, before=before or "", after=text)
    if not reasons or check_mode:
        return outcome
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise ValueError("its directory %s does not exist" % directory)
    if entry["validate"]:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".validate.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8"))
            rc, out, err = run_command(entry["validate"] % tmp, use_unsafe_shell=True)
        finally:
            os.unlink(tmp)
        if rc != 0:
            raise ValueError(
                "the new content failed validation (%s, exit %d): %s" % (entry["validate"], rc, (out + err).strip())
            )
    if entry["backup"] and stat is not None:
        outcome["backup_file"] = backup_local(path)
    atomic_write(path, text, mode, uid, gid)
    return outcome


def file_digest(path, algorithm="sha256"):
    """The hex digest of a file's content, read in blocks (a k3s binary, an archive)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _converge_copy(entry, stat, meta, check_mode, outcome):
    """A file copied from the controller: compared by sha1 (``src_sha1``); the bytes come only when
    they differ, as ``staged`` (a file the action plugin transferred), in a second call."""
    path = entry["path"]
    mode, uid, gid = meta
    reasons = ["missing"] if stat is None else []
    if stat is not None and file_digest(path, "sha1") != entry["src_sha1"]:
        reasons.append("content")
    differs = [] if stat is None else _meta_reasons(stat, mode, (uid, gid), entry["owner"], entry["group"])
    outcome.update(changed=bool(reasons or differs), reasons=reasons + differs)
    if check_mode or not outcome["changed"]:
        return outcome
    if reasons:
        staged = entry.get("staged")
        if not staged:
            outcome["needs_src"] = True
            return outcome
        if file_digest(staged, "sha1") != entry["src_sha1"]:
            raise ValueError("the transferred copy does not have the controller file's sha1")
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise ValueError("its directory %s does not exist" % directory)
        with open(staged, "rb") as handle:
            atomic_write(path, handle.read(), mode, uid, gid)
    else:
        os.chmod(path, mode)
        os.chown(path, uid, gid)
    return outcome


def _converge_link(entry, stat, check_mode, outcome):
    """A symbolic link to ``target``; a file or link in its place is replaced (as the k3s installer's
    ln -sf), a directory is refused."""
    path, target = entry["path"], entry["target"]
    if stat is not None and os.path.isdir(path) and not os.path.islink(path):
        raise ValueError("is a directory, not replaced by a link")
    if stat is not None and os.path.islink(path) and os.readlink(path) == target:
        return outcome
    outcome.update(changed=True, reasons=["missing" if stat is None else "link -> " + target])
    if not check_mode:
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, "." + os.path.basename(path) + ".link")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.rename(tmp, path)
        fsync_dir(directory)
    return outcome
