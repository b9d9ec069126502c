"""The project cache: a loaded, validated and lowered project, kept under the root and
used again while nothing it was made from has changed.

A no-op ``compose up`` would otherwise spend most of its time reading YAML, running
the schema and lowering the same file again.  An entry is found by the request (the
files discovery found, the command line's options, the services named, the working
directory, the code that lowers) and holds, beside the project, the notes of its
load (``compose.sources``): the digest of every file read — compose files, ``.env``,
``env_file``s, included and extended files, secret files — or that it was absent,
and the value of every environment variable looked up, or that it was unset.  The
entry is used only while every note still holds; otherwise the project is loaded
afresh and the entry replaced.  Entries are written whole (temp file, fsync,
rename) and read back only as the plan's own types.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard.compose import sources
from dockyard.compose.files import Options, find_files
from dockyard.compose.plan import ProjectPlan

FORMAT = 1
KEEP = 64  # entries kept (the oldest go beyond this)
# what an entry may hold besides builtins (``_PlanUnpickler``)
_ALLOWED = {"dockyard.compose.plan": None, "dockyard.engine.spec": None,
            "pathlib": {"PosixPath", "Path"}}


def project_plan(options: Options, cwd: Path, environ: Mapping[str, str],
                 services: Sequence[str] = (), folder: Path | None = None) -> ProjectPlan:
    """The project as ``lower(load(...))`` makes it; from ``folder``'s entry when one
    for this request still holds, else made and kept there (None: no cache)."""
    entry = folder / f"{_key(options, cwd, services)}.plan" if folder is not None else None
    found = _read(entry, environ) if entry is not None else None
    if found is not None:
        return found
    from dockyard.compose.loader import load
    from dockyard.compose.lower import lower

    if entry is None:
        return lower(load(options, cwd, environ, services))
    with sources.recording() as notes:
        plan = lower(load(options, cwd, environ, services))
    _write(entry, notes, plan)
    return plan


def _key(options: Options, cwd: Path, services: Sequence[str]) -> str:
    request = [FORMAT, [str(p) for p in find_files(options, cwd)],
               list(options._replace(cache=None)), list(services), str(cwd), CODE]
    return sources.digest(json.dumps(request).encode())


def _code() -> list[Any]:
    """What says which code lowered: dockyard's compose modules, the flag parsers and
    the spec they use (size and mtime: a new version or an edit shows in them)."""
    from dockyard.engine import spec

    here = os.path.dirname(__file__)
    engine = os.path.dirname(spec.__file__)
    with os.scandir(here) as entries:
        paths = sorted(e.path for e in entries if e.name.endswith(".py"))
    stamp: list[Any] = []
    for path in [*paths, os.path.join(engine, "flags.py"), os.path.join(engine, "spec.py")]:
        try:
            info = os.stat(path)
        except OSError:
            continue
        stamp.append([os.path.basename(path), info.st_size, info.st_mtime_ns])
    return stamp


# taken once, as this module is loaded: the stamp of the code this process runs (a
# warm worker's zygote loaded it, and a new zygote serves once that code changes),
# not ~1 ms of stats on every command
CODE = _code()


def _read(entry: Path, environ: Mapping[str, str]) -> ProjectPlan | None:
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    header, _, payload = data.partition(b"\n")
    try:
        notes = json.loads(header)
        if not sources.still_holds(notes["files"], notes["variables"], environ):
            return None
        plan = _PlanUnpickler(io.BytesIO(payload)).load()
    except (ValueError, KeyError, TypeError, pickle.UnpicklingError, AttributeError,
            EOFError, ImportError):
        return None  # damaged or from another version: made again
    return plan if isinstance(plan, ProjectPlan) else None


def _write(entry: Path, notes: sources.Recorder, plan: ProjectPlan) -> None:
    """Kept whole or not at all; a cache that cannot be written is no error.  A
    project holding a secret's value (from a variable, or a file copied to carry an
    owner or mode) is not kept: secrets are not written anywhere they were not."""
    from dockyard.store.atomic import atomic_write

    if any(f.kind == "secrets" and f.content is not None
           for service in plan.services.values() for f in service.files):
        return

    header = json.dumps({"files": notes.files, "variables": notes.variables})
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(entry, header.encode() + b"\n" + pickle.dumps(plan, protocol=5))
        _prune(entry.parent)
    except OSError:
        pass


def _prune(folder: Path) -> None:
    entries = [e for e in os.scandir(folder) if e.name.endswith(".plan")]
    if len(entries) <= KEEP:
        return
    entries.sort(key=lambda e: e.stat().st_mtime_ns)
    for old in entries[:len(entries) - KEEP]:
        with contextlib.suppress(OSError):
            os.unlink(old.path)


class _PlanUnpickler(pickle.Unpickler):
    """Only the plan's types (and ``Path``): anything else in an entry is refused."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get(module, set())
        if module in _ALLOWED and (allowed is None or name in allowed):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a compose plan")
