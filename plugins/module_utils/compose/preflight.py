# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""What the stack role settles before `docker compose up`: its override compose file (the
kubeconfig consumers wait for cert-generator; application settings mounted over config.toml),
the settings file itself, and what would make `up` fail or the host suffer: containers of another
project holding a fixed container_name, listeners on a published port, mem_limits beyond the
host's memory. Pure functions over the parsed `docker compose config --format json`; the module
compose_plan gathers the inputs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import (
    COMPLETED,
    LABEL_PROJECT,
)

SETTINGS_TARGET = "/app/config.toml"
_KEY_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*=")
_TABLE_LINE = re.compile(r"^\s*\[")


class PreflightError(Exception):
    pass


def _volume_target(volume):
    if isinstance(volume, dict):
        return volume.get("target")
    parts = str(volume).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def settings_services(services, target=SETTINGS_TARGET):
    """Services that mount a file at ``target`` (upstream: every backend-image service mounts
    ./backend/config.toml at /app/config.toml)."""
    return sorted(
        name
        for name, spec in services.items()
        if any(_volume_target(v) == target for v in (spec or {}).get("volumes") or [])
    )


def override_document(services, generator, consumers, settings_source=None, target=SETTINGS_TARGET):
    """The role's override compose document.

    Upstream's kubeconfig consumers depend only on kafka (and mongo), not on cert-generator
    (docker-compose.yaml at 1f59759): on a first deploy they start with the still-empty
    kubeconfig, load_kube_config raises and they crash-loop until cert-generator has written it,
    past any restart threshold when its Kueue step is slow. Waiting for cert-generator's
    completion, as backend and frontend already do, removes that race. ``settings_source``
    (relative to the project directory) replaces the config.toml mount of every service that has
    one.
    """
    missing = [name for name in [generator] + list(consumers) if name not in services]
    if missing:
        raise PreflightError(
            "the compose project defines no service %s (stack_cert_generator_service, stack_kubeconfig_consumers);"
            " it defines: %s" % (", ".join(missing), ", ".join(sorted(services)))
        )
    doc = {}
    for consumer in consumers:
        doc.setdefault(consumer, {})["depends_on"] = {generator: {"condition": COMPLETED, "required": True}}
    if settings_source:
        for name in settings_services(services, target):
            doc.setdefault(name, {})["volumes"] = [
                {"type": "bind", "source": settings_source, "target": target, "read_only": True}
            ]
    return {"services": dict(sorted(doc.items()))}


def render_override(doc):
    """The override file's text: JSON (valid YAML) under a header that says whose it is."""
    return (
        "# Managed by integr8scode.provision (role stack); rewritten on every run, do not edit.\n"
        "# Upstream's kubeconfig consumers wait for cert-generator here (a first deploy otherwise\n"
        "# crash-loops them on the empty kubeconfig); stack_app_settings are mounted over config.toml.\n"
        "%s\n" % json.dumps(doc, indent=2, sort_keys=True)
    )


def toml_value(value, name):
    """``value`` as a TOML value (what upstream's flat config.toml holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise PreflightError("stack_app_settings.%s: %r has no TOML form" % (name, value))
        return repr(value)
    if isinstance(value, str):
        # A TOML basic string: quote and backslash escaped, and every control character (TOML
        # refuses U+0000-U+001F and U+007F unescaped, which JSON lets through for U+007F).
        return '"%s"' % "".join(
            "\\" + char if char in '"\\' else "\\u%04x" % ord(char) if ord(char) < 0x20 or ord(char) == 0x7F else char
            for char in value
        )
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(toml_value(item, name) for item in value)
    raise PreflightError(
        "stack_app_settings.%s: %s values are not supported (strings, numbers, booleans, lists)"
        % (name, type(value).__name__)
    )


def _value_end(lines, start):
    """Index after the last line of the value that starts on ``lines[start]`` (arrays and inline
    tables may span lines; brackets inside strings do not count)."""
    depth = 0
    index = start
    while index < len(lines):
        line = lines[index]
        if index == start:
            line = line.split("=", 1)[1]
            if line.strip().startswith(('"""', "'''")):
                raise PreflightError("multi-line strings are not supported in config.toml (line %d)" % (start + 1))
        quote = None
        for pos, char in enumerate(line):
            if quote:
                if char == quote and (quote == "'" or line[pos - 1] != "\\"):
                    quote = None
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
        index += 1
        if depth <= 0:
            return index
    raise PreflightError("config.toml: unterminated value starting on line %d" % (start + 1))


