"""What of config.yaml may be shown (issue 27): redact_config_text hides the values of k3s's
secret flags in the YAML forms a k3s config holds, and nothing else; config_secrets lists them.

The property that matters: whatever the layout, no secret value survives the redaction, and every
other key reads back as it was, so a --diff still shows the real change.
"""

from __future__ import annotations

import json

import pytest
import yaml
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import config as k3s_config
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    REDACTED,
    SECRET_KEYS,
    URL_SECRET_KEYS,
    config_secrets,
    parse_text,
    redact_config_text,
    render_config,
    role_settings,
)
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("token: K10abc::server:s3cr3t\n", "token: <redacted>\n"),
        ('token: "K10abc::server:s3cr3t"\n', "token: <redacted>\n"),
        ("token: 'it''s s3cr3t' # the join token\n", "token: <redacted>\n"),
        ('"agent-token": "s3cr3t"\n', '"agent-token": <redacted>\n'),
        ("agent-token+: s3cr3t\n", "agent-token+: <redacted>\n"),
        ("t: s3cr3t\n", "t: <redacted>\n"),
        ("etcd-s3-secret-key:\n  - s3cr3t\n  - 0ther\n", "etcd-s3-secret-key:\n  - <redacted>\n  - <redacted>\n"),
        ("etcd-s3-access-key:\n- s3cr3t\n", "etcd-s3-access-key:\n- <redacted>\n"),
        ("etcd-s3-session-token: [s3cr3t, 0ther]\n", "etcd-s3-session-token: <redacted>\n"),
        ("vpn-auth: |\n  name=tailscale,joinKey=s3cr3t\n", "vpn-auth: <redacted>\n  <redacted>\n"),
        ('token: "K10abc\n  s3cr3t"\nnode-ip: 10.0.0.2\n', "token: <redacted>\n  <redacted>\nnode-ip: 10.0.0.2\n"),
        # PyYAML (and k3s) read a quoted value continued at column 0.
        ('token: "K10abc\ns3cr3t"\nnode-ip: 10.0.0.2\n', "token: <redacted>\n<redacted>\nnode-ip: 10.0.0.2\n"),
        ("cluster-secret: s3cr3t\r\nnode-ip: 10.0.0.2\r\n", "cluster-secret: <redacted>\r\nnode-ip: 10.0.0.2\r\n"),
    ],
)
def test_a_secret_value_is_redacted_in_every_yaml_form(text, shown):
    assert redact_config_text(text) == shown
    assert "s3cr3t" not in redact_config_text(text)


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        ("postgres://k3s:s3cr3t@db.lan:5432/k3s", "postgres://k3s:<redacted>@db.lan:5432/k3s"),
        # go-sql-driver/mysql splits the user info at the last @: the password may hold one.
        ("mysql://k3s:s3@cr3t@tcp(db.lan:3306)/k3s", "mysql://k3s:<redacted>@tcp(db.lan:3306)/k3s"),
        (
            "postgres://db.lan/k3s?sslmode=disable&password=s3cr3t",
            "postgres://db.lan/k3s?sslmode=disable&password=<redacted>",
        ),
        ("nats://s3cr3t@nats.lan:4222", "nats://<redacted>@nats.lan:4222"),
        ("postgres://k3s@db.lan/k3s", "postgres://k3s@db.lan/k3s"),
        (
            "https://root:s3cr3t@etcd1.lan:2379,https://etcd2.lan:2379",
            "https://root:<redacted>@etcd1.lan:2379,https://etcd2.lan:2379",
        ),
        ("sqlite:///var/lib/rancher/k3s/server/db/state.db", "sqlite:///var/lib/rancher/k3s/server/db/state.db"),
    ],
)
def test_a_datastore_endpoint_keeps_its_scheme_and_host_but_not_its_password(endpoint, shown):
    assert redact_config_text(f"datastore-endpoint: {endpoint}\n") == f"datastore-endpoint: {shown}\n"
    quoted, quoted_shown = json.dumps(endpoint), json.dumps(shown)
    assert redact_config_text(f"datastore-endpoint: {quoted}\n") == f"datastore-endpoint: {quoted_shown}\n"
    assert redact_config_text(f"datastore-endpoint: '{endpoint}' # external\n") == f"datastore-endpoint: '{shown}'\n"


