"""Import boundaries that keep the architecture honest.

- Nothing outside ``moments_pipeline/emulator`` imports the emulator, except the lazy dispatch
  in ``moments_pipeline/cli.py``.
- Only ``moments_pipeline/dagster`` imports Dagster.
- ``moments_pipeline/sync`` does no logging.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "moments_pipeline"


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
