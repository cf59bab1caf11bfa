"""compose_plan through its entry point, against the real Docker engine and a real compose project
of upstream's shape (a one-shot that writes the kubeconfig, a consumer with a fixed
container_name, a published port, a config.toml mount). Projects are named utplan-* and removed
after their tests."""

import json
import os
import socket
import subprocess
import textwrap
import uuid

import pytest
from dockerimage import IMAGE, NEEDS_DOCKER

pytestmark = NEEDS_DOCKER

OVERRIDE = "compose.integr8scode-provision.yaml"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def project(tmp_path):
    name = f"utplan-{uuid.uuid4().hex[:6]}"
    port = free_port()
    directory = tmp_path / name
    (directory / "backend").mkdir(parents=True)
    (directory / "backend" / "config.toml").write_text('LOG_LEVEL = "DEBUG"\nAPP_URL = "https://localhost"\n')
    (directory / "compose.yaml").write_text(
        textwrap.dedent(
            f"""
            name: {name}
            services:
              cert-generator:
                image: {IMAGE}
                command: ["sh", "-c", "echo kubeconfig written"]
              backend:
                image: {IMAGE}
                command: ["sleep", "infinity"]
                ports: ["127.0.0.1:{port}:8000"]
                mem_limit: 64m
                volumes: ["./backend/config.toml:/app/config.toml:ro"]
                depends_on:
                  cert-generator: {{condition: service_completed_successfully}}
              k8s-worker:
                image: {IMAGE}
                container_name: {name}-k8s-worker
                command: ["sleep", "infinity"]
                restart: unless-stopped
                mem_limit: 32m
            """
        )
    )
    info = dict(name=name, dir=str(directory), port=port)
    yield info
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    subprocess.run(["docker", "rm", "-f", *ids, f"{name}-k8s-worker"], capture_output=True, check=False)
    subprocess.run(["docker", "network", "rm", f"{name}_default"], capture_output=True, check=False)


def plan(run_module, project, check_mode=False, **extra):
    args = dict(
        project_src=project["dir"],
        files=["compose.yaml"],
        override_file=OVERRIDE,
        kubeconfig_consumers=["k8s-worker"],
        mode="0644",
    )
    args.update(extra)
    return run_module("compose_plan", args, check_mode=check_mode)


def up(project):
    subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "-f", OVERRIDE, "up", "-d"],
        cwd=project["dir"],
        capture_output=True,
        check=True,
    )


def override(project):
    text = open(os.path.join(project["dir"], OVERRIDE)).read()
    return json.loads("\n".join(line for line in text.splitlines() if not line.startswith("#")))


def test_a_bare_project_gets_its_override_then_converges_and_stays(run_module, project):
    res = plan(run_module, project)
    assert res["_rc"] == 0, res
    assert res["changed"] is True and res["override"]["changed"] is True
    assert sorted(res["drift"]) == ["backend: no container", "cert-generator: no container", "k8s-worker: no container"]
    assert override(project)["services"]["k8s-worker"]["depends_on"] == {
        "cert-generator": {"condition": "service_completed_successfully", "required": True}
    }
    up(project)
    res = plan(run_module, project)
    assert res["_rc"] == 0 and res["changed"] is False and res["drift"] == [], res
    assert res["memory"]["total"] == 96 * 2**20 and res["memory"]["problem"] is None


def test_check_mode_reports_a_new_override_without_writing_it(run_module, project):
    plan(run_module, project)
    up(project)
    before = open(os.path.join(project["dir"], OVERRIDE)).read()
    res = plan(run_module, project, check_mode=True, app_settings={"LOG_LEVEL": "INFO"})
    assert res["_rc"] == 0 and res["changed"] is True, res
    assert open(os.path.join(project["dir"], OVERRIDE)).read() == before
    assert not os.path.exists(os.path.join(project["dir"], "backend", "config.integr8scode-provision.toml"))
    assert "backend: configuration changed" in res["drift"]
    assert not [f for f in os.listdir(project["dir"]) if f.startswith(".compose-plan.")]


