"""Print what failed in an item's log, short, for the end of a CI run.

CI reports only the tail of its output; a failed scenario's cause (pytest's assertion, Ansible's
``fatal:`` line) sits hundreds of lines above it, among the other items' lines. ``make items``
runs this on the log of every item that failed, after the queue, so the tail carries the cause.

Usage: failure_digest.py LOG [MAX_LINES]
"""

from __future__ import annotations

import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Molecule frames a step's output with box-drawing characters and indents it.
FRAME = re.compile(r"^[\s│└─┌]*")
WANTED = (
    re.compile(r"^(FAILED|ERROR) \S+::"),  # pytest's short summary (-ra), not "FAILED - RETRYING"
    re.compile(r"^E {3}"),  # pytest's assertion and exception lines
    re.compile(r"^(fatal|failed): \["),  # Ansible task failures
    re.compile(r"FAILED! =>"),
    re.compile(r"^ERROR +"),  # molecule's own errors
)
WIDTH = 400


def digest(lines: list[str], limit: int) -> list[str]:
    picked: list[str] = []
    for raw in lines:
        line = FRAME.sub("", ANSI.sub("", raw.rstrip("\n")))
        if any(pattern.search(line) for pattern in WANTED):
            short = line if len(line) <= WIDTH else line[:WIDTH] + " [...]"
            if not picked or picked[-1] != short:
                picked.append(short)
    if len(picked) > limit:
        # The first lines name the first failure; the last ones hold pytest's summary.
        half = limit // 2
        picked = picked[:half] + [f"[... {len(picked) - limit} lines ...]"] + picked[-(limit - half) :]
    return picked


def main(argv: list[str]) -> int:
    path = argv[1]
    limit = int(argv[2]) if len(argv) > 2 else 40
    with open(path, encoding="utf-8", errors="replace") as handle:
        picked = digest(handle.readlines(), limit)
    print("\n".join(picked) if picked else "(no pytest or Ansible failure line found; see the full log above)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
