# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""File work of a k3s recovery on the managed host: run lock, verified backup, restore, pruning and
the config.yaml edit. Used by the k3s_rebuild module; the standard library only.

A backup directory holds ``files/<absolute source path>`` copies, ``manifest.json`` (each file's
sha256 as read from the source, its size and mode) and ``RESTORE.txt``. ``verify`` recomputes every
checksum from the copy, checks the required files are non-empty and, for SQLite, runs
``PRAGMA integrity_check`` on a scratch copy.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.poll import ProbeResult, poll

# The one run lock of everything that rewrites k3s's address: recover.yml (k3s_rebuild), the
# watcher, and site.yml's config.yaml write and restart (k3s_config, k3s_restart). The roles'
# k3s_lock_path / k3s_recover_lock_path are empty by default, which means this path.
LOCK_PATH = "/run/lock/integr8scode-k3s-recover.lock"
# How often a waiting run looks at the lock again (seconds, growing to the cap).
LOCK_POLL = dict(interval=0.5, backoff=1.5, max_interval=2.0)

MANIFEST = "manifest.json"
FILES = "files"
BACKUP_NAME = re.compile(r"^\d{8}T\d{6}Z$")
CONFIG_KEY = re.compile(r"^([A-Za-z0-9_.-]+|\"[^\"]+\"|'[^']+')\s*:")


class BackupError(Exception):
    """A step that must stop the recovery; the message says what and where."""


class LockHeld(BackupError):
    """The run lock is held by another run; ``owner`` is its owner record (run_id, by, started,
    expires)."""

    def __init__(self, message, owner):
        super(LockHeld, self).__init__(message)
        self.owner = owner


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup_path(backup_dir, source):
    return os.path.join(backup_dir, FILES, source.lstrip("/"))


def utc_stamp(epoch=None):
    moment = datetime.datetime.fromtimestamp(time.time() if epoch is None else epoch, datetime.timezone.utc)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def iso(epoch):
    try:
        return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError):
        return "unknown"


# ------------------------------------------------------------------------------------ lock


class RunLock:
    """A lock directory with an owner file and an expiry, so two recoveries never interleave and a
    run that died (its lock expired) does not block the next one forever."""

    def __init__(self, path, run_id, ttl=3600, by=""):
        self.path = path or LOCK_PATH
        self.run_id = run_id
        self.ttl = int(ttl)
        self.by = by
        self.owner_file = os.path.join(path, "owner")
        self.held = False
        self.taken_over = None

    def acquire(self):
        parent = os.path.dirname(self.path) or "/"
        if not os.path.isdir(parent):
            os.makedirs(parent)
        with open(self.path + ".guard", "w") as guard:
            # The guard serialises the check-and-take between two runs started together.
            fcntl.flock(guard, fcntl.LOCK_EX)
            now = int(time.time())
            try:
                os.mkdir(self.path, 0o700)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                owner = read_json(self.owner_file)
                if owner.get("run_id") != self.run_id and int(owner.get("expires", 0)) > now:
                    raise LockHeld(
                        "%s holds %s (run %s, started %s, expires %s); wait for it, or remove the directory if "
                        "that run is no longer going on"
                        % (owner.get("by") or "another k3s recovery", self.path, owner.get("run_id"),
                           iso(owner.get("started")), iso(owner.get("expires"))),
                        owner,
                    ) from None  # fmt: skip
                if owner.get("run_id") != self.run_id:
                    self.taken_over = owner
                shutil.rmtree(self.path, ignore_errors=True)
                os.mkdir(self.path, 0o700)
            owner = {"run_id": self.run_id, "started": now, "expires": now + self.ttl, "by": self.by}
            with open(self.owner_file, "w") as handle:
                json.dump(owner, handle)
        self.held = True
        return owner

    def release(self):
        if not self.held:
            return False
        self.held = False
        if read_json(self.owner_file).get("run_id") != self.run_id:
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        return True


