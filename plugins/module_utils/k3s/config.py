# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""k3s's /etc/rancher/k3s/config.yaml: reading it (with drop-ins) and the one renderer of its
content.

The k3s role (module ``k3s_config``) and the recovery (``k3s_rebuild``) both write the file
through ``render_config``: the role from its variables (``role_settings``), the recovery from the
file it finds with the new address (``readdress``). A rerun of ``site.yml`` after a recovery
therefore renders the same bytes and changes nothing, where a line-edited copy once drifted.

Beside it, the node-address pins as the user set them (``integr8scode-node.json``): written by
both writers of config.yaml (``write_pins``), read by the drift watcher at every check
(``read_pins``), so a pin changed with site.yml is never seen as drift of the old one.

And what of it may be shown: ``redact_config_text`` hides the values of k3s's secret flags (the
join tokens, the S3 credentials, a datastore password) in config.yaml's text for --diff, and
``config_secrets`` lists them for a module's ``no_log_values``; the file itself keeps them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import re

from ansible_collections.integr8scode.provision.plugins.module_utils.files import file_differs, write_if_changed

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - hosts without PyYAML use the line parser
    HAS_YAML = False

DEFAULT_CONFIG_FILE = "/etc/rancher/k3s/config.yaml"
DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
# Containers reach the API through the Docker host gateway, as upstream's CI does.
ALWAYS_SANS = ("host.docker.internal",)
# Keys the renderer writes itself, in this order; every other key is rendered after them.
MANAGED_KEYS = (
    "node-ip",
    "flannel-iface",
    "bind-address",
    "tls-san",
    "disable",
    "write-kubeconfig-mode",
    "cluster-init",
    "data-dir",
)
# The pins file, in config.yaml's directory: its name is the one constant (pins_path).
PINS_NAME = "integr8scode-node.json"
# The node-address pins ("" = not pinned), then where k3s's files are.
PINNED = ("node_ip", "node_interface", "flannel_iface")
PINS_KEYS = PINNED + ("config_file", "data_dir")
PINS_MODE = 0o644
PINS_ABOUT = (
    "integr8scode.provision: the node-address pins as set in k3s_node_ip, k3s_node_interface and "
    "k3s_flannel_iface (empty: not pinned), written with config.yaml by site.yml and by the recovery, read by "
    "the drift watcher at every check. No secrets."
)
HEADER = (
    "# Managed by integr8scode.provision (role k3s); edit the k3s_* variables instead.\n"
    "# node-ip stays a top-level scalar: upstream Integr8sCode's cert-generator\n"
    "# reads it with a line grep.\n"
)


class ConfigError(Exception):
    pass


def scalar(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value).strip().strip("'\"")


def _plain(value):
    """A scalar of the line parser: JSON where it parses (quoted strings, true, 3), else as is."""
    value = value.strip()
    if value.startswith("'") and value.endswith("'") and len(value) > 1:
        return value[1:-1]
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_text(text):
    """Top-level keys of a k3s config file; PyYAML when present, else a line parser that
    understands what k3s configs hold (`key: scalar`, `key: [a, b]`, `key:` then `- item` lines)."""
    if HAS_YAML:
        data = yaml.safe_load(text)
        return data if isinstance(data, dict) else {}
    data, current = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if current and line.lstrip().startswith("- "):
            data[current].append(_plain(line.strip()[2:].split(" #")[0]))
        elif not line[0].isspace():
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().strip("'\""), value.split(" #")[0].strip()
            current = None
            if value.startswith("[") and value.endswith("]"):
                data[key] = [_plain(v) for v in value[1:-1].split(",") if v.strip()]
            elif value:
                data[key] = _plain(value)
            else:
                data[key], current = [], key
    return {k: (v if v != [] else None) for k, v in data.items()}