def merge_settings(base_text, settings):
    """Upstream's flat config.toml with each key of ``settings`` replaced where it stands, or added
    at the end; comments and every other line kept as they are."""
    lines = base_text.splitlines()
    out = []
    seen = set()
    index = 0
    while index < len(lines):
        line = lines[index]
        if _TABLE_LINE.match(line):
            raise PreflightError(
                "config.toml has tables ([...] on line %d); only a flat KEY = value file can be merged" % (index + 1)
            )
        match = _KEY_LINE.match(line)
        if not match:
            out.append(line)
            index += 1
            continue
        end = _value_end(lines, index)
        key = match.group(1)
        if key in settings:
            out.append("%s = %s" % (key, toml_value(settings[key], key)))
            seen.add(key)
        else:
            out.extend(lines[index:end])
        index = end
    added = [key for key in sorted(settings) if key not in seen]
    if added:
        out += ["", "# Added by integr8scode.provision (stack_app_settings)."]
        out += ["%s = %s" % (key, toml_value(settings[key], key)) for key in added]
    return "\n".join(out) + "\n"


def name_clashes(services, containers, project):
    """'<name>: held by ...' for every fixed container_name of the definition that a container of
    another project (or of none) already has: `up` fails with "Conflict. The container name ... is
    already in use" (upstream fixes 17 names; an old `./deploy.sh dev` or a second checkout
    collides)."""
    wanted = dict(
        (spec["container_name"], name) for name, spec in services.items() if (spec or {}).get("container_name")
    )
    found = []
    for container in containers:
        labels = container.get("Labels") or {}
        for raw in container.get("Names") or []:
            name = raw.lstrip("/")
            if name in wanted and labels.get(LABEL_PROJECT) != project:
                owner = labels.get(LABEL_PROJECT)
                found.append(
                    "container name %s (service %s): held by container %s (%s, %s)"
                    % (
                        name,
                        wanted[name],
                        container.get("Id", "")[:12],
                        "compose project %s" % owner if owner else "not from compose",
                        container.get("State") or "unknown state",
                    )
                )
    return sorted(found)


def published_ports(services):
    """(service, host_ip or '', port, protocol) of every published port."""
    found = []
    for name, spec in services.items():
        for port in (spec or {}).get("ports") or []:
            if not isinstance(port, dict) or not port.get("published"):
                continue
            published = str(port["published"])
            if not published.isdigit():
                continue  # a range: compose picks a free one
            found.append((name, port.get("host_ip") or "", int(published), port.get("protocol") or "tcp"))
    return sorted(found)


def parse_listeners(ss_output):
    """(address, port, process) of each line of `ss -Hltnp` (address '*' or '0.0.0.0' or '::' for all)."""
    found = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local = fields[3]
        address, _sep, port = local.rpartition(":")
        if not port.isdigit():
            continue
        address = address.strip("[]")
        address = address.split("%", 1)[0]
        process = ""
        match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', line)
        if match:
            process = "%s (pid %s)" % (match.group(1), match.group(2))
        found.append((address, int(port), process))
    return found


_ALL = ("", "*", "0.0.0.0", "::")


def _overlaps(want, have):
    return want in _ALL or have in _ALL or want == have


def port_clashes(services, listeners, own_ports):
    """'<host_ip>:<port> (service ...): held by ...' for each published TCP port a listener already
    holds that is not the project's own (``own_ports``: (host_ip, port) its running containers
    publish, from the Engine API)."""
    own = set(port for _ip, port in own_ports)
    found = []
    for service, host_ip, port, protocol in published_ports(services):
        if protocol != "tcp" or port in own:
            continue
        for address, lport, process in listeners:
            if lport == port and _overlaps(host_ip, address):
                found.append(
                    "port %s:%d (service %s): held by %s on %s:%d"
                    % (host_ip or "0.0.0.0", port, service, process or "a listener", address, lport)
                )
                break
    return found


def own_published(containers, project):
    """(host_ip, port) published by the running containers of ``project`` (Engine API list)."""
    found = set()
    for container in containers:
        if (container.get("Labels") or {}).get(LABEL_PROJECT) != project or container.get("State") != "running":
            continue
        for port in container.get("Ports") or []:
            if port.get("PublicPort"):
                found.add((port.get("IP") or "", int(port["PublicPort"])))
    return sorted(found)


def memory_limits(services):
    """Service -> mem_limit in bytes, for the services that set one (compose renders bytes)."""
    found = {}
    for name, spec in services.items():
        value = (spec or {}).get("mem_limit")
        if value in (None, "", 0, "0"):
            continue
        try:
            found[name] = int(value)
        except (TypeError, ValueError) as exc:
            raise PreflightError("service %s: mem_limit %r is not a byte count" % (name, value)) from exc
    return found


def memory_problem(limits, host_total):
    """A sentence when the limits add up to more than the host's memory, else None."""
    need = sum(limits.values())
    if not host_total or need <= host_total:
        return None
    biggest = sorted(limits.items(), key=lambda item: -item[1])[:4]
    return "the services' mem_limits add up to %.1f GiB (%s, ...), the host has %.1f GiB of memory" % (
        need / 2.0**30,
        ", ".join("%s %d MiB" % (name, size // 2**20) for name, size in biggest),
        host_total / 2.0**30,
    )


def host_memory(meminfo_text):
    """MemTotal of /proc/meminfo in bytes (None when absent)."""
    for line in meminfo_text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None
