"""``import -c``/``commit -c`` instructions: exec form only for a JSON array of strings,
shell form for anything else (as the Dockerfile parser), never a traceback."""

from __future__ import annotations

from dockyard.cli.images import _parse_changes


def test_exec_and_shell_forms() -> None:
    assert _parse_changes(('CMD ["sh", "-c", "x"]',)) == {"Cmd": ["sh", "-c", "x"]}
    assert _parse_changes(("ENTRYPOINT top -b",)) == {"Entrypoint": ["/bin/sh", "-c",
                                                                     "top -b"]}
    for odd in ("[bad", "[1, 2]", '["a", null]', "[]x"):
        assert _parse_changes((f"CMD {odd}",)) == {"Cmd": ["/bin/sh", "-c", odd]}, odd