def read_config(config_file=DEFAULT_CONFIG_FILE):
    """(merged, sources, errors): config.yaml, then drop-ins in lexical order (later wins), as k3s
    merges them."""
    merged, sources, errors = {}, {}, []
    files = [config_file] if os.path.isfile(config_file) else []
    dropin_dir = config_file + ".d"
    if os.path.isdir(dropin_dir):
        files.extend(
            os.path.join(dropin_dir, name)
            for name in sorted(os.listdir(dropin_dir))
            if name.endswith((".yaml", ".yml"))
        )
    for path in files:
        try:
            with open(path) as handle:
                data = parse_text(handle.read())
        except Exception as exc:  # OSError, ValueError, yaml.YAMLError
            # PyYAML quotes the offending line, which may hold a token: only where it is.
            if isinstance(exc, (OSError, IOError)):
                errors.append("%s: %s" % (path, exc.strerror or exc))
            else:
                mark = getattr(exc, "problem_mark", None)
                where = " (line %d, column %d)" % (mark.line + 1, mark.column + 1) if mark is not None else ""
                problem = getattr(exc, "problem", None) or type(exc).__name__
                errors.append("%s: cannot be read as YAML%s: %s" % (path, where, problem))
            continue
        for key, value in data.items():
            merged[key] = value
            sources[key] = path
    return merged, sources, errors


def is_ip(text):
    try:
        ipaddress.ip_address("%s" % text)
    except ValueError:
        return False
    return True


