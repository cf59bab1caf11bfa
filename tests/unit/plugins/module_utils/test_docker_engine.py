"""module_utils/docker_engine.py against the real Docker engine (and its pure parts alone).

Containers are run from the local test-host image (no registry here), named utengine-* and
removed after each test.
"""

import os
import struct
import subprocess
import threading
import time
import uuid

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.docker_engine import (
    DockerClient,
    DockerException,
    NotFound,
    demultiplex,
)

IMAGE = os.environ.get("UTWAIT_IMAGE", "integr8scode-testhost:latest")


def frame(stream, payload):
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def test_demultiplex_joins_frames_of_both_streams():
    raw = frame(1, b"out line\n") + frame(2, b"err line\n") + frame(1, b"")
    assert demultiplex(raw) == b"out line\nerr line\n"


def test_demultiplex_keeps_unframed_text_and_what_a_torn_frame_holds():
    assert demultiplex(b"plain tty output\n") == b"plain tty output\n"
    torn = frame(1, b"whole\n") + b"\x01\x00\x00\x00\x00\x00\x00\x09part"
    assert demultiplex(torn) == b"whole\npart"


@pytest.mark.parametrize(
    "url, message",
    [("ssh://user@host", "unsupported Docker endpoint"), ("npipe:////./pipe/docker", "unsupported Docker endpoint")],
)
def test_unsupported_endpoints_are_refused_by_name(url, message):
    with pytest.raises(DockerException, match=message):
        DockerClient(url)


def test_tls_endpoint_is_refused(monkeypatch):
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    with pytest.raises(DockerException, match="TLS endpoints are not supported"):
        DockerClient("tcp://127.0.0.1:2376")


def test_unreachable_socket_names_the_endpoint(tmp_path):
    client = DockerClient("unix://%s" % (tmp_path / "no.sock"))
    with pytest.raises(DockerException, match="no.sock"):
        client.api.ping()


def _docker_ok():
    try:
        return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


engine = pytest.mark.skipif(not _docker_ok(), reason=f"needs a Docker engine and the image {IMAGE} (make image)")


@pytest.fixture
def container():
    name = f"utengine-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "utengine=" + name, IMAGE, "sh", "-c",
         "echo to-stdout; echo to-stderr >&2; exec sleep 300"],
        check=True, capture_output=True,
    )  # fmt: skip
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@engine
def test_ping_list_inspect_and_logs(container):
    api = DockerClient().api
    assert api.ping() is True
    found = api.containers(all=True, filters={"label": "utengine=" + container})
    assert [c["Names"] for c in found] == [["/" + container]]
    info = api.inspect_container(container)
    assert info["State"]["Running"] is True
    logs = b""
    for _attempt in range(150):  # the container prints right after it starts; allow a loaded machine
        logs = api.logs(container, stdout=True, stderr=True, tail=10)
        if b"to-stderr" in logs and b"to-stdout" in logs:
            break
        time.sleep(0.2)
    # Both streams, without frame headers; their order across streams is not guaranteed.
    assert sorted(logs.splitlines()) == [b"to-stderr", b"to-stdout"]


@engine
def test_missing_container_raises_not_found():
    with pytest.raises(NotFound) as caught:
        DockerClient().api.inspect_container("utengine-no-such-container")
    assert caught.value.status == 404
    assert "utengine-no-such-container" in str(caught.value)


@engine
def test_restart_stop_and_start(container):
    api = DockerClient().api
    before = api.inspect_container(container)["State"]["StartedAt"]
    api.restart(container, timeout=1)
    after = api.inspect_container(container)["State"]["StartedAt"]
    assert after != before
    api.stop(container, timeout=1)
    assert api.inspect_container(container)["State"]["Running"] is False
    api.start(container)
    assert api.inspect_container(container)["State"]["Running"] is True


@engine
def test_events_stream_reports_the_labelled_container_and_closes(container):
    api = DockerClient().api
    stream = api.events(decode=True, filters={"type": "container", "label": "utengine=" + container})
    seen = []

    def read():
        for event in stream:
            seen.append(event)
            if event.get("status") == "restart" or event.get("Action") == "restart":
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    subprocess.run(["docker", "restart", "-t", "1", container], check=True, capture_output=True)
    reader.join(30)
    stream.close()
    assert not reader.is_alive(), "no restart event arrived within 30 s"
    assert {e["Actor"]["Attributes"]["name"] for e in seen} == {container}
