# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The app's kubeconfig (backend/kubeconfig.yaml): is it fresh, and does the API accept it?

Upstream's cert-generator exits with its second script's code only, so a failed Kubernetes setup
still exits 0 and leaves a stale or empty kubeconfig (shared/facts/integr8scode-stack.md). The
stack role (module ``app_kubeconfig``) and the recovery (``k3s_rebuild``) judge the file with
these two functions, so they cannot disagree about what "reconnected" means:

- ``judge``: written by the latest cert-generator run (mtime not older than that container's
  start), parseable, with a token and CA data, pointing at https://<node-ip>:<port>;
- ``secure``: the file's mode (it holds a token; cert-generator writes it 0644);
- ``prove_token``: one request as the workers make it (the file's own CA and token) to the API;
  200 or 403 means the token authenticated (403 is RBAC refusing that path), 401 means not;
- ``token_expiry``: when the token expires (its JWT ``exp``), for the host status.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import ssl

try:
    from urllib.error import HTTPError
    from urllib.request import HTTPSHandler, Request, build_opener
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    HTTPError = HTTPSHandler = Request = build_opener = None

from ansible_collections.integr8scode.provision.plugins.module_utils.kube.kubeconfig import (
    KubeconfigError,
    current_server,
    read_kubeconfig,
)

PROBE_PATH = "/api/v1/namespaces"
# 403: authenticated, refused by RBAC for this path; the token itself is accepted.
TOKEN_ACCEPTED = (200, 403)


def _first(config, key, inner):
    return ((config.get(key) or [{}])[0] or {}).get(inner) or {}


def judge(path, node_ip=None, api_port=6443, written_after=None):
    """(config or None, facts) where facts has ``problems`` (empty when the file is usable),
    ``server``, ``mode`` and ``mtime``. ``written_after``: epoch seconds of the cert-generator
    run that must have written the file."""
    facts = dict(path=path, problems=[], server=None, mode=None, mtime=None, expected_server=None)
    try:
        config = read_kubeconfig(path)
    except KubeconfigError as exc:
        facts["problems"].append(str(exc))
        return None, facts
    stat = os.stat(path)
    facts.update(mode="%04o" % (stat.st_mode & 0o7777), mtime=int(stat.st_mtime))
    facts["server"] = current_server(config)
    if written_after is not None and int(stat.st_mtime) < int(written_after):
        facts["problems"].append(
            "not rewritten by the latest cert-generator run (it exits 0 even when its Kubernetes setup failed)"
        )
    if not _first(config, "users", "user").get("token"):
        facts["problems"].append("no ServiceAccount token")
    if not _first(config, "clusters", "cluster").get("certificate-authority-data"):
        facts["problems"].append("no certificate-authority-data")
    if node_ip:
        facts["expected_server"] = "https://%s:%s" % (node_ip, api_port)
        if (facts["server"] or "").rstrip("/") != facts["expected_server"]:
            facts["problems"].append(
                "server %s, expected %s (the node address)" % (facts["server"], facts["expected_server"])
            )
    return config, facts


def token_expiry(config):
    """Epoch seconds at which the kubeconfig's ServiceAccount token expires (the JWT's ``exp``),
    or None when it names none (a legacy Secret token never expires) or is no JWT. The token's
    signature is not checked: ``prove_token`` asks the API whether it is accepted. Only the
    expiry leaves this function, never the token."""
    token = _first(config or {}, "users", "user").get("token") or ""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return int(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def secure(path, mode=0o600, check_mode=False):
    """The file holds a ServiceAccount token and upstream's cert-generator leaves it 0644: put it
    at ``mode``. True when the mode differed (and, unless ``check_mode``, was changed)."""
    if os.stat(path).st_mode & 0o7777 == mode:
        return False
    if not check_mode:
        os.chmod(path, mode)
    return True


def prove_token(config, probe_path=PROBE_PATH, timeout=10):
    """(accepted, status, error) of one GET with the kubeconfig's own CA and token (standard
    library only: the programs on the host use it too). The token is never part of the result."""
    server = current_server(config)
    ca_data = _first(config, "clusters", "cluster").get("certificate-authority-data")
    token = _first(config, "users", "user").get("token")
    if not server or not ca_data or not token:
        return False, None, "no server, token or CA data"
    context = ssl.create_default_context(cadata=base64.b64decode(ca_data).decode("ascii"))
    request = Request(server.rstrip("/") + probe_path, headers={"Authorization": "Bearer " + token})
    status, error = None, ""
    try:
        with build_opener(HTTPSHandler(context=context)).open(request, timeout=timeout) as response:
            status = response.getcode()
    except HTTPError as exc:
        status, error = exc.code, str(exc)
    except Exception as exc:  # TLS, refused, timeout: the reason, no status
        error = str(getattr(exc, "reason", exc))
    return status in TOKEN_ACCEPTED, status, error
