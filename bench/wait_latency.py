"""Detection latency of the wait modules versus the patterns they replace (prints numbers, asserts nothing).

Readiness flips at a random moment in each trial; the latency is the time from the flip to the
moment the Ansible task returns (its result reaches the controller, recorded by the
bench_timestamps callback with CLOCK_MONOTONIC, which this process shares).

Arms, each run as tasks of one ansible-playbook against localhost:
  (a) integr8scode.provision.http_wait on a loopback HTTP endpoint;
  (b) ansible.builtin.uri with until/retries/delay: 5, the anchor roles' pattern, same endpoint;
  (c) integr8scode.provision.compose_wait on a compose project whose service turns healthy;
  (d) docker compose up -d --wait on the same project (as an ansible.builtin.command task).

HTTP: the endpoint answers 503 until a random moment 0.5-5.5 s after the trial's first request,
then 200. Compose: a service with a 100 ms healthcheck on a flag file in a bind mount; the flag is
created 1.5-3.5 s after the task started. Everything stays on loopback and the local Docker engine;
the compose project is named bench-wait-* and removed at the end.

Usage: python bench/wait_latency.py [--trials N] [--until-trials N] [--seed S] [--skip-compose]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.environ.get("BENCH_IMAGE", "integr8scode-testhost:latest")


class FlipServer:
    """Answers /t/<trial> with 503 until the trial's flip moment, then 200 {"status": "ok"}."""

    def __init__(self, rng, low, high):
        self.rng, self.low, self.high = rng, low, high
        self.flip_at = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                now = time.monotonic()
                trial = self.path.rsplit("/", 1)[-1]
                with outer.lock:
                    flip = outer.flip_at.setdefault(trial, now + outer.rng.uniform(outer.low, outer.high))
                ok = now >= flip
                body = b'{"status": "ok"}' if ok else b'{"status": "starting"}'
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_playbook(workdir, name, tasks, on_start=None):
    """Run ``tasks`` on localhost; return {task name: (start, end, ok)} from the callback's records."""
    stamps = os.path.join(workdir, name + ".jsonl")
    playbook = os.path.join(workdir, name + ".yml")
    play = [dict(name=name, hosts="localhost", connection="local", gather_facts=False, tasks=tasks)]
    with open(playbook, "w") as handle:
        json.dump(play, handle)  # JSON is YAML
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "bench", "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="bench_timestamps",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.null" if os.environ.get("BENCH_QUIET", "1") == "1" else "default",
        ANSIBLE_LOCALHOST_WARNING="false",
        # The project's ansible.cfg pipelines ssh; the local connection needs the general switch to match.
        ANSIBLE_PIPELINING="true",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        BENCH_TIMESTAMPS=stamps,
    )
    inventory = f"localhost ansible_python_interpreter={sys.executable},"
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, playbook],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    seen = 0
    records = []
    while True:
        done = proc.poll() is not None
        if os.path.exists(stamps):
            with open(stamps) as handle:
                lines = handle.readlines()
            for line in lines[seen:]:
                record = json.loads(line)
                records.append(record)
                if record["event"] == "start" and on_start:
                    on_start(record["task"], record["t"])
            seen = len(lines)
        if done:
            break
        time.sleep(0.005)
    output = proc.stdout.read().decode(errors="replace")
    if proc.returncode != 0:
        print(output[-3000:], file=sys.stderr)
    result = {}
    for record in records:
        entry = result.setdefault(record["task"], {})
        entry[record["event"]] = record["t"]
        if record["event"] == "end":
            entry["ok"] = record.get("ok")
            entry["msg"] = record.get("msg")
    return result


def http_arms(workdir, rng, trials, until_trials):
    server = FlipServer(rng, 0.5, 5.5)
    try:
        url = f"http://127.0.0.1:{server.port}/t/"
        tasks = [
            {
                "name": f"http_wait {i}",
                "integr8scode.provision.http_wait": {"url": url + f"a{i}", "timeout": 60},
            }
            for i in range(trials)
        ]
        res_a = run_playbook(workdir, "http_wait", tasks)
        tasks = [
            {
                "name": f"uri until {i}",
                "ansible.builtin.uri": {"url": url + f"b{i}", "status_code": [200]},
                "register": "r",
                "until": "r.status == 200",
                "retries": 30,
                "delay": 5,
            }
            for i in range(until_trials)
        ]
        res_b = run_playbook(workdir, "uri_until", tasks)
    finally:
        server.close()
    lat_a = [res_a[f"http_wait {i}"]["end"] - server.flip_at[f"a{i}"] for i in range(trials)]
    lat_b = [res_b[f"uri until {i}"]["end"] - server.flip_at[f"b{i}"] for i in range(until_trials)]
    bad = [k for k, v in list(res_a.items()) + list(res_b.items()) if not v.get("ok")]
    return lat_a, lat_b, bad


