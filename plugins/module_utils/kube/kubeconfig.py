# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

"""Kubeconfig loading and error classification shared by the k3s modules.

Only the standard library and PyYAML at import time; the ``kubernetes`` client is imported by the
modules that need it. The classification turns the transport errors of the ``kubernetes`` client
(urllib3 underneath, 1.26 on Debian 12 and 2.x in newer environments) into the few situations an
operator of a k3s host has to tell apart after a VPN or IP change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import hashlib
import os
import re
import ssl

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urlparse import urlsplit

try:
    import yaml

    HAS_YAML = True
except ImportError:
    HAS_YAML = False

DEFAULT_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
# The server hosts of a kubeconfig that only works on the k3s host itself: k3s writes its admin
# kubeconfig with https://127.0.0.1:6443.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LOOPBACK_SERVER = re.compile(r"^(\s*server:\s*https://)(127\.0\.0\.1|localhost|\[::1\])(:\d+)", re.MULTILINE)
RECOVER_HINT = "host IP has probably changed; run playbooks/recover.yml (integr8scode.provision.recover)"

# Kinds returned by classify_error().
REFUSED = "connection_refused"
TLS_NAME = "tls_name_mismatch"
TLS_CA = "tls_unknown_ca"
TLS = "tls_error"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
OTHER = "other"


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used; ``kind`` is missing, unreadable or invalid."""

    def __init__(self, kind, message):
        super(KubeconfigError, self).__init__(message)
        self.kind = kind


def read_kubeconfig(path):
    """Parse ``path`` and return the kubeconfig dict, or raise :class:`KubeconfigError`."""
    if not os.path.exists(path):
        raise KubeconfigError(
            "missing",
            "kubeconfig %s does not exist (k3s writes its admin kubeconfig when the server starts; "
            "is k3s installed and running?)" % path,
        )
    if os.path.isdir(path):
        # Docker creates a directory when a bind-mounted file is missing (upstream Integr8sCode's workers).
        raise KubeconfigError("unreadable", "kubeconfig %s is a directory, not a file" % path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        hint = ""
        if exc.errno in (errno.EACCES, errno.EPERM):
            hint = " (k3s writes it mode 0600 unless write-kubeconfig-mode is set; run the task with become)"
        raise KubeconfigError("unreadable", "kubeconfig %s cannot be read: %s%s" % (path, exc.strerror, hint)) from exc
    if not HAS_YAML:
        raise KubeconfigError("invalid", "PyYAML (python3-yaml) is needed to read kubeconfig %s" % path)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KubeconfigError("invalid", "kubeconfig %s is not valid YAML: %s" % (path, exc)) from exc
    if not isinstance(data, dict) or not data.get("clusters"):
        raise KubeconfigError("invalid", "kubeconfig %s has no clusters" % path)
    return data


def current_server(config, context=None):
    """The API server URL of ``context`` (default: current-context, else the only cluster)."""
    clusters = dict((c.get("name"), c.get("cluster") or {}) for c in config.get("clusters") or [] if c)
    contexts = dict((c.get("name"), c.get("context") or {}) for c in config.get("contexts") or [] if c)
    name = context or config.get("current-context")
    cluster_name = (contexts.get(name) or {}).get("cluster") if name else None
    if cluster_name is None and len(clusters) == 1:
        cluster_name = list(clusters)[0]
    return (clusters.get(cluster_name) or {}).get("server")


def point_kubeconfig_at(text, address):
    """``text``, a kubeconfig as k3s writes it, with every loopback ``server:`` URL
    (https://127.0.0.1, localhost or [::1], port kept) pointing at ``address`` instead: a copy for
    another machine, or one that followed the node address before a recovery. Other servers and
    every other line stay as they are (the text is not re-serialised: comments, order and the
    embedded credentials are kept byte for byte). The one rewrite for the recovery (k3s_rebuild)
    and the k3s role (filter integr8scode.provision.point_kubeconfig_at)."""
    host = "[%s]" % address if ":" in address else address
    return _LOOPBACK_SERVER.sub(lambda match: match.group(1) + host + match.group(3), text)


def server_host(server):
    parts = urlsplit(server or "")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _chain(exc):
    """The exception and everything it wraps (urllib3 MaxRetryError.reason, __cause__, args)."""
    seen = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen) or len(seen) > 20:
            continue
        seen.append(current)
        reason = getattr(current, "reason", None)
        todo.append(reason if isinstance(reason, BaseException) else None)
        todo.append(current.__cause__)
        todo.append(current.__context__)
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return seen