def wait_for_lock(lock, timeout, clock=time.monotonic, sleep=time.sleep):
    """Acquire ``lock`` (a RunLock), waiting up to ``timeout`` seconds while another run holds it
    (poll.py). Returns (owner record, seconds waited); raises LockHeld naming the holder when the
    wait ran out, BackupError/OSError when the lock cannot be taken at all."""

    def probe():
        try:
            return ProbeResult(True, observation=dict(owner=lock.acquire()))
        except LockHeld as exc:
            return ProbeResult(False, observation=dict(held=exc), message=str(exc))

    outcome = poll(probe, max(0.0, float(timeout)), clock=clock, sleep=sleep, **LOCK_POLL)
    if outcome.ready:
        return outcome.observation["owner"], round(outcome.elapsed, 3)
    held = outcome.observation["held"]
    raise LockHeld("waited %ss for the run lock: %s" % (int(round(outcome.elapsed)), held), held.owner)


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------------------------ backup


def _entry(source, digest, size, mode):
    return {"source": source, "sha256": digest, "size": size, "mode": "%04o" % (mode & 0o7777)}


def copy_file(source, dest, entries, backup_dir):
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o700)
    digest = hashlib.sha256()
    size = 0
    # Hash what is read from the source while writing the copy: verify then recomputes from the
    # copy, so a short write (full disk) or a later change is caught.
    with open(source, "rb") as src, open(dest, "wb") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    stat = os.stat(source)
    os.chmod(dest, stat.st_mode & 0o7777)
    try:
        os.chown(dest, stat.st_uid, stat.st_gid)
    except OSError:
        pass
    entries[os.path.relpath(dest, backup_dir)] = _entry(source, digest.hexdigest(), size, stat.st_mode)


def copy_tree(source, backup_dir, entries):
    for root, dirs, files in os.walk(source):
        dirs.sort()
        dest_root = backup_path(backup_dir, root)
        if not os.path.isdir(dest_root):
            os.makedirs(dest_root)
        os.chmod(dest_root, os.stat(root).st_mode & 0o7777)
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            copy_file(path, os.path.join(dest_root, name), entries, backup_dir)


def prepare_backup_dir(backup_dir):
    """Create the backup root and this run's directory, both 0700 (they hold the token and keys)."""
    root = os.path.dirname(backup_dir.rstrip("/"))
    for path in (root, backup_dir):
        if not os.path.isdir(path):
            os.makedirs(path, 0o700)
        os.chmod(path, 0o700)
    return root


def create_backup(backup_dir, paths, *, datastore, db_dir, required=(), required_nonempty=(), meta=None, keep=0):
    """Copy ``paths`` (files or directories) into ``backup_dir``, write the manifest, verify the
    copy, and only then prune older backups down to ``keep``. Raises BackupError when anything
    required is missing or the copy does not verify; returns the verification result."""
    root = prepare_backup_dir(backup_dir)
    entries, skipped = {}, []
    try:
        for path in paths:
            if os.path.isdir(path):
                copy_tree(path, backup_dir, entries)
            elif os.path.isfile(path):
                copy_file(path, backup_path(backup_dir, path), entries, backup_dir)
            else:
                skipped.append(path)
        # Files produced straight into the backup directory (the etcd snapshot, the SQLite online
        # copy of a live datastore).
        for rootdir, _dirs, files in os.walk(backup_dir):
            for name in files:
                full = os.path.join(rootdir, name)
                rel = os.path.relpath(full, backup_dir)
                if rel in entries or rel in (MANIFEST, MANIFEST + ".tmp", "RESTORE.txt"):
                    continue
                stat = os.stat(full)
                entries[rel] = _entry(full, sha256_file(full), stat.st_size, stat.st_mode)
        missing = [p for p in required if p in skipped]
        if missing:
            raise BackupError("required files are missing on the host: %s" % ", ".join(missing))
        manifest = {
            "version": 1,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "datastore": datastore,
            "db_dir": db_dir,
            "meta": meta or {},
            "required": [os.path.relpath(backup_path(backup_dir, p), backup_dir) for p in required],
            "required_nonempty_globs": list(required_nonempty),
            "skipped": skipped,
            "files": entries,
        }
        tmp = os.path.join(backup_dir, MANIFEST + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, os.path.join(backup_dir, MANIFEST))
        write_restore_note(backup_dir, manifest)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError("backup into %s failed: %s" % (backup_dir, exc)) from exc
    result = verify(backup_dir)
    result.update(backup_dir=backup_dir, skipped=skipped, pruned=[])
    if result["errors"]:
        raise BackupError("backup %s did not verify: %s" % (backup_dir, "; ".join(result["errors"])))
    if keep:
        # Only a verified backup may push an older one out.
        result["pruned"] = prune(root, int(keep), backup_dir)
    return result


