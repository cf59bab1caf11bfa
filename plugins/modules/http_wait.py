#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: http_wait
short_description: Wait until an HTTP(S) endpoint answers as expected, inside one invocation
version_added: "0.1.0"
description:
  - Requests O(url) until the status is in O(status_code) and, when given, the body matches
    O(body_regex) and the JMESPath expression O(json_query) over the JSON body is truthy.
  - Refused and reset connections, timeouts and TLS errors are retried until O(timeout); the last
    one is returned in RV(last_error).
  - Replaces the C(ansible.builtin.uri) + C(until)/C(retries)/C(delay) loop (upstream
    Integr8sCode's docs used a curl retry loop for the backend's C(/api/v1/health/live)),
    so readiness is noticed within a fraction of a second instead of up to one C(delay).
options:
  url:
    description: The http or https URL to request.
    type: str
    required: true
  then_urls:
    description:
      - Further URLs waited for in the same execution once O(url) is ready, one after the other,
        with the same O(method), O(status_code), O(headers), TLS options and O(timeout) (one
        deadline for all); O(body_regex) and O(json_query) apply to O(url) only.
      - A role waiting for a backend and then a frontend costs one round trip to the host.
    type: list
    elements: str
    default: []
  method:
    description: HTTP method.
    type: str
    default: GET
  status_code:
    description: Status codes that count as ready.
    type: list
    elements: int
    default: [200]
  body_regex:
    description: A Python regular expression the response body must match (searched, not anchored).
    type: str
  json_query:
    description:
      - A JMESPath expression evaluated over the JSON body; ready only when its result is truthy.
        A body that is not JSON is not ready. Needs the Python C(jmespath) library.
    type: str
  headers:
    description: Extra request headers. Values are never returned.
    type: dict
    default: {}
  validate_certs:
    description: Verify the server certificate (chain and host name).
    type: bool
    default: true
  ca_path:
    description: PEM file with the CA certificate(s) to verify the server against.
    type: path
  client_cert:
    description: PEM client certificate (may also hold the key).
    type: path
  client_key:
    description: PEM private key of O(client_cert).
    type: path
  request_timeout:
    description: Seconds one request may take (connect and read); capped by what is left of O(timeout).
    type: float
    default: 5
  timeout:
    description: Total seconds to wait, measured on a monotonic clock. C(0) probes exactly once.
    type: float
    default: 120
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - integr8scode.provision.poll
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Uses Ansible's own URL library; C(jmespath) is needed only for O(json_query).
  - Proxies from the environment are honoured (C(https_proxy), C(no_proxy)).
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: The wait is skipped in check mode.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Wait for the Integr8sCode backend (self-signed certificate)
  integr8scode.provision.http_wait:
    url: https://127.0.0.1:443/api/v1/health/live
    validate_certs: false
    json_query: "status == 'ok'"
    timeout: 180

- name: Wait for an API with its own CA and a client certificate
  integr8scode.provision.http_wait:
    url: https://127.0.0.1:6443/readyz
    ca_path: /var/lib/rancher/k3s/server/tls/server-ca.crt
    client_cert: /var/lib/rancher/k3s/server/tls/client-admin.crt
    client_key: /var/lib/rancher/k3s/server/tls/client-admin.key
    body_regex: "^ok$"
"""

RETURN = r"""
then:
  description: Per URL of O(then_urls), its C(url), C(status), C(elapsed) and C(attempts).
  returned: always
  type: list
  elements: dict
url:
  description: The URL requested.
  returned: always
  type: str
status:
  description: Status code of the last response, or -1 when the last request got no response.
  returned: always
  type: int
  sample: 200
json:
  description: The last response body parsed as JSON, or null when it is not JSON.
  returned: always
  type: raw
  sample: {"status": "ok"}
elapsed:
  description: Seconds waited.
  returned: always
  type: float
attempts:
  description: Requests made.
  returned: always
  type: int
