"""`jobcollection.ddp` is sans-I/O: no sockets, no asyncio, no clock, no threads; of ours only
`core` and `errors` (the import-linter contract says the latter for the whole package graph)."""

from __future__ import annotations

import ast
from pathlib import Path

import jobcollection.ddp

PACKAGE = Path(jobcollection.ddp.__file__).parent
PURE_STDLIB = {"__future__", "collections", "dataclasses", "json", "re", "typing"}
OURS = {"core", "errors"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add((node.module or "").split(".")[0])
            elif node.level == 2:  # from ..core import ejson
                names.add("jobcollection." + (node.module or "").split(".")[0])
    return names


def test_the_ddp_package_imports_no_io() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 6
    allowed = PURE_STDLIB | {f"jobcollection.{name}" for name in OURS}
    for path in modules:
        assert imported(path) <= allowed, f"{path.name} imports {imported(path) - allowed}"
