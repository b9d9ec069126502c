"""DESIGN.md's layering: a package imports only from packages below it (and leaves)."""

from __future__ import annotations

import ast
from pathlib import Path

# top to bottom, as in DESIGN.md's table
ORDER = ["cli", "api", "compose", "kube", "engine", "build", "registry", "images",
         "snapshots", "runtime", "supervise", "network", "volumes", "store"]
# stdlite and jsonlite: typing's and json's few names the runtime's every call needs,
# standing in for those imports (README: the runtime's imports); pure, like oci
LEAVES = {"oci", "errors", "testing", "stdlite", "jsonlite"}
PACKAGE = Path(__file__).resolve().parents[2] / "dockyard"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dockyard"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "dockyard" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_no_upward_imports() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        owner = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if owner not in ORDER:
            continue
        for imported in _imports(path) - LEAVES - {owner}:
            if imported in ORDER and ORDER.index(imported) < ORDER.index(owner):
                problems.append(f"{path.relative_to(PACKAGE)} imports dockyard.{imported}")
    assert problems == []


def test_leaves_import_only_leaves() -> None:
    for leaf in ("oci", "errors", "stdlite", "jsonlite"):
        target = PACKAGE / leaf
        files = list(target.rglob("*.py")) if target.is_dir() else [PACKAGE / f"{leaf}.py"]
        for path in files:
            assert _imports(path) <= {"oci", "errors", "stdlite"}, path