last_error:
  description:
    - Why the last attempt was not ready (connection refused, TLS error, unexpected status, body
      mismatch, query false), or null when it was.
  returned: always
  type: str
  sample: "connection refused"
ready:
  description: Whether the endpoint became ready (null in check mode).
  returned: always
  type: bool
skipped:
  description: True in check mode, when the wait was skipped.
  returned: when skipped
  type: bool
"""

import errno
import json
import re
import socket
import ssl
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlsplit
from ansible.module_utils.urls import open_url
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import (
    Deadline,
    ProbeResult,
    check_mode_result,
    poll,
    poll_argument_spec,
    validate_poll_params,
)

try:
    import jmespath

    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

# Bodies larger than this are not kept for matching or returning (health endpoints are tiny).
MAX_BODY = 1024 * 1024


def describe_error(exc):
    """A short, specific description of why a request got no usable response."""
    reason = exc.reason if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
    if isinstance(reason, ssl.SSLCertVerificationError) or isinstance(exc, ssl.SSLCertVerificationError):
        err = reason if isinstance(reason, ssl.SSLCertVerificationError) else exc
        return "TLS certificate verification failed: %s" % (getattr(err, "verify_message", None) or err)
    if isinstance(reason, ssl.SSLError):
        return "TLS error: %s" % reason
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset or closed without a response"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "request timed out"
    if isinstance(reason, OSError) and reason.errno == errno.ECONNREFUSED:
        return "connection refused"
    text = str(reason)
    if "certificate" in text.lower():
        return "TLS certificate verification failed: %s" % text
    return "%s: %s" % (type(reason).__name__, text)


class HttpProbe:
    def __init__(self, module, deadline, params=None):
        self.module = module
        self.params = params or module.params
        self.deadline = deadline
        self.regex = re.compile(self.params["body_regex"]) if self.params["body_regex"] else None
        self.query = jmespath.compile(self.params["json_query"]) if self.params["json_query"] else None

    def request(self):
        p = self.params
        # Half a second at least, so the probe at the deadline (or with timeout=0) can still answer.
        timeout = min(p["request_timeout"], max(self.deadline.remaining(), 0.5))
        try:
            resp = open_url(
                p["url"],
                method=p["method"],
                headers=p["headers"],
                validate_certs=p["validate_certs"],
                ca_path=p["ca_path"],
                client_cert=p["client_cert"],
                client_key=p["client_key"],
                timeout=timeout,
                follow_redirects="safe",
            )
            return resp.getcode(), resp.read(MAX_BODY), None
        except HTTPError as exc:
            try:
                body = exc.read(MAX_BODY)
            except Exception:
                body = b""
            return exc.code, body, None
        except Exception as exc:  # every transport failure is retried; the description says which
            return -1, b"", describe_error(exc)

    def __call__(self):
        status, body, error = self.request()
        text = body.decode("utf-8", errors="replace") if body else ""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        observation = dict(status=status, json=data, error=error)
        if error:
            return ProbeResult(False, False, observation, error)
        if status not in self.params["status_code"]:
            return ProbeResult(
                False, False, observation, "status %d is not in %s" % (status, self.params["status_code"])
            )
        if self.regex is not None and not self.regex.search(text):
            return ProbeResult(False, False, observation, "body does not match body_regex")
        if self.query is not None:
            if data is None:
                return ProbeResult(False, False, observation, "body is not JSON, json_query cannot be evaluated")
            value = self.query.search(data)
            if not value:
                return ProbeResult(
                    False, False, observation, "json_query %r is %r (not truthy)" % (self.params["json_query"], value)
                )
        return ProbeResult(True, False, observation, "")


def validate(module):
    p = module.params
    errors = validate_poll_params(p)
    for name, url in [("url", p["url"])] + [("then_urls", url) for url in p["then_urls"]]:
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append("%s must be an absolute http:// or https:// URL with a host, got %r" % (name, url))
            continue
        try:
            if parts.port == 0:
                errors.append("%s has port 0: %r" % (name, url))
        except ValueError:
            errors.append("%s has an invalid port: %r" % (name, url))
    if p["request_timeout"] <= 0:
        errors.append("request_timeout must be a positive number of seconds, got %r" % (p["request_timeout"],))
    if not p["status_code"]:
        errors.append("status_code must list at least one status code")
    for code in p["status_code"] or []:
        if not 100 <= code <= 599:
            errors.append("status_code entries must be HTTP status codes (100-599), got %r" % (code,))
    if p["body_regex"]:
        try:
            re.compile(p["body_regex"])
        except re.error as exc:
            errors.append("body_regex is not a valid regular expression: %s" % exc)
    if p["json_query"] and HAS_JMESPATH:
        try:
            jmespath.compile(p["json_query"])
        except Exception as exc:
            errors.append("json_query is not a valid JMESPath expression: %s" % exc)
    if p["client_key"] and not p["client_cert"]:
        errors.append("client_key needs client_cert")
    # Files may not exist yet in check mode on a bare host (a role creates them in the same run).
    for name in ("ca_path", "client_cert", "client_key") if not module.check_mode else ():
        path = p[name]
        if path:
            try:
                with open(path, "rb"):
                    pass
            except (IOError, OSError) as exc:
                errors.append("%s %s cannot be read: %s" % (name, path, exc.strerror or exc))
    return errors


def main():
    argument_spec = dict(
        url=dict(type="str", required=True),
        then_urls=dict(type="list", elements="str", default=[]),
        method=dict(type="str", default="GET"),
        status_code=dict(type="list", elements="int", default=[200]),
        body_regex=dict(type="str"),
        json_query=dict(type="str"),
        headers=dict(type="dict", default={}),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        request_timeout=dict(type="float", default=5.0),
    )
    argument_spec.update(poll_argument_spec(timeout=120.0))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    # Header values are often credentials (Authorization); keep them out of every output.
    for value in (p["headers"] or {}).values():
        if value:
            module.no_log_values.add(str(value))
    p["method"] = p["method"].upper()

    errors = validate(module)
    if errors:
        module.fail_json(msg="; ".join(errors), url=p["url"])
    if module.check_mode:
        module.exit_json(**check_mode_result(url=p["url"], status=None, json=None, last_error=None, then=[]))
    if p["json_query"] and not HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib("jmespath (python3-jmespath)"), exception=JMESPATH_IMPORT_ERROR)

    deadline = Deadline(p["timeout"])
    outcome = poll(HttpProbe(module, deadline), p["timeout"], p["interval"], p["backoff"], p["max_interval"])
    obs = outcome.observation
    result = dict(
        changed=False,
        ready=outcome.ready,
        url=p["url"],
        status=obs.get("status", -1),
        json=obs.get("json"),
        elapsed=round(outcome.elapsed, 3),
        attempts=outcome.attempts,
        last_error=outcome.message or None,
        then=[],
    )
    if not outcome.ready:
        module.fail_json(
            msg="%s did not become ready within %ss after %d attempts: %s"
            % (p["url"], p["timeout"], outcome.attempts, outcome.message),
            **result,
        )
    for url in p["then_urls"]:
        params = dict(p, url=url, body_regex=None, json_query=None)
        remaining = max(deadline.remaining(), 0.0)
        step = poll(HttpProbe(module, deadline, params), remaining, p["interval"], p["backoff"], p["max_interval"])
        seen = step.observation
        result["then"].append(
            dict(url=url, status=seen.get("status", -1), elapsed=round(step.elapsed, 3), attempts=step.attempts)
        )
        if not step.ready:
            module.fail_json(
                msg="%s did not become ready within %ss (after %s) after %d attempts: %s"
                % (url, p["timeout"], p["url"], step.attempts, step.message),
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
