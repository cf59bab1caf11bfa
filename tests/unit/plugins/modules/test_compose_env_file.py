"""compose_env_file through its real entry point: given, kept and generated secrets, idempotence."""

import os
import stat

from ansible_collections.integr8scode.provision.plugins.module_utils.compose.env import parse_env, render_env
from hypothesis import given
from hypothesis import strategies as st

DEFS = [{"env": "MONGO_PASSWORD", "length": 32}, {"env": "SECRET_KEY", "length": 64}]


def args(tmp_path, **kwargs):
    base = dict(path=str(tmp_path / "app" / ".env"), secrets_file=str(tmp_path / "keep" / "secrets.env"), secrets=DEFS)
    base.update(kwargs)
    (tmp_path / "app").mkdir(exist_ok=True)
    return base


def test_generated_secrets_are_kept_and_reused(run_module, tmp_path):
    first = run_module("compose_env_file", args(tmp_path, env={"MONGO_USER": "root"}))
    assert first["changed"] and first["generated"] == ["MONGO_PASSWORD", "SECRET_KEY"], first
    env = parse_env((tmp_path / "app" / ".env").read_text())
    assert len(env["MONGO_PASSWORD"]) == 32 and len(env["SECRET_KEY"]) == 64 and env["MONGO_USER"] == "root"
    assert parse_env((tmp_path / "keep" / "secrets.env").read_text()) == {
        "MONGO_PASSWORD": env["MONGO_PASSWORD"],
        "SECRET_KEY": env["SECRET_KEY"],
    }
    assert stat.S_IMODE(os.stat(tmp_path / "keep").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "keep" / "secrets.env").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "app" / ".env").st_mode) == 0o600
    assert sorted(first["secret_values"]) == sorted([env["MONGO_PASSWORD"], env["SECRET_KEY"]])
    second = run_module("compose_env_file", args(tmp_path, env={"MONGO_USER": "root"}))
    assert not second["changed"] and second["generated"] == [], second
    assert parse_env((tmp_path / "app" / ".env").read_text()) == env


def test_a_given_value_wins_and_the_kept_one_is_not_lost(run_module, tmp_path):
    run_module("compose_env_file", args(tmp_path))
    kept = parse_env((tmp_path / "keep" / "secrets.env").read_text())
    secrets = [{"env": "MONGO_PASSWORD", "value": "given-pw"}, {"env": "SECRET_KEY", "length": 64}]
    result = run_module("compose_env_file", args(tmp_path, secrets=secrets))
    assert result["changed_paths"] == [str(tmp_path / "app" / ".env")], result
    env = parse_env((tmp_path / "app" / ".env").read_text())
    assert env == {"MONGO_PASSWORD": "given-pw", "SECRET_KEY": kept["SECRET_KEY"]}
    assert parse_env((tmp_path / "keep" / "secrets.env").read_text()) == kept
    assert "given-pw" not in str(result)


def test_without_generate_a_missing_secret_stays_out(run_module, tmp_path):
    result = run_module("compose_env_file", args(tmp_path, generate=False, env={"IMAGE_TAG": "2026.3.16"}))
    assert result["changed"] and not (tmp_path / "keep").exists()
    assert parse_env((tmp_path / "app" / ".env").read_text()) == {"IMAGE_TAG": "2026.3.16"}


def test_check_mode_writes_nothing(run_module, tmp_path):
    result = run_module("compose_env_file", args(tmp_path), check_mode=True)
    assert result["changed"] and not (tmp_path / "app" / ".env").exists() and not (tmp_path / "keep").exists()


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True),
        st.text(st.characters(blacklist_characters="'\n\r", blacklist_categories=("Cs",))),
    )
)
def test_render_and_parse_round_trip(values):
    assert parse_env(render_env(values)) == values
