"""The generated documentation is current: each role README's variable table matches the role's
argument specs, README.md's module table lists every module with its DOCUMENTATION
short_description, and docs/DEVELOPING.md's module imports table matches the modules' imports."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("render_variables", ROOT / "tests/docs/render_variables.py")
render_variables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_variables)

SECTIONS = render_variables.sections()


@pytest.mark.parametrize("section", SECTIONS, ids=[f"{s.name}:{s.label}" for s in SECTIONS])
def test_generated_section_is_current(section):
    current = section.current()
    assert current is not None, f"{section.name} lacks the markers {section.begin!r} ... {section.end!r}"
    assert current == section.render(), f"{section.name}: the generated section is stale: run `make docs`"


def test_every_role_has_a_generated_variable_table():
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    covered = {s.path.parent.name for s in SECTIONS if s.begin == render_variables.VARIABLES_BEGIN}
    assert set(roles) <= covered, f"roles without a generated variable table: {sorted(set(roles) - covered)}"


def test_every_option_is_in_its_roles_table():
    for role in render_variables.role_names():
        table = render_variables.current_section((ROOT / "roles" / role / "README.md").read_text())
        for entry in render_variables.argument_specs(role).values():
            for name in entry.get("options", {}):
                assert f"| `{name}` |" in table, f"{name} missing from roles/{role}/README.md"


def test_module_table_lists_every_module():
    section = render_variables.current_section(
        (ROOT / "README.md").read_text(), render_variables.MODULES_BEGIN, render_variables.MODULES_END
    )
    assert section is not None, "README.md has no generated module table"
    listed = set(re.findall(r"^\| `integr8scode\.provision\.([a-z0-9_]+)` \|", section, re.M))
    present = {p.stem for p in render_variables.module_paths()}
    assert listed == present, (
        f"README module table: missing {sorted(present - listed)}, extra {sorted(listed - present)}"
    )
    for path in render_variables.module_paths():
        assert render_variables.module_documentation(path).get("short_description"), (
            f"{path.name}: no short_description"
        )


def test_a_stale_or_missing_section_is_noticed(tmp_path):
    """What the parametrized test relies on: an edited section differs from its rendering, and a
    document without the markers has no section at all."""
    role = render_variables.role_names()[0]
    doc = tmp_path / "README.md"
    section = render_variables.Section(
        doc,
        render_variables.VARIABLES_BEGIN,
        render_variables.VARIABLES_END,
        lambda: render_variables.role_variables(role),
    )
    doc.write_text(f"# {role}\n\n{section.render()}\n")
    assert render_variables.stale(section) is None
    doc.write_text(f"# {role}\n\n{section.render().replace('| `', '| `stale_', 1)}\n")
    assert "stale" in render_variables.stale(section)
    doc.write_text(f"# {role}\n")
    assert section.current() is None
    assert "lacks the markers" in render_variables.stale(section)


def test_group_vars_only_name_documented_variables():
    """Every variable set in inventory/sample/group_vars exists in some role's argument spec."""
    documented = set()
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        documented |= set(yaml.safe_load(path.read_text())["argument_specs"]["main"].get("options", {}))
    for path in sorted((ROOT / "inventory" / "sample" / "group_vars").rglob("*.yml")):
        values = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(values) - documented)
        assert not unknown, f"{path.relative_to(ROOT)} sets variables no role documents: {unknown}"


def test_readme_names_only_documented_variables():
    """The README's hand-written table of the variables most users set names real variables."""
    documented = set()
    for role in render_variables.role_names():
        for entry in render_variables.argument_specs(role).values():
            documented |= set(entry.get("options", {}))
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| variable | why |") :].split("\n\n", 1)[0]
    named = {name for row in table.splitlines()[2:] for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
    assert named, "README.md's table of the variables most users set is empty"
    assert named <= documented, f"README.md names variables no role documents: {sorted(named - documented)}"
