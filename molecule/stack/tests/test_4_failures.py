"""Failure cases: refused credentials fail before anything changes; a failing
one-shot and a cert-generator that exits 0 without writing the kubeconfig fail
the play with a clear message. Each destructive case restores the stack."""

import json

from stackhost import KUBECONFIG, STACK_DIR, containers, secret_values
from testhost import flat


def snapshot(host):
    return {
        ".env": host.file(f"{STACK_DIR}/.env").sha256sum,
        "secrets": host.file("/etc/integr8scode/secrets.env").sha256sum,
        "containers": {name: c["Id"] for name, c in containers(host).items()},
    }


def run_stack(ansible_playbook, extra: dict | None = None):
    args = ["-e", json.dumps(extra)] if extra else []
    return ansible_playbook("stack-only.yml", *args)


def restore(host, ansible_playbook):
    run = run_stack(ansible_playbook)
    assert run.returncode == 0, f"restoring the stack failed:\n{run.output[-3000:]}"


def test_upstream_default_password_is_refused_before_anything_changes(host, ansible_playbook):
    before = snapshot(host)
    run = run_stack(ansible_playbook, {"stack_redis_password": "redispassword"})
    assert run.returncode != 0
    assert "stack_redis_password is one of upstream's default passwords" in run.output
    assert "redispassword" not in run.output.replace("stack_redis_password", "")
    assert run.total("changed") == 0
    assert snapshot(host) == before


def test_default_password_allowed_explicitly_passes_validation(host, ansible_playbook):
    run = ansible_playbook(
        "stack-only.yml",
        "--check",
        "--tags",
        "stack_validate",
        "-e",
        json.dumps({"stack_redis_password": "redispassword", "stack_allow_default_credentials": True}),
    )
    assert run.returncode == 0, run.output[-2000:]


def test_missing_secrets_without_generation_are_refused(host, ansible_playbook):
    before = snapshot(host)
    run = run_stack(ansible_playbook, {"stack_generate_secrets": False})
    assert run.returncode != 0
    for var in ("stack_secret_key", "stack_mongo_password", "stack_redis_password", "stack_admin_user_password"):
        assert f"{var} is empty and stack_generate_secrets is false" in run.output
    assert run.total("changed") == 0
    assert snapshot(host) == before


def test_short_secret_key_is_refused(host, ansible_playbook):
    run = run_stack(ansible_playbook, {"stack_secret_key": "too-short-for-a-key"})
    assert run.returncode != 0
    assert "stack_secret_key must be at least 32 characters" in run.output
    assert "too-short-for-a-key" not in run.output


def test_failing_oneshot_fails_the_play_with_its_logs(host, ansible_playbook):
    run = run_stack(ansible_playbook, {"stack_env_extra": {"FIXTURE_USER_SEED_FAIL": "test-induced failure"}})
    try:
        assert run.returncode != 0, run.output[-3000:]
        assert "user-seed" in run.output
        # The one-shot's own log line, not only its exit code; compose_wait
        # masks container environment values (here the failure reason) in logs.
        assert "user-seed: refusing to seed accounts (********)" in run.output
        assert "one-shot exited with code 3" in run.output
        for value in secret_values(host):
            assert value not in run.output, "a secret appears in the failure output"
        state = containers(host)["user-seed"]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 3)
    finally:
        restore(host, ansible_playbook)
    state = containers(host)["user-seed"]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)


def test_cert_generator_exiting_0_without_a_fresh_kubeconfig_fails_the_play(host, ansible_playbook):
    mtime = host.file(KUBECONFIG).mtime
    run = run_stack(ansible_playbook, {"stack_env_extra": {"FIXTURE_K8S_SETUP_FAIL": "1"}})
    try:
        assert run.returncode != 0, run.output[-3000:]
        state = containers(host)["cert-generator"]["State"]
        # Upstream's shape: the exit code is only the second script's.
        assert (state["Status"], state["ExitCode"]) == ("exited", 0)
        assert host.file(KUBECONFIG).mtime == mtime
        assert "not rewritten by the latest cert-generator run" in run.output
    finally:
        restore(host, ansible_playbook)
    assert host.file(KUBECONFIG).mtime > mtime


def refresh(host):
    """The refresh service re-runs cert-generator and restarts the workers (the role's own fix for
    workers on a stale kubeconfig); its outcome is kept for --status."""
    return host.run("systemctl start integr8scode-kubeconfig-refresh.service")


