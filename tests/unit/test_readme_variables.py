"""The README's variables section matches the roles' argument specs."""

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("render_variables", ROOT / "tests/docs/render_variables.py")
render_variables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_variables)


def test_readme_variables_section_is_current():
    section = render_variables.current_section((ROOT / "README.md").read_text())
    assert section is not None, "README.md has no generated variables section"
    assert section == render_variables.render(), "README variables are stale: run `make docs`"


def test_every_role_is_documented():
    section = render_variables.current_section((ROOT / "README.md").read_text())
    for role in sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir()):
        assert f"### Role `{role}`" in section, f"role {role} missing from README variables"


def test_group_vars_only_name_documented_variables():
    """Every variable set in inventory/sample/group_vars exists in some role's argument spec."""
    documented = set()
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        documented |= set(yaml.safe_load(path.read_text())["argument_specs"]["main"].get("options", {}))
    for path in sorted((ROOT / "inventory" / "sample" / "group_vars").rglob("*.yml")):
        values = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(values) - documented)
        assert not unknown, f"{path.relative_to(ROOT)} sets variables no role documents: {unknown}"
