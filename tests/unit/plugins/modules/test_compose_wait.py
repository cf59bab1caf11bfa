"""compose_wait through its entry point, against the real Docker engine and real compose projects.

The projects are built on the local test-host image (no registry here); every project is named
utwait-* and torn down after its tests.
"""

import concurrent.futures
import os
import shutil
import subprocess
import textwrap
import uuid

import pytest
from dockerimage import IMAGE, NEEDS_DOCKER

pytestmark = NEEDS_DOCKER

FAST = dict(interval=0.05, backoff=1.5, max_interval=0.2)
SECRET = "tok-9f8e7d6c5b4a"

GOOD = """
services:
  init:
    image: {image}
    command: ["sh", "-c", "sleep 1; echo init done"]
  web:
    image: {image}
    command: ["python3", "-m", "http.server", "8000"]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8000/"]
      interval: 300ms
      timeout: 2s
      retries: 5
    depends_on:
      init: {{condition: service_completed_successfully}}
  slow:
    image: {image}
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep infinity"]
    healthcheck: {{test: ["CMD", "test", "-f", "/tmp/ready"], interval: 200ms, timeout: 2s, retries: 50}}
  worker:
    image: {image}
    command: ["sleep", "infinity"]
    depends_on: [web]
"""

BAD = """
services:
  initfail:
    image: {image}
    command: ["sh", "-c", "echo starting with token=$$SECRET_TOKEN; echo boom >&2; exit 3"]
    environment: {{SECRET_TOKEN: "{secret}"}}
  gated:
    image: {image}
    command: ["sleep", "infinity"]
    depends_on:
      initfail: {{condition: service_completed_successfully}}
  crash:
    image: {image}
    command: ["sh", "-c", "echo crashing; exit 1"]
    restart: always
  sick:
    image: {image}
    command: ["sleep", "infinity"]
    environment: {{SECRET_TOKEN: "{secret}"}}
    healthcheck:
      test: ["CMD-SHELL", "echo probe failed for $$SECRET_TOKEN; exit 1"]
      interval: 200ms
      timeout: 2s
      retries: 2
  quitter:
    image: {image}
    command: ["sh", "-c", "exit 0"]
  ok:
    image: {image}
    command: ["sleep", "infinity"]
  # Upstream's workers have no healthcheck and end the process when their start-up request to
  # the k3s API fails (tests/fixtures/stack/image/fixture.py's worker): with a bad kubeconfig
  # they run for a moment, exit 1 and are restarted. Running is never ready for them.
  badconfig:
    image: {image}
    command: ["sh", "-c", "echo reading /app/kubeconfig.yaml; sleep 1; echo 'k3s API answered 401' >&2; exit 1"]
    restart: unless-stopped
  # Upstream's cert-generator: its Kubernetes step fails (Kueue's wait), its exit code is the
  # second script's (cert-generator/Dockerfile), and the kubeconfig is not rewritten.
  certgen:
    image: {image}
    command:
      - sh
      - -c
      - "echo 'error: timed out waiting for the condition on deployments/kueue-controller-manager'; echo certs done"
"""


class Project:
    def __init__(self, base, template, label):
        self.name = f"utwait-{label}-{uuid.uuid4().hex[:6]}"
        self.dir = os.path.join(str(base), self.name)
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "compose.yaml"), "w") as handle:
            handle.write(textwrap.dedent(template).format(image=IMAGE, secret=SECRET))

    def compose(self, *args, check=True):
        return subprocess.run(
            ["docker", "compose", "-p", self.name, *args], cwd=self.dir, capture_output=True, check=check, text=True
        )

    def down(self):
        subprocess.run(
            ["docker", "compose", "-p", self.name, "down", "-t", "0", "-v", "--remove-orphans"],
            cwd=self.dir if os.path.isdir(self.dir) else None,
            capture_output=True,
            check=False,
        )
        # In case the directory is gone (label fallback test): remove by label.
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=" + self.name],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", self.name + "_default"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    project = Project(tmp_path_factory.mktemp("compose"), GOOD, "good")
    yield project
    project.down()


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    project = Project(tmp_path_factory.mktemp("compose"), BAD, "bad")
    project.compose("up", "-d", "crash", "sick", "quitter", "ok", "badconfig", "certgen")
    # gated cannot start: its one-shot fails, and compose says so.
    res = project.compose("up", "-d", "gated", check=False)
    assert res.returncode != 0
    yield project
    project.down()


