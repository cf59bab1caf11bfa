"""The converged fixture stack: healthy, secrets in place, kubeconfig fresh, nothing recreated."""

import json

from stackhost import (
    APP_TOKEN_CMD,
    DEPLOY_USER,
    KUBECONFIG,
    LONG_RUNNING,
    ONESHOTS,
    STACK_DIR,
    api_status,
    app_kubeconfig,
    containers,
    env_values,
    node_ip,
)
from testhost import worker_state

UPSTREAM_DEFAULTS = {"rootpassword", "redispassword", "admin123", "user123", "admin"}


def test_every_service_is_up(host):
    found = containers(host)
    assert set(found) == ONESHOTS | LONG_RUNNING
    for name in ONESHOTS:
        state = found[name]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), f"{name}: {state}"
    for name in LONG_RUNNING:
        state = found[name]["State"]
        assert state["Status"] == "running", f"{name}: {state['Status']}"
        if "Health" in state:
            assert state["Health"]["Status"] == "healthy", f"{name}: {state['Health']}"


def test_healthchecks_are_where_upstream_has_them(host):
    # Upstream's workers have none ("started" = running); nothing here may rest on their health.
    found = containers(host)
    for name in ("backend", "frontend", "mongo", "redis", "kafka"):
        assert "Health" in found[name]["State"], f"{name} has no healthcheck"
    for name in ("k8s-worker", "pod-monitor", "result-processor"):
        assert "Health" not in found[name]["State"], f"{name} has a healthcheck upstream's lacks"


def test_the_workers_run_with_a_token_the_api_accepts(host):
    for name in ("k8s-worker", "pod-monitor"):
        up, detail = worker_state(host, name)
        assert up, detail


def test_backend_health_json(host):
    body = host.check_output("curl -sk https://localhost/api/v1/health/live")
    assert json.loads(body)["status"] == "ok"


def test_frontend_answers(host):
    assert host.check_output("curl -sk -o /dev/null -w '%{http_code}' https://localhost:5001") == "200"


def test_env_file_is_private_and_complete(host):
    env_file = host.file(f"{STACK_DIR}/.env")
    assert env_file.mode == 0o600
    assert env_file.user == DEPLOY_USER
    env = env_values(host)
    for key in (
        "SECRET_KEY",
        "MONGO_USER",
        "MONGO_PASSWORD",
        "REDIS_PASSWORD",
        "DEFAULT_USER_PASSWORD",
        "ADMIN_USER_PASSWORD",
        "GRAFANA_ADMIN_USER",
        "GRAFANA_ADMIN_PASSWORD",
        "IMAGE_TAG",
        "COMPOSE_PROFILES",
        "COMPOSE_FILE",
    ):
        assert key in env, f"{key} missing from .env"
    assert len(env["SECRET_KEY"]) >= 32
    secrets = [env[k] for k in ("MONGO_PASSWORD", "REDIS_PASSWORD", "DEFAULT_USER_PASSWORD", "ADMIN_USER_PASSWORD")]
    assert not UPSTREAM_DEFAULTS & set(secrets)
    assert len(set(secrets)) == len(secrets), "generated secrets repeat"


def test_generated_secrets_are_kept_privately(host):
    kept = host.file("/etc/integr8scode/secrets.env")
    assert kept.mode == 0o600
    assert kept.user == "root"
    env = env_values(host)
    assert f"REDIS_PASSWORD='{env['REDIS_PASSWORD']}'" in kept.content_string


def test_the_stack_uses_the_secrets(host):
    # redis runs with the generated password: the right one is accepted, none is refused.
    env = env_values(host)
    ok = host.run(f"docker exec redis redis-cli --no-auth-warning -a '{env['REDIS_PASSWORD']}' ping")
    assert ok.stdout.strip() == "PONG"
    refused = host.run("docker exec redis redis-cli ping")
    assert "NOAUTH" in refused.stdout + refused.stderr


def test_kubeconfig_is_a_private_file(host):
    kubeconfig = host.file(KUBECONFIG)
    assert kubeconfig.is_file
    assert kubeconfig.mode == 0o600


def test_kubeconfig_points_at_the_node_ip(host):
    server = app_kubeconfig(host)["clusters"][0]["cluster"]["server"]
    assert server == f"https://{node_ip(host)}:6443"


def test_kubeconfig_was_written_by_the_latest_cert_generator_run(host):
    started = containers(host)["cert-generator"]["State"]["StartedAt"]
    started_epoch = int(host.check_output(f"date -d '{started}' +%s"))
    assert host.file(KUBECONFIG).mtime.timestamp() >= started_epoch


def test_kubeconfig_token_is_accepted_and_a_wrong_one_is_not(host):
    server = app_kubeconfig(host)["clusters"][0]["cluster"]["server"]
    assert api_status(host, server, APP_TOKEN_CMD) == 200
    assert api_status(host, server, "echo not-a-token") == 401


def test_idempotence_recreated_and_restarted_nothing(host):
    recorded = host.file("/var/tmp/i8c-stack-first-converge.txt").content_string.split("\n")
    first = {line.split()[0]: line.split()[1:] for line in recorded if line.strip()}
    assert first, "converge recorded no containers"
    now = host.check_output(
        "docker ps -aq --filter label=com.docker.compose.project | xargs docker inspect "
        "--format '{{.Name}} {{.Id}} {{.State.StartedAt}}'"
    )
    current = {line.split()[0]: line.split()[1:] for line in now.splitlines() if line.strip()}
    assert current == first