def test_a_datastore_endpoint_it_cannot_read_as_one_line_is_redacted_whole():
    text = 'datastore-endpoint: "postgres://k3s:s3\\u0040cr3t@db.lan/k3s"\netcd-s3-proxy: >-\n  http://u:s3cr3t@proxy\n'
    assert redact_config_text(text) == "datastore-endpoint: <redacted>\netcd-s3-proxy: <redacted>\n  <redacted>\n"


def test_paths_and_other_keys_stay_as_they_are():
    text = (
        "token-file: /etc/rancher/k3s/token\n"
        "agent-token-file: /etc/rancher/k3s/agent-token\n"
        "etcd-s3-config-secret: k3s-etcd-s3\n"
        "etcd-s3-bucket: backups\n"
        "kubelet-arg:\n"
        '  - "max-pods=50"\n'
        "# token: a comment is not a value\n"
    )
    assert redact_config_text(text) == text


def test_a_secret_in_a_form_the_lines_do_not_see_is_still_replaced():
    """A flow mapping as the whole file is valid YAML k3s reads: the parsed value is replaced."""
    assert redact_config_text("{token: s3cr3t, node-ip: 10.0.0.2}\n") == "{token: <redacted>, node-ip: 10.0.0.2}\n"


@pytest.mark.parametrize("has_yaml", [True, False])
def test_the_rendered_file_shows_its_settings_and_no_secret(monkeypatch, has_yaml):
    monkeypatch.setattr(k3s_config, "HAS_YAML", has_yaml)
    extra = {
        "token": "K10abc::server:s3cr3t",
        "agent-token": "ag3nt",
        "datastore-endpoint": "postgres://k3s:pa55@db.lan:5432/k3s",
        "cluster-cidr": "10.52.0.0/16",
        "kubelet-arg": ["max-pods=50"],
    }
    text = render_config(role_settings("192.168.1.20", "eth0", extra=extra))
    shown = redact_config_text(text)
    assert "s3cr3t" not in shown and "ag3nt" not in shown and "pa55" not in shown
    pairs = list(zip(text.splitlines(), shown.splitlines(), strict=True))
    changed = [line.partition(":")[0] for line, redacted in pairs if line != redacted]
    assert changed == ["agent-token", "datastore-endpoint", "token"], "every other line is kept"
    assert 'datastore-endpoint: "postgres://k3s:<redacted>@db.lan:5432/k3s"\n' in shown
    assert 'cluster-cidr: "10.52.0.0/16"\n' in shown and "token: <redacted>\n" in shown
    assert config_secrets(extra) == ["K10abc::server:s3cr3t", "ag3nt", "pa55"]
    assert "s3cr3t" in text, "the file itself keeps the real values"


def test_config_secrets_reads_every_form_of_key_and_value():
    assert config_secrets(
        {
            "token+": 12345678,
            '"agent-token"': "quoted",
            "ETCD_S3_SECRET_KEY": ["a1", "b2"],
            "datastore-endpoint": "nats://tok@nats:4222?password=qp",
            "cluster-init": True,
            "node-ip": "10.0.0.2",
        }
    ) == ["12345678", "a1", "b2", "qp", "quoted", "tok"]
    assert config_secrets({}) == [] and config_secrets(None) == []


# ------------------------------------------------------------------------------ property

