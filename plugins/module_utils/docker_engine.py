# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The few Docker Engine API calls the modules make, over the Engine's own HTTP API with the
standard library only.

The targets need no Docker SDK for Python: Ubuntu 24.04's python3-docker fails against that
release's urllib3, and community.docker's modules do without it too (they carry their own API
client). The shape follows the SDK's (``DockerClient().api.containers(...)``) so that callers
read the same either way.

Endpoints: ``unix:///path`` (default ``DOCKER_HOST``, else ``unix:///var/run/docker.sock``) and
plain ``tcp://host:port`` / ``http://host:port``. A TLS endpoint is refused with a message: the
modules run on the Docker host itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import struct

try:
    from http import client as http_client
    from urllib.parse import quote, urlencode, urlparse
except ImportError:  # pragma: no cover - Python 2 is not a supported target
    http_client = None

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Seconds a single request may take; restarts get their stop timeout on top.
REQUEST_TIMEOUT = 60


class DockerException(Exception):  # noqa: N818 - the SDK's name for the same thing
    """A Docker Engine API call failed: connection, or an error status (``status``)."""

    def __init__(self, message, status=None):
        super(DockerException, self).__init__(message)
        self.status = status


class NotFound(DockerException):  # noqa: N818 - the SDK's name for the same thing
    """The Engine answered 404 (no such container)."""


class _UnixConnection(http_client.HTTPConnection):
    def __init__(self, path, timeout):
        http_client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class EventStream:
    """Decoded events of ``/events`` as an iterator; ``close()`` ends it from another thread."""

    def __init__(self, connection, response):
        self._connection = connection
        self._response = response

    def __iter__(self):
        while True:
            line = self._response.readline()
            if not line:
                return
            line = line.strip()
            if line:
                yield json.loads(line.decode("utf-8"))

    def close(self):
        try:
            self._connection.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self._connection.close()


def demultiplex(raw):
    """The bytes of a log stream without Docker's 8-byte frame headers (containers without a TTY
    send stdout and stderr multiplexed: stream, 3 zero bytes, big-endian length, payload)."""
    out, at = [], 0
    while at + 8 <= len(raw) and raw[at] in (0, 1, 2) and raw[at + 1 : at + 4] == b"\x00\x00\x00":
        size = struct.unpack(">I", raw[at + 4 : at + 8])[0]
        out.append(raw[at + 8 : at + 8 + size])
        at += 8 + size
    if at < len(raw):  # not framed (a TTY's output): keep it as it is
        out.append(raw[at:])
    return b"".join(out)


class EngineAPI:
    """The Engine API calls the modules use, named as the SDK's low-level client names them."""

    def __init__(self, base_url=None):
        url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        parsed = urlparse(url)
        if parsed.scheme == "unix":
            self._unix_path, self._netloc = parsed.path, None
        elif parsed.scheme in ("tcp", "http"):
            if os.environ.get("DOCKER_TLS_VERIFY"):
                raise DockerException("DOCKER_TLS_VERIFY is set: TLS endpoints are not supported (%s)" % url)
            self._unix_path, self._netloc = None, parsed.netloc
        else:
            raise DockerException("unsupported Docker endpoint %r: use unix:// or tcp:// (plain)" % url)
        self.base_url = url

    def _connection(self, timeout):
        if self._unix_path:
            return _UnixConnection(self._unix_path, timeout)
        return http_client.HTTPConnection(self._netloc, timeout=timeout)

    def _open(self, method, path, params=None, timeout=REQUEST_TIMEOUT):
        query = ("?" + urlencode(params)) if params else ""
        connection = self._connection(timeout)
        try:
            connection.request(method, path + query, headers={"Host": "docker"})
            response = connection.getresponse()
        except (OSError, http_client.HTTPException) as exc:
            connection.close()
            raise DockerException("Docker Engine at %s: %s %s failed: %s" % (self.base_url, method, path, exc)) from exc
        if response.status >= 400:
            body = response.read().decode("utf-8", "replace")
            connection.close()
            try:
                message = json.loads(body).get("message", body)
            except ValueError:
                message = body
            error = NotFound if response.status == 404 else DockerException
            raise error("%s %s: %s %s" % (method, path, response.status, message.strip()), status=response.status)
        return connection, response

    def _call(self, method, path, params=None, timeout=REQUEST_TIMEOUT):
        connection, response = self._open(method, path, params, timeout)
        try:
            return response.read()
        except (OSError, http_client.HTTPException) as exc:
            raise DockerException(
                "Docker Engine at %s: reading %s %s failed: %s" % (self.base_url, method, path, exc)
            ) from exc
        finally:
            connection.close()

    def _json(self, method, path, params=None):
        body = self._call(method, path, params)
        return json.loads(body.decode("utf-8")) if body else None

    @staticmethod
    def _filters(filters):
        # The API takes each filter as a list of values.
        return json.dumps(dict((k, v if isinstance(v, list) else [v]) for k, v in (filters or {}).items()))

    def ping(self):
        return self._call("GET", "/_ping").decode("utf-8") == "OK"

    def containers(self, all=False, filters=None):  # noqa: A002 - the SDK's argument name
        return self._json("GET", "/containers/json", {"all": "1" if all else "0", "filters": self._filters(filters)})

    def inspect_container(self, container):
        return self._json("GET", "/containers/%s/json" % quote(container, safe=""))

    def start(self, container):
        self._call("POST", "/containers/%s/start" % quote(container, safe=""))

    def stop(self, container, timeout=10):
        self._stop_or_restart("stop", container, timeout)

    def restart(self, container, timeout=10):
        self._stop_or_restart("restart", container, timeout)

    def _stop_or_restart(self, action, container, timeout):
        # The engine waits up to `t` seconds for the container to exit before it kills it; the
        # request may take that long on top of the usual one.
        self._call(
            "POST",
            "/containers/%s/%s" % (quote(container, safe=""), action),
            {"t": str(int(timeout))},
            timeout=REQUEST_TIMEOUT + timeout,
        )

    def logs(self, container, stdout=True, stderr=True, tail="all"):
        cid = quote(container, safe="")
        params = {"stdout": "1" if stdout else "0", "stderr": "1" if stderr else "0", "tail": str(tail)}
        raw = self._call("GET", "/containers/%s/logs" % cid, params)
        tty = (self.inspect_container(container).get("Config") or {}).get("Tty")
        return raw if tty else demultiplex(raw)

    def events(self, decode=True, filters=None):
        """Events as they happen, decoded (the SDK's ``decode=True``; nothing else is offered)."""
        if not decode:
            raise DockerException("only decoded events are supported")
        connection, response = self._open("GET", "/events", {"filters": self._filters(filters)}, timeout=None)
        return EventStream(connection, response)


class DockerClient:
    """The Engine at ``base_url``; ``.api`` makes the calls (as the SDK's ``DockerClient.api``)."""

    def __init__(self, base_url=None):
        self.api = EngineAPI(base_url)