def test_app_settings_are_written_mounted_and_removed_again(run_module, project):
    res = plan(run_module, project, app_settings={"LOG_LEVEL": "INFO", "NEW_KEY": 5})
    assert res["_rc"] == 0 and res["settings"]["changed"] is True
    settings = open(os.path.join(project["dir"], "backend", "config.integr8scode-provision.toml")).read()
    assert (
        'LOG_LEVEL = "INFO"' in settings and "NEW_KEY = 5" in settings and 'APP_URL = "https://localhost"' in settings
    )
    assert override(project)["services"]["backend"]["volumes"][0]["target"] == "/app/config.toml"
    res = plan(run_module, project)
    assert res["settings"]["changed"] is True
    assert not os.path.exists(os.path.join(project["dir"], "backend", "config.integr8scode-provision.toml"))
    assert "volumes" not in override(project)["services"].get("backend", {})


def test_a_container_name_of_another_project_is_refused(run_module, project):
    name = f"{project['name']}-k8s-worker"
    subprocess.run(["docker", "run", "-d", "--name", name, IMAGE, "sleep", "infinity"], capture_output=True, check=True)
    res = plan(run_module, project)
    assert res["_rc"] == 1
    assert f"container name {name} (service k8s-worker): held by container" in res["msg"]
    assert "(not from compose, running)" in res["msg"]
    assert res["clashes"]["names"] and not res["clashes"]["ports"]


def test_a_listener_on_a_published_port_is_refused_unless_it_is_the_projects(run_module, project):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", project["port"]))
        sock.listen()
        res = plan(run_module, project)
    assert res["_rc"] == 1
    comm = open("/proc/self/comm").read().strip()  # what ss shows for this process
    held = f"port 127.0.0.1:{project['port']} (service backend): held by {comm} (pid {os.getpid()})"
    assert held in res["msg"], res["clashes"]
    # Once the project itself publishes the port (docker-proxy listens), it is no clash.
    up(project)
    res = plan(run_module, project)
    assert res["_rc"] == 0 and res["clashes"] == {"names": [], "ports": []}, res


def test_mem_limits_beyond_the_host_warn_or_fail(run_module, project):
    big = os.path.join(project["dir"], "big.yaml")
    with open(big, "w") as handle:
        handle.write("services:\n  backend:\n    mem_limit: 4096g\n")
    res = plan(run_module, project, files=["compose.yaml", "big.yaml"])
    assert res["_rc"] == 0 and res["memory"]["problem"].startswith("the services' mem_limits add up to 4096.0 GiB")
    assert "stack_min_memory_check" in json.dumps(res.get("warnings")), sorted(res)
    res = plan(run_module, project, files=["compose.yaml", "big.yaml"], memory_check="strict")
    assert res["_rc"] == 1 and res["msg"].endswith("(stack_min_memory_check: strict)")


def test_an_unknown_consumer_is_named(run_module, project):
    res = plan(run_module, project, kubeconfig_consumers=["pod-monitr"])
    assert res["_rc"] == 1 and "no service pod-monitr" in res["msg"]


def test_a_bind_mounted_file_is_created_and_a_directory_docker_made_replaced(run_module, project):
    kubeconfig = os.path.join(project["dir"], "backend", "kubeconfig.yaml")
    os.mkdir(kubeconfig)
    checked = plan(run_module, project, check_mode=True, bind_files=["backend/kubeconfig.yaml", "new/dir/f"])
    expected = {"backend/kubeconfig.yaml": "replaced a directory", "new/dir/f": "created"}
    assert checked.get("bind_files") == expected, checked.get("msg")
    assert os.path.isdir(kubeconfig)
    res = plan(run_module, project, bind_files=["backend/kubeconfig.yaml"], bind_file_mode="0640")
    assert res["_rc"] == 0 and res["bind_files"] == {"backend/kubeconfig.yaml": "replaced a directory"}, res
    assert os.path.isfile(kubeconfig) and os.stat(kubeconfig).st_mode & 0o777 == 0o640
    with open(kubeconfig, "w") as handle:
        handle.write("apiVersion: v1\n")
    os.chmod(kubeconfig, 0o600)
    again = plan(run_module, project, bind_files=["backend/kubeconfig.yaml"], bind_file_mode="0640")
    assert again["bind_files"] == {} and open(kubeconfig).read() == "apiVersion: v1\n"
    assert os.stat(kubeconfig).st_mode & 0o777 == 0o600
    os.remove(kubeconfig)
    os.makedirs(os.path.join(kubeconfig, "inside"))
    refused = plan(run_module, project, bind_files=["backend/kubeconfig.yaml"])
    assert refused.get("failed") and "is a non-empty directory where the stack bind-mounts a file" in refused["msg"]
