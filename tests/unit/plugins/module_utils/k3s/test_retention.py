"""Retention of the recovery's backups (module_utils/k3s/backup.py ``retention_plan``), row by row
over the host events that decide it, over generated histories (Hypothesis), and on real backup
directories: the names of two backups taken in one second, the objects counted into the
manifest, and the January/June scenario of issue 27.

Each row is a history of backups as their manifests describe them (taken before a wipe, scheduled,
before a reset; what the datastore held, per resource; whether it verified when taken and now)
and the kept set. No row keeps fewer than the data a wipe destroyed: a backup taken before a wipe
goes only once a newer, verified, kept backup holds at least as many objects of every resource.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import backup as k3s_backup  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (  # noqa: E402
    BACKUP_NAME,
    DAY,
    KEEP_DAYS,
    PRE_WIPE,
    VOLATILE_RESOURCES,
    backup_names,
    claim_backup_dir,
    covers,
    create_backup,
    order_backups,
    prepare_backup_dir,
    retention_plan,
    verify,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import (  # noqa: E402
    registry_resource,
    sqlite_object_counts,
)

HOUR = 3600


def epoch(text):
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp())


def stamp(at):
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# What the datastore holds (live objects per resource, as sqlite_object_counts counts them).
DEFAULTS = {"namespaces": 4, "serviceaccounts": 5, "configmaps": 3, "secrets": 1, "minions": 1}
# A cluster just rebuilt by a wipe: k3s's defaults and the app's cert-generator objects.
EMPTY = dict(DEFAULTS, secrets=2, events=4, leases=3)
JANUARY = dict(DEFAULTS, namespaces=6, deployments=4, secrets=9, configmaps=8, pods=5, events=30, leases=5)
JUNE = dict(DEFAULTS, namespaces=9, deployments=12, secrets=25, configmaps=20, pods=15, events=60, leases=6)


class History:
    """Backups in the order they were taken: each named by the clock of its moment (a second
    taken name gets claim_backup_dir's suffix) and numbered like create_backup's ``sequence``."""

    def __init__(self):
        self.backups, self.label, self.ok = [], {}, {}

    def take(self, label, at, kind=PRE_WIPE, counts=(), *, verified=True, sealed=None, size=40, legacy=False):
        # counts: () (the default) an empty cluster, None nothing counted (etcd, older versions).
        counts = EMPTY if counts == () else counts
        name, number = stamp(at), 1
        while name in self.ok:
            number += 1
            name = f"{stamp(at)}-{number}"
        self.backups.append(
            dict(
                name=name,
                sequence=None if legacy else len([b for b in self.backups if b["sequence"] is not None]) + 1,
                created=at,
                kind=kind,
                counts=None if counts is None else dict(counts),
                size=size * 2**20,
                sealed=(verified and not legacy) if sealed is None else sealed,
            )
        )
        self.label[label], self.ok[name] = name, verified
        return self

    def plan(self, now, keep_count=2, keep_days=KEEP_DAYS, current=None):
        current = self.label[current] if current else self.backups[-1]["name"]
        # The plan orders them itself: hand them over shuffled.
        backups = self.backups[1::2] + self.backups[0::2]
        return retention_plan(backups, current=current, now=now, keep_count=keep_count, keep_days=keep_days,
                              verifies=self.ok.__getitem__)  # fmt: skip

    def kept(self, plan):
        names = dict((v, k) for k, v in self.label.items())
        return {names[d["name"]] for d in plan if d["keep"]}


def january_june():
    """A recovery in January (A), months of work, then on 1 June a flapping network: six wipes in
    two hours. B holds the work; C..G each the cluster a wipe had just emptied."""
    history = History().take("A", epoch("2026-01-12 09:00"), counts=JANUARY)
    history.take("B", epoch("2026-06-01 10:00"), counts=JUNE)
    for i, label in enumerate("CDEFG"):
        history.take(label, epoch("2026-06-01 10:20") + i * 20 * 60, counts=EMPTY)
    return history


def rows():
    r = {}
    r["january recovery, june burst of wipes, pruned the same day"] = (
        january_june(), epoch("2026-06-01 12:00"), 2, KEEP_DAYS, set("ABCDEFG") - {"A"},
    )  # fmt: skip
    later = january_june().take("H", epoch("2026-07-01 03:00"), kind="scheduled", counts=EMPTY)
    r["january recovery, june burst of wipes, a month later"] = (
        later, epoch("2026-07-01 03:00"), 2, KEEP_DAYS, {"B", "G", "H"}
    )  # fmt: skip
    r["june burst, no time window: only what the datastore held counts"] = (
        january_june(), epoch("2026-06-01 12:00"), 2, 0, {"B", "F", "G"},
    )  # fmt: skip

    daily = History()
    for day in range(1, 11):
        daily.take(f"d{day}", epoch("2026-03-01 02:00") + day * DAY, "scheduled", dict(JANUARY, pods=5 + day))
    r["daily scheduled backups of a growing cluster"] = (
        daily, epoch("2026-03-11 02:00"), 5, KEEP_DAYS, {f"d{d}" for d in range(6, 11)}
    )  # fmt: skip

    deleted = History()
    for day in range(1, 13):
        deleted.take(f"d{day}", epoch("2026-03-01 02:00") + day * DAY, "scheduled",
                     dict(JUNE, deployments=12 if day <= 6 else 4))  # fmt: skip
    r["a namespace deleted by hand between two daily backups"] = (
        deleted, epoch("2026-03-13 02:00"), 5, KEEP_DAYS, {"d6"} | {f"d{d}" for d in range(8, 13)},
    )  # fmt: skip

    fresh = History().take("w1", epoch("2026-02-01 08:00")).take("w2", epoch("2026-02-20 08:00"))
    fresh.take("w3", epoch("2026-03-15 08:00"))
    r["wipes of a cluster that was empty anyway"] = (fresh, epoch("2026-03-15 08:00"), 2, KEEP_DAYS, {"w2", "w3"})

    failed = History().take("P1", epoch("2026-04-01 10:00"), counts=JUNE, verified=False)
    failed.take("P2", epoch("2026-04-01 10:01"), counts=JUNE)
    for day in (2, 3, 4):
        failed.take(f"s{day}", epoch("2026-04-01 03:00") + day * DAY, "scheduled", EMPTY)
    r["a backup that did not verify (its run deleted nothing), then the retry"] = (
        failed, epoch("2026-05-01 03:00"), 2, KEEP_DAYS, {"P2", "s3", "s4"},
    )  # fmt: skip

    never = History().take("X", epoch("2026-01-10 10:00"), counts=JANUARY)
    never.take("F", epoch("2026-02-10 03:00"), "scheduled", JUNE, verified=False)
    never.take("C", epoch("2026-02-11 03:00"), "scheduled", EMPTY)
    r["a failed backup never supersedes one taken before a wipe"] = (
        never, epoch("2026-02-11 03:00"), 2, KEEP_DAYS, {"X", "F", "C"}
    )  # fmt: skip

    damaged = History().take("D", epoch("2026-06-01 10:00"), counts=JUNE, verified=False, sealed=True)
    damaged.take("E", epoch("2026-06-01 10:30")).take("S", epoch("2026-07-01 03:00"), "scheduled", EMPTY)
    r["a backup taken before a wipe and damaged since"] = (
        damaged, epoch("2026-07-01 03:00"), 1, KEEP_DAYS, {"D", "S"}
    )  # fmt: skip

    # The clock is set back between O and P (a dead RTC at boot, before NTP): P's name is years older
    # than O's, yet P was taken after O and holds the newer cluster.
    clock = History().take("O", epoch("2026-05-01 10:00"), counts=JUNE)
    clock.take("P", epoch("2000-01-01 00:05"), counts=JUNE)
    clock.take("Q", epoch("2000-01-01 00:30")).take("R", epoch("2026-06-01 10:00"), "scheduled", EMPTY)
    r["the clock set back: the order taken in decides, not the names"] = (
        clock, epoch("2026-06-01 10:00"), 2, KEEP_DAYS, {"P", "Q", "R"},
    )  # fmt: skip
    r["the clock set back, pruned while it is still wrong"] = (
        History().take("O", epoch("2026-05-01 10:00"), counts=JUNE).take("P", epoch("2000-01-01 00:05"), counts=JUNE)
        .take("Q", epoch("2000-01-01 00:30")), epoch("2000-01-01 00:31"), 1, KEEP_DAYS, {"O", "P", "Q"},
    )  # fmt: skip

    second = History().take("S", epoch("2026-06-01 03:00"), "scheduled", JUNE)
    second.take("W", epoch("2026-06-01 03:00"), counts=JUNE)
    for i in range(3):
        second.take(f"e{i}", epoch("2026-06-01 04:00") + i * HOUR)
    r["a scheduled backup and a recovery in the same second"] = (
        second, epoch("2026-07-01 00:00"), 2, KEEP_DAYS, {"W", "e1", "e2"}
    )  # fmt: skip

    etcd = History().take("A", epoch("2026-01-12 09:00"), counts=None, size=30)
    etcd.take("B", epoch("2026-06-01 10:00"), counts=None, size=80)
    for i, label in enumerate("CDEFG"):
        etcd.take(label, epoch("2026-06-01 10:20") + i * 20 * 60, counts=None, size=5)
    etcd.take("H", epoch("2026-07-01 03:00"), "scheduled", None, size=5)
    r["etcd (objects not counted): the largest and the newest taken before a wipe"] = (
        etcd, epoch("2026-07-01 03:00"), 2, KEEP_DAYS, {"B", "G", "H"},
    )  # fmt: skip

    legacy = History()
    for label, size in (("L1", 20), ("L2", 60), ("L3", 10)):
        legacy.take(label, epoch("2026-01-01 10:00") + len(legacy.backups) * DAY, counts=None, size=size, legacy=True)
    legacy.take("N", epoch("2026-02-01 10:00"), "scheduled", JANUARY)
    r["backups of an older version (no sequence, nothing counted)"] = (
        legacy, epoch("2026-02-01 10:00"), 1, KEEP_DAYS, {"L2", "L3", "N"}
    )  # fmt: skip

    window = History()
    for i in range(4):
        window.take(f"w{i}", epoch("2026-06-01 10:00") + i * 20 * 60)
    r["within k3s_recover_keep_days every backup taken before a wipe stays"] = (
        window, epoch("2026-06-03 10:00"), 1, KEEP_DAYS, {"w0", "w1", "w2", "w3"},
    )  # fmt: skip
    r["k3s_recover_keep_days 0: superseded ones go at once"] = (window, epoch("2026-06-03 10:00"), 1, 0, {"w3"})

    noisy = History().take("w1", epoch("2026-06-01 10:00"), counts=dict(EMPTY, pods=3))
    noisy.take("w2", epoch("2026-06-01 11:00"), counts=dict(EMPTY, pods=1))
    noisy.take("w3", epoch("2026-06-01 12:00"), counts=dict(EMPTY, pods=2, events=1, leases=0))
    r["pods that come and go: the one with more stays, events and leases do not count"] = (
        noisy, epoch("2026-06-20 00:00"), 1, KEEP_DAYS, {"w1", "w3"},
    )  # fmt: skip

    reset = History().take("R1", epoch("2026-02-01 10:00"), "pre-reset", JUNE)
    reset.take("R2", epoch("2026-02-02 10:00"), "pre-reset", JUNE).take("R3", epoch("2026-02-03 10:00"), "pre-reset")
    r["backups before a reset (the datastore is kept): the newest and the most of each resource"] = (
        reset, epoch("2026-03-01 00:00"), 1, KEEP_DAYS, {"R2", "R3"},
    )  # fmt: skip
    return r


ROWS = rows()


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
def test_retention_row(row):
    history, now, keep_count, keep_days, expected = ROWS[row]
    plan = history.plan(now, keep_count, keep_days)
    assert history.kept(plan) == expected, "\n".join(f"{d['name']} {d['keep']}: {d['why']}" for d in plan)
    assert [d["name"] for d in plan] == [b["name"] for b in history.backups], "oldest first, in the order taken"


def test_january_june_the_backup_before_the_burst_of_wipes_is_kept():
    """Issue 27: a recovery in January takes A; on 1 June a burst of six wipes starts: B holds the
    work of five months, C..G the cluster each wipe had just emptied. Once the burst is past
    k3s_recover_keep_days (and with no time window at all) B is kept, and it is A that goes:
    B holds at least as many objects of every resource."""
    history = january_june().take("H", epoch("2026-07-01 03:00"), "scheduled", EMPTY)
    for keep_days in (KEEP_DAYS, 0):
        plan = history.plan(epoch("2026-07-01 03:00"), keep_count=2, keep_days=keep_days)
        why = dict((d["name"], d["why"]) for d in plan)
        assert "B" in history.kept(plan) and "A" not in history.kept(plan)
        assert "no newer backup kept holds as many objects" in why[history.label["B"]]
        assert "deployments 0 < 12" in why[history.label["B"]]
        assert why[history.label["A"]].startswith(f"superseded by {history.label['B']}")
    # And five more wipes of the emptied cluster later still.
    for i in range(5):
        history.take(f"x{i}", epoch("2026-07-02 10:00") + i * 20 * 60)
    assert "B" in history.kept(history.plan(epoch("2026-09-01 00:00"), keep_count=2, keep_days=0))


# ------------------------------------------------------------------------------ generated histories

RESOURCES = ("namespaces", "deployments", "secrets", "pods", "events")


@st.composite
def histories(draw):
    history = History()
    at = epoch("2026-01-01 00:00")
    for i in range(draw(st.integers(0, 3))):
        history.take(f"legacy{i}", at - (2000 - i) * DAY, counts=None, size=draw(st.integers(1, 90)), legacy=True,
                     verified=draw(st.booleans()))  # fmt: skip
    for i in range(draw(st.integers(1, 14))):
        # Mostly forward, sometimes the same second, sometimes the clock set back.
        at += draw(st.sampled_from([0, 1, 20 * 60, HOUR, DAY, 3 * DAY, 40 * DAY, -DAY, -30 * DAY]))
        counted = draw(st.integers(0, 9)) > 0
        counts = dict((r, draw(st.integers(0, 6))) for r in RESOURCES) if counted else None
        state = draw(st.sampled_from(["ok"] * 6 + ["failed", "damaged"]))
        history.take(
            f"b{i}", at, draw(st.sampled_from([PRE_WIPE, PRE_WIPE, "scheduled", "pre-reset"])), counts,
            verified=state == "ok", sealed=state != "failed", size=draw(st.integers(1, 90)),
        )  # fmt: skip
    # The backup just taken verified (create_backup prunes only then).
    history.ok[history.backups[-1]["name"]] = True
    history.backups[-1]["sealed"] = True
    now = at + draw(st.sampled_from([0, HOUR, 2 * DAY, 30 * DAY, -DAY]))
    return history, now, draw(st.integers(0, 4)), draw(st.sampled_from([0, 1, KEEP_DAYS, 30]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_retention_properties(case):
    history, now, keep_count, keep_days = case
    asked = []

    def verifies(name):
        asked.append(name)
        return history.ok[name]

    order = history.backups
    current = order[-1]["name"]
    plan = retention_plan(list(reversed(order)), current=current, now=now, keep_count=keep_count,
                          keep_days=keep_days, verifies=verifies)  # fmt: skip
    kept = {d["name"] for d in plan if d["keep"]}
    ok = dict((b["name"], history.ok[b["name"]] or b["name"] == current) for b in order)
    # Every backup decided once, in the order taken; each verified at most once.
    assert [d["name"] for d in plan] == [b["name"] for b in order_backups(order)] == [b["name"] for b in order]
    assert len(asked) == len(set(asked)) and current not in asked
    # The one just taken, the newest keep_count and the newest that verifies.
    assert current in kept
    if keep_count:
        assert {b["name"] for b in order[-keep_count:]} <= kept
    assert next(b["name"] for b in reversed(order) if ok[b["name"]]) in kept
    # For every resource, the newest verified backup holding the most of it.
    verified_counts = [b for b in order if ok[b["name"]] and b["counts"] is not None]
    for resource in RESOURCES:
        if resource in VOLATILE_RESOURCES:
            continue
        top = max([b["counts"].get(resource, 0) for b in verified_counts] or [0])
        if top > 0:
            assert [b for b in verified_counts if b["counts"].get(resource, 0) == top][-1]["name"] in kept
    for position, backup in enumerate(order):
        if backup["kind"] != PRE_WIPE or not (backup["sealed"] or ok[backup["name"]]):
            continue
        name, newer = backup["name"], order[position + 1 :]
        age = now - backup["created"]
        if keep_days and age < keep_days * DAY:
            assert name in kept, "taken before a wipe within keep_days"
        if backup["counts"] is None:
            continue
        coverers = [
            b for b in newer if ok[b["name"]] and b["counts"] is not None and covers(b["counts"], backup["counts"])
        ]
        if not coverers:
            assert name in kept, "a backup taken before a wipe that no newer verified backup supersedes"
        if name not in kept:
            # Its objects are in a newer, verified backup that stays.
            assert any(b["name"] in kept for b in coverers)
    uncounted = [b for b in order if b["kind"] == PRE_WIPE and b["counts"] is None and (b["sealed"] or ok[b["name"]])]
    if uncounted:
        assert uncounted[-1]["name"] in kept
        assert max(uncounted, key=lambda b: (b["size"], order.index(b)))["name"] in kept


# ------------------------------------------------------------------------------ names


def test_backup_names_take_a_suffix_and_sort_by_it():
    assert BACKUP_NAME.match("20260101T000000Z") and BACKUP_NAME.match("20260101T000000Z-12")
    for wrong in ("20260101T000000Z-0", "20260101T000000Z-02", "20260101T000000Z-x", "20260101T000000", "latest"):
        assert not BACKUP_NAME.match(wrong), wrong
    names = ["20260101T000000Z-10", "20260101T000001Z", "20260101T000000Z-2", "20260101T000000Z", "20260101T000000Z-9"]
    assert sorted(names, key=k3s_backup.backup_name_key) == [
        "20260101T000000Z", "20260101T000000Z-2", "20260101T000000Z-9", "20260101T000000Z-10", "20260101T000001Z",
    ]  # fmt: skip


def test_claim_takes_the_next_free_name_and_lists_in_order(tmp_path):
    root = tmp_path / "backups"
    wanted = str(root / "20260101T000000Z")
    claimed = [claim_backup_dir(wanted) for _attempt in range(12)]
    assert [os.path.basename(p) for p in claimed] == ["20260101T000000Z"] + [
        f"20260101T000000Z-{n}" for n in range(2, 13)
    ]
    assert oct(root.stat().st_mode & 0o777) == "0o700" and all(
        oct(os.stat(p).st_mode & 0o777) == "0o700" for p in claimed
    )
    for path in claimed:
        Path(path, "manifest.json").write_text("{}")
    assert backup_names(str(root)) == [os.path.basename(p) for p in claimed]
    # A wanted name that already carries a suffix goes on from it.
    assert claim_backup_dir(str(root / "20260101T000000Z-12")).endswith("20260101T000000Z-13")


def _claim(path):
    return claim_backup_dir(path)


def test_claims_of_one_name_by_processes_at_once_never_share_a_directory(tmp_path):
    wanted = str(tmp_path / "backups" / "20260101T000000Z")
    os.makedirs(os.path.dirname(wanted))
    with ProcessPoolExecutor(max_workers=2) as pool:
        claimed = list(pool.map(_claim, [wanted] * 16))
    assert len(set(claimed)) == 16


OPEN = {}


@pytest.fixture(autouse=True)
def _close_datastores():
    yield
    while OPEN:
        OPEN.popitem()[1].close()


def k3s_tree(tmp_path, objects):
    """A k3s server's files with a WAL-mode kine datastore holding ``objects`` ({key: deleted}),
    each written twice (an update) and the last rows left in the -wal."""
    src = tmp_path / "k3s"
    (src / "server" / "tls").mkdir(parents=True, exist_ok=True)
    (src / "server" / "db").mkdir(parents=True, exist_ok=True)
    (src / "config.yaml").write_text("node-ip: 172.17.0.3\n")
    (src / "server" / "token").write_text("K10abc::server:secret\n")
    (src / "server" / "tls" / "server-ca.crt").write_text("-----BEGIN CERTIFICATE-----\nx\n")
    set_objects(src, objects)
    return src


def set_objects(src, objects):
    """The datastore as a wipe and a rebuild leave it: a new kine table holding ``objects``; its
    connection stays open, as a live k3s's does, so the newest rows stay in the -wal."""
    if src in OPEN:
        OPEN.pop(src).close()
    db = src / "server" / "db" / "state.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, "
                 "deleted INTEGER, value BLOB)")  # fmt: skip
    for key in objects:
        conn.execute("INSERT INTO kine (name, created, deleted, value) VALUES (?, 1, 0, x'01')", (key,))
    conn.commit()
    for key, deleted in objects.items():
        conn.execute("INSERT INTO kine (name, created, deleted, value) VALUES (?, 0, ?, x'02')", (key, int(deleted)))
    conn.commit()
    OPEN[src] = conn


