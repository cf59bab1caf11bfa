"""Shared pytest fixtures for every molecule scenario's testinfra verifier.

Molecule runs the verifier with its own environment (MOLECULE_INVENTORY_FILE,
ANSIBLE_CONFIG, MOLECULE_SCENARIO_DIRECTORY, ...); these fixtures reuse it to
run playbooks against the scenario's test host from inside a test, e.g. the
converge playbook in check mode, whose recap must show zero changes.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass
class PlaybookRun:
    """What one ansible-playbook run printed, with its recap parsed."""

    returncode: int
    output: str
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, key: str) -> int:
        return sum(counts.get(key, 0) for counts in self.recap.values())

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


def run_playbook(playbook: str | Path, *args: str, env: dict[str, str] | None = None) -> PlaybookRun:
    """Run a playbook of the current scenario against its molecule inventory."""
    scenario_dir = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    path = Path(playbook)
    if not path.is_absolute():
        path = scenario_dir / path
    run_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    run_env.update(env or {})
    proc = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(path), *args],
        capture_output=True,
        text=True,
        env=run_env,
        check=False,
        timeout=1800,
    )
    output = proc.stdout + proc.stderr
    return PlaybookRun(proc.returncode, output, parse_recap(proc.stdout))


@pytest.fixture(scope="session")
def ansible_playbook():
    """Callable running a playbook (relative to the scenario) on the test host."""
    return run_playbook


@pytest.fixture(scope="session")
def converge_in_check_mode():
    """The scenario's converge playbook run once with --check --diff."""
    return run_playbook("converge.yml", "--check", "--diff")
