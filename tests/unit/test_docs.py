"""The documents stay true to the tree: relative links reach an existing file (and heading), the
repository files they name exist, docs/DEVELOPING.md lists every plugins/module_utils file, and
each function its fact table names is defined in the file it names."""

from __future__ import annotations

import ast
import importlib.util
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("render_variables", ROOT / "tests/docs/render_variables.py")
render_variables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_variables)

DEVELOPING = ROOT / "docs" / "DEVELOPING.md"
DOCUMENTS = sorted(
    {ROOT / "README.md", ROOT / "bench" / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("roles/*/README.md")}
)
DOC_IDS = [str(p.relative_to(ROOT)) for p in DOCUMENTS]

FENCE = re.compile(r"^ *(```|~~~).*?^ *\1 *$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
# A code span names a repository file when it starts with one of these (placeholders aside).
PATH_PREFIXES = (
    "plugins/", "roles/", "tests/", "molecule/", "bench/", "docs/", "playbooks/", "inventory/sample/",
    "changelogs/", ".config/", ".ci/", "meta/", "module_utils/", "modules/", "filter/", "doc_fragments/",
)  # fmt: skip
PLACEHOLDER = re.compile(r"[<>*{}$…\s]|\.\.\.")


def without_code(text: str) -> str:
    """The text with fenced blocks and code spans blanked (a link or heading there is not one)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline markup dropped, lower case, punctuation removed,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text()
    found, seen = set(), {}
    for match in HEADING.finditer(FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found |= set(HTML_ANCHOR.findall(text))
    return found


def links(path: Path) -> list[str]:
    text = without_code(path.read_text())
    return LINK.findall(text) + REFERENCE.findall(text)


def test_the_documents_are_found():
    names = set(DOC_IDS)
    assert {"README.md", "docs/DEVELOPING.md", "bench/README.md"} <= names
    assert {f"roles/{role}/README.md" for role in render_variables.role_names()} <= names


def test_slug_follows_github():
    assert slug("Layout (who owns what)") == "layout-who-owns-what"
    assert slug("What the role adds to upstream's compose file") == "what-the-role-adds-to-upstreams-compose-file"
    assert slug("Role `integr8scode.provision.k3s`") == "role-integr8scodeprovisionk3s"
    assert slug("Watcher: a host that heals itself") == "watcher-a-host-that-heals-itself"


def broken_links(document: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in links(document):
        if not target or SCHEME.match(target):
            continue
        path_part, _hash, fragment = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if not resolved.exists():
            problems.append(f"{target}: no such file")
        elif root not in resolved.parents and resolved != root:
            problems.append(f"{target}: outside the repository")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(f"{target}: {resolved.name} has no heading #{fragment}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=DOC_IDS)
def test_relative_links_reach_a_file_and_heading(document):
    problems = broken_links(document)
    assert not problems, f"{document.relative_to(ROOT)}: broken links: {problems}"


def test_broken_links_are_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A `code` heading\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "# Title\n\n## Part one\n\n[ok](docs/other.md#a-code-heading) [ok](#part-one) [web](https://example.org)\n"
        "[gone](docs/missing.md) [bad anchor](docs/other.md#nope) [bad local](#part-two)\n"
        "`[not a link](docs/missing.md)`\n\n```\n[in a block](nowhere.md)\n```\n"
    )
    assert broken_links(doc, tmp_path) == [
        "docs/missing.md: no such file",
        "docs/other.md#nope: other.md has no heading #nope",
        "#part-two: README.md has no heading #part-two",
    ]


def named_paths(document: Path) -> list[str]:
    text = FENCE.sub("", document.read_text())
    names = [m.group(2).strip() for m in CODE_SPAN.finditer(text)]
    return [n for n in names if n.startswith(PATH_PREFIXES) and not PLACEHOLDER.search(n)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=DOC_IDS)
def test_files_named_in_code_spans_exist(document):
    """`roles/k3s/README.md`, `module_utils/k3s/unit.py`, `defaults/main.yml` (in a role's
    README): each is found from the repository root, the document's directory, plugins/,
    plugins/module_utils/ or a role."""
    bases = [ROOT, document.parent, ROOT / "plugins", ROOT / "plugins" / "module_utils"]
    bases += sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
    missing = [name for name in named_paths(document) if not any((base / name).exists() for base in bases)]
    assert not missing, f"{document.relative_to(ROOT)} names files that do not exist: {missing}"


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the markdown table that starts with `header` (indented or not)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == header)
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip().startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_developing_lists_every_module_utils_file():
    rows = table_rows(DEVELOPING.read_text(), "| file | what it holds |")
    listed = [re.fullmatch(r"`([^`]+)`", row[0]).group(1) for row in rows]
    present = render_variables.module_utils_files()
    assert sorted(listed) == sorted(set(listed)), "docs/DEVELOPING.md lists a module_utils file twice"
    missing, extra = sorted(set(present) - set(listed)), sorted(set(listed) - set(present))
    assert not missing, f"docs/DEVELOPING.md's module_utils table lacks {missing}: add a row"
    assert not extra, f"docs/DEVELOPING.md's module_utils table names files that do not exist: {extra}"


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_fact_table_names_functions_that_exist():
    """Each row's second cell: `<file under plugins/>` then the function(s) that compute the fact
    (code spans inside parentheses are remarks and not checked)."""
    rows = table_rows(DEVELOPING.read_text(), "| fact | the one function | used by |")
    assert len(rows) > 10
    problems = []
    for fact, where, *_used_by in rows:
        outside = re.sub(r"\([^)]*\)", "", where)
        spans = re.findall(r"`([^`]+)`", outside)
        path = ROOT / "plugins" / spans[0]
        if not spans[0].endswith(".py") or not path.is_file():
            problems.append(f"{fact}: {spans[0]} is not a file under plugins/")
            continue
        defined = top_level_names(path)
        functions = [name for name in spans[1:] if name.isidentifier()]
        if not functions:
            problems.append(f"{fact}: no function named")
        problems += [f"{fact}: {spans[0]} defines no {name}" for name in functions if name not in defined]
    assert not problems, "docs/DEVELOPING.md's fact table is out of date: " + "; ".join(problems)
