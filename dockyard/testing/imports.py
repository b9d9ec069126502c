"""What a piece of code imports, seen from a fresh interpreter: the tests that hold a
path (a pull, a build, the SBOM commands) to the libraries it does not need."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable


def loaded_after(code: str, modules: Iterable[str]) -> list[str]:
    """Which of the top-level ``modules`` a new interpreter (this one's executable)
    has loaded once it ran ``code``, sorted; a module left as None in ``sys.modules``
    (an import made to fail on purpose) does not count."""
    names = sorted(set(modules))
    probe = (f"{code}\nimport sys\n"
             f"print(' '.join(m for m in {names!r} if sys.modules.get(m) is not None))\n")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout
    return out.split()