def objects_for(counts):
    objects = {"compact_rev_key": False, "/registry/health": False}
    for resource, count in counts.items():
        for i in range(count):
            objects[f"/registry/{resource}/default/obj{i}"] = False
        objects[f"/registry/{resource}/default/gone"] = True
    return objects


def take(tmp_path, src, name, *, strategy="wipe", keep=2, keep_days=0):
    return create_backup(
        str(tmp_path / "backups" / name),
        [str(src / "config.yaml"), str(src / "server" / "token"), str(src / "server" / "db")],
        datastore="sqlite",
        db_dir=str(src / "server" / "db"),
        required=[str(src / "config.yaml"), str(src / "server" / "db" / "state.db")],
        meta={"run_id": name, "strategy": strategy},
        keep=keep,
        keep_days=keep_days,
    )


def manifest(path):
    return json.loads(Path(path, "manifest.json").read_text())


def test_two_backups_in_the_same_second_get_two_directories_in_order(tmp_path):
    src = k3s_tree(tmp_path, objects_for(JANUARY))
    first = take(tmp_path, src, "20260101T000000Z", keep=0)
    set_objects(src, objects_for(JUNE))
    second = take(tmp_path, src, "20260101T000000Z", keep=0)
    root = tmp_path / "backups"
    assert first["backup_dir"] == str(root / "20260101T000000Z")
    assert second["backup_dir"] == str(root / "20260101T000000Z-2")
    assert (
        f"k3s_recover_rollback_from={second['backup_dir']} "
        in (root / "20260101T000000Z-2" / "RESTORE.txt").read_text()
    )
    assert backup_names(str(root)) == ["20260101T000000Z", "20260101T000000Z-2"]
    assert [manifest(root / n)["sequence"] for n in backup_names(str(root))] == [1, 2]
    assert verify(first["backup_dir"])["ok"] and verify(second["backup_dir"])["ok"]
    assert manifest(first["backup_dir"])["contents"]["counts"]["deployments"] == 4
    assert manifest(second["backup_dir"])["contents"]["counts"]["deployments"] == 12
    # A caller that claims its directory first (the snapshot goes in before the copy) writes there.
    claimed = claim_backup_dir(str(root / "20260101T000000Z"))
    assert claimed == str(root / "20260101T000000Z-3")
    assert take(tmp_path, src, Path(claimed).name, keep=0)["backup_dir"] == claimed
    assert backup_names(str(root))[-1] == "20260101T000000Z-3"


