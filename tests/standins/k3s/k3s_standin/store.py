"""k3s stand-in: store (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading

from k3s_standin.protobuf import decode_node, encode_node

# The apiserver stores nodes under /registry/minions as Kubernetes protobuf (kine #36).
NODES = "/registry/minions/"


def _load(name: str, value: bytes):
    return decode_node(bytes(value)) if name.startswith(NODES) else json.loads(value)


def _dump(name: str, obj) -> bytes:
    return encode_node(obj) if name.startswith(NODES) else json.dumps(obj, sort_keys=True).encode()


# ------------------------------------------------------------------ datastore
class Store:
    """kine-like append-only table; the latest undeleted row of a name is the object."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER,"
            " deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB,"
            " old_value BLOB)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)")

    def _latest(self, name: str):
        return self.db.execute(
            "SELECT id, deleted, create_revision, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)
        ).fetchone()

    def get(self, name: str) -> dict | None:
        with self.lock:
            row = self._latest(name)
        if not row or row[1]:
            return None
        obj = _load(name, row[3])
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            obj["metadata"]["resourceVersion"] = str(row[0])
        return obj

    def list(self, prefix: str) -> list[dict]:
        with self.lock:
            rows = self.db.execute(
                "SELECT k.id, k.name, k.value FROM kine k JOIN (SELECT MAX(id) AS mid FROM kine WHERE name LIKE ?"
                " GROUP BY name) m ON k.id = m.mid WHERE k.deleted = 0 ORDER BY k.name",
                (prefix.replace("%", r"\%") + "%",),
            ).fetchall()
        out = []
        for rid, name, value in rows:
            obj = _load(name, value)
            obj["metadata"]["resourceVersion"] = str(rid)
            out.append(obj)
        return out

    def put(self, name: str, obj) -> str:
        with self.lock:
            prev = self._latest(name)
            created = 0 if prev and not prev[1] else 1
            create_rev = prev[2] if prev and not prev[1] else 0
            value = _dump(name, obj)
            cur = self.db.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
                " VALUES (?, ?, 0, ?, ?, 0, ?, ?)",
                (name, created, create_rev, prev[0] if prev else 0, value, prev[3] if prev else None),
            )
            rid = cur.lastrowid
            if created:
                self.db.execute("UPDATE kine SET create_revision = ? WHERE id = ?", (rid, rid))
            return str(rid)

    def delete(self, name: str) -> bool:
        with self.lock:
            prev = self._latest(name)
            if not prev or prev[1]:
                return False
            self.db.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
                " VALUES (?, 0, 1, ?, ?, 0, ?, ?)",
                (name, prev[2], prev[0], prev[3], prev[3]),
            )
            return True

    def backup(self, dest: str) -> None:
        with self.lock:
            target = sqlite3.connect(dest)
            with target:
                self.db.backup(target)
            target.close()

    def close(self) -> None:
        with self.lock:
            self.db.close()


def db_paths(data_dir: str) -> tuple[str, str]:
    db = os.path.join(data_dir, "server", "db")
    return os.path.join(db, "state.db"), os.path.join(db, "etcd", "member", "snap", "db")


def datastore_kind(data_dir: str, cluster_init: bool) -> str:
    """k3s keeps using etcd once server/db/etcd exists, even without cluster-init."""
    etcd_db = db_paths(data_dir)[1]
    if cluster_init or os.path.exists(etcd_db):
        return "etcd"
    return "sqlite"
