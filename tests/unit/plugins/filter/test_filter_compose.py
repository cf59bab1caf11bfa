"""Filters compose_oneshots, compose_drift and mask_secrets (plugins/filter/compose.py), called directly."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.filter.compose import (
    FilterModule,
    compose_drift,
    compose_oneshots,
    mask_secrets,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import MASK


def test_filters_are_registered_under_their_names():
    assert FilterModule().filters() == {
        "compose_oneshots": compose_oneshots,
        "compose_drift": compose_drift,
        "mask_secrets": mask_secrets,
    }


# --- compose_oneshots ---------------------------------------------------------------------------------------------
# The shape `docker compose config --format json` prints: depends_on always as a mapping of conditions.

UPSTREAM_LIKE = {
    "name": "integr8scode",
    "services": {
        "base": {"image": "base"},
        "shared-ca": {"depends_on": {"base": {"condition": "service_completed_successfully", "required": True}}},
        "cert-generator": {
            "depends_on": {"shared-ca": {"condition": "service_completed_successfully", "required": True}}
        },
        "mongo": {"image": "mongo:8"},
        "user-seed": {"depends_on": {"mongo": {"condition": "service_healthy", "required": True}}},
        "backend": {
            "depends_on": {
                "cert-generator": {"condition": "service_completed_successfully", "required": True},
                "user-seed": {"condition": "service_completed_successfully", "required": True},
                "mongo": {"condition": "service_healthy", "required": True},
                "kafka": {"condition": "service_started", "required": True},
            }
        },
        "k8s-worker": {"depends_on": {"cert-generator": {"condition": "service_completed_successfully"}}},
        "kafka": {"image": "kafka"},
    },
}


def test_oneshots_are_the_services_waited_for_with_service_completed_successfully():
    assert compose_oneshots(UPSTREAM_LIKE) == ["base", "cert-generator", "shared-ca", "user-seed"]


def test_a_project_without_one_shots_or_services():
    assert compose_oneshots({"services": {"web": {"depends_on": {"db": {"condition": "service_started"}}}}}) == []
    assert compose_oneshots({"services": {"web": {"image": "nginx", "depends_on": None}}}) == []
    assert compose_oneshots({"name": "empty"}) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"services": {}}', "compose_oneshots input must be the parsed output"),
        (None, "compose_oneshots input must be the parsed output"),
        ({"services": ["web"]}, "'services' must be a mapping"),
    ],
)
def test_oneshots_bad_input(config, message):
    with pytest.raises(AnsibleFilterError, match=message):
        compose_oneshots(config)


# --- compose_drift --------------------------------------------------------------------------------------------------
# Containers as `docker compose ps --all --orphans --format json` prints them (compose 2.40): Labels one string.

HASHES = {"backend": "b" * 64, "cert-generator": "c" * 64, "mongo": "d" * 64}
ONESHOTS = ["cert-generator"]


def container(service, state="running", exit_code=0, config_hash=None):
    if config_hash is None:
        config_hash = HASHES.get(service, "e" * 64)
    labels = ",".join(
        [
            "com.docker.compose.project=integr8scode",
            "com.docker.compose.depends_on=shared-ca:service_completed_successfully:false,base:service_started:false",
            f"com.docker.compose.config-hash={config_hash}",
            f"com.docker.compose.service={service}",
        ]
    )
    return {"Service": service, "State": state, "ExitCode": exit_code, "Labels": labels, "Name": f"p-{service}-1"}


CONVERGED = [container("backend"), container("cert-generator", "exited", 0), container("mongo")]


def test_a_converged_project_has_no_drift():
    assert compose_drift(CONVERGED, HASHES, ONESHOTS) == []


def test_a_one_shot_still_running_is_not_drift():
    containers = [container("backend"), container("cert-generator"), container("mongo")]
    assert compose_drift(containers, HASHES, ONESHOTS) == []


def test_a_restarting_service_is_not_drift():
    assert compose_drift([container("backend", "restarting"), *CONVERGED[1:]], HASHES, ONESHOTS) == []


def test_every_problem_in_order_with_its_text():
    containers = [
        container("backend", config_hash="0" * 64),
        container("cert-generator", "exited", 1),
        container("old-worker", "running"),
    ]
    assert compose_drift(containers, HASHES, ONESHOTS, pulled=True) == [
        "backend: configuration changed",
        "cert-generator: one-shot exited (exit 1)",
        "mongo: no container",
        "old-worker: orphan",
        "images pulled",
    ]


@pytest.mark.parametrize(
    ("state", "exit_code", "problem"),
    [
        ("exited", 0, None),
        ("exited", "0", None),
        ("exited", 137, "cert-generator: one-shot exited (exit 137)"),
        ("created", 0, "cert-generator: one-shot created (exit 0)"),
        ("dead", 0, "cert-generator: one-shot dead (exit 0)"),
        ("exited", None, "cert-generator: one-shot exited (exit None)"),
    ],
)
def test_one_shot_states(state, exit_code, problem):
    containers = [container("backend"), container("cert-generator", state, exit_code), container("mongo")]
    assert compose_drift(containers, HASHES, ONESHOTS) == ([problem] if problem else [])


@pytest.mark.parametrize("state", ["exited", "created", "paused", "dead"])
def test_a_long_running_service_not_running_is_drift(state):
    containers = [container("backend", state, 0), *CONVERGED[1:]]
    assert compose_drift(containers, HASHES, ONESHOTS) == [f"backend: {state}"]


def test_each_container_of_a_scaled_service_is_judged():
    containers = [*CONVERGED, container("mongo", "exited", 0)]
    assert compose_drift(containers, HASHES, ONESHOTS) == ["mongo: exited"]


def test_config_hash_is_compared_whole_not_as_a_prefix():
    short = container("backend", config_hash="b" * 64 + "0")
    assert compose_drift([short, *CONVERGED[1:]], HASHES, ONESHOTS) == ["backend: configuration changed"]
    unlabelled = dict(CONVERGED[0], Labels="com.docker.compose.service=backend")
    assert compose_drift([unlabelled, *CONVERGED[1:]], HASHES, ONESHOTS) == ["backend: configuration changed"]


def test_labels_as_a_mapping():
    mapped = dict(CONVERGED[0], Labels={"com.docker.compose.config-hash": "b" * 64})
    assert compose_drift([mapped, *CONVERGED[1:]], HASHES, ONESHOTS) == []


def test_no_containers_at_all():
    assert compose_drift([], HASHES, ONESHOTS) == [
        "backend: no container",
        "cert-generator: no container",
        "mongo: no container",
    ]


@pytest.mark.parametrize(
    ("containers", "hashes", "oneshots", "message"),
    [
        ('{"Service": "backend"}', HASHES, ONESHOTS, "compose_drift input must be the containers"),
        ([["backend"]], HASHES, ONESHOTS, "compose_drift input must be the containers"),
        (CONVERGED, "backend abc", ONESHOTS, "compose_drift hashes must map each service"),
        (CONVERGED, HASHES, "cert-generator", "compose_drift oneshots must be a list"),
    ],
)
def test_drift_bad_input(containers, hashes, oneshots, message):
    with pytest.raises(AnsibleFilterError, match=message):
        compose_drift(containers, hashes, oneshots)


# --- mask_secrets ---------------------------------------------------------------------------------------------------


def test_every_occurrence_of_every_secret_is_masked():
    text = "mongo: auth failed for root:Sup3rSecretPw (Sup3rSecretPw); redis: NOAUTH r3dis-pass"
    assert mask_secrets(text, ["Sup3rSecretPw", "r3dis-pass"]) == (
        f"mongo: auth failed for root:{MASK} ({MASK}); redis: NOAUTH {MASK}"
    )
    assert MASK == "********"


def test_longest_secret_first():
    # Masking 'abc' first would leave '123xyz' of the longer secret readable.
    assert mask_secrets("pw=abc123xyz, user=abc", ["abc", "abc123xyz"]) == "pw=********, user=********"
    assert mask_secrets("pw=abc123xyz", ["abc123xyz", "abc"]) == "pw=********"


def test_empty_and_null_values_are_ignored():
    assert mask_secrets("nothing secret here", ["", None]) == "nothing secret here"
    assert mask_secrets("nothing secret here", []) == "nothing secret here"


def test_values_and_text_that_are_not_strings():
    assert mask_secrets("port 123456 open", [123456]) == "port ******** open"
    assert mask_secrets(None, ["x"]) == ""
    assert mask_secrets({"k": "s3cr3t-value"}, ["s3cr3t-value"]) == "{'k': '********'}"
    assert mask_secrets("a-secret", ("a-secret",)) == MASK


@pytest.mark.parametrize("secrets", ["Sup3rSecretPw", {"SECRET_KEY": "x"}, None, 42])
def test_secrets_must_be_a_list(secrets):
    with pytest.raises(AnsibleFilterError, match="mask_secrets takes a list of secret values"):
        mask_secrets("text", secrets)
