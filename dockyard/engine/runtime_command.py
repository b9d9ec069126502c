"""Which runtime CLI the engine drives (containers' supervisors, build steps)."""

from __future__ import annotations

import sys
from pathlib import Path


def runtime_argv() -> list[str]:
    """The ``dockyard-runtime`` installed beside this interpreter, else the module."""
    beside = Path(sys.executable).with_name("dockyard-runtime")
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-P", "-m", "dockyard.runtime.cli"]
