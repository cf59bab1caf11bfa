"""Counting the module executions a playbook run costs on a test host: the host's Python
interpreter for the run is a wrapper that appends a line per start and execs python3, so a module
an action plugin runs (the template action's stat, copy's file) counts too; tasks delegated to the
controller do not. Used by the default scenario's PERF line and bench/rerun.py."""

import subprocess
from pathlib import Path

WRAPPER = "/usr/local/bin/i8c-counting-python"
COUNT_FILE = "/var/tmp/i8c-module-executions"
SCRIPT = f'#!/bin/sh\necho x >> {COUNT_FILE}\nexec /usr/bin/python3 "$@"\n'


def _exec(container, *argv, stdin=None):
    return subprocess.run(
        ["docker", "exec", "-i", container, *argv], input=stdin, capture_output=True, text=True, check=True
    ).stdout


def start(container: str, directory: Path) -> list[str]:
    """Install the wrapper on ``container`` (a docker test host), reset its count, and return the
    ansible-playbook arguments that make the run use it on that host only (an extra inventory file
    written in ``directory``)."""
    _exec(container, "sh", "-c", f"cat > {WRAPPER} && chmod 755 {WRAPPER} && rm -f {COUNT_FILE}", stdin=SCRIPT)
    inventory = Path(directory) / f"counting-interpreter-{container}.yml"
    inventory.write_text(f"all:\n  hosts:\n    {container}:\n      ansible_python_interpreter: {WRAPPER}\n")
    return ["-i", str(inventory)]


def executions(container: str) -> int:
    """Module executions on ``container`` since start()."""
    return int(_exec(container, "sh", "-c", f"cat {COUNT_FILE} 2>/dev/null | wc -l").strip() or 0)
