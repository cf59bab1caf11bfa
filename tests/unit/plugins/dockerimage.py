"""The module tests that need the real Docker engine and the local test-host image (no registry
here): the image, and the marks that skip them, with the reason, where the engine or image is
missing."""

import os
import subprocess

import pytest

IMAGE = os.environ.get("UTWAIT_IMAGE", "integr8scode-testhost:latest")


def docker_ok():
    try:
        return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


NEEDS_DOCKER = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_ok(), reason=f"needs a Docker engine and the image {IMAGE} (make image)"),
]