def test_workers_on_an_empty_kubeconfig_crash_loop_and_the_failure_shows_cert_generators_log(host, ansible_playbook):
    # A first deploy's state: an empty kubeconfig, and a cert-generator whose Kubernetes step fails
    # (its Kueue wait, upstream) yet exits 0. The workers, started on that file, exit at once
    # (upstream's load_kube_config raises) and Docker restarts them: the crash loop.
    secrets = secret_values(host)  # read before the kubeconfig (and its token) is emptied
    host.run(f"truncate -s 0 {KUBECONFIG}")
    host.run("docker restart k8s-worker pod-monitor")
    run = run_stack(ansible_playbook, {"stack_env_extra": {"FIXTURE_K8S_SETUP_FAIL": "1"}})
    try:
        assert run.returncode != 0, run.output[-3000:]
        worker = containers(host)["k8s-worker"]
        assert worker["RestartCount"] >= 1, worker["State"]
        assert "Invalid kube-config file. No configuration found." in host.run("docker logs k8s-worker 2>&1").stdout
        # compose_wait names the crash loop, then why: cert-generator's verdict and its own log.
        # The message as one line (the yaml callback folds long strings).
        failure = flat(run.output)
        assert "k8s-worker: restarted" in failure and "crash loop" in failure, run.output[-4000:]
        # One or both consumers may have passed the threshold when the wait fails ("reads"/"read").
        tail = run.output[-4000:]
        assert "the app kubeconfig: cert-generator exited 0 without writing a fresh kubeconfig" in failure, tail
        assert "cannot connect to Kubernetes cluster (FIXTURE_K8S_SETUP_FAIL)" in failure, tail
        for value in secrets:
            assert value not in run.output, "a secret appears in the failure output"
        start = failure.index("cannot become ready:") if "cannot become ready:" in failure else 0
        print(f"\nk8s-worker restarts {worker['RestartCount']}; compose_wait: {failure[start : start + 700]}")
    finally:
        # The role's rerun alone cannot start workers that are deep in Docker's back-off; the
        # refresh re-runs cert-generator and restarts them, after which the role converges.
        run_stack(ansible_playbook)
        assert refresh(host).rc == 0, host.run("journalctl -u integr8scode-kubeconfig-refresh -n 30").stdout
        restore(host, ansible_playbook)


def test_a_failed_refresh_is_reported(host):
    status = host.run("/usr/local/sbin/integr8scode-kubeconfig-refresh --status")
    before = status.stdout
    host.run("systemctl stop k3s")
    try:
        assert refresh(host).rc != 0
        status = host.run("/usr/local/sbin/integr8scode-kubeconfig-refresh --status")
        assert status.rc == 1, status.stdout
        assert status.stdout.startswith("kubeconfig refresh: FAILED at "), status.stdout
        assert "not rewritten by the latest cert-generator run" in status.stdout
        errors = host.run("journalctl -u integr8scode-kubeconfig-refresh -p err --no-pager -n 20").stdout
        assert "kubeconfig refresh failed" in errors
    finally:
        host.run("systemctl start k3s")
        host.run("timeout 120 sh -c 'until k3s kubectl get nodes | grep -qw Ready; do sleep 1; done'")
    assert refresh(host).rc == 0
    status = host.run("/usr/local/sbin/integr8scode-kubeconfig-refresh --status")
    assert status.rc == 0 and status.stdout.startswith("kubeconfig refresh: ok at "), (before, status.stdout)


def test_a_container_name_held_by_another_project_is_refused_before_up(host, ansible_playbook):
    image = containers(host)["result-processor"]["Config"]["Image"]
    host.run("docker rm -f result-processor")
    host.run(
        f"docker run -d --name result-processor --label com.docker.compose.project=old-deploy {image} fixture idle"
    )
    try:
        run = run_stack(ansible_playbook)
        assert run.returncode != 0, run.output[-2000:]
        assert "container name result-processor (service result-processor): held by container" in run.output
        assert "compose project old-deploy" in run.output
    finally:
        host.run("docker rm -f result-processor")
        restore(host, ansible_playbook)


def test_a_published_port_held_by_another_program_is_refused_before_up(host, ansible_playbook):
    host.run("docker stop frontend")
    host.run("systemd-run --unit=i8c-port-5001 python3 -m http.server 5001 --bind 0.0.0.0")
    host.run("timeout 10 sh -c 'until ss -Hltn | grep -q :5001; do sleep 0.2; done'")
    try:
        run = run_stack(ansible_playbook)
        assert run.returncode != 0, run.output[-2000:]
        assert "port 0.0.0.0:5001 (service frontend): held by python3" in run.output
    finally:
        host.run("systemctl stop i8c-port-5001")
        restore(host, ansible_playbook)


def test_mem_limits_beyond_the_host_memory_warn_and_fail_when_strict(host, ansible_playbook):
    # An extra compose file (stack_compose_files) that asks more memory than the host has.
    host.run(f"printf 'services:\\n  mongo:\\n    mem_limit: 4096g\\n' > {STACK_DIR}/test-memory.yaml")
    files = {"stack_compose_files": ["docker-compose.yaml", "test-memory.yaml"]}
    try:
        warned = ansible_playbook("stack-only.yml", "--check", "-e", json.dumps(files))
        assert warned.returncode == 0, warned.output[-2000:]
        assert "the services' mem_limits add up to" in warned.output
        assert "mongo 4194304 MiB" in warned.output
        before = snapshot(host)
        strict = run_stack(ansible_playbook, {**files, "stack_min_memory_check": "strict"})
        assert strict.returncode != 0
        assert "(stack_min_memory_check: strict)" in strict.output
        assert snapshot(host)["containers"] == before["containers"]
    finally:
        host.run(f"rm -f {STACK_DIR}/test-memory.yaml")
        restore(host, ansible_playbook)
