"""pytest plugin: in CI every skipped test must be on a checked-in list, with its reason.

A skip whose cause is missing on one machine (no Docker engine, no test image, no LAN address,
not root) looks the same in pytest's summary as a skip by design, and CI would go on green
without the test. With I8C_SKIP_LIST naming a list (the Makefile sets it to
tests/ci/allowed-skips.yml for the unit tests and the molecule verifiers), every skip of the
session is compared with the list at its end:

* a skip no entry allows is printed (``ERROR <nodeid> - unlisted skip: <reason>``, the line
  tests/ci/failure_digest.py picks up) and fails the session (exit 1);
* one line sums up: ``skips: N listed (reasons), M unlisted``;
* an entry that allowed nothing although its tests ran, or whose test file is gone, is a
  warning only: ``-k`` or a file argument selects a subset.

Without I8C_SKIP_LIST (a developer running pytest by hand, ``make unit SKIP_LIST=``) nothing
is checked. Counted: tests skipped at collection (module-level skip, importorskip), in setup
(skip/skipif marks, fixtures) or in the call (``pytest.skip``), and xfailed tests, which hide a
test the same way (an entry allows them with ``outcome: xfailed``). An XPASS passed: not counted.

An entry of the list (YAML, a list of mappings)::

    - nodeid: molecule/recover-sqlite/tests/test_watch.py::*   # the test(s)
      reason: the watcher phase runs in recover-sqlite; ...      # exact skip reason, or
      # reason_regex: ^the watcher phase runs                    # re.fullmatch on the reason
      scenario: recover-etcd            # optional: only in this molecule scenario (or a list)
      outcome: skipped                  # optional: skipped (default) or xfailed
      why: one line, why it is expected to skip in CI

``nodeid`` is matched like fnmatch against pytest's node id (relative to the repository root):
``*`` matches any run of characters and ``?`` one, while ``[`` and ``]`` are literal, so a
parametrized id is written as pytest prints it; a pattern without a parameter part also matches
the test's parametrized ids (``test_x`` matches ``test_x[ansible://i8c-recover-etcd]``).
``scenario`` is compared with MOLECULE_SCENARIO_NAME, which molecule sets for its verifier
(recover-etcd runs recover-sqlite's tests, with other skips by design); an entry with a scenario
does not apply elsewhere, e.g. in the unit tests.

Loaded by tests/unit/conftest.py and molecule/conftest.py (``install`` from their
pytest_configure); also usable as a plugin module (``-p``, pytester's ``plugins=[module]``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

ENV = "I8C_SKIP_LIST"
NAME = "i8c-skip-list"
KEYS = {"nodeid", "reason", "reason_regex", "scenario", "outcome", "why"}
OUTCOMES = ("skipped", "xfailed")


def glob(pattern: str, tail: str = "") -> re.Pattern:
    """fnmatch's * and ?, with [ and ] literal (parametrized ids), as a regex for fullmatch."""
    parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + tail, re.DOTALL)


class Entry:
    """One entry of the list. (No dataclass: the conftests load this file by path, outside
    sys.modules, where Python 3.10's dataclasses fail.)"""

    def __init__(
        self,
        nodeid: str,
        why: str,
        *,
        reason: str | None = None,
        reason_regex: str | None = None,
        scenarios: tuple[str, ...] = (),
        outcome: str = "skipped",
    ) -> None:
        self.nodeid, self.why, self.reason, self.reason_regex = nodeid, why, reason, reason_regex
        self.scenarios, self.outcome = scenarios, outcome
        # A pattern naming no parameters matches the test's parametrized ids too.
        self.pattern = glob(nodeid, "" if nodeid.endswith("]") else r"(\[.*\])?")
        self.used = 0

    def applies(self, scenario: str) -> bool:
        return not self.scenarios or scenario in self.scenarios

    def matches_id(self, nodeid: str) -> bool:
        return self.pattern.fullmatch(nodeid) is not None

    def allows(self, skip: Skip) -> bool:
        if skip.outcome != self.outcome or not self.matches_id(skip.nodeid):
            return False
        if self.reason is not None:
            return skip.reason == self.reason
        return re.fullmatch(self.reason_regex, skip.reason, re.DOTALL) is not None

    def describe(self) -> str:
        where = f" (scenario {', '.join(self.scenarios)})" if self.scenarios else ""
        return f"{self.nodeid}{where}"


class Skip(NamedTuple):
    nodeid: str
    reason: str
    outcome: str  # skipped or xfailed


