"""Failure cases: refused credentials fail before anything changes; a failing
one-shot and a cert-generator that exits 0 without writing the kubeconfig fail
the play with a clear message. Each destructive case restores the stack."""

import json

from stackhost import KUBECONFIG, STACK_DIR, containers, secret_values


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
