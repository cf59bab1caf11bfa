"""Shared pytest fixtures for every molecule scenario's testinfra verifier.

Molecule runs the verifier with its own environment (MOLECULE_INVENTORY_FILE,
ANSIBLE_CONFIG, MOLECULE_SCENARIO_DIRECTORY, ...); these fixtures reuse it to
run playbooks against the scenario's test host from inside a test, e.g. the
converge playbook in check mode, whose recap must show zero changes.

With I8C_SKIP_LIST set (the Makefile), every skip must be on that list (tests/ci/skiplist.py).
"""

from __future__ import annotations

import importlib.util
import os
import pty
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")

# (test, playbook, seconds) of every playbook a test ran: printed after the run, where CI time
# goes inside a verifier (pytest's durations name only the slowest tests, not what they ran).
PLAYBOOK_RUNS: list[tuple[str, str, float]] = []

_spec = importlib.util.spec_from_file_location("skiplist", Path(__file__).resolve().parents[1] / "tests/ci/skiplist.py")
skiplist = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(skiplist)


def pytest_configure(config) -> None:
    skiplist.install(config)


def record_run(playbook: str | Path, args: tuple[str, ...], started: float) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0].split("::", 1)[-1]
    name = Path(playbook).name + (" --check" if "--check" in args else "")
    PLAYBOOK_RUNS.append((test, name, time.monotonic() - started))


def pytest_terminal_summary(terminalreporter) -> None:
    if not PLAYBOOK_RUNS:
        return
    per_test: dict[str, list[float]] = {}
    for test, _playbook, seconds in PLAYBOOK_RUNS:
        per_test.setdefault(test, []).append(seconds)
    total = sum(seconds for _t, _p, seconds in PLAYBOOK_RUNS)
    terminalreporter.write_sep("=", f"{len(PLAYBOOK_RUNS)} playbook runs, {total:.0f}s")
    for test, runs in sorted(per_test.items(), key=lambda item: -sum(item[1]))[:15]:
        terminalreporter.write_line(f"{sum(runs):7.1f}s {len(runs):3d} runs  {test}")


@dataclass
class PlaybookRun:
    """What one ansible-playbook run printed, with its recap parsed."""

    returncode: int
    output: str
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, key: str) -> int:
        return sum(counts.get(key, 0) for counts in self.recap.values())

    def assert_no_changes(self, what: str = "run") -> None:
        """The run succeeded, printed its recap and changed nothing (check mode, reruns)."""
        assert self.returncode == 0, self.output[-4000:]
        assert self.recap, f"no PLAY RECAP in the output of the {what}"
        assert self.total("changed") == 0, f"changed in the {what}: {self.changed_tasks()}"

    def changed_tasks(self) -> list[str]:
        """Names of tasks that reported `changed`, for assertion messages."""
        names, current = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line[len("TASK [") : line.rfind("]")]
            elif line.startswith("changed:") and current:
                names.append(current)
        return names


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            match = RECAP_LINE.match(line.strip())
            if match:
                counts = dict(pair.split("=") for pair in match.group("counts").split())
                recap[match.group("host")] = {k: int(v) for k, v in counts.items()}
    return recap


def playbook_command(playbook: str | Path, *args: str, env: dict[str, str] | None = None):
    """argv and environment running a playbook of the current scenario against its molecule inventory."""
    path = Path(playbook)
    if not path.is_absolute():
        path = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / path
    run_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    run_env.update(env or {})
    return ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(path), *args], run_env


def run_playbook(playbook: str | Path, *args: str, env: dict[str, str] | None = None) -> PlaybookRun:
    """Run a playbook of the current scenario against its molecule inventory."""
    argv, run_env = playbook_command(playbook, *args, env=env)
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, check=False, timeout=1800)
    record_run(playbook, args, started)
    output = proc.stdout + proc.stderr
    return PlaybookRun(proc.returncode, output, parse_recap(proc.stdout))


def run_playbook_in_terminal(
    playbook: str | Path, *args: str, answers: dict[str, str], timeout: float = 1800
) -> PlaybookRun:
    """Run a playbook on a pseudo-terminal, as a person at a shell does, typing each answer once
    its prompt text appears (ansible.builtin.pause only prompts when stdin is a terminal)."""
    argv, run_env = playbook_command(playbook, *args)
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec the playbook with the pty as its terminal
        os.execvpe(argv[0], argv, run_env)
    output, pending = b"", dict(answers)
    # ansible.builtin.pause flushes terminal input before it reads, so an answer typed just
    # before that is lost (the terminal still echoes it); as a person would, type it again while
    # the play does not go on to its next task.
    sent: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            readable = select.select([fd], [], [], 2.0)[0]
            for prompt in [p for p, at in sent.items() if b"TASK [" in output[at:]]:
                del sent[prompt]
            if not readable:
                for prompt in sent:
                    os.write(fd, answers[prompt].encode() + b"\n")
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal (it exited)
                break
            if not chunk:
                break
            output += chunk
            for prompt in [p for p in pending if p.encode() in output]:
                pending.pop(prompt)
                sent[prompt] = len(output)
                os.write(fd, answers[prompt].encode() + b"\n")
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    status = os.waitpid(pid, 0)[1]
    record_run(playbook, args, started)
    text = output.decode(errors="replace").replace("\r\n", "\n")
    assert not pending, f"never prompted for {sorted(pending)}: {text[-3000:]}"
    return PlaybookRun(os.waitstatus_to_exitcode(status), text, parse_recap(text))


@pytest.fixture(scope="session")
def ansible_playbook():
    """Callable running a playbook (relative to the scenario) on the scenario's test hosts (all of
    them, where an item `scenario@suite+suite` runs several side by side)."""
    return run_playbook


@pytest.fixture
def ansible_playbook_on_host(host):
    """Callable running a playbook on the host this test is parametrized with alone (--limit), for
    tests that change one host and assert on that host's play: with several test hosts, each
    test instance would otherwise run its playbooks on every host."""

    def run(playbook: str | Path, *args: str, env: dict[str, str] | None = None) -> PlaybookRun:
        return run_playbook(playbook, "--limit", host.backend.host, *args, env=env)

    return run


@pytest.fixture(scope="session")
def all_hosts(request) -> list:
    """Every test host of the scenario (testinfra's own host list), for tests that run one
    playbook against all of them and then assert on each: one run per case, not one per host."""
    option = request.config.option
    hosts = testinfra.get_hosts(
        option.hosts.split(",") if option.hosts else [None],
        connection=option.connection,
        ansible_inventory=option.ansible_inventory,
        force_ansible=option.force_ansible,
    )
    return sorted(hosts, key=lambda h: h.backend.get_pytest_id())


@pytest.fixture(scope="session")
def ansible_playbook_in_terminal():
    """Callable running a playbook on a pseudo-terminal and answering its prompts."""
    return run_playbook_in_terminal


@pytest.fixture(scope="session")
def converge_in_check_mode():
    """The scenario's converge playbook run once with --check --diff."""
    return run_playbook("converge.yml", "--check", "--diff")