def sqlite_online_copy(source, backup_dir):
    """A consistent copy of a live WAL-mode state.db through SQLite's online backup API (kine
    keeps writing; a file copy of state.db without its -wal would lose the newest writes, facts
    file k3s-and-vpn.md), written where a cold copy would be: files/<source>. Returns that path."""
    dest = backup_path(backup_dir, source)
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o700)
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.chmod(dest, 0o600)
    return dest


def write_restore_note(backup_dir, manifest):
    with open(os.path.join(backup_dir, "RESTORE.txt"), "w") as handle:
        handle.write(
            "k3s backup taken by integr8scode.provision k3s_recover at {0} (datastore: {1}).\n"
            "Restore config.yaml, server/db and server/tls and restart k3s:\n"
            "  ansible-playbook playbooks/recover.yml -e k3s_recover_rollback=true \\\n"
            "    -e k3s_recover_rollback_from={2} -e k3s_recover_confirm=true\n"
            "By hand: systemctl stop k3s; copy files/<path> back to /<path>; systemctl start k3s.\n"
            "manifest.json lists every file with its sha256.\n".format(
                manifest["created"], manifest["datastore"], backup_dir
            )
        )
        for rel in sorted(manifest["files"]):
            if rel.startswith("etcd-snapshot/"):
                # facts file k3s-and-vpn.md: the documented restore of an etcd snapshot.
                handle.write(
                    "etcd snapshot: systemctl stop k3s; k3s server --cluster-reset "
                    "--cluster-reset-restore-path={0}; systemctl start k3s\n".format(os.path.join(backup_dir, rel))
                )


# ------------------------------------------------------------------------------------ verify


def verify(backup_dir):
    """Check a backup against its manifest; never raises, returns ``ok`` and the ``errors``."""
    errors = []
    manifest_path = os.path.join(backup_dir, MANIFEST)
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        return {"ok": False, "errors": ["manifest %s unreadable: %s" % (manifest_path, exc)], "checked": 0}
    files = manifest.get("files") or {}
    if not files:
        errors.append("manifest lists no files")
    for rel, entry in sorted(files.items()):
        path = os.path.join(backup_dir, rel)
        if not os.path.isfile(path):
            errors.append("%s is missing" % rel)
            continue
        size = os.path.getsize(path)
        if size != entry.get("size"):
            errors.append("%s has %d bytes, the source had %s" % (rel, size, entry.get("size")))
            continue
        if sha256_file(path) != entry.get("sha256"):
            errors.append("%s does not match its sha256" % rel)
    for rel in manifest.get("required", []):
        entry = files.get(rel)
        if entry is None:
            errors.append("required %s is not in the backup" % rel)
        elif not entry.get("size"):
            errors.append("required %s is empty" % rel)
    for pattern in manifest.get("required_nonempty_globs", []):
        regex = re.compile(pattern)
        if not any(regex.search(rel) and e.get("size") for rel, e in files.items()):
            errors.append("no non-empty file matching %s in the backup" % pattern)
    integrity = None
    if manifest.get("datastore") == "sqlite" and not errors:
        integrity = sqlite_check(backup_dir, manifest)
        if integrity != "ok":
            errors.append("PRAGMA integrity_check on the state.db copy: %s" % integrity)
    return {
        "ok": not errors,
        "errors": errors,
        "checked": len(files),
        "integrity_check": integrity,
        "datastore": manifest.get("datastore"),
        "created": manifest.get("created"),
        "meta": manifest.get("meta", {}),
    }


