"""The ``dockyard`` CLI as tests and benchmarks drive it: its own root and Docker
config dir, output captured, the exit status checked unless asked not to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class Dockyard:
    def __init__(self, root: Path, docker_config: Path) -> None:
        self.root = root
        self.env = dict(os.environ, DOCKER_CONFIG=str(docker_config))
        beside = Path(sys.executable).with_name("dockyard")
        self.argv = [str(beside)] if beside.exists() else [sys.executable, "-m",
                                                           "dockyard.cli.main"]

    def __call__(self, *args: str, check: bool = True, input: bytes | None = None,
                 root: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        raw = subprocess.run([*self.argv, "--root", str(root or self.root), *args],
                             env={**self.env, **(env or {})}, capture_output=True, timeout=300,
                             check=False, input=input)
        result = subprocess.CompletedProcess(raw.args, raw.returncode,
                                             raw.stdout.decode(errors="replace"),
                                             raw.stderr.decode(errors="replace"))
        if check:
            assert result.returncode == 0, result.stderr
        return result