def test_a_prepared_directory_is_the_runs_own_and_a_finished_one_is_never_written_into(tmp_path):
    src = k3s_tree(tmp_path, objects_for(EMPTY))
    wanted = tmp_path / "backups" / "20260101T000000Z"
    prepare_backup_dir(str(wanted))
    (wanted / "etcd-snapshot").mkdir()
    (wanted / "etcd-snapshot" / "recover-node1-1767225600").write_bytes(b"snapshot")
    result = take(tmp_path, src, wanted.name, keep=0)
    assert result["backup_dir"] == str(wanted)
    assert "etcd-snapshot/recover-node1-1767225600" in manifest(wanted)["files"]
    before = {p: p.read_bytes() for p in wanted.rglob("*") if p.is_file() and p.name != "manifest.json"}
    again = take(tmp_path, src, wanted.name, keep=0)
    assert again["backup_dir"] == str(wanted) + "-2"
    assert {p: p.read_bytes() for p in wanted.rglob("*") if p.is_file() and p.name != "manifest.json"} == before
    assert verify(str(wanted))["ok"]


def test_the_manifest_counts_live_objects_per_resource(tmp_path):
    objects = objects_for({"pods": 3, "secrets": 2})
    objects.update({
        "/registry/apiextensions.k8s.io/customresourcedefinitions/addons.k3s.cattle.io": False,
        "/registry/k3s.cattle.io/addons/kube-system/ccm": False,
        "/registry/k3s.cattle.io/addons/kube-system/gone": True,
        "/registry/ranges/serviceips": False,
    })  # fmt: skip
    src = k3s_tree(tmp_path, objects)
    assert (src / "server" / "db" / "state.db-wal").stat().st_size > 0, "rows left in the -wal"
    result = take(tmp_path, src, "20260101T000000Z", keep=0)
    expected = {"pods": 3, "secrets": 2, "apiextensions.k8s.io/customresourcedefinitions": 1,
                "k3s.cattle.io/addons": 1, "ranges": 1}  # fmt: skip
    assert result["contents"] == {"counts": expected, "objects": 8}
    stored = manifest(result["backup_dir"])
    assert stored["contents"]["counts"] == expected and stored["sequence"] == 1 and stored["verified"]
    # Counting used a scratch copy: the backup holds exactly the files of its manifest.
    folder = Path(result["backup_dir"])
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert on_disk == set(stored["files"]) | {"manifest.json", "RESTORE.txt"}


