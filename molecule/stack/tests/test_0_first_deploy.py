"""The first deploy from bare, as the engine's container events recorded it (converge.yml).

Upstream's workers depend only on kafka (and mongo); cert-generator's Kueue step here takes
longer than kafka's start (FIXTURE_KUEUE_DELAY, molecule.yml), so under upstream's ordering
k8s-worker and pod-monitor would start on the empty kubeconfig and crash-loop past
compose_wait's restart threshold. The role's override compose file makes them wait for
cert-generator's completion: kafka is healthy long before cert-generator is done, and the
workers start once, after it, and never die.
"""

import json

EVENTS = "/var/tmp/i8c-stack-events.jsonl"
CONSUMERS = ("k8s-worker", "pod-monitor")


def timeline(host) -> list[tuple[float, str, str, dict]]:
    """(seconds since the first event, service, action, attributes), exec events left out."""
    out = []
    for line in host.file(EVENTS).content_string.splitlines():
        event = json.loads(line)
        action = event.get("Action") or event.get("status") or ""
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        service = attrs.get("com.docker.compose.service")
        if not service or action.startswith("exec_"):
            continue
        out.append((event["timeNano"] / 1e9, service, action, attrs))
    assert out, f"{EVENTS} holds no container events of the compose project"
    start = out[0][0]
    return [(t - start, service, action, attrs) for t, service, action, attrs in out]


def first(events, service, action, **attrs):
    for t, svc, act, found in events:
        if svc == service and act == action and all(found.get(k) == v for k, v in attrs.items()):
            return t
    raise AssertionError(f"no {action} event of {service} in the first deploy")


def test_the_first_deploy_timeline(host):
    events = timeline(host)
    kafka_healthy = first(events, "kafka", "health_status: healthy")
    generator_done = first(events, "cert-generator", "die", exitCode="0")
    starts = {name: [e[0] for e in events if e[1] == name and e[2] == "start"] for name in CONSUMERS}
    deaths = {name: [e[0] for e in events if e[1] == name and e[2] == "die"] for name in CONSUMERS}
    print("\nfirst deploy timeline (seconds from the first container event):")
    print(f"  {kafka_healthy:6.1f}  kafka healthy (upstream's ordering would start the workers now)")
    print(f"  {generator_done:6.1f}  cert-generator exited 0 (kubeconfig written)")
    for name in CONSUMERS:
        print(f"  {starts[name][0]:6.1f}  {name} started; starts {len(starts[name])}, deaths {len(deaths[name])}")
    backend_healthy = first(events, "backend", "health_status: healthy")
    print(f"  {backend_healthy:6.1f}  backend healthy")
    # The race upstream's ordering loses was there: kafka was healthy well before the kubeconfig.
    assert kafka_healthy < generator_done - 5, (kafka_healthy, generator_done)
    for name in CONSUMERS:
        assert starts[name], f"{name} never started"
        assert starts[name][0] > generator_done, f"{name} started before cert-generator was done"
        assert len(starts[name]) == 1 and not deaths[name], f"{name} restarted: {starts[name]}, died {deaths[name]}"


def test_the_override_file_is_the_roles_and_the_checkout_is_clean(host):
    override = host.file("/opt/Integr8sCode/compose.integr8scode-provision.yaml")
    assert override.is_file and override.mode == 0o644
    doc = json.loads("\n".join(line for line in override.content_string.splitlines() if not line.startswith("#")))
    for name in CONSUMERS:
        assert doc["services"][name]["depends_on"]["cert-generator"]["condition"] == "service_completed_successfully"
    env = host.file("/opt/Integr8sCode/.env").content_string
    assert "COMPOSE_FILE='docker-compose.yaml:compose.integr8scode-provision.yaml'" in env
    # A user's own `docker compose` in the checkout sees the same project (COMPOSE_FILE in .env):
    # nothing to recreate.
    dry = host.run("cd /opt/Integr8sCode && docker compose config --hash k8s-worker")
    label = host.check_output(
        "docker inspect --format '{{index .Config.Labels \"com.docker.compose.config-hash\"}}' k8s-worker"
    )
    assert dry.rc == 0 and dry.stdout.split()[-1] == label


def test_app_settings_reach_the_backend_through_the_override(host):
    settings = host.file("/opt/Integr8sCode/backend/config.integr8scode-provision.toml").content_string
    assert 'LOG_LEVEL = "INFO"' in settings and 'APP_URL = "https://i8c.example.test"' in settings
    # Upstream's other keys are kept, and the checkout's own file is untouched.
    assert 'KAFKA_BOOTSTRAP_SERVERS = "kafka:29092"' in settings
    assert 'LOG_LEVEL = "DEBUG"' in host.file("/opt/Integr8sCode/backend/config.toml").content_string
    logs = host.check_output("docker logs backend 2>&1")
    assert "settings LOG_LEVEL=INFO APP_URL=https://i8c.example.test" in logs
