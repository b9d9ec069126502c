"""What a piece of code imports, seen from a fresh interpreter: the tests that hold a
path (a pull, a build, the SBOM commands) to the libraries it does not need."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable


def loaded_after(code: str, modules: Iterable[str], *, no_site: bool = False) -> list[str]:
    """Which of the top-level ``modules`` a new interpreter (this one's executable)
    has loaded once it ran ``code``, sorted; a module left as None in ``sys.modules``
    (an import made to fail on purpose) does not count.  ``no_site``: started as the
    installed commands start (``python -S``: no ``site``, whose .pth files import
    ``re`` and ``pathlib`` themselves), with this checkout's dockyard on the path."""
    names = sorted(set(modules))
    probe = (f"{code}\nimport sys\n"
             f"print(' '.join(m for m in {names!r} if sys.modules.get(m) is not None))\n")
    argv = [sys.executable, "-c", probe]
    if no_site:
        import dockyard

        top = os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__)))
        argv = [sys.executable, "-S", "-c", f"import sys\nsys.path.insert(0, {top!r})\n{probe}"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return out.splitlines()[-1].split() if out.strip() else []  # (code may print too)
