"""Import boundaries that keep the architecture honest.

- The import table of ``docs/design.md`` ("Layout and ownership of knowledge") is the rule:
  every product module is covered by a row and imports, besides the standard library and its
  own subpackage, only what its row allows.
- Nothing outside ``moments_pipeline/emulator`` imports the emulator, except the lazy dispatch
  in ``moments_pipeline/cli.py``.
- Only ``moments_pipeline/dagster`` imports Dagster.
- ``moments_pipeline/sync`` does no logging.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "moments_pipeline"
DESIGN = PACKAGE.parent / "docs" / "design.md"
SUBPACKAGES = frozenset(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Resolve relative imports against the module's own package.
                rel = path.relative_to(PACKAGE.parent).with_suffix("")
                parts = list(rel.parts)
                base = parts[: len(parts) - node.level]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            # importlib.import_module("...") with a literal argument counts as an import too.
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return names


def _modules_under(subdir: str | None = None) -> list[Path]:
    root = PACKAGE / subdir if subdir else PACKAGE
    return sorted(root.rglob("*.py"))


def _is_within(path: Path, subdir: str) -> bool:
    return (PACKAGE / subdir) in path.parents


def test_product_code_never_imports_the_emulator() -> None:
    offenders = []
    for path in _modules_under():
        if _is_within(path, "emulator") or path == PACKAGE / "cli.py":
            continue
        if any(m.startswith("moments_pipeline.emulator") for m in _imported_modules(path)):
            offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert offenders == []


def test_only_the_dagster_subpackage_imports_dagster() -> None:
    offenders = []
    for path in _modules_under():
        if _is_within(path, "dagster"):
            continue
        if any(
            m == "dagster" or m.startswith(("dagster.", "dagster_"))
            for m in _imported_modules(path)
        ):
            offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert offenders == []


def test_sync_engine_does_no_logging() -> None:
    offenders = []
    for path in _modules_under("sync"):
        mods = _imported_modules(path)
        if any(m == "logging" or m.startswith("logging.") for m in mods):
            offenders.append(str(path.relative_to(PACKAGE.parent)))
        if "print(" in path.read_text():
            offenders.append(str(path.relative_to(PACKAGE.parent)) + " (print)")
    assert offenders == []


def test_boundary_checker_sees_imports(tmp_path: Path) -> None:
    """The checker itself must be able to fail: it finds each kind of import it looks for."""
    sample = PACKAGE / "sync" / "_boundary_probe_.py"
    sample.write_text(
        "import logging\nfrom dagster import asset\nimport importlib\n"
        "importlib.import_module('moments_pipeline.emulator.app')\n"
    )
    try:
        mods = _imported_modules(sample)
    finally:
        sample.unlink()
    assert "logging" in mods
    assert "dagster" in mods
    assert "moments_pipeline.emulator.app" in mods


def _import_table(text: str) -> dict[str, frozenset[str]]:
    """The design page's table as {path: allowed top-level import names}, rows in order.

    A cell lists names separated by commas (distribution spellings like ``email-validator``
    become module names); a parenthesis is a reason, ``; ...`` a remark; a subpackage name
    stands for ``moments_pipeline.<name>`` (in its own row, for the library of that name);
    "everything above" is every row above, names and the rows' own subpackages; "nothing"
    allows nothing.
    """
    section = text.split("## Layout and ownership of knowledge", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(moments_pipeline/[^`]*)` \| [^\n]*? \| ([^|\n]*) \|$", section, re.M)
    table: dict[str, frozenset[str]] = {}
    for path, cell in rows:
        cell = re.sub(r"\([^)]*\)", "", cell).split(";", 1)[0].replace("+", ",")
        allowed: set[str] = set()
        for token in (t.strip() for t in cell.split(",")):
            if token == "everything above":
                allowed.update(name for above in table.values() for name in above)
                allowed.update(_own(above) for above in table if _own(above))
            elif token and token != "nothing":
                name = token.replace("-", "_")
                # A subpackage may always import itself: its own name is the library's
                # (``dagster`` in the dagster row).
                own = name == path.removeprefix("moments_pipeline/").rstrip("/")
                internal = name in SUBPACKAGES and not own
                allowed.add(f"moments_pipeline.{name}" if internal else name)
        table[path] = frozenset(allowed)
    return table


def _own(row: str) -> str:
    """The subpackage a row covers, as an import name ("" for a top-level module)."""
    name = row.removeprefix("moments_pipeline/").rstrip("/")
    return f"moments_pipeline.{name}" if name in SUBPACKAGES else ""


def _row_of(path: Path, table: dict[str, frozenset[str]]) -> str | None:
    rel = path.relative_to(PACKAGE.parent).as_posix()
    matches = [r for r in table if rel == r or (r.endswith("/") and rel.startswith(r))]
    return max(matches, key=len) if matches else None


def _top_level(module: str) -> str | None:
    """The name a module is allowed by: ``moments_pipeline.<sub>`` or its top-level package."""
    parts = module.split(".")
    if parts[0] == "moments_pipeline":
        return ".".join(parts[:2]) if len(parts) > 1 else "moments_pipeline"
    if parts[0] in sys.stdlib_module_names or parts[0] == "__future__":
        return None
    return parts[0]


TABLE = _import_table(DESIGN.read_text())


def test_the_design_table_is_read() -> None:
    assert len(TABLE) >= 9
    assert TABLE["moments_pipeline/identity/"] >= {"pandas", "email_validator"}
    assert "moments_pipeline.config" in TABLE["moments_pipeline/identity/"]
    assert TABLE["moments_pipeline/dagster/"] >= {"dagster", "moments_pipeline.sync", "httpx"}
    assert "moments_pipeline.emulator" not in TABLE["moments_pipeline/dagster/"]
    assert TABLE["moments_pipeline/cli.py"] == frozenset()
    for names in TABLE.values():
        for name in names:
            if name.startswith("moments_pipeline."):
                assert name.split(".")[1] in SUBPACKAGES, name
            else:
                assert importlib.util.find_spec(name) is not None, f"not a module: {name}"


@pytest.mark.parametrize("path", _modules_under(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_every_module_imports_only_what_its_row_of_the_design_table_allows(path: Path) -> None:
    row = _row_of(path, TABLE)
    assert row is not None, f"{path} is not covered by the import table of docs/design.md"
    allowed = TABLE[row] | {_own(row), "moments_pipeline"}
    used = {t for m in _imported_modules(path) if m and (t := _top_level(m))}
    assert sorted(used - allowed) == [], f"{row} may import only {sorted(allowed)}"


def test_the_table_check_can_fail() -> None:
    table = _import_table(
        "## Layout and ownership of knowledge\n\n| path | role | may import |\n|---|---|---|\n"
        "| `moments_pipeline/config/` | models | pydantic (why) |\n"
        "| `moments_pipeline/sync/` | engine | config, orjson; remark |\n"
        "| `moments_pipeline/dagster/` | glue | everything above + dagster |\n\n## Next\n"
    )
    assert table == {
        "moments_pipeline/config/": {"pydantic"},
        "moments_pipeline/sync/": {"moments_pipeline.config", "orjson"},
        "moments_pipeline/dagster/": {
            "pydantic",
            "orjson",
            "dagster",
            "moments_pipeline.config",
            "moments_pipeline.sync",
        },
    }
    config = PACKAGE / "config" / "_models.py"
    allowed = table["moments_pipeline/config/"] | {_own("moments_pipeline/config/")}
    used = {t for m in _imported_modules(config) if m and (t := _top_level(m))}
    assert "moments_pipeline.warehouse" in used - allowed
