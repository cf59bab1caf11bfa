# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Docker Compose project filters for role stack (docs: compose_oneshots.yml, compose_drift.yml,
mask_secrets.yml beside this file).

compose_oneshots: the services other services wait for with `service_completed_successfully`
(the same rule compose_wait judges one-shots by). compose_drift: why a project is not converged.
mask_secrets: compose output with secret values replaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import (
    drift,
    mask,
    oneshots_from_config,
)


def _is_list(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def compose_oneshots(config):
    """Sorted names of the services some service depends on with condition service_completed_successfully."""
    if not isinstance(config, Mapping):
        raise AnsibleFilterError(
            "compose_oneshots input must be the parsed output of `docker compose config --format json` (a mapping), "
            "got %s" % type(config).__name__
        )
    services = config.get("services") or {}
    if not isinstance(services, Mapping):
        raise AnsibleFilterError("compose_oneshots: 'services' must be a mapping, got %s" % type(services).__name__)
    return sorted(oneshots_from_config(services))


def compose_drift(containers, hashes, oneshots, pulled=False):
    """One '<service>: <problem>' line per thing that is not converged; empty when `up` has nothing to do."""
    if not _is_list(containers) or not all(isinstance(c, Mapping) for c in containers):
        raise AnsibleFilterError(
            "compose_drift input must be the containers of `docker compose ps --all --format json` "
            "(a list of mappings), got %r" % (containers,)
        )
    if not isinstance(hashes, Mapping):
        raise AnsibleFilterError(
            "compose_drift hashes must map each service to its `docker compose config --hash` value, got %s"
            % type(hashes).__name__
        )
    if not _is_list(oneshots):
        raise AnsibleFilterError("compose_drift oneshots must be a list of service names, got %r" % (oneshots,))
    return drift(containers, hashes, oneshots, pulled)


def mask_secrets(text, secrets):
    """`text` with every non-empty value of `secrets` replaced by ********, longest value first."""
    if not _is_list(secrets) and not isinstance(secrets, (set, frozenset)):
        raise AnsibleFilterError(
            "mask_secrets takes a list of secret values, got %s (a single string would mask each of its characters)"
            % type(secrets).__name__
        )
    return mask("" if text is None else str(text), secrets)


class FilterModule:
    """Docker Compose project filters."""

    def filters(self):
        return {
            "compose_oneshots": compose_oneshots,
            "compose_drift": compose_drift,
            "mask_secrets": mask_secrets,
        }