def sqlite_check(backup_dir, manifest):
    db_dir = backup_path(backup_dir, manifest.get("db_dir") or "/var/lib/rancher/k3s/server/db")
    state = os.path.join(db_dir, "state.db")
    if not os.path.isfile(state):
        return "state.db is not in the backup"
    # Check a scratch copy: opening a database replays its -wal, which would change the backup.
    scratch = tempfile.mkdtemp(prefix="k3s-recover-verify-")
    try:
        for suffix in ("", "-wal", "-shm"):
            if os.path.isfile(state + suffix):
                shutil.copy2(state + suffix, os.path.join(scratch, "state.db" + suffix))
        conn = sqlite3.connect(os.path.join(scratch, "state.db"))
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            result = "; ".join(str(r[0]) for r in rows) or "no result"
            if result == "ok":
                tables = set(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
                if "kine" not in tables:
                    result = "no kine table (not a k3s datastore)"
            return result
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------------------------ restore


def restore(backup_dir, targets):
    """Verify, then put each target (file or directory) back from the backup. Returns the restored
    targets; raises BackupError when the backup does not verify or holds none of them."""
    checked = verify(backup_dir)
    if not checked["ok"]:
        raise BackupError("backup %s did not verify, nothing restored: %s" % (backup_dir, "; ".join(checked["errors"])))
    with open(os.path.join(backup_dir, MANIFEST)) as handle:
        manifest = json.load(handle)
    restored = []
    for target in targets:
        saved = backup_path(backup_dir, target)
        if os.path.isdir(saved):
            remove_path(target)
            shutil.copytree(saved, target, symlinks=True)
        elif os.path.isfile(saved):
            parent = os.path.dirname(target)
            if not os.path.isdir(parent):
                os.makedirs(parent)
            shutil.copy2(saved, target)
        else:
            continue
        restore_modes(manifest, target)
        restored.append(target)
    if not restored:
        raise BackupError("backup %s holds none of %s" % (backup_dir, ", ".join(targets)))
    return restored


def restore_modes(manifest, target):
    for entry in manifest["files"].values():
        source = entry.get("source", "")
        if (source == target or source.startswith(target.rstrip("/") + "/")) and os.path.exists(source):
            os.chmod(source, int(entry["mode"], 8))


# ------------------------------------------------------------------------------------ prune


def backup_names(root):
    """The backup directories under ``root`` that have a manifest, oldest first (timestamp names)."""
    if not os.path.isdir(root):
        return []
    return sorted(
        n for n in os.listdir(root) if BACKUP_NAME.match(n) and os.path.isfile(os.path.join(root, n, MANIFEST))
    )


def is_pre_wipe(backup_dir):
    """A backup a recovery took before it deleted server/db and server/tls (strategy wipe)."""
    meta = read_json(os.path.join(backup_dir, MANIFEST)).get("meta") or {}
    return meta.get("strategy") == "wipe"


def protected_backups(root, names, current):
    """{name: why} of the backups pruning never removes: the one just taken, the newest that
    verifies, and among the backups taken before a wipe the newest and the oldest that verify.
    The oldest is the datastore as it was before the first wipe this root saw: a watcher that
    recovers again and again (each wipe starts an empty datastore) would otherwise push the only
    copy of the user's cluster out with the rest."""
    why = {os.path.basename(current.rstrip("/")): "the backup just taken"}
    verified = {}

    def verifies(name):
        if name not in verified:
            verified[name] = name in why or verify(os.path.join(root, name))["ok"]
        return verified[name]

    newest = next((n for n in reversed(names) if verifies(n)), None)
    if newest:
        why.setdefault(newest, "the newest verified backup")
    wiped = [n for n in names if is_pre_wipe(os.path.join(root, n))]
    for label, order in (("the newest", reversed(wiped)), ("the oldest", iter(wiped))):
        found = next((n for n in order if verifies(n)), None)
        if found:
            why.setdefault(found, "%s verified backup taken before a wipe" % label)
    return why


def prune(root, keep_count, current):
    """Keep the newest ``keep_count`` backups (by their timestamp names) and the protected ones
    (``protected_backups``); returns the removed names."""
    names = backup_names(root)
    if not names:
        return []
    keep = set(names[-keep_count:]) if keep_count > 0 else set()
    keep.update(protected_backups(root, names, current))
    removed = []
    for name in names:
        if name not in keep:
            shutil.rmtree(os.path.join(root, name))
            removed.append(name)
    return removed


# ------------------------------------------------------------------------------------ wipe, config


def remove_path(path):
    """Delete a file, a symlink or a directory tree; True when something was there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
        return True
    if os.path.lexists(path):
        os.remove(path)
        return True
    return False