def first_node_ip(value):
    """k3s accepts `node-ip: a`, `node-ip: a,b` (dual stack) or a list; the first IPv4 wins."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    items = [str(i).strip().strip("'\"") for i in items if str(i).strip()]
    for item in items:
        if is_ip(item) and ipaddress.ip_address("%s" % item).version == 4:
            return item
    return items[0] if items else None


def effective_data_dir(config_file=DEFAULT_CONFIG_FILE, override=None, config=None):
    """k3s's data directory, the one answer for every reader of it (the drift check, the recovery
    and its rollback, the watcher and its scheduled backups): ``override`` (k3s_recover_data_dir)
    when set, else ``data-dir`` from config.yaml and its drop-ins as k3s merges them (``config``:
    read_config's merged settings when the caller already read them), else k3s's default. The k3s
    role writes k3s_data_dir there whenever it is not the default (render_config), so this follows
    the role too. An override the file contradicts is refused by the drift check (drift.py
    ``refusals``)."""
    if override:
        return os.path.normpath(override)
    if config is None:
        config = read_config(config_file)[0]
    return os.path.normpath(scalar(config.get("data-dir")) or DEFAULT_DATA_DIR)


def recorded_node_ip(config_file=DEFAULT_CONFIG_FILE):
    """The node-ip k3s is configured with (config.yaml and drop-ins), or None."""
    merged, _sources, _errors = read_config(config_file)
    return first_node_ip(merged.get("node-ip"))


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _mode(value):
    """write-kubeconfig-mode as four octal digits; YAML 1.1 reads an unquoted 0600 as 384."""
    if isinstance(value, int):
        return "%04o" % value
    return "%04o" % int(str(value), 8)


def role_settings(
    node_ip,
    flannel_iface,
    *,
    bind_address="0.0.0.0",
    tls_san=(),
    disable=(),
    write_kubeconfig_mode="0600",
    cluster_init=False,
    data_dir=DEFAULT_DATA_DIR,
    extra=None,
):
    """The settings the k3s role's variables stand for. The node address is always a SAN."""
    sans = []
    for san in list(ALWAYS_SANS) + [node_ip] + list(tls_san or ()):
        if san not in sans:
            sans.append(san)
    settings = {
        "node-ip": node_ip,
        "flannel-iface": flannel_iface,
        "bind-address": bind_address,
        "tls-san": sans,
        "disable": list(disable or ()),
        "write-kubeconfig-mode": _mode(write_kubeconfig_mode),
        "cluster-init": bool(cluster_init),
        "data-dir": data_dir,
    }
    for key, value in (extra or {}).items():
        if key in MANAGED_KEYS:
            raise ConfigError("k3s_extra_config must not set %s: the role manages it" % key)
        settings[key] = value
    return settings


def settings_from_text(text):
    """The settings a config.yaml holds, in the shape role_settings returns."""
    data = parse_text(text)
    settings = {
        "node-ip": first_node_ip(data.get("node-ip")),
        "flannel-iface": scalar(data.get("flannel-iface")),
        "bind-address": scalar(data.get("bind-address")) or "0.0.0.0",
        "tls-san": _as_list(data.get("tls-san")),
        "disable": _as_list(data.get("disable")),
        "write-kubeconfig-mode": _mode(data.get("write-kubeconfig-mode") or "0600"),
        "cluster-init": str(data.get("cluster-init")).lower() in ("true", "yes", "1"),
        "data-dir": scalar(data.get("data-dir")) or DEFAULT_DATA_DIR,
    }
    for key, value in data.items():
        if key not in MANAGED_KEYS:
            settings[key] = value
    return settings


def readdress(settings, node_ip, flannel_iface):
    """The same settings on a new node address: node-ip, flannel-iface, and the old address
    replaced by the new one in tls-san (the API certificate must not keep naming an address the
    host no longer has)."""
    new = dict(settings)
    old = settings.get("node-ip")
    sans = [node_ip if san == old else san for san in settings.get("tls-san") or []]
    merged = []
    for san in list(ALWAYS_SANS) + [node_ip] + sans:
        if san not in merged:
            merged.append(san)
    new.update({"node-ip": node_ip, "flannel-iface": flannel_iface, "tls-san": merged})
    return new


def _dump_extra(extra):
    """Other keys, sorted, as JSON scalars (valid YAML, read back the same with or without
    PyYAML on the host); k3s flags are scalars or lists."""
    lines = []
    for key in sorted(extra):
        value = extra[key]
        if isinstance(value, (list, tuple)):
            lines.append("%s:" % key)
            lines.extend("  - %s" % json.dumps(v) for v in value)
        else:
            lines.append("%s: %s" % (key, json.dumps(value)))
    return "\n".join(lines) + "\n"


def render_config(settings):
    """config.yaml's content for ``settings`` (role_settings / readdress)."""
    if not settings.get("node-ip"):
        raise ConfigError("node-ip is required")
    out = [HEADER, "node-ip: %s\n" % settings["node-ip"]]
    out.append("# flannel otherwise follows the default route, not node-ip (k3s #12459, #12056, #1365).\n")
    out.append("flannel-iface: %s\n" % settings["flannel-iface"])
    out.append("bind-address: %s\n" % settings["bind-address"])
    out.append("tls-san:\n")
    out.extend("  - %s\n" % json.dumps(san) for san in settings["tls-san"])
    if settings.get("disable"):
        out.append("disable:\n")
        out.extend("  - %s\n" % component for component in settings["disable"])
    out.append('write-kubeconfig-mode: "%s"\n' % settings["write-kubeconfig-mode"])
    if settings.get("cluster-init"):
        out.append("cluster-init: true\n")
    if settings.get("data-dir") and settings["data-dir"] != DEFAULT_DATA_DIR:
        out.append("data-dir: %s\n" % settings["data-dir"])
    extra = {k: v for k, v in settings.items() if k not in MANAGED_KEYS}
    if extra:
        out.append(_dump_extra(extra))
    return "".join(out)


# ------------------------------------------------------------------------------- secrets

REDACTED = "<redacted>"
# Flags whose whole value is a credential, from k3s-io/k3s pkg/cli/cmds: server.go (``token,t``,
# ``agent-token``, the hidden ``cluster-secret``, ``etcd-s3-access-key``, ``etcd-s3-secret-key``,
# ``etcd-s3-session-token``), agent.go (``token,t``; ``vpn-auth`` carries the VPN's joinKey) and
# etcd_snapshot.go (``etcd-token``, alias ``t``, and the ``s3-*`` names of the same S3 flags;
# ``k3s etcd-snapshot`` reads config.yaml too). ``t`` counts: pkg/configfilearg/parser.go turns a
# one-letter key into ``-t``. The ``*-file`` flags (token-file, agent-token-file, vpn-auth-file),
# ``etcd-s3-config-secret`` (a Secret's name) and the ``datastore-*file`` flags are paths or
# names, shown as they are.
SECRET_KEYS = frozenset(
    (
        "token",
        "t",
        "agent-token",
        "cluster-secret",
        "vpn-auth",
        "etcd-token",
        "etcd-s3-access-key",
        "s3-access-key",
        "etcd-s3-secret-key",
        "s3-secret-key",
        "etcd-s3-session-token",
        "s3-session-token",
    )
)
# Flags whose value is a URL or DSN that may carry a password (server.go ``datastore-endpoint``:
# MySQL, Postgres, NATS, etcd; etcd_snapshot.go ``etcd-s3-proxy``): the scheme, user, host and
# path stay readable, the user info's password (or a NATS token, k3s-io/kine docs/nats.md
# ``nats://<auth>@host``) and ``password=`` style query parameters go.
URL_SECRET_KEYS = frozenset(("datastore-endpoint", "etcd-s3-proxy", "s3-proxy"))

# A mapping key at the start of a line (also in a ``- key:`` item), plain or quoted, up to its
# colon; what follows the colon is the value.
_KEY_LINE = re.compile(
    r"""^(?P<indent>[ ]*)(?:-[ ]+)?(?P<key>"[^"\n]*"|'[^'\n]*'|[^\s#"'\-?:][^:#\n]*?|-[^\s:#][^:#\n]*?)[ \t]*:"""
)
# One endpoint of a comma-separated list (k3s takes several etcd URLs in one datastore-endpoint).
_NEXT_ENDPOINT = re.compile(r",(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)")
_SCHEME = re.compile(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*://)?(.*)$", re.DOTALL)
# Query or keyword parameters holding a password (lib/pq and pgx take ``password`` and
# ``sslpassword`` in the URL's query).
_QUERY_SECRET = re.compile(r"(?i)((?:^|[?&;\s])(?:password|sslpassword|passwd|pwd|token)=)[^&;\s]*")


def _secret_kind(key):
    """``"secret"``, ``"url"`` or None for a config.yaml key as written: quoted or not, with the
    ``+`` k3s appends with (pkg/configfilearg/parser.go ``isAppend``), in any case or with
    underscores (not k3s's spelling, but the value is still the credential someone meant)."""
    name = str(key).strip().strip("'\"").strip().rstrip("+").strip().lower().replace("_", "-")
    if name in SECRET_KEYS:
        return "secret"
    if name in URL_SECRET_KEYS:
        return "url"
    return None


def _split_dsn(text):
    """[(scheme, user info or None, rest)] of each endpoint in ``text``. The user info ends at the
    endpoint's last ``@``: go-sql-driver/mysql and net/url split there, so a password may hold an
    ``@`` of its own."""
    parts = []
    for piece in _NEXT_ENDPOINT.split(text):
        scheme, rest = _SCHEME.match(piece).groups()
        at = rest.rfind("@")
        if at < 0:
            parts.append((scheme or "", None, rest))
        else:
            parts.append((scheme or "", rest[:at], rest[at:]))
    return parts


def _userinfo_secret(scheme, userinfo):
    """(what stays shown, the secret or "") of a URL's user info: ``user:password`` keeps the
    user; without a colon it is a user name, except for NATS, where it may be a token."""
    user, colon, password = userinfo.partition(":")
    if colon:
        return user + ":", password
    if scheme.strip().lower().startswith("nats"):
        return "", user
    return user, ""


def _redact_dsn(text):
    """``text`` (one or several endpoints) without passwords: ``postgres://k3s:<redacted>@db/k3s``."""
    out = []
    for scheme, userinfo, rest in _split_dsn(text):
        shown = ""
        if userinfo is not None:
            shown, secret = _userinfo_secret(scheme, userinfo)
            shown += REDACTED if secret else ""
        out.append(scheme + shown + _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, rest))
    return ",".join(out)


def _dsn_secrets(text):
    secrets = []
    for scheme, userinfo, rest in _split_dsn(text):
        if userinfo is not None:
            secrets.append(_userinfo_secret(scheme, userinfo)[1])
        secrets.extend(m.group(0)[len(m.group(1)) :] for m in _QUERY_SECRET.finditer(rest))
    return [secret for secret in secrets if secret]


def _redact_url_value(value):
    """One line's YAML value of a URL key, its password redacted; anything it cannot read as one
    plain or quoted scalar (escapes, flow collections, anchors, tags) is redacted whole."""
    value = value.strip()
    if value[:1] == '"':
        end = value.find('"', 1)
        if end < 0 or "\\" in value[:end]:  # an escape could spell the @ or the password
            return REDACTED
        return '"%s"' % _redact_dsn(value[1:end])
    if value[:1] == "'":
        end = 1
        while True:
            end = value.find("'", end)
            if end < 0:
                return REDACTED
            if value[end + 1 : end + 2] != "'":
                break
            end += 2
        return "'%s'" % _redact_dsn(value[1:end])
    if value[:1] in "[{&*!|>%@`":
        return REDACTED
    return _redact_dsn(re.split(r"\s#", value, maxsplit=1)[0].rstrip())


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _value_lines(lines, start, key_column, inline):
    """The index after the last line of the value that starts on ``lines[start - 1]`` (its key at
    ``key_column``): more indented lines (block scalars, a plain or quoted scalar continued,
    a flow list over several lines) and, when nothing follows the colon, ``- item`` lines at the
    key's own indentation. Blank and comment lines in between do not end it."""
    end = index = start
    while index < len(lines):
        text = lines[index].rstrip("\r\n")
        stripped = text.strip()
        if not stripped or (stripped.startswith("#") and _indent(text) <= key_column):
            index += 1
            continue
        column = _indent(text)
        item = stripped == "-" or stripped.startswith(("- ", "-\t"))
        if column > key_column or (column == key_column and item and not inline):
            index += 1
            end = index
            continue
        break
    return end


def _open_value_end(lines, start, value):
    """For a value that opens a quoted scalar or a flow collection its line does not close: the
    index after the line that closes it (YAML continues those at any indentation: PyYAML reads
    ``token: "abc`` and a line ``def"`` as ``abc def``); else ``start``."""
    if not value or value[0] not in "\"'[{":
        return start
    quote, depth, previous = None, 0, ""
    segments = [value] + [line.rstrip("\r\n") for line in lines[start:]]
    for offset, segment in enumerate(segments):
        index = 0
        while index < len(segment):
            char = segment[index]
            index += 1
            if quote == '"':
                if char == "\\":
                    index += 1  # the escaped character
                elif char == '"':
                    quote = None
            elif quote == "'":
                if char == "'" and segment[index : index + 1] == "'":
                    index += 1  # '' is a quote inside the value
                elif char == "'":
                    quote = None
            elif char in "\"'" and previous in ("", "[", "{", ",", ":"):  # a quote opens only a scalar
                quote = char
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
            if not char.isspace():
                previous = char
        if quote is None and depth <= 0:
            return start + offset
    return len(lines)


def _redacted_line(line):
    """A line of a secret value after the key's line: its indentation (and list dash), then the
    marker; blank lines stay. Lines that look like comments go too: inside a quoted or block
    value a ``#`` line is part of the secret."""
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if not stripped:
        return line
    dash = "- " if stripped == "-" or stripped.startswith(("- ", "-\t")) else ""
    return text[: _indent(text)] + dash + REDACTED + line[len(text) :]


def config_secrets(settings):
    """The secret values in ``settings`` (a parsed config.yaml, k3s_extra_config): whole values
    of SECRET_KEYS, the passwords in URL_SECRET_KEYS. For AnsibleModule.no_log_values and
    for checking that a text no longer holds them."""
    secrets = []
    for key, value in (settings or {}).items():
        kind = _secret_kind(key)
        if kind is None or value is None or isinstance(value, bool):
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is None or isinstance(item, (bool, dict)):
                continue
            text = str(item)
            secrets.extend(_dsn_secrets(text) if kind == "url" else [text])
    return sorted(set(secret for secret in secrets if secret.strip()))


def redact_config_text(text):
    """config.yaml's ``text`` (as rendered, or as found on the host) with the values of k3s's
    secret flags replaced by REDACTED, for --diff and any result: ``token: <redacted>``, every
    ``- item`` of a listed one, a datastore-endpoint's password only. Every other line stays as
    it is, so the diff still shows what else changes. Reads the YAML forms a k3s config holds:
    plain, quoted, block and flow values, ``key+:`` appends, values over several lines."""
    if not text:
        return text
    lines = text.splitlines(True)
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        body = line.rstrip("\r\n")
        match = _KEY_LINE.match(body)
        kind = _secret_kind(match.group("key")) if match else None
        if kind is None:
            out.append(line)
            index += 1
            continue
        head, value = body[: match.end()], body[match.end() :].strip()
        inline = bool(value) and not value.startswith("#")
        end = _value_lines(lines, index + 1, match.start("key"), inline)
        if inline:
            end = max(end, _open_value_end(lines, index + 1, value))
        if not inline:
            shown = head
        elif kind == "url" and end == index + 1:
            shown = "%s %s" % (head, _redact_url_value(value))
        else:
            shown = "%s %s" % (head, REDACTED)
        out.append(shown + line[len(body) :])
        out.extend(_redacted_line(continued) for continued in lines[index + 1 : end])
        index = end
    redacted = "".join(out)
    # Whatever the lines above did not see as a secret key's value (a flow mapping, an alias, a
    # key YAML reads differently) but YAML does: its value is replaced wherever it still shows.
    try:
        secrets = config_secrets(parse_text(text))
    except Exception:  # not YAML at all: the line redaction is all there is
        secrets = []
    for secret in sorted(secrets, key=len, reverse=True):
        redacted = redacted.replace(secret, REDACTED)
    return redacted


# ------------------------------------------------------------------------------------ pins


def pins_path(config_file=DEFAULT_CONFIG_FILE):
    """The pins file of ``config_file``: in the same directory."""
    return os.path.join(os.path.dirname(config_file) or ".", PINS_NAME)


def render_pins(pins, config_file=DEFAULT_CONFIG_FILE, data_dir=DEFAULT_DATA_DIR):
    """The pins file's content: ``pins`` (node_ip, node_interface, flannel_iface; None or missing
    = not pinned) and where config.yaml and the data dir are. Sorted, no time stamp: both writers
    render the same bytes for the same pins, so a rerun changes nothing."""
    unknown = sorted(set(pins or {}) - set(PINNED))
    if unknown:
        raise ConfigError("unknown node-address pins: %s (known: %s)" % (", ".join(unknown), ", ".join(PINNED)))
    data = dict((key, str((pins or {}).get(key) or "").strip()) for key in PINNED)
    data.update(about=PINS_ABOUT, config_file=config_file, data_dir=data_dir or DEFAULT_DATA_DIR)
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def pins_differ(pins, config_file=DEFAULT_CONFIG_FILE, data_dir=DEFAULT_DATA_DIR):
    """(differs, before, after) for the pins file, without writing (check mode, --diff)."""
    after = render_pins(pins, config_file, data_dir)
    differs, before = file_differs(pins_path(config_file), after, PINS_MODE, 0, 0)
    return differs, before, after


def write_pins(pins, config_file=DEFAULT_CONFIG_FILE, data_dir=DEFAULT_DATA_DIR):
    """The one writer of the pins file (atomic, 0644 root; k3s_config and the recovery).
    Returns (changed, before, after)."""
    after = render_pins(pins, config_file, data_dir)
    changed, before = write_if_changed(pins_path(config_file), after, PINS_MODE, 0, 0)
    return changed, before, after


def read_pins(config_file=DEFAULT_CONFIG_FILE):
    """The one reader: {key: value} of PINS_KEYS the pins file holds ("" = not pinned), or None
    when there is no pins file. Raises ConfigError when it cannot be read or is not a pins file."""
    path = pins_path(config_file)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as exc:
        if not os.path.exists(path):
            return None
        raise ConfigError("cannot read the node-address pins in %s: %s" % (path, exc)) from exc
    except ValueError as exc:
        raise ConfigError("%s is not a node-address pins file (JSON): %s" % (path, exc)) from exc
    if not isinstance(data, dict):
        raise ConfigError("%s is not a node-address pins file (a JSON object)" % path)
    bad = sorted(key for key in PINS_KEYS if key in data and not isinstance(data[key], str))
    if bad:
        raise ConfigError("%s: %s must be strings" % (path, ", ".join(bad)))
    return dict((key, data[key].strip()) for key in PINS_KEYS if key in data)
