"""The ``dockyard`` and ``dockyard-runtime`` commands are installed as written in
``bin/`` (pyproject's ``script-files``), not as the console-script wrapper pip
writes: that one imports ``re`` — with enum, functools and collections, ~5 ms of CPU
on every command, a third of a warm ``compose up`` that changes nothing."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


@pytest.mark.parametrize(("name", "entry"), [("dockyard", "dockyard.cli.entry"),
                                             ("dockyard-runtime", "dockyard.runtime.cli")])
def test_the_installed_commands_import_only_their_entry(name: str, entry: str) -> None:
    installed = Path(sys.executable).with_name(name)
    assert installed.is_file(), f"{installed}: not installed beside the interpreter"
    shebang, _, body = installed.read_text().partition("\n")
    assert shebang.startswith("#!") and "python" in shebang
    # the file of this tree, installed: not a wrapper made from an entry point
    assert body == (REPO / "bin" / name).read_text().partition("\n")[2]
    # (and ``site``, run only when the package is not where a -S start looks for it)
    assert _imports(body) == {"sys", entry, "site"}