# Secrets are upper case with a marker no other part of the file holds, so "not in the output"
# means not leaked, not a coincidence of letters.
SECRET_VALUES = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789:@#'\"/+=!$%& -", min_size=1, max_size=24).map(
    lambda text: "ZQX" + text
)
PLAIN_KEYS = st.sampled_from(
    ["cluster-cidr", "service-cidr", "node-name", "kubelet-arg", "node-label", "etcd-s3-bucket", "token-file",
     "etcd-s3-config-secret", "flannel-backend", "etcd-snapshot-retention"]
)  # fmt: skip
PLAIN_VALUES = st.one_of(
    st.text(alphabet="abcdefghijklmnop0123456789./=-", min_size=1, max_size=16),
    st.integers(min_value=0, max_value=10**6),
    st.booleans(),
    st.lists(st.text(alphabet="abcdefghijklmnop0123456789./=-", min_size=1, max_size=12), min_size=1, max_size=3),
)
SECRET_ENTRIES = st.tuples(
    st.sampled_from(sorted(SECRET_KEYS)), st.one_of(SECRET_VALUES, st.lists(SECRET_VALUES, min_size=1, max_size=3))
)
URL_ENTRIES = st.tuples(
    st.sampled_from(sorted(URL_SECRET_KEYS)),
    st.builds(
        "{}://k3s:{}@db.lan:5432/k3s".format,
        st.sampled_from(["postgres", "mysql", "nats", "https"]),
        st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789!$%&*()", min_size=1, max_size=16).map(lambda t: "ZQX" + t),
    ),
)
# How the file may spell a key and lay out its value: as the renderer does, as yaml.safe_dump does
# in block and in flow style, and with k3s's key+ append form.
STYLES = st.sampled_from(["render", "block", "flow_values", "append"])


def dump(entries, style):
    if style == "render":
        return render_config(role_settings("192.168.1.20", "eth0", extra=dict(entries)))
    lines = []
    for key, value in entries:
        name = key + "+" if style == "append" else key
        if style == "flow_values" or not isinstance(value, list):
            lines.append(yaml.safe_dump({name: value}, default_flow_style=True, width=10**6)[1:-2] + "\n")
        else:
            lines.append(yaml.safe_dump({name: value}, default_flow_style=False, width=10**6))
    return "".join(lines)


def strip_plus(data):
    return {str(key).rstrip("+"): value for key, value in data.items()}


@settings(max_examples=300, deadline=None)
@given(
    plain=st.lists(st.tuples(PLAIN_KEYS, PLAIN_VALUES), max_size=5, unique_by=lambda entry: entry[0]),
    secret=st.lists(st.one_of(SECRET_ENTRIES, URL_ENTRIES), min_size=1, max_size=4, unique_by=lambda e: e[0]),
    style=STYLES,
    order=st.randoms(use_true_random=False),
)
def test_no_secret_value_survives_and_every_other_key_reads_back_the_same(plain, secret, style, order):
    entries = plain + secret
    order.shuffle(entries)
    text = dump(entries, style)
    shown = redact_config_text(text)
    secrets = config_secrets(dict(secret))
    assert secrets, "every generated secret is found"
    for value in secrets:
        assert value not in shown
        assert json.dumps(value)[1:-1] not in shown, "nor in its escaped form"
    assert "ZQX" not in shown
    before, after = strip_plus(parse_text(text)), strip_plus(parse_text(shown))
    assert set(after) == set(before)
    for key, _value in plain:
        assert after[key] == before[key], key
    for key, value in secret:
        if key in URL_SECRET_KEYS:
            assert after[key] == value.split(":", 2)[0] + "://k3s:" + REDACTED + "@db.lan:5432/k3s"
        else:
            assert after[key] in (REDACTED, [REDACTED] * len(value) if isinstance(value, list) else REDACTED)


def test_a_config_yaml_that_does_not_parse_is_reported_without_quoting_its_lines(tmp_path):
    """PyYAML's message quotes the offending line; the drift check's warnings must not carry a token."""
    path = tmp_path / "config.yaml"
    path.write_text("token: K10secret::server:abc\nnode-ip: [1.2\n")
    _merged, _sources, errors = k3s_config.read_config(str(path))
    assert errors and errors[0].startswith(f"{path}: cannot be read as YAML (line ")
    assert "K10secret" not in errors[0]