def classify_error(exc, server=None):
    """Return ``(kind, message)`` for an exception raised while talking to an API server."""
    where = server or "the API server"
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        if status == 401:
            return UNAUTHORIZED, (
                "401 Unauthorized from %s: the kubeconfig's credentials were rejected; its token has expired "
                "or it was issued by an older CA (k3s regenerated its certificates). Refresh the kubeconfig "
                "from /etc/rancher/k3s/k3s.yaml or re-run the app's cert-generator" % where
            )
        if status == 403:
            return FORBIDDEN, "403 Forbidden from %s: the kubeconfig's user lacks the RBAC permission" % where
        return OTHER, "HTTP %s from %s: %s" % (status, where, _short(getattr(exc, "body", None) or exc))
    chain = _chain(exc)
    texts = " | ".join(str(e) for e in chain)
    lowered = texts.lower()
    for err in chain:
        if isinstance(err, ConnectionRefusedError) or getattr(err, "errno", None) == errno.ECONNREFUSED:
            return REFUSED, _refused(where)
    if "connection refused" in lowered or "errno 111" in lowered:
        return REFUSED, _refused(where)
    name_markers = ("mismatch", "doesn't match", "does not match", "not valid for")
    # urllib3 1.26 (Debian 12) raises its own CertificateError ("hostname 'x' doesn't match 'y'"),
    # urllib3 2 the ssl module's SSLCertVerificationError ("IP address mismatch").
    is_cert = (
        any(
            isinstance(e, (ssl.SSLError, ssl.CertificateError)) or type(e).__name__ == "CertificateError" for e in chain
        )
        or "certificate" in lowered
    )
    if is_cert and any(m in lowered for m in name_markers):
        host = server_host(server)[0] if server else None
        return TLS_NAME, (
            "the server certificate of %s does not cover the address %s: %s (%s)"
            % (where, host or "in the kubeconfig", RECOVER_HINT, _short(texts))
        )
    ca_markers = (
        "unable to get local issuer",
        "self signed certificate",
        "self-signed certificate",
        "unable to get issuer",
        "certificate signature failure",
        "unknown ca",
    )
    if any(m in lowered for m in ca_markers):
        return TLS_CA, (
            "the server certificate of %s is not signed by the CA in the kubeconfig: k3s's CA was probably "
            "regenerated (TLS reset) and this kubeconfig is stale; refresh it from /etc/rancher/k3s/k3s.yaml (%s)"
            % (where, _short(texts))
        )
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in lowered:
        return TLS, "TLS error talking to %s: %s" % (where, _short(texts))
    if "timed out" in lowered or "timeout" in lowered:
        return TIMEOUT, "%s did not answer in time: %s" % (where, _short(texts))
    for marker in (
        "no route to host",
        "network is unreachable",
        "name or service not known",
        "temporary failure in name resolution",
        "cannot assign requested address",
    ):
        if marker in lowered:
            return UNREACHABLE, (
                "%s is unreachable (%s): if its address was the host's old IP, the %s" % (where, marker, RECOVER_HINT)
            )
    return OTHER, "error talking to %s: %s" % (where, _short(texts))


def _refused(where):
    return (
        "connection refused by %s: nothing listens there; k3s is not running or is crash-looping "
        "(after a VPN or IP change k3s keeps its old IP and restarts in a loop; see `systemctl status k3s`)" % where
    )


def _short(value, limit=400):
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kubeconfig_info(path, cluster_ca_pem):
    info = {
        "path": path,
        "exists": os.path.isfile(path),
        "server": None,
        "server_host": None,
        "ca_matches": None,
        "sha256": None,
    }
    if not info["exists"]:
        return info
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        info["error"] = str(exc)
        return info
    info["sha256"] = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", "replace")
    server, ca_data = None, None
    if HAS_YAML:
        try:
            data = yaml.safe_load(text) or {}
            clusters = data.get("clusters") or []
            cluster = (clusters[0] or {}).get("cluster", {}) if clusters else {}
            server, ca_data = cluster.get("server"), cluster.get("certificate-authority-data")
        except Exception as exc:
            info["error"] = "not valid YAML: %s" % exc
            return info
    else:
        match = re.search(r"^\s*server:\s*[\"']?(\S+?)[\"']?\s*$", text, re.M)
        server = match.group(1) if match else None
        match = re.search(r"^\s*certificate-authority-data:\s*[\"']?(\S+?)[\"']?\s*$", text, re.M)
        ca_data = match.group(1) if match else None
    info["server"] = server
    if server:
        match = re.match(r"^[a-z]+://(\[[^\]]+\]|[^:/]+)", server)
        info["server_host"] = match.group(1).strip("[]") if match else None
    if ca_data and cluster_ca_pem:
        try:
            info["ca_matches"] = _pem_der(base64.b64decode(ca_data)) == _pem_der(cluster_ca_pem)
        except (ValueError, TypeError):
            info["ca_matches"] = False
    return info


def _pem_der(pem):
    """Digest of the first certificate's body, so whitespace and trailing chains don't matter."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    match = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", text, re.S)
    body = "".join((match.group(1) if match else text).split())
    return hashlib.sha256(body.encode()).hexdigest()


# --------------------------------------------------------------------------- host state