@pytest.mark.parametrize(
    ("key", "resource"),
    [
        ("/registry/pods/default/web-1", "pods"),
        ("/registry/minions/node1", "minions"),
        ("/registry/ranges/serviceips", "ranges"),
        ("/registry/apiregistration.k8s.io/apiservices/v1.apps", "apiregistration.k8s.io/apiservices"),
        ("/registry/k3s.cattle.io/addons/kube-system/ccm", "k3s.cattle.io/addons"),
        ("/registry/health", None),
        ("compact_rev_key", None),
        ("/registry/k3s.cattle.io", None),
    ],
)
def test_registry_resource(key, resource):
    assert registry_resource(key) == resource


def test_counting_what_is_no_kine_datastore_says_so(tmp_path):
    assert sqlite_object_counts(str(tmp_path / "absent.db"))[1].startswith("no datastore at")
    sqlite3.connect(str(tmp_path / "other.db")).close()
    counts, error = sqlite_object_counts(str(tmp_path / "other.db"))
    assert counts == {} and "no such table: kine" in error


def test_january_june_on_real_backups(tmp_path):
    """The January/June scenario with create_backup's own pruning (k3s_recover_keep_backups 2, no
    time window): after the June burst and five more wipes, B is there and verifies."""
    src = k3s_tree(tmp_path, objects_for(JANUARY))
    take(tmp_path, src, "20260112T090000Z")
    set_objects(src, objects_for(JUNE))
    take(tmp_path, src, "20260601T100000Z")
    # The burst's six wipes and five more.
    for i in range(11):
        set_objects(src, objects_for(EMPTY))
        result = take(tmp_path, src, f"20260601T{11 + i:02d}0000Z", keep=2)
    names = backup_names(str(tmp_path / "backups"))
    assert "20260601T100000Z" in names and verify(str(tmp_path / "backups" / "20260601T100000Z"))["ok"]
    assert "20260112T090000Z" not in names, "January's backup is superseded by June's"
    assert len(names) == 3, names
    assert result["retention"]["20260601T100000Z"]["keep"]
    assert "deployments" in result["retention"]["20260601T100000Z"]["why"]


