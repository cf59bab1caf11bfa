"""Runs a role through real ansible-playbook against the controller (localhost, local connection),
for the role tests of this directory: only what changes nothing there (validation tags, skip
paths, templates rendered into a temporary directory)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def ansible_playbook(
    playbook: Path, *args: str, callback: str = "ansible.builtin.default"
) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_STDOUT_CALLBACK=callback,
    )
    return subprocess.run(
        # The interpreter running the tests has what the modules need (not a pyenv shim).
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
        + [str(playbook), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=300,
    )


def write_playbook(directory: Path, text: str) -> Path:
    """A playbook file in ``directory`` from an indented literal."""
    path = directory / "playbook.yml"
    path.write_text(textwrap.dedent(text))
    return path


def flat_output(run: subprocess.CompletedProcess) -> str:
    """What a run printed, with line wrapping undone and YAML's quote doubling too: ansible-core
    2.17's YAML result format prints a message holding quotes single-quoted, doubling each quote
    inside (x = ''1234''), 2.19's does not; the tests match the message as the role wrote it."""
    return " ".join((run.stdout + run.stderr).split()).replace("''", "'")
