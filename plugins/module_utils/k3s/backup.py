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
import stat
import tempfile
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write, file_digest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import sqlite_object_counts
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import ProbeResult, poll

# The one run lock of everything that rewrites k3s's address: recover.yml (k3s_rebuild), the
# watcher, and site.yml's config.yaml write and restart (k3s_config, k3s_restart). The roles'
# k3s_lock_path / k3s_recover_lock_path are empty by default, which means this path. Not in
# /run/lock: any local user may create entries there, and a directory or guard file made there
# first would refuse every recovery (or a lock file read from there could be faked).
LOCK_PATH = "/run/integr8scode/k3s-recover.lock"
# The options of a module that waits for the lock (doc fragment integr8scode.provision.run_lock).
LOCK_OPTIONS = dict(
    lock_path=dict(type="path", default=LOCK_PATH),
    lock_wait=dict(type="float", default=900.0),
    lock_owner=dict(type="str", default=""),
)
# How often a waiting run looks at the lock again (seconds, growing to the cap).
LOCK_POLL = dict(interval=0.5, backoff=1.5, max_interval=2.0)

MANIFEST = "manifest.json"
FILES = "files"
# <UTC stamp>, or <UTC stamp>-<n> for the n-th backup taken in one second (claim_backup_dir).
BACKUP_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-([1-9][0-9]*))?$")
CONFIG_KEY = re.compile(r"^([A-Za-z0-9_.-]+|\"[^\"]+\"|'[^']+')\s*:")


class BackupError(Exception):
    """A step that must stop the recovery; the message says what and where."""


class LockHeld(BackupError):
    """The run lock is held by another run; ``owner`` is its owner record (run_id, by, started,
    pid of a running holder, or expires of a kept lock)."""

    def __init__(self, message, owner):
        super(LockHeld, self).__init__(message)
        self.owner = owner


def sha256_file(path):
    return file_digest(path, "sha256")


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


def process_identity(pid):
    """(boot id, start time in clock ticks) of process ``pid``, or None when it does not run: a
    pid the kernel reused since, or one from before a reboot, names another process."""
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            stat = handle.read()
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot_id = handle.read().strip()
    except (OSError, TypeError, ValueError):
        return None
    # Field 22 (starttime); the command name (field 2) may hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return [boot_id, int(fields[19])]