def test_the_newest_verified_backup_stays_when_newer_ones_are_damaged(tmp_path):
    src = k3s_tree(tmp_path, objects_for(EMPTY))
    for name in ("20260101T000001Z", "20260101T000002Z", "20260101T000003Z"):
        take(tmp_path, src, name, strategy="reset", keep=0)
    for name in ("20260101T000002Z", "20260101T000003Z"):
        (tmp_path / "backups" / name / "manifest.json").write_text("{}")
    root = str(tmp_path / "backups")
    # A run that has not written its own backup yet (current is not among them).
    why = k3s_backup.protected_backups(root, backup_names(root), root + "/20260101T000004Z")
    assert set(why) == {"20260101T000001Z"} and "the newest backup that verifies" in why["20260101T000001Z"]
    assert k3s_backup.prune(root, 1, root + "/20260101T000004Z") == ["20260101T000002Z"]


def test_a_damaged_pre_wipe_backup_whose_objects_nothing_newer_holds_is_kept(tmp_path):
    src = k3s_tree(tmp_path, objects_for(JUNE))
    take(tmp_path, src, "20260601T100000Z")
    damaged = tmp_path / "backups" / "20260601T100000Z"
    next(damaged.rglob("config.yaml")).write_text("x")
    assert not verify(str(damaged))["ok"]
    set_objects(src, objects_for(EMPTY))
    for name in ("20260601T103000Z", "20260601T110000Z", "20260601T113000Z"):
        result = take(tmp_path, src, name, keep=1)
    assert backup_names(str(tmp_path / "backups")) == ["20260601T100000Z", "20260601T113000Z"]
    assert result["pruned"] == ["20260601T110000Z"]
    assert "no newer backup kept holds as many objects" in result["retention"]["20260601T100000Z"]["why"]
