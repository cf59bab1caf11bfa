"""No-change rerun of site.yml: the working tree against a git ref, timed alternately.

Converges two systemd test hosts (the lab scenario's platform, offline sources) from the same
image: one with the working tree, one with a git worktree of --ref (default 236b38c). Then it
runs site.yml (molecule/default/converge.yml: offline sources, then the very site.yml) --runs
times on each, alternating which side goes first, and prints per side the median and each run's
time, the task count (ok + changed + skipped), changed (must be 0) and the number of module
executions on the host (molecule/modulecount.py: the host's interpreter counts them, so a module an
action plugin runs counts too; tasks delegated to the controller do not).

Why two hosts and not one: a ref converges a different state (before issue 28 it wrote no compose
override and no COMPOSE_FILE in .env), so on one host each side's run would undo the other's and
neither rerun would be a no-change run. Two hosts of one image on one machine, run alternately,
see the same load.

Prints numbers only; no assertion. Needs: `make setup-dev fixtures image`, dockerd, ~6 GB free
memory; takes about 10 minutes (two first converges) plus the runs.

    .venv/bin/python bench/rerun.py --runs 5 [--ref 236b38c] [--keep]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "molecule"))
import modulecount  # noqa: E402  (molecule/modulecount.py: the one way executions are counted)

WORK = REPO / ".cache" / "bench"
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+).*?skipped=(?P<skipped>\d+)", re.M)


def run(argv, cwd=REPO, env=None, check=True, capture=True):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=capture, text=True, check=False)
    if check and proc.returncode != 0:
        out = (proc.stdout or "")[-3000:] + (proc.stderr or "")[-2000:]
        sys.exit(f"{' '.join(map(str, argv))} failed (rc={proc.returncode}) in {cwd}:\n{out}")
    return proc


class Side:
    """One test host and the checkout that converges it."""

    def __init__(self, name, checkout):
        self.name = name
        self.checkout = Path(checkout)
        self.host = f"i8c-lab-bench-{name}"
        self.ephemeral = WORK / f"ephemeral-{name}"
        self.times, self.tasks, self.executions, self.changed = [], [], [], []

    def env(self):
        env = dict(os.environ)
        env.update(
            I8C_HOST_SUFFIX=f"-bench-{self.name}",
            MOLECULE_EPHEMERAL_DIRECTORY=str(self.ephemeral),
            DOCKER_CONFIG=str(REPO / ".cache" / "docker"),
            PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        )
        env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
        return env

    def molecule(self, *args):
        return run(["molecule", *args, "-s", "lab"], cwd=self.checkout, env=self.env(), capture=False)

    def converge(self):
        self.ephemeral.mkdir(parents=True, exist_ok=True)
        self.molecule("create")
        self.molecule("prepare", "--force")
        self.molecule("converge")

    def rerun(self):
        counting = modulecount.start(self.host, self.ephemeral)
        start = time.monotonic()
        proc = run(
            ["ansible-playbook", "-i", str(self.ephemeral / "inventory"), *counting, "molecule/default/converge.yml"],
            cwd=self.checkout,
            env=self.env(),
        )
        elapsed = time.monotonic() - start
        recap = [m for m in RECAP.finditer(proc.stdout) if m.group("host") == self.host]
        if not recap:
            sys.exit(f"{self.name}: no PLAY RECAP for {self.host}:\n{proc.stdout[-2000:]}")
        counts = {key: int(recap[-1].group(key)) for key in ("ok", "changed", "skipped")}
        self.times.append(elapsed)
        self.tasks.append(counts["ok"] + counts["changed"] + counts["skipped"])
        self.changed.append(counts["changed"])
        self.executions.append(modulecount.executions(self.host))
        print(
            f"  {self.name:4} {elapsed:6.1f} s  tasks {self.tasks[-1]:3}  changed {counts['changed']}"
            f"  module executions on the host {self.executions[-1]}",
            flush=True,
        )

    def destroy(self):
        self.molecule("destroy")


def worktree(ref):
    sha = run(["git", "rev-parse", "--short", ref]).stdout.strip()
    path = WORK / f"ref-{sha}"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        run(["git", "worktree", "add", "--detach", str(path), sha])
    return sha, path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--ref", default="236b38c", help="git ref to compare with (default 236b38c)")
    parser.add_argument("--runs", type=int, default=5, help="no-change reruns per side (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep both test hosts up afterwards")
    args = parser.parse_args()

    sha, path = worktree(args.ref)
    sides = [Side("tree", REPO), Side("ref", path)]
    try:
        for side in sides:
            print(f"==> converging the {side.name} host ({side.checkout})", flush=True)
            side.converge()
        print(f"==> {args.runs} no-change reruns of site.yml per side, alternating", flush=True)
        for index in range(args.runs):
            for side in sides if index % 2 == 0 else reversed(sides):
                side.rerun()
    finally:
        if not args.keep:
            for side in sides:
                side.destroy()

    tree, ref = sides
    print(f"\nno-change rerun of site.yml, {args.runs} runs per side (working tree vs {args.ref} = {sha}):")
    for side in sides:
        print(
            f"  {side.name:4} median {statistics.median(side.times):5.1f} s"
            f" (runs: {', '.join(f'{t:.1f}' for t in side.times)}), tasks {statistics.median(side.tasks):.0f},"
            f" module executions on the host {statistics.median(side.executions):.0f},"
            f" changed {max(side.changed)}"
        )
    print(f"  ratio tree/ref {statistics.median(tree.times) / statistics.median(ref.times):.2f}")


if __name__ == "__main__":
    main()