def test_waits_for_oneshot_health_and_slow_service(run_module, good):
    # The module starts first and waits through "no container yet"; compose starts the project without
    # its own wait, as a role does before calling the module.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_module, "compose_wait", dict(project_src=good.dir, timeout=120, **FAST))
        good.compose("up", "-d")
        res = future.result()
    assert res["_rc"] == 0, res
    assert res["ready"] is True and res["changed"] is False and res["project"] == good.name
    services = res["services"]
    assert set(services) == {"init", "web", "slow", "worker"}
    assert services["init"]["oneshot"] is True  # recognised from service_completed_successfully
    assert services["init"]["state"] == "exited" and services["init"]["exit_code"] == 0
    assert services["web"]["oneshot"] is False and services["web"]["health"] == "healthy"
    assert services["slow"]["health"] == "healthy"
    assert services["worker"]["health"] is None and services["worker"]["state"] == "running"
    assert all(s["ready"] and s["seconds_to_ready"] is not None for s in services.values())
    assert res["attempts"] > 1  # the slow service made it wait
    assert "failed_services" not in res


def test_project_name_and_label_fallback(run_module, good, tmp_path):
    good.compose("up", "-d", "--wait")
    res = run_module("compose_wait", dict(project_name=good.name, timeout=30))
    assert res["_rc"] == 0, res
    assert res["services"]["init"]["oneshot"] is True and res["attempts"] == 1

    # Without the compose file the definition comes from the containers' labels.
    moved = str(tmp_path / "moved")
    shutil.move(good.dir, moved)
    try:
        res = run_module("compose_wait", dict(project_name=good.name, timeout=30))
    finally:
        shutil.move(moved, good.dir)
    assert res["_rc"] == 0, res
    assert set(res["services"]) == {"init", "web", "slow", "worker"}
    assert res["services"]["init"]["oneshot"] is True


def test_failing_oneshot_fails_fast_with_its_logs_and_no_secret(run_module, bad):
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["initfail", "gated"], timeout=300, **FAST))
    assert res["_rc"] != 0 and res["failed"] is True
    assert res["failed_services"] == {"initfail": "one-shot exited with code 3"}
    assert "cannot become ready" in res["msg"]  # failed at once, not at the timeout
    assert res["services"]["initfail"]["oneshot"] is True and res["services"]["initfail"]["exit_code"] == 3
    assert res["services"]["gated"]["state"] == "created"
    assert "boom" in res["logs"]["initfail"]
    assert "starting with token=********" in res["logs"]["initfail"]
    assert SECRET not in repr(res)


def test_crash_loop_fails_fast(run_module, bad):
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["crash"], restart_threshold=2, **FAST))
    assert res["failed"] is True and "cannot become ready" in res["msg"], res
    assert "crash loop" in res["failed_services"]["crash"]
    assert res["services"]["crash"]["restart_count"] > 2
    assert "crashing" in res["logs"]["crash"]


def test_worker_without_healthcheck_that_crashes_after_starting_is_never_ready(run_module, bad):
    # A new container (restart count 0), polled every 50-200 ms: the wait sees it running in its
    # first 1 s life; a wait that took running as ready would return ready here.
    bad.compose("up", "-d", "--force-recreate", "badconfig")
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["badconfig"], timeout=300, **FAST))
    assert res["failed"] is True and "cannot become ready" in res["msg"], res
    assert res["services"]["badconfig"]["ready"] is False and res["services"]["badconfig"]["health"] is None
    reason = res["failed_services"]["badconfig"]
    assert "crash loop" in reason and "last exit code 1" in reason, reason
    assert res["services"]["badconfig"]["restart_count"] > 3
    # The message alone names the worker, its state, its exit code and its last log lines.
    assert "badconfig: restarted" in res["msg"] and "k3s API answered 401" in res["msg"], res["msg"]
    assert "Last log lines: badconfig:" in res["msg"]


def test_running_without_healthcheck_is_ready_only_after_stable_seconds(run_module, bad):
    bad.compose("restart", "ok")
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["ok"], stable_seconds=3600, timeout=0))
    assert res["failed"] is True and res["services"]["ok"]["state"] == "running", res
    assert res["services"]["ok"]["ready"] is False
    assert "of the 3600.0s without a restart that make it ready (stable_seconds)" in res["failed_services"]["ok"]
    # The same container, judged with a window it has already lasted.
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["ok"], stable_seconds=0, timeout=0))
    assert res["_rc"] == 0 and res["services"]["ok"]["ready"] is True, res


def test_unhealthy_past_grace_fails_with_healthcheck_log(run_module, bad):
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["sick"], unhealthy_grace=0.5, **FAST))
    assert res["failed"] is True and "cannot become ready" in res["msg"], res
    assert "unhealthy for more than 0.5s" in res["failed_services"]["sick"]
    entries = res["healthcheck_logs"]["sick"]
    assert entries and entries[-1]["exit_code"] == 1
    assert entries[-1]["output"] == "probe failed for ********"
    assert SECRET not in repr(res)


