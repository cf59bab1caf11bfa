# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""File work of the k3s_recover role, run on the host by ansible.builtin.script.

One process per step instead of one Ansible task per file keeps the recovery close to the bare
manual sequence in time while doing more (checksums, integrity checks). Every subcommand prints
one JSON object and exits 0 on success, 1 with {"failed": true, "msg": ...} otherwise.

  lock     ACQUIRE a run lock (directory + owner file with expiry; stale locks are taken over)
  unlock   release it if this run holds it
  backup   copy files/directories into a new backup directory, write manifest.json with the
           sha256 of each *source* file as read, then verify the copy (see verify)
  verify   manifest present and non-empty; every file present with its size and sha256; required
           files non-empty; SQLite copies pass PRAGMA integrity_check and hold a kine table
  restore  verify, then put files/directories back from a backup
  prune    keep the newest N backup directories under a root
  set      set top-level scalar keys in a k3s config.yaml, keeping every other line
  wipe     delete paths (server/db, server/tls), then `set`, in one step
Python 3.6+ and the standard library only: it runs on the managed host.
"""

import argparse
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time

MANIFEST = "manifest.json"
FILES = "files"
BACKUP_NAME = re.compile(r"^\d{8}T\d{6}Z$")


class Failure(Exception):
    pass


def emit(result, code=0):
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.exit(code)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup_path(backup_dir, source):
    return os.path.join(backup_dir, FILES, source.lstrip("/"))


# ------------------------------------------------------------------------------------ lock


def cmd_lock(args):
    os.makedirs(os.path.dirname(args.lock) or "/", exist_ok=True)
    with open(args.lock + ".guard", "w") as guard:
        # The guard serialises the check-and-take below between two runs started together.
        fcntl.flock(guard, fcntl.LOCK_EX)
        owner_file = os.path.join(args.lock, "owner")
        now = int(time.time())
        taken_over = None
        try:
            os.mkdir(args.lock, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            owner = read_owner(owner_file)
            if owner.get("run_id") == args.run_id:
                emit({"changed": False, "lock": args.lock, "owner": owner})
            if int(owner.get("expires", 0)) > now:
                raise Failure(
                    "another k3s recovery holds {} (run {}, started {}, expires {}); wait for it, or remove "
                    "the directory if no recovery is running".format(
                        args.lock,
                        owner.get("run_id"),
                        iso(owner.get("started")),
                        iso(owner.get("expires")),
                    )
                ) from None
            taken_over = owner
            shutil.rmtree(args.lock, ignore_errors=True)
            os.mkdir(args.lock, 0o700)
        owner = {"run_id": args.run_id, "started": now, "expires": now + args.ttl, "by": args.by}
        with open(owner_file, "w") as handle:
            json.dump(owner, handle)
    emit({"changed": True, "lock": args.lock, "owner": owner, "stale_lock_taken_over": taken_over})


def cmd_unlock(args):
    owner = read_owner(os.path.join(args.lock, "owner"))
    if owner.get("run_id") != args.run_id:
        emit({"changed": False, "lock": args.lock, "held_by": owner or None})
    shutil.rmtree(args.lock, ignore_errors=True)
    emit({"changed": True, "lock": args.lock})


def read_owner(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def iso(epoch):
    try:
        return datetime.datetime.utcfromtimestamp(int(epoch)).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return "unknown"


# ------------------------------------------------------------------------------------ backup


def copy_file(source, dest, entries, backup_dir):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
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
    entries[os.path.relpath(dest, backup_dir)] = {
        "source": source,
        "sha256": digest.hexdigest(),
        "size": size,
        "mode": "%04o" % (stat.st_mode & 0o7777),
    }


def copy_tree(source, backup_dir, entries, exclude=()):
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if os.path.join(root, d) not in exclude)
        dest_root = backup_path(backup_dir, root)
        os.makedirs(dest_root, exist_ok=True)
        os.chmod(dest_root, os.stat(root).st_mode & 0o7777)
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            copy_file(path, os.path.join(dest_root, name), entries, backup_dir)


def cmd_backup(args):
    spec = json.loads(args.spec)
    backup_dir = spec["backup_dir"]
    root = os.path.dirname(backup_dir.rstrip("/"))
    os.makedirs(root, mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    entries, skipped = {}, []
    try:
        for path in spec.get("paths", []):
            if os.path.isdir(path):
                copy_tree(path, backup_dir, entries, exclude=tuple(spec.get("exclude", [])))
            elif os.path.isfile(path):
                copy_file(path, backup_path(backup_dir, path), entries, backup_dir)
            else:
                skipped.append(path)
        # Files produced straight into the backup directory (the etcd snapshot).
        for path in spec.get("extra_in_backup", []):
            if os.path.isdir(path):
                for rootdir, _dirs, files in os.walk(path):
                    for name in files:
                        full = os.path.join(rootdir, name)
                        entries[os.path.relpath(full, backup_dir)] = {
                            "source": full,
                            "sha256": sha256_file(full),
                            "size": os.path.getsize(full),
                            "mode": "%04o" % (os.stat(full).st_mode & 0o7777),
                        }
        missing_required = [p for p in spec.get("required", []) if p in skipped]
        if missing_required:
            raise Failure("required files are missing on the host: {}".format(", ".join(missing_required)))
        manifest = {
            "version": 1,
            "created": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "datastore": spec.get("datastore"),
            "db_dir": spec.get("db_dir"),
            "meta": spec.get("meta", {}),
            "required": [os.path.relpath(backup_path(backup_dir, p), backup_dir) for p in spec.get("required", [])],
            "required_nonempty_globs": spec.get("required_nonempty_globs", []),
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
        raise Failure(f"backup into {backup_dir} failed: {exc}") from exc
    result = verify(backup_dir)
    result.update({"changed": True, "backup_dir": backup_dir, "skipped": skipped})
    if result["errors"]:
        raise Failure("backup {} did not verify: {}".format(backup_dir, "; ".join(result["errors"])))
    if spec.get("keep"):
        # Only a verified backup may push an older one out.
        result["pruned"] = prune(root, int(spec["keep"]), backup_dir)
    emit(result)


def write_restore_note(backup_dir, manifest):
    with open(os.path.join(backup_dir, "RESTORE.txt"), "w") as handle:
        handle.write(
            "k3s backup taken by integr8scode.provision k3s_recover at {} (datastore: {}).\n"
            "Restore config.yaml, server/db and server/tls and restart k3s:\n"
            "  ansible-playbook playbooks/recover.yml -e k3s_recover_rollback=true \\\n"
            "    -e k3s_recover_rollback_from={} -e k3s_recover_confirm=true\n"
            "By hand: systemctl stop k3s; copy files/<path> back to /<path>; systemctl start k3s.\n"
            "manifest.json lists every file with its sha256.\n".format(
                manifest["created"], manifest["datastore"], backup_dir
            )
        )


# ------------------------------------------------------------------------------------ verify


def verify(backup_dir):
    errors = []
    manifest_path = os.path.join(backup_dir, MANIFEST)
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        return {"ok": False, "errors": [f"manifest {manifest_path} unreadable: {exc}"], "checked": 0}
    files = manifest.get("files") or {}
    if not files:
        errors.append("manifest lists no files")
    for rel, entry in sorted(files.items()):
        path = os.path.join(backup_dir, rel)
        if not os.path.isfile(path):
            errors.append(f"{rel} is missing")
            continue
        size = os.path.getsize(path)
        if size != entry.get("size"):
            errors.append(f"{rel} has {size} bytes, the source had {entry.get('size')}")
            continue
        if sha256_file(path) != entry.get("sha256"):
            errors.append(f"{rel} does not match its sha256")
    for rel in manifest.get("required", []):
        entry = files.get(rel)
        if entry is None:
            errors.append(f"required {rel} is not in the backup")
        elif not entry.get("size"):
            errors.append(f"required {rel} is empty")
    for pattern in manifest.get("required_nonempty_globs", []):
        regex = re.compile(pattern)
        if not any(regex.search(rel) and e.get("size") for rel, e in files.items()):
            errors.append(f"no non-empty file matching {pattern} in the backup")
    integrity = None
    if manifest.get("datastore") == "sqlite" and not errors:
        integrity = sqlite_check(backup_dir, manifest)
        if integrity != "ok":
            errors.append(f"PRAGMA integrity_check on the state.db copy: {integrity}")
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
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if "kine" not in tables:
                    result = "no kine table (not a k3s datastore)"
            return result
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_verify(args):
    result = verify(args.dir)
    result["changed"] = False
    result["backup_dir"] = args.dir
    if not result["ok"]:
        result.update(
            {"failed": True, "msg": "backup {} did not verify: {}".format(args.dir, "; ".join(result["errors"]))}
        )
        emit(result, 1)
    emit(result)


# ------------------------------------------------------------------------------------ restore


def cmd_restore(args):
    result = verify(args.dir)
    if not result["ok"]:
        raise Failure("backup {} did not verify, nothing restored: {}".format(args.dir, "; ".join(result["errors"])))
    with open(os.path.join(args.dir, MANIFEST)) as handle:
        manifest = json.load(handle)
    restored = []
    for target in json.loads(args.targets):
        saved = backup_path(args.dir, target)
        if os.path.isdir(saved):
            if os.path.lexists(target):
                shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
            shutil.copytree(saved, target, symlinks=True)
            restore_owners(manifest, target)
            restored.append(target)
        elif os.path.isfile(saved):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(saved, target)
            restore_owners(manifest, target)
            restored.append(target)
    if not restored:
        raise Failure(f"backup {args.dir} holds none of {args.targets}")
    emit({"changed": True, "restored": restored, "backup_dir": args.dir})


def restore_owners(manifest, target):
    for entry in manifest["files"].values():
        source = entry.get("source", "")
        if source == target or source.startswith(target.rstrip("/") + "/"):
            if os.path.exists(source):
                os.chmod(source, int(entry["mode"], 8))


# ------------------------------------------------------------------------------------ prune


def prune(root, keep_count, current):
    if not os.path.isdir(root):
        return []
    names = sorted(
        n for n in os.listdir(root) if BACKUP_NAME.match(n) and os.path.isfile(os.path.join(root, n, MANIFEST))
    )
    keep = set(names[-keep_count:]) if keep_count > 0 else set()
    keep.add(os.path.basename(current.rstrip("/")))
    removed = []
    for name in names:
        if name not in keep:
            shutil.rmtree(os.path.join(root, name))
            removed.append(name)
    return removed


def cmd_prune(args):
    removed = prune(args.root, args.keep, args.current)
    emit({"changed": bool(removed), "removed": removed})


# ------------------------------------------------------------------------------------ config


def set_keys(text, values):
    """Replace or append top-level `key: value` lines; a block value (list) is replaced whole."""
    lines = text.splitlines()
    out, i, seen = [], 0, set()
    while i < len(lines):
        line = lines[i]
        match = re.match(r"^([A-Za-z0-9_.-]+|\"[^\"]+\"|'[^']+')\s*:", line)
        key = match.group(1).strip("'\"") if match else None
        if key in values:
            seen.add(key)
            out.append(f"{key}: {values[key]}")
            i += 1
            # Drop the old block value (indented lines or list items that follow).
            while i < len(lines) and (lines[i].startswith((" ", "\t", "- ")) or lines[i].strip() == "-"):
                i += 1
            continue
        out.append(line)
        i += 1
    for key, value in values.items():
        if key not in seen:
            out.append(f"{key}: {value}")
    return "\n".join(out) + "\n"


def cmd_wipe(args):
    """Delete the given paths (server/db, server/tls, the stale k3s.yaml), then set config keys."""
    removed = []
    for path in args.remove:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
            removed.append(path)
        elif os.path.lexists(path):
            os.remove(path)
            removed.append(path)
    args.removed = removed
    cmd_set(args)


def cmd_set(args):
    values = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Failure(f"--set expects key=value, got {item!r}")
        values[key] = value
    with open(args.file) as handle:
        before = handle.read()
    after = set_keys(before, values)
    removed = getattr(args, "removed", [])
    if after == before:
        emit({"changed": bool(removed), "file": args.file, "removed": removed})
    stat = os.stat(args.file)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(args.file), prefix=".config.yaml.")
    with os.fdopen(fd, "w") as handle:
        handle.write(after)
    os.chmod(tmp, stat.st_mode & 0o7777)
    os.chown(tmp, stat.st_uid, stat.st_gid)
    os.rename(tmp, args.file)
    emit({"changed": True, "file": args.file, "set": values, "removed": removed})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("lock")
    p.add_argument("--lock", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--ttl", type=int, default=3600)
    p.add_argument("--by", default="")
    p = sub.add_parser("unlock")
    p.add_argument("--lock", required=True)
    p.add_argument("--run-id", required=True)
    p = sub.add_parser("backup")
    p.add_argument("--spec", required=True)
    p = sub.add_parser("verify")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("restore")
    p.add_argument("--dir", required=True)
    p.add_argument("--targets", required=True)
    p = sub.add_parser("prune")
    p.add_argument("--root", required=True)
    p.add_argument("--keep", type=int, required=True)
    p.add_argument("--current", default="")
    p = sub.add_parser("set")
    p.add_argument("--file", required=True)
    p.add_argument("--set", action="append", required=True)
    p = sub.add_parser("wipe")
    p.add_argument("--remove", action="append", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--set", action="append", required=True)
    args = parser.parse_args(argv)
    handlers = {
        "lock": cmd_lock,
        "unlock": cmd_unlock,
        "backup": cmd_backup,
        "verify": cmd_verify,
        "restore": cmd_restore,
        "prune": cmd_prune,
        "set": cmd_set,
        "wipe": cmd_wipe,
    }
    if args.command not in handlers:
        parser.error("a subcommand is required")
    try:
        handlers[args.command](args)
    except Failure as exc:
        emit({"failed": True, "msg": str(exc)}, 1)
    except (OSError, sqlite3.Error, ValueError) as exc:
        emit({"failed": True, "msg": f"{args.command} failed: {exc}"}, 1)


if __name__ == "__main__":
    main()
