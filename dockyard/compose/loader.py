"""From the command line's options to one resolved compose document.

Discovery (``compose.yaml`` … upwards from the working directory), ``-f`` (several,
merged in order), the ``.env`` file or ``--env-file``, interpolation, validation
(``compose.schema``) and the project name.  Pure but for reading files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.compose import schema
from dockyard.compose.interpolate import interpolate
from dockyard.compose.lines import LineIndex
from dockyard.compose.merge import merge
from dockyard.errors import InvalidArgument, NotFound

FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


class Options(NamedTuple):
    files: tuple[str, ...] = ()
    project_name: str | None = None
    env_files: tuple[str, ...] = ()
    project_directory: str | None = None


class LoadedProject(NamedTuple):
    name: str
    working_dir: Path
    config_files: tuple[Path, ...]
    doc: dict[str, Any]  # interpolated, validated, merged
    env: dict[str, str]  # what interpolation saw (.env under the process environment)


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


def read_dotenv(path: Path) -> dict[str, str]:
    """Compose's ``.env``: ``KEY=VALUE``, optional ``export``, quotes, ``#`` comments."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {str(exc.strerror).lower()}") from None
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, has_value, value = line.partition("=")
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise InvalidArgument(f"{path}:{number}: invalid variable name {key!r}")
        result[key] = _dotenv_value(value.strip()) if has_value else os.environ.get(key, "")
    return result


def _dotenv_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return inner.replace("\\n", "\n").replace('\\"', '"') if value[0] == '"' else inner
    return re.sub(r"\s+#.*$", "", value)  # an inline comment after blanks


def normalize_name(name: str) -> str:
    """Docker Compose's project name: lower case, only ``[a-z0-9_-]``, starting with a
    letter or digit."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def load(options: Options, cwd: Path, environ: Mapping[str, str]) -> LoadedProject:
    files = find_files(options, cwd)
    working_dir = Path(options.project_directory).absolute() if options.project_directory \
        else files[0].parent
    env = _environment(options, working_dir, cwd, environ)
    merged: dict[str, Any] = {}
    for path in files:
        text, raw = _read_yaml(path)
        try:
            doc = interpolate(raw, env)
        except InvalidArgument as exc:
            raise type(exc)(f"{path}: {exc}") from None
        lines = LineIndex(text)
        schema.validate(doc, str(path), lines)
        schema.check_supported(doc, str(path), lines)
        merged = merge(merged, doc)
    name = _project_name(options, env, merged, working_dir)
    merged["name"] = name
    return LoadedProject(name, working_dir, files, merged, env)


def _environment(options: Options, working_dir: Path, cwd: Path,
                 environ: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    if options.env_files:
        for name in options.env_files:
            env.update(read_dotenv((cwd / name).absolute()))
    elif (working_dir / ".env").is_file():
        env.update(read_dotenv(working_dir / ".env"))
    env.update(environ)  # the process environment wins over the file
    return env


def _project_name(options: Options, env: Mapping[str, str], doc: dict[str, Any],
                  working_dir: Path) -> str:
    for candidate, strict in ((options.project_name, True),
                              (env.get("COMPOSE_PROJECT_NAME"), True),
                              (doc.get("name"), True), (working_dir.name, False)):
        if not candidate:
            continue
        name = normalize_name(str(candidate))
        if strict and name != candidate:
            raise InvalidArgument(f"invalid project name {candidate!r}: must consist only of "
                                  "lowercase alphanumeric characters, hyphens and underscores "
                                  "as well as start with a letter or number")
        if name:
            return name
    raise InvalidArgument(f"project name must not be empty (the directory {working_dir} "
                          "gives none): use -p")


def _read_yaml(path: Path) -> tuple[str, dict[str, Any]]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"open {path}: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path}: invalid YAML: {exc}") from None
    if doc is None:
        raise InvalidArgument(f"{path}: empty compose file")
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path}: top-level object must be a mapping")
    return text, _drop_extensions(doc)


def _drop_extensions(doc: dict[str, Any]) -> dict[str, Any]:
    """Top-level ``x-`` keys are for anchors and other tools: the schema allows them and
    dockyard has nothing to do with them once the YAML is read."""
    return {k: v for k, v in doc.items() if not str(k).startswith("x-")}


def service_names(doc: Mapping[str, Any]) -> Sequence[str]:
    return list((doc.get("services") or {}).keys())