def check_private_dir(path):
    """The lock's directory is this user's (root's on a host) and nobody else may write to it;
    raises BackupError naming it otherwise."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise BackupError(
            "the run lock's directory %s must be a directory owned by uid %d and writable by it alone (found %s, uid "
            "%d, mode %04o): another user could block or fake the lock there. Use a k3s_lock_path / "
            "k3s_recover_lock_path under a root-owned directory (empty: %s)"
            % (path, os.geteuid(), "a directory" if stat.S_ISDIR(info.st_mode) else "no directory", info.st_uid,
               info.st_mode & 0o7777, LOCK_PATH)
        )  # fmt: skip


class RunLock:
    """A lock directory with an owner file, so two recoveries never interleave. A run holds it
    while its process lives (pid and start time in the owner record: a long run is never taken
    over while alive, a run killed with SIGKILL does not block the next one), and a
    lock kept past the process (``keep``: site.yml's config.yaml write for its restart handler)
    holds until its expiry. /run is a tmpfs: a reboot ends every run and its lock."""

    def __init__(self, path, run_id, by=""):
        self.path = path or LOCK_PATH
        self.run_id = run_id
        self.by = by
        self.owner_file = os.path.join(self.path, "owner")
        self.held = False
        self.taken_over = None

    @staticmethod
    def holder_alive(owner, now):
        """Whether the run recorded in ``owner`` still holds the lock: its process runs, or, for a
        kept lock (no process), it has not expired."""
        if owner.get("pid"):
            return process_identity(owner["pid"]) == owner.get("process")
        return int(owner.get("expires", 0)) > now

    def acquire(self):
        parent = os.path.dirname(self.path) or "/"
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        check_private_dir(parent)
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
                if owner.get("run_id") != self.run_id and self.holder_alive(owner, now):
                    alive = (
                        "process %s" % owner["pid"] if owner.get("pid") else "kept until %s" % iso(owner.get("expires"))
                    )
                    raise LockHeld(
                        "%s holds %s (run %s, started %s, %s); wait for it, or remove the directory if "
                        "that run is no longer going on"
                        % (owner.get("by") or "another k3s recovery", self.path, owner.get("run_id"),
                           iso(owner.get("started")), alive),
                        owner,
                    ) from None  # fmt: skip
                if owner.get("run_id") != self.run_id:
                    self.taken_over = owner
                shutil.rmtree(self.path, ignore_errors=True)
                os.mkdir(self.path, 0o700)
            owner = dict(run_id=self.run_id, started=now, by=self.by, pid=os.getpid(),
                         process=process_identity(os.getpid()))  # fmt: skip
            self._write(owner)
        self.held = True
        return owner

    def keep(self, ttl):
        """Leave the lock held after this process exits, for ``ttl`` seconds at most, until a later
        run with the same run_id takes it over (site.yml's restart handler after its config.yaml
        write). A play that stops in between blocks others for ``ttl`` only."""
        owner = read_json(self.owner_file)
        if not self.held or owner.get("run_id") != self.run_id:
            return None
        owner.update(pid=None, process=None, expires=int(time.time()) + int(ttl))
        self._write(owner)
        self.held = False
        return owner

    def _write(self, owner):
        scratch = self.owner_file + ".new"
        with open(scratch, "w") as handle:
            json.dump(owner, handle)
        os.rename(scratch, self.owner_file)

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


# Room kept free on the backup's filesystem beyond the copy itself: a backup root on the
# filesystem of /var/lib/rancher is k3s's too, and k3s starts again onto it right after.
FREE_SPACE_MARGIN = 256 * 1024 * 1024


def tree_size(path):
    """Bytes a copy of ``path`` (file or tree; symlinks are copied as links) takes."""
    if os.path.islink(path) or not os.path.exists(path):
        return 0
    if not os.path.isdir(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                try:
                    total += os.path.getsize(full)
                except OSError:
                    pass
    return total


def check_free_space(root, paths, margin=FREE_SPACE_MARGIN):
    """Before anything is copied or stopped: the backup of ``paths`` fits under ``root`` with
    ``margin`` to spare. Returns {needed, free}; raises BackupError naming the root and the sizes
    (a copy that fills the disk fails half-way and leaves k3s starting onto a full disk)."""
    probe = root
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe) or "/"
    stats = os.statvfs(probe)
    free = stats.f_bavail * stats.f_frsize
    estimate = sum(tree_size(p) for p in paths)
    needed = estimate + margin
    if needed > free:
        raise BackupError(
            "not enough free space for the backup in %s (filesystem of %s): it needs about %d MiB (%d MiB to copy "
            "plus %d MiB kept free), %d MiB are free. Nothing was stopped or deleted; free space there or set "
            "k3s_recover_backup_root to another filesystem"
            % (root, probe, needed // 2**20, estimate // 2**20, margin // 2**20, free // 2**20)
        )
    return dict(needed=needed, free=free, estimate=estimate)


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


# How many names claim_backup_dir tries beside the wanted one (<stamp>-2 ... ) before it gives up.
CLAIM_ATTEMPTS = 1000


def backup_name_key(name):
    """Sort key of a backup directory name: its UTC stamp, then the number claim_backup_dir gave a
    later backup of the same second (the name without a suffix is the first)."""
    match = BACKUP_NAME.match(name)
    if not match:
        return (name, 0)
    return (match.group(1), int(match.group(2) or 1))


def claim_backup_dir(backup_dir):
    """Create a new backup directory atomically (``os.mkdir``, which fails when the name is taken)
    and return its path: ``backup_dir`` when that name is free, else the first free
    ``<stamp>-2``, ``<stamp>-3``... beside it, so two runs of the same second never share one. The
    backup root is created too; both are 0700."""
    backup_dir = backup_dir.rstrip("/")
    root = os.path.dirname(backup_dir)
    if not os.path.isdir(root):
        os.makedirs(root, 0o700)
    os.chmod(root, 0o700)
    base = os.path.basename(backup_dir)
    match = BACKUP_NAME.match(base)
    stem, first = (match.group(1), int(match.group(2) or 1)) if match else (base, 1)
    for number in range(first, first + CLAIM_ATTEMPTS):
        path = os.path.join(root, stem if number == 1 else "%s-%d" % (stem, number))
        try:
            os.mkdir(path, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            continue
        os.chmod(path, 0o700)
        return path
    raise BackupError("no free backup directory beside %s after %d names" % (backup_dir, CLAIM_ATTEMPTS))


def own_backup_dir(backup_dir):
    """The directory create_backup writes into: ``backup_dir`` when it is this run's (claimed or
    prepared by the caller, who may have put the etcd snapshot or the SQLite online copy in it:
    there is no manifest yet), else a new one from claim_backup_dir. A directory with a manifest
    holds a finished backup (another run's, named in the same second) and is never written into."""
    backup_dir = backup_dir.rstrip("/")
    if os.path.isdir(backup_dir) and not os.path.lexists(os.path.join(backup_dir, MANIFEST)):
        return backup_dir
    return claim_backup_dir(backup_dir)


def next_sequence(root):
    """One more than the highest ``sequence`` in the manifests under ``root``: the order backups
    were taken in, whatever the clock said (a clock set back names a newer backup older)."""
    highest = 0
    for name in backup_names(root):
        sequence = read_json(os.path.join(root, name, MANIFEST)).get("sequence")
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            highest = max(highest, sequence)
    return highest + 1


def backup_contents(backup_dir, datastore, db_dir):
    """What the datastore in a backup holds, for retention: live objects per resource (kine keys
    /registry/<resource>/..., datastore.py ``sqlite_object_counts``), counted on a scratch copy of
    the backup's state.db (opening the copy itself would replay its -wal into it). An etcd
    snapshot cannot be read offline: its ``counts`` are None, and retention goes by time and size."""
    if datastore != "sqlite":
        return {"counts": None, "why": "%s datastore: its objects are not counted offline" % datastore}
    state = os.path.join(backup_path(backup_dir, db_dir), "state.db")
    if not os.path.isfile(state):
        return {"counts": None, "why": "no state.db in the backup"}
    scratch = tempfile.mkdtemp(prefix="k3s-recover-count-")
    try:
        for suffix in ("", "-wal", "-shm"):
            if os.path.isfile(state + suffix):
                shutil.copy2(state + suffix, os.path.join(scratch, "state.db" + suffix))
        counts, error = sqlite_object_counts(os.path.join(scratch, "state.db"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if error:
        return {"counts": None, "why": error}
    return {"counts": counts, "objects": sum(counts.values())}


def write_manifest(backup_dir, manifest):
    tmp = os.path.join(backup_dir, MANIFEST + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, os.path.join(backup_dir, MANIFEST))


def create_backup(
    backup_dir, paths, *, datastore, db_dir, required=(), required_nonempty=(), meta=None, keep=0, keep_days=None
):
    """Copy ``paths`` (files or directories) into ``backup_dir``, write the manifest, verify the
    copy, and only then prune older backups (``prune``: ``keep`` newest, ``keep_days``). Raises
    BackupError when anything required is missing or the copy does not verify; returns the
    verification result with the directory really used (``backup_dir``: a sibling
    ``<stamp>-2`` when another run's backup already has the name, ``own_backup_dir``), the
    ``contents`` counted, and ``retention`` (per backup: kept or pruned, and why)."""
    try:
        backup_dir = own_backup_dir(backup_dir)
    except OSError as exc:
        raise BackupError("cannot create the backup directory %s: %s" % (backup_dir, exc)) from exc
    root = os.path.dirname(backup_dir)
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
            # For retention (plan_retention): the order taken in, and what the datastore held.
            "sequence": next_sequence(root),
            "contents": backup_contents(backup_dir, datastore, db_dir),
        }
        write_manifest(backup_dir, manifest)
        write_restore_note(backup_dir, manifest)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError("backup into %s failed: %s" % (backup_dir, exc)) from exc
    result = verify(backup_dir)
    result.update(backup_dir=backup_dir, skipped=skipped, pruned=[], contents=manifest["contents"])
    if result["errors"]:
        raise BackupError("backup %s did not verify: %s" % (backup_dir, "; ".join(result["errors"])))
    # A backup that verified once and no longer does was damaged since: retention keeps it as it
    # would keep it intact. One that never verified stopped its run before anything was deleted.
    manifest["verified"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        write_manifest(backup_dir, manifest)
    except OSError as exc:
        raise BackupError("backup into %s failed: %s" % (backup_dir, exc)) from exc
    if keep:
        # Only a verified backup may push an older one out.
        plan = plan_retention(root, backup_dir, int(keep), KEEP_DAYS if keep_days is None else int(keep_days))
        result["pruned"] = remove_pruned(root, plan)
        result["retention"] = dict((d["name"], dict(keep=d["keep"], why=d["why"])) for d in plan)
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
            # config.yaml and the kubeconfigs: the one atomic writer (never a half-written file
            # k3s or a worker could read), keeping the saved copy's owner.
            with open(saved, "rb") as handle:
                saved_stat = os.stat(saved)
                atomic_write(target, handle.read(), saved_stat.st_mode & 0o7777, saved_stat.st_uid, saved_stat.st_gid)
        else:
            continue
        restore_modes(manifest, target)
        restored.append(target)
    if not restored:
        raise BackupError("backup %s holds none of %s" % (backup_dir, ", ".join(targets)))
    # The restored trees (server/db, server/tls) on disk before k3s starts on them.
    os.sync()
    return restored


def restore_modes(manifest, target):
    for entry in manifest["files"].values():
        source = entry.get("source", "")
        if (source == target or source.startswith(target.rstrip("/") + "/")) and os.path.exists(source):
            os.chmod(source, int(entry["mode"], 8))


# ------------------------------------------------------------------------------------ prune


# Retention: which backups ``prune`` keeps (README "Restore points"; tests/unit/plugins/module_utils/
# k3s/test_retention.py walks it over a table of host events and over generated histories).

# Days a backup taken before a wipe is kept whatever it holds (k3s_recover_keep_days).
KEEP_DAYS = 7
DAY = 86400
# Resources the cluster rewrites on its own all the time: no reason to keep or to drop a backup.
VOLATILE_RESOURCES = frozenset(("events", "leases", "masterleases"))
PRE_WIPE = "pre-wipe"


def backup_names(root):
    """The backup directories under ``root`` that have a manifest, oldest name first (UTC stamp,
    then the same-second suffix: ``backup_name_key``)."""
    if not os.path.isdir(root):
        return []
    return sorted(
        (n for n in os.listdir(root) if BACKUP_NAME.match(n) and os.path.isfile(os.path.join(root, n, MANIFEST))),
        key=backup_name_key,
    )


def backup_kind(meta):
    """``pre-wipe`` (a recovery took it before it deleted server/db and server/tls, strategy wipe),
    ``scheduled``, ``pre-reset`` or ``other``."""
    if meta.get("strategy") == "wipe":
        return PRE_WIPE
    if meta.get("kind") == "scheduled":
        return "scheduled"
    return "pre-%s" % meta["strategy"] if meta.get("strategy") else "other"


def stamp_epoch(text, form):
    try:
        moment = datetime.datetime.strptime(text, form)
    except (TypeError, ValueError):
        return None
    return int(moment.replace(tzinfo=datetime.timezone.utc).timestamp())


def describe_backup(root, name):
    """A backup as ``retention_plan`` sees it, from its manifest: ``sequence`` (None before this
    version), ``created`` (epoch; from the name when the manifest has none), ``kind``
    (``backup_kind``), ``counts`` ({resource: live objects}, None when not counted), ``size`` (bytes)
    and ``sealed`` (it verified when it was taken)."""
    manifest = read_json(os.path.join(root, name, MANIFEST))
    manifest = manifest if isinstance(manifest, dict) else {}

    def part(key):
        return manifest.get(key) if isinstance(manifest.get(key), dict) else {}

    sequence = manifest.get("sequence")
    counts = part("contents").get("counts")
    created = stamp_epoch(manifest.get("created"), "%Y-%m-%dT%H:%M:%SZ")
    match = BACKUP_NAME.match(name)
    if created is None and match:
        created = stamp_epoch(match.group(1), "%Y%m%dT%H%M%SZ")
    return dict(
        name=name,
        sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None,
        created=created,
        kind=backup_kind(part("meta")),
        counts=dict((k, v) for k, v in counts.items() if isinstance(v, int)) if isinstance(counts, dict) else None,
        size=sum(e["size"] for e in part("files").values() if isinstance(e, dict) and isinstance(e.get("size"), int)),
        sealed=bool(manifest.get("verified")),
    )


def order_backups(backups):
    """Oldest first by ``sequence``, the order they were taken in whatever the clock said; one
    without a sequence (an older version's, or its manifest damaged) right after the backup before
    it by name."""
    keyed, last = [], 0
    for backup in sorted(backups, key=lambda b: backup_name_key(b["name"])):
        if backup.get("sequence") is not None:
            last = backup["sequence"]
        keyed.append(((last, 0 if backup.get("sequence") is not None else 1, backup_name_key(backup["name"])), backup))
    return [backup for _key, backup in sorted(keyed, key=lambda item: item[0])]


def covers(newer, older):
    """Whether the counts ``newer`` hold at least as many objects as ``older`` of every resource
    (the volatile ones aside)."""
    return all(newer.get(r, 0) >= n for r, n in older.items() if r not in VOLATILE_RESOURCES)


def _listing(items, most=4):
    items = list(items)
    shown = ", ".join(items[:most])
    return shown + (" and %d more" % (len(items) - most) if len(items) > most else "")


def _ago(age):
    if age is None:
        return "at an unknown time"
    if age < 0:
        return "in the future by the clock now (it was set back since)"
    if age < DAY:
        return "%d hours ago" % (age // 3600)
    return "%d days ago" % (age // DAY)


def newest_verified(backups, verifies):
    """The newest of ``backups`` (``describe_backup`` records) for which ``verifies(record)`` is
    true, in the order they were taken (``order_backups``), or None; ``verifies`` is asked newest
    first and no further than the first that verifies (a verification reads every file). What
    retention always keeps and what the host status reports."""
    return next((b for b in reversed(order_backups(backups)) if verifies(b)), None)


def retention_plan(backups, *, current, now, keep_count, keep_days, verifies):
    """Which backups to keep and why, oldest first: [{name, keep, why}]. No I/O: ``backups`` are
    ``describe_backup`` records, ``verifies(name)`` says whether one verifies now (asked lazily,
    once per backup; the one just taken, ``current``, verified already).

    Kept: the one just taken; the newest ``keep_count``; the newest that verifies; for every
    resource, the newest verified backup holding the most of it; every backup taken before a wipe
    (that verified when taken) for ``keep_days``, and after that until a newer verified backup
    that is kept holds at least as many objects of every resource (it "supersedes" it: a burst of
    wipes of an emptied cluster never pushes out the last backup of the full one); of those whose
    objects were not counted (etcd), the newest and the largest. Everything else is pruned."""
    ordered = order_backups(backups)
    reasons = dict((b["name"], []) for b in ordered)
    dropped = {}
    checked = {}

    def ok(backup):
        name = backup["name"]
        if name not in checked:
            checked[name] = name == current or bool(verifies(name))
        return checked[name]

    if current in reasons:
        reasons[current].append("the backup just taken")
    if keep_count > 0:
        for backup in ordered[-keep_count:]:
            reasons[backup["name"]].append("one of the newest %d (k3s_recover_keep_backups)" % keep_count)
    newest = newest_verified(ordered, ok)
    if newest is not None:
        reasons[newest["name"]].append("the newest backup that verifies")

    held = {}
    for position, backup in enumerate(ordered):
        for resource, count in (backup["counts"] or {}).items():
            if resource not in VOLATILE_RESOURCES and count > 0:
                held.setdefault(resource, []).append((count, position, backup))
    most = {}
    for resource in sorted(held):
        for count, _position, backup in sorted(held[resource], key=lambda item: item[:2], reverse=True):
            if ok(backup):
                most.setdefault(backup["name"], []).append("%s (%d)" % (resource, count))
                break
    for name, items in most.items():
        reasons[name].append("the newest verified backup holding the most %s" % _listing(items))

    # Taken before a wipe, objects not counted (etcd, or an older version's backup): the size stands in.
    uncounted = [(b["size"], i, b) for i, b in enumerate(ordered) if b["kind"] == PRE_WIPE and b["counts"] is None]
    bysize = [b for _size, _position, b in sorted(uncounted, key=lambda item: item[:2], reverse=True)]
    for label, candidates in (("largest", bysize), ("newest", [b for _s, _p, b in reversed(uncounted)])):
        found = next((b for b in candidates if b["sealed"] or ok(b)), None)
        if found is not None:
            reasons[found["name"]].append(
                "the %s backup taken before a wipe whose objects were not counted (%d MiB)"
                % (label, found["size"] // 2**20)
            )

    # Newest first: a backup is superseded only by a newer one that is kept.
    for position in range(len(ordered) - 1, -1, -1):
        backup = ordered[position]
        name = backup["name"]
        if backup["kind"] != PRE_WIPE:
            continue
        if not (backup["sealed"] or ok(backup)):
            dropped[name] = "taken before a wipe, but it never verified (its run deleted nothing)"
            continue
        age = None if backup["created"] is None else now - backup["created"]
        if keep_days > 0 and (age is None or age < keep_days * DAY):
            reasons[name].append("taken before a wipe %s, within k3s_recover_keep_days (%d)" % (_ago(age), keep_days))
            continue
        if backup["counts"] is None:
            dropped[name] = (
                "taken before a wipe %s; its objects were not counted, and it is neither the newest nor the largest "
                "such backup" % _ago(age)
            )
            continue
        newer = [b for b in ordered[position + 1 :] if reasons[b["name"]] and b["counts"] is not None]
        holder = next((b for b in reversed(newer) if covers(b["counts"], backup["counts"]) and ok(b)), None)
        if holder is not None:
            dropped[name] = (
                "superseded by %s, newer, verified and kept, which holds at least as many objects of every resource"
                % holder["name"]
            )
            continue
        what = "no newer backup kept was counted"
        if newer:
            there = newer[-1]["counts"]
            short = [
                "%s %d < %d" % (r, there.get(r, 0), n)
                for r, n in sorted(backup["counts"].items())
                if r not in VOLATILE_RESOURCES and there.get(r, 0) < n
            ]
            what = "the newest, %s, holds fewer %s" % (newer[-1]["name"], _listing(short)) if short else "none verifies"
        reasons[name].append("taken before a wipe, and no newer backup kept holds as many objects (%s)" % what)

    plan = []
    for backup in ordered:
        name = backup["name"]
        if reasons[name]:
            plan.append(dict(name=name, keep=True, why="; ".join(reasons[name])))
        else:
            why = dropped.get(name) or (
                "%s backup, not among the newest %d, not the newest that verifies, not the newest verified holding "
                "the most of any resource" % (backup["kind"], keep_count)
            )
            plan.append(dict(name=name, keep=False, why=why))
    return plan


def plan_retention(root, current, keep_count, keep_days=KEEP_DAYS, *, now=None, names=None):
    """``retention_plan`` over the backups under ``root`` (``names``, default all), ``current``
    being the directory just taken."""
    names = backup_names(root) if names is None else list(names)
    return retention_plan(
        [describe_backup(root, name) for name in names],
        current=os.path.basename(current.rstrip("/")),
        now=time.time() if now is None else now,
        keep_count=int(keep_count),
        keep_days=int(keep_days),
        verifies=lambda name: verify(os.path.join(root, name))["ok"],
    )


def remove_pruned(root, plan):
    """Delete the backups ``plan`` does not keep; returns their names."""
    removed = []
    for decision in plan:
        if not decision["keep"]:
            shutil.rmtree(os.path.join(root, decision["name"]))
            removed.append(decision["name"])
    return removed


def protected_backups(root, names, current, keep_days=KEEP_DAYS, now=None):
    """{name: why} of the backups pruning keeps whatever the count (``retention_plan``)."""
    plan = plan_retention(root, current, 0, keep_days, now=now, names=names)
    return dict((d["name"], d["why"]) for d in plan if d["keep"])


def prune(root, keep_count, current, keep_days=KEEP_DAYS, now=None):
    """Remove the backups ``retention_plan`` does not keep; returns the removed names."""
    return remove_pruned(root, plan_retention(root, current, keep_count, keep_days, now=now))


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
