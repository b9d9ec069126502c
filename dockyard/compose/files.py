"""The compose files of a project: discovery upwards from the working directory, or
the ``-f`` files; and the command line's loading options.  Kept apart from the loader:
the project cache finds a project's entry by them without loading anything."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from dockyard.errors import NotFound

FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


class Options(NamedTuple):
    files: tuple[str, ...] = ()
    project_name: str | None = None
    env_files: tuple[str, ...] = ()
    project_directory: str | None = None
    profiles: tuple[str, ...] = ()  # --profile (COMPOSE_PROFILES adds to them)
    cache: Path | None = None  # where documents that passed the schema are remembered


def find_files(options: Options, cwd: Path) -> tuple[Path, ...]:
    if options.files:
        paths = []
        for name in options.files:
            path = (cwd / name).absolute()
            if not path.is_file():
                raise NotFound(f"open {path}: no such file or directory")
            paths.append(path)
        return tuple(paths)
    for folder in (cwd, *cwd.parents):
        for name in FILE_NAMES:
            if (folder / name).is_file():
                return (folder / name,)
    raise NotFound("no configuration file provided: not found (looked for "
                   f"{', '.join(FILE_NAMES)} in {cwd} and its parents)")