def load(path: str | Path) -> list[Entry]:
    """The entries of a list file; a malformed list is a usage error, not an empty list."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if data is None:
        return []
    if not isinstance(data, list):
        raise pytest.UsageError(f"{path}: expected a list of entries, got {type(data).__name__}")
    entries = []
    for number, item in enumerate(data, 1):
        where = f"{path}: entry {number}"
        if not isinstance(item, dict):
            raise pytest.UsageError(f"{where}: expected a mapping")
        unknown = sorted(set(item) - KEYS)
        if unknown:
            raise pytest.UsageError(f"{where}: unknown keys {unknown} (known: {sorted(KEYS)})")
        for key in ("nodeid", "why"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise pytest.UsageError(f"{where}: {key!r} must be a non-empty string")
        if ("reason" in item) == ("reason_regex" in item):
            raise pytest.UsageError(f"{where}: needs exactly one of 'reason' and 'reason_regex'")
        reason, regex = item.get("reason"), item.get("reason_regex")
        if not isinstance(reason if reason is not None else regex, str):
            raise pytest.UsageError(f"{where}: the reason must be a string")
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise pytest.UsageError(f"{where}: reason_regex {regex!r}: {exc}") from exc
        scenarios = item.get("scenario", ())
        scenarios = (scenarios,) if isinstance(scenarios, str) else tuple(scenarios)
        outcome = item.get("outcome", "skipped")
        if outcome not in OUTCOMES:
            raise pytest.UsageError(f"{where}: outcome must be one of {OUTCOMES}, got {outcome!r}")
        entries.append(
            Entry(item["nodeid"], item["why"], reason=reason, reason_regex=regex, scenarios=scenarios, outcome=outcome)
        )
    return entries


def skip_reason(report) -> str:
    """The reason pytest prints for a skipped report (``-rs``), without its ``Skipped: ``."""
    if getattr(report, "wasxfail", None) is not None:
        return str(report.wasxfail)
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


class SkipCheck:
    """Collects the session's skips and compares them with the list at its end."""

    def __init__(self, config: pytest.Config, path: Path, entries: list[Entry]) -> None:
        self.config = config
        self.path = path
        self.scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "")
        self.entries = [entry for entry in entries if entry.applies(self.scenario)]
        self.skips: list[Skip] = []
        self.collected: list[str] = []
        self.ran: list[str] = []
        self.deselected: list[str] = []
        self.unlisted: list[Skip] = []
        self.listed: list[tuple[Skip, Entry]] = []

    def record(self, report) -> None:
        outcome = "xfailed" if getattr(report, "wasxfail", None) is not None else "skipped"
        self.skips.append(Skip(report.nodeid, skip_reason(report), outcome))

    def pytest_collectreport(self, report) -> None:
        if report.skipped:
            self.record(report)

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "setup":
            self.ran.append(report.nodeid)
        if report.skipped:
            self.record(report)

    def pytest_deselected(self, items) -> None:
        self.deselected.extend(item.nodeid for item in items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = [item.nodeid for item in session.items]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        for skip in self.skips:
            entry = next((entry for entry in self.entries if entry.allows(skip)), None)
            if entry is None:
                self.unlisted.append(skip)
            else:
                entry.used += 1
                self.listed.append((skip, entry))
        if self.unlisted and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def stale(self) -> list[str]:
        """Entries that allowed nothing although their tests were in the session, or whose test
        file is gone. Silent for an entry whose tests were deselected (-k) or not collected (an
        entry of the unit tests in a scenario's verifier, --ignore)."""
        notes = []
        files = {nodeid.split("::", 1)[0] for nodeid in self.collected + self.deselected}
        for entry in self.entries:
            if entry.used:
                continue
            ran = [nodeid for nodeid in self.ran if entry.matches_id(nodeid)]
            file_part = entry.nodeid.split("::", 1)[0]
            if ran:
                notes.append(f"{entry.describe()}: {len(ran)} matching test(s) ran, none {entry.outcome}")
            elif any(entry.matches_id(nodeid) for nodeid in self.deselected):
                continue
            elif any(glob(file_part).fullmatch(name) for name in files):
                notes.append(f"{entry.describe()}: matches no test of its file")
            elif not _exists(self.config.rootpath, file_part):
                notes.append(f"{entry.describe()}: no such test file")
        return notes

    def pytest_terminal_summary(self, terminalreporter) -> None:
        tr = terminalreporter
        root = self.config.rootpath
        label = self.path.relative_to(root).as_posix() if self.path.is_relative_to(root) else str(self.path)
        if self.unlisted:
            tr.write_sep("=", f"skips not on the list {label}", red=True, bold=True)
            for skip in self.unlisted:
                kind = "xfail" if skip.outcome == "xfailed" else "skip"
                tr.write_line(f"ERROR {skip.nodeid} - unlisted {kind}: {skip.reason}")
            tr.write_line(
                f"Each skip in CI needs an entry in {label} (nodeid, reason, why), or the cause of the skip "
                "removed (a skip because something CI provides is missing must not be listed)."
            )
        for note in self.stale():
            tr.write_line(f"warning: stale entry in {label}: {note}", yellow=True)
        counts = Counter(
            skip.reason if len(skip.reason) <= 60 else skip.reason[:57] + "..." for skip, _entry in self.listed
        )
        reasons = "; ".join(f"{n}x {reason}" for reason, n in counts.most_common())
        listed = f"{len(self.listed)} listed" + (f" ({reasons})" if reasons else "")
        tr.write_line(
            f"skips: {listed}, {len(self.unlisted)} unlisted",
            red=bool(self.unlisted),
            green=not self.unlisted,
        )


def _exists(root: Path, file_part: str) -> bool:
    """Whether the file part of a node-id pattern names an existing path under root."""
    if not any(c in file_part for c in "*?"):
        return (root / file_part).exists()
    # The directory part before the first wildcard bounds the walk.
    fixed = file_part[: min(i for i in (file_part.find(c) for c in "*?") if i >= 0)]
    base = root / os.path.dirname(fixed)
    return base.is_dir() and any(
        glob(file_part).fullmatch(path.relative_to(root).as_posix()) for path in base.rglob("*")
    )


def install(config: pytest.Config) -> None:
    """Register the check when I8C_SKIP_LIST names a list (relative: to the invocation directory)."""
    value = os.environ.get(ENV, "")
    if not value or config.pluginmanager.has_plugin(NAME):
        return
    path = Path(value)
    if not path.is_absolute():
        path = config.invocation_params.dir / path
    path = path.resolve()
    if not path.is_file():
        raise pytest.UsageError(f"{ENV}={value}: no such file")
    config.pluginmanager.register(SkipCheck(config, path, load(path)), NAME)


def pytest_configure(config: pytest.Config) -> None:
    install(config)