COMPOSE = """
services:
  app:
    image: {image}
    command: ["sleep", "infinity"]
    volumes: ["{flagdir}:/flag"]
    healthcheck:
      test: ["CMD", "test", "-f", "/flag/ready"]
      interval: 100ms
      timeout: 2s
      retries: 100000
"""


def compose_arms(workdir, rng, trials):
    project = f"bench-wait-{os.getpid()}"
    src = os.path.join(workdir, project)
    flagdir = os.path.join(src, "flag")
    os.makedirs(flagdir)
    flag = os.path.join(flagdir, "ready")
    with open(os.path.join(src, "compose.yaml"), "w") as handle:
        handle.write(COMPOSE.format(image=IMAGE, flagdir=flagdir))
    compose = ["docker", "compose", "-p", project]
    subprocess.run(compose + ["up", "-d"], cwd=src, check=True, capture_output=True)
    flips = {}
    timers = []

    def on_start(task, t):
        if task.startswith(("compose_wait ", "compose up --wait ")):
            delay = rng.uniform(1.5, 3.5)

            def flip(task=task):
                open(flag, "w").close()
                flips[task] = time.monotonic()

            timer = threading.Timer(max(0.0, t + delay - time.monotonic()), flip)
            timer.start()
            timers.append(timer)

    reset = [
        {"name": "reset flag", "ansible.builtin.file": {"path": flag, "state": "absent"}},
        {
            "name": "reset container",
            "ansible.builtin.command": {"argv": compose + ["restart", "-t", "0"], "chdir": src},
            "changed_when": False,
        },
    ]
    tasks = []
    for i in range(trials):
        tasks += reset
        tasks.append(
            {
                "name": f"compose_wait {i}",
                "integr8scode.provision.compose_wait": {"project_src": src, "timeout": 60},
            }
        )
        tasks += reset
        tasks.append(
            {
                "name": f"compose up --wait {i}",
                "ansible.builtin.command": {
                    "argv": compose + ["up", "-d", "--wait", "--wait-timeout", "60"],
                    "chdir": src,
                },
                "changed_when": False,
            }
        )
    try:
        res = run_playbook(workdir, "compose", tasks, on_start=on_start)
    finally:
        for timer in timers:
            timer.cancel()
        subprocess.run(compose + ["down", "-t", "0", "-v"], cwd=src, capture_output=True, check=False)
    lat_c = [res[f"compose_wait {i}"]["end"] - flips[f"compose_wait {i}"] for i in range(trials)]
    lat_d = [res[f"compose up --wait {i}"]["end"] - flips[f"compose up --wait {i}"] for i in range(trials)]
    bad = [k for k, v in res.items() if not v.get("ok")]
    return lat_c, lat_d, bad


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def line(name, values):
    stats = (statistics.median(values), p95(values), min(values), max(values))
    return f"{name:<38} {len(values):>3} " + " ".join(f"{v:8.3f}" for v in stats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--until-trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--skip-compose", action="store_true")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    workdir = tempfile.mkdtemp(prefix="bench-wait-")
    started = time.monotonic()
    try:
        lat_a, lat_b, bad = http_arms(workdir, rng, args.trials, args.until_trials)
        lat_c = lat_d = None
        if not args.skip_compose:
            lat_c, lat_d, bad_c = compose_arms(workdir, rng, args.trials)
            bad += bad_c
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"wait_latency: delay from readiness flip to task return, seconds (seed {seed}, {os.cpu_count()} cpus)")
    print(f"{'arm':<38} {'n':>3} {'median':>8} {'p95':>8} {'min':>8} {'max':>8}")
    print(line("(a) http_wait", lat_a))
    print(line("(b) uri until/retries/delay: 5", lat_b))
    if lat_c is not None:
        print(line("(c) compose_wait", lat_c))
        print(line("(d) docker compose up -d --wait", lat_d))
    med = statistics.median
    print(f"ratio median (b)/(a): {med(lat_b) / med(lat_a):.1f}x   p95 (b)/(a): {p95(lat_b) / p95(lat_a):.1f}x")
    if lat_c is not None:
        print(f"ratio median (b)/(c): {med(lat_b) / med(lat_c):.1f}x   (d)/(c): {med(lat_d) / med(lat_c):.2f}x")
    targets = [
        ("http_wait median <= 0.3 s", med(lat_a) <= 0.3),
        ("until/http_wait >= 8x", med(lat_b) / med(lat_a) >= 8),
    ]
    if lat_c is not None:
        targets += [
            ("compose_wait median <= 0.3 s", med(lat_c) <= 0.3),
            ("until/compose_wait >= 8x", med(lat_b) / med(lat_c) >= 8),
        ]
    print("targets: " + ", ".join("{}: {}".format(name, "met" if ok else "MISSED") for name, ok in targets))
    if bad:
        print("tasks that failed (their latencies are not meaningful): {}".format(", ".join(sorted(bad))))
    print("total bench time: %.0f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