def test_never_healthy_times_out_with_healthcheck_log(run_module, bad):
    res = run_module(
        "compose_wait", dict(project_src=bad.dir, services=["sick", "ok"], timeout=1, stable_seconds=0, **FAST)
    )
    assert res["failed"] is True and "not ready after 1.0s" in res["msg"], res
    assert list(res["failed_services"]) == ["sick"]
    assert res["services"]["ok"]["ready"] is True
    assert res["healthcheck_logs"]["sick"][-1]["output"] == "probe failed for ********"


def test_exited_long_running_service_fails_unless_declared_oneshot(run_module, bad):
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["quitter", "ok"], timeout=300, **FAST))
    assert res["failed"] is True and "cannot become ready" in res["msg"]
    assert res["failed_services"] == {
        "quitter": "long-running service has exited with code 0 (if it is a one-shot, list it in oneshot)"
    }
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["quitter", "ok"], oneshot=["quitter"]))
    assert res["_rc"] == 0 and res["services"]["quitter"]["oneshot"] is True


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (dict(project_name="utwait-no-such-project"), "unknown project 'utwait-no-such-project'"),
        (dict(project_src="/nonexistent/utwait"), "project_src /nonexistent/utwait is not a directory"),
        (dict(project_name="x", timeout=-5), "timeout must be zero or a positive"),
        (dict(project_name="x", restart_threshold=-1), "restart_threshold must be zero or positive"),
        (dict(project_name="x", stable_seconds=-1), "stable_seconds must be zero or a positive number"),
        (dict(), "one of the following is required: project_src, project_name"),
    ],
)
def test_bad_arguments(run_module, args, fragment):
    res = run_module("compose_wait", args)
    assert res["failed"] is True and fragment in res["msg"], res


def test_unknown_service_and_bad_definition(run_module, bad, tmp_path):
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["ok", "nosuch"]))
    assert res["failed"] and "does not define" in res["msg"] and "nosuch" in res["msg"]
    (tmp_path / "compose.yaml").write_text("services: [not, a, mapping]\n")
    res = run_module("compose_wait", dict(project_src=str(tmp_path)))
    assert res["failed"] and f"docker compose config failed in {tmp_path}" in res["msg"]


def test_check_mode_skips_even_for_a_missing_project(run_module):
    res = run_module("compose_wait", dict(project_src="/nonexistent/utwait", timeout=300), check_mode=True)
    assert res["_rc"] == 0 and res["skipped"] is True and res["changed"] is False


def test_a_failing_kubeconfig_consumer_is_explained_by_cert_generator(run_module, bad):
    kubeconfig = os.path.join(bad.dir, "kubeconfig.yaml")
    with open(kubeconfig, "w") as handle:
        handle.write(
            "apiVersion: v1\nkind: Config\n"
            "clusters: [{name: c, cluster: {server: 'https://10.0.0.5:6443', certificate-authority-data: Q0E=}}]\n"
            "users: [{name: u, user: {token: old-token}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
        )
    os.utime(kubeconfig, (1_600_000_000, 1_600_000_000))  # written long before certgen's run
    bad.compose("up", "-d", "--force-recreate", "badconfig")
    res = run_module(
        "compose_wait",
        dict(
            project_src=bad.dir,
            services=["badconfig"],
            kubeconfig_consumers=["badconfig"],
            generator="certgen",
            kubeconfig=kubeconfig,
            timeout=300,
            **FAST,
        ),
    )
    assert res["_rc"] == 1
    verdict = res["generator"]["verdict"]
    assert verdict.startswith("certgen exited 0 without writing a fresh kubeconfig"), verdict
    assert "not rewritten by the latest cert-generator run" in verdict
    assert "badconfig reads the app kubeconfig: " + verdict in res["msg"]
    # Its Kueue step's error, which its exit code hides, is in the message and the logs.
    assert "certgen: error: timed out waiting for the condition" in res["msg"]
    assert any("timed out waiting" in line for line in res["logs"]["certgen"])


def test_without_consumers_a_failure_does_not_mention_cert_generator(run_module, bad):
    bad.compose("up", "-d", "--force-recreate", "badconfig")
    res = run_module("compose_wait", dict(project_src=bad.dir, services=["badconfig"], timeout=300, **FAST))
    assert res["_rc"] == 1 and "generator" not in res and "certgen" not in res["msg"]
