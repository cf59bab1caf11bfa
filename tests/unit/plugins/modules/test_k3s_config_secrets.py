"""k3s_config keeps k3s's secrets on the host (issue 27): run as Ansible runs it with --diff, its
JSON answer (diff, result, the invocation Ansible echoes at -vvv, a failure) holds no token, S3
key or datastore password, while config.yaml on disk holds the real values."""

from __future__ import annotations

import json

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import parse_text
from test_k3s_config import host_choice

NEW = {
    "token": "K10new::server:tokenNEW1",
    "agent-token": "agentNEW2",
    "etcd-s3-access-key": "AKIANEW3",
    "etcd-s3-secret-key": "s3secretNEW4",
    "datastore-endpoint": "postgres://k3s:dbpassNEW5@db.lan:5432/k3s",
}
# What an earlier run (or a hand edit) left in the file: the diff's "before" must not show it either.
OLD_FILE = (
    "node-ip: 192.0.2.250\n"
    'token: "K10old::server:tokenOLD1"\n'
    "etcd-s3-secret-key+:\n"
    "  - s3secretOLD2\n"
    "datastore-endpoint: 'mysql://k3s:dbpassOLD3@tcp(db.lan:3306)/k3s'\n"
)
SECRETS = (
    "tokenNEW1",
    "agentNEW2",
    "AKIANEW3",
    "s3secretNEW4",
    "dbpassNEW5",
    "tokenOLD1",
    "s3secretOLD2",
    "dbpassOLD3",
)


def leaked(result):
    text = json.dumps(result)
    return [secret for secret in SECRETS if secret in text]


def test_check_diff_shows_the_change_but_no_secret(tmp_path, run_module):
    host_choice()
    path = tmp_path / "config.yaml"
    path.write_text(OLD_FILE)
    extra = dict(NEW, **{"cluster-cidr": "10.52.0.0/16", "etcd-snapshot-retention": 5})
    args = {"path": str(path), "lock_path": str(tmp_path / "lock"), "extra": extra, "_ansible_diff": True}
    result = run_module("k3s_config", args, check_mode=True)
    assert result["_rc"] == 0 and result["config_differs"] is True, result
    assert leaked(result) == []
    config_diff = result["diff"][0]
    assert config_diff["after_header"] == str(path)
    assert "token: <redacted>\n" in config_diff["before"] and "  - <redacted>\n" in config_diff["before"]
    assert "datastore-endpoint: 'mysql://k3s:<redacted>@tcp(db.lan:3306)/k3s'\n" in config_diff["before"]
    # The other changes still show, values that are not secrets too (no_log masks only the secrets).
    after = config_diff["after"]
    assert 'cluster-cidr: "10.52.0.0/16"\n' in after and "etcd-snapshot-retention: 5\n" in after
    assert 'datastore-endpoint: "postgres://k3s:<redacted>@db.lan:5432/k3s"\n' in after
    assert "token: <redacted>\n" in after and "agent-token: <redacted>\n" in after
    assert result["invocation"]["module_args"]["extra"]["cluster-cidr"] == "10.52.0.0/16"
    assert path.read_text() == OLD_FILE, "check mode writes nothing"


def test_the_write_keeps_the_real_values_and_its_answer_none(tmp_path, run_module):
    host_choice()
    path = tmp_path / "config.yaml"
    path.write_text(OLD_FILE)
    args = {"path": str(path), "lock_path": str(tmp_path / "lock"), "extra": NEW, "_ansible_diff": True}
    result = run_module("k3s_config", args)
    assert result["_rc"] == 0 and result["changed"] is True, result
    assert leaked(result) == []
    written = parse_text(path.read_text())
    assert {key: written[key] for key in NEW} == NEW
    # Only the token changes now: the redacted texts are equal, and the diff says what changed.
    rotated = dict(args, extra=dict(NEW, token="K10new::server:tokenNEW9"))
    again = run_module("k3s_config", rotated)
    assert again["changed"] is True and again["config_differs"] is True and "tokenNEW9" not in json.dumps(again)
    assert again["diff"] == [{"prepared": f"{path}: only values of k3s's secret flags differ (not shown)\n"}]
    assert parse_text(path.read_text())["token"] == "K10new::server:tokenNEW9"


def test_a_failure_does_not_echo_the_secrets_either(tmp_path, run_module):
    path = tmp_path / "config.yaml"
    args = {"path": str(path), "node_ip": "198.51.100.254", "extra": NEW, "_ansible_diff": True}
    result = run_module("k3s_config", args)
    assert result["_rc"] == 1 and result["failed"] is True
    assert leaked(result) == []
    assert (
        result["invocation"]["module_args"]["extra"]["datastore-endpoint"] == "postgres://k3s:********@db.lan:5432/k3s"
    )
    assert not path.exists()
