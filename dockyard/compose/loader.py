"""From the command line's options to one resolved compose document.

Discovery (``compose.yaml`` … upwards from the working directory), ``-f`` (several,
merged in order), the ``.env`` file or ``--env-file``, interpolation, validation
(``compose.schema``) and the project name.  Pure but for reading files.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.compose import schema, sources
from dockyard.compose.files import FILE_NAMES, Options, find_files
from dockyard.compose.interpolate import interpolate
from dockyard.compose.lines import LineIndex
from dockyard.compose.merge import as_mapping, merge, merge_service
from dockyard.errors import InvalidArgument, NotFound

__all__ = ["FILE_NAMES", "LoadedProject", "Options", "find_files", "load", "read_dotenv"]


class LoadedProject(NamedTuple):
    name: str
    working_dir: Path
    config_files: tuple[Path, ...]
    doc: dict[str, Any]  # interpolated, validated, merged
    env: sources.Environment  # what interpolation sees (.env under the process environment)


def read_dotenv(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Compose's ``.env``: ``KEY=VALUE``, optional ``export``, quotes, ``#`` comments;
    a ``KEY`` alone takes its value from ``environ`` (default: the process's)."""
    process = sources.Environment({}, os.environ if environ is None else environ)
    try:
        text = sources.read_text(path, encoding="utf-8-sig")
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
        result[key] = _dotenv_value(value.strip()) if has_value else \
            process.process_value(key) or ""
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


def load(options: Options, cwd: Path, environ: Mapping[str, str],
         services: Sequence[str] = ()) -> LoadedProject:
    """The project; ``services`` are the ones named on the command line (a service
    named explicitly is enabled whatever its profiles)."""
    files = find_files(options, cwd)
    working_dir = Path(options.project_directory).absolute() if options.project_directory \
        else files[0].parent
    env = _environment(options, working_dir, cwd, environ)
    merged: dict[str, Any] = {}
    for path in files:
        merged = merge(merged, _load_file(path, env, working_dir, (), options.cache))
    merged = resolve_extends(merged, env, files[0], cache=options.cache)
    name = _project_name(options, env, merged, working_dir)
    merged["name"] = name
    active = set(options.profiles) | {p.strip() for p in
                                      env.get("COMPOSE_PROFILES", "").split(",") if p.strip()}
    try:
        merged = apply_profiles(merged, active, services)
    except InvalidArgument as exc:
        raise type(exc)(f"{files[0]}: {exc}") from None
    return LoadedProject(name, working_dir, files, merged, env)


def _load_file(path: Path, env: sources.Environment, base: Path,
               including: tuple[Path, ...], cache: Path | None = None) -> dict[str, Any]:
    """One file interpolated, validated, its relative paths made absolute against
    ``base`` and its ``include``s merged in."""
    text, raw = _read_yaml(path)
    try:
        doc = interpolate(raw, env)
    except InvalidArgument as exc:
        raise type(exc)(f"{path}: {exc}") from None
    lines = LineIndex(text)
    schema.validate(doc, str(path), lines, cache)
    schema.check_supported(doc, str(path), lines)
    doc = absolute_paths(doc, base)
    for index, item in enumerate(doc.pop("include", None) or []):
        doc = _include(doc, item, f"{path}: include[{index}]", env, base,
                       (*including, path), cache)
    return doc


def _include(doc: dict[str, Any], item: Any, where: str, env: sources.Environment, base: Path,
             including: tuple[Path, ...], cache: Path | None) -> dict[str, Any]:
    """compose-spec ``include``: each file loaded as a project of its own (its directory,
    its ``.env``), its resources added; one that the including file also defines is
    an error, as in Docker Compose."""
    item = {"path": item} if isinstance(item, str) else dict(item)
    paths = item["path"] if isinstance(item["path"], list) else [item["path"]]
    paths = [Path(os.path.normpath(base / sources.expanduser(str(p)))) for p in paths]
    for path in paths:
        if not sources.is_file(path):
            raise NotFound(f"{where}: open {path}: no such file or directory")
        if path in including:
            raise InvalidArgument(f"{where}: include cycle: " +
                                  " -> ".join(str(p) for p in (*including, path)))
    sub_base = Path(os.path.normpath(base / str(item["project_directory"]))) \
        if item.get("project_directory") else paths[0].parent
    sub_env: dict[str, str] = {}
    env_files = item.get("env_file")
    env_files = [env_files] if isinstance(env_files, str) else list(env_files or [])
    if env_files:
        for name in env_files:
            sub_env.update(read_dotenv(Path(os.path.normpath(base / str(name))), env.process))
    elif sources.is_file(sub_base / ".env"):
        sub_env.update(read_dotenv(sub_base / ".env", env.process))
    included_env = env.under(sub_env)
    included: dict[str, Any] = {}
    for path in paths:
        included = merge(included, _load_file(path, included_env, sub_base, including, cache))
    included = resolve_extends(included, included_env, paths[0], cache=cache)
    out = dict(doc)
    for section in ("services", "networks", "volumes", "secrets", "configs"):
        mine = dict(out.get(section) or {})
        for key, value in (included.get(section) or {}).items():
            if key in mine and mine[key] != value:
                raise InvalidArgument(f"{where}: imported compose file {paths[0]} defines "
                                      f"conflicting {section[:-1]} {key}")
            mine[key] = value
        if mine:
            out[section] = mine
    return out


def absolute_paths(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative host paths (build contexts, bind sources, env files, secret and config
    files, ``extends.file``) made absolute against ``base``, as Docker Compose does
    before merging files from several directories."""
    def resolve(value: str) -> str:
        if "://" in value or value.startswith("git@"):  # a remote build context
            return value
        return os.path.normpath(base / sources.expanduser(value))

    out = dict(doc)
    services = {}
    for name, service in (doc.get("services") or {}).items():
        service = dict(service or {})
        build = service.get("build")
        if isinstance(build, str):
            service["build"] = resolve(build)
        elif isinstance(build, dict):
            service["build"] = {**build, "context": resolve(str(build.get("context", ".")))}
            if build.get("additional_contexts"):  # a directory: from the project's
                service["build"]["additional_contexts"] = {
                    k: v if v is None or "://" in str(v) or str(v).startswith("service:")
                    else resolve(str(v))
                    for k, v in as_mapping(build["additional_contexts"]).items()}
        env_file = service.get("env_file")
        if env_file is not None:
            items = env_file if isinstance(env_file, list) else [env_file]
            service["env_file"] = [resolve(i) if isinstance(i, str) else
                                   {**i, "path": resolve(str(i["path"]))} for i in items]
        if isinstance(service.get("volumes"), list):
            service["volumes"] = [_absolute_volume(v, resolve) for v in service["volumes"]]
        develop = service.get("develop")
        if isinstance(develop, dict) and isinstance(develop.get("watch"), list):
            service["develop"] = {**develop, "watch": [
                {**rule, "path": resolve(str(rule["path"]))} if isinstance(rule, dict) and
                rule.get("path") else rule for rule in develop["watch"]]}
        extends = service.get("extends")
        if isinstance(extends, dict) and extends.get("file"):
            service["extends"] = {**extends, "file": resolve(str(extends["file"]))}
        services[name] = service
    if services:
        out["services"] = services
    for section in ("secrets", "configs"):
        declared = {}
        for key, entry in (doc.get(section) or {}).items():
            if isinstance(entry, dict) and entry.get("file"):
                entry = {**entry, "file": resolve(str(entry["file"]))}
            declared[key] = entry
        if declared:
            out[section] = declared
    return out


def _absolute_volume(volume: Any, resolve: Any) -> Any:
    if isinstance(volume, dict):
        source = volume.get("source")
        if volume.get("type") == "bind" and source:
            return {**volume, "source": resolve(str(source))}
        return volume
    source, sep, rest = str(volume).partition(":")
    if sep and source.startswith((".", "~")):
        return f"{resolve(source)}:{rest}"
    return volume


def resolve_extends(doc: dict[str, Any], env: sources.Environment, path: Path,
                    outer: tuple[str, ...] = (), cache: Path | None = None) -> dict[str, Any]:
    """Every service's ``extends`` (same file or another) replaced by the service it
    extends, merged under it with the spec's merge rules; cycles refused by name."""
    services: dict[str, Any] = dict(doc.get("services") or {})
    done: dict[str, Any] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in done:
            return dict(done[name])
        service = dict(services[name] or {})
        extends = service.pop("extends", None)
        if extends is not None:
            base = _extended(name, extends, chain)
            service = merge_service(base, service)
        done[name] = service
        return dict(service)

    def _extended(name: str, extends: Any, chain: tuple[str, ...]) -> dict[str, Any]:
        extends = {"service": extends} if isinstance(extends, str) else dict(extends)
        target = str(extends["service"])
        here = f"{path}: services.{name}.extends"
        if extends.get("file"):
            other = Path(str(extends["file"]))
            key = f"{other}:{target}"
            if key in chain:
                raise InvalidArgument(f"{here}: extends cycle: {' -> '.join((*chain, key))}")
            if not sources.is_file(other):
                raise NotFound(f"{here}: open {other}: no such file or directory")
            other_doc = _load_file(other, env, other.parent, (), cache)
            if target not in (other_doc.get("services") or {}):
                raise NotFound(f"{here}: cannot extend service {target!r}: not found in "
                               f"{other}")
            resolved = resolve_extends(other_doc, env, other, (*chain, f"{path}:{name}"),
                                       cache)
            return dict(resolved["services"][target])
        key = f"{path}:{target}"
        if target == name or key in chain:
            raise InvalidArgument(f"{here}: extends cycle: "
                                  f"{' -> '.join((*chain, f'{path}:{name}', key))}")
        if target not in services:
            raise NotFound(f"{here}: cannot extend service {target!r}: not found in {path}")
        return resolve(target, (*chain, f"{path}:{name}"))

    if not services:
        return doc
    out = dict(doc)
    out["services"] = {name: resolve(name, outer) for name in services}
    return out


def apply_profiles(doc: dict[str, Any], active: set[str],
                   named: Sequence[str]) -> dict[str, Any]:
    """compose-spec profiles: a service without ``profiles`` is always on, one with
    them only when one is active (``*``: all); a service named on the command line
    adds its profiles to the active ones.  An enabled service that depends on a
    disabled one is an error naming both, as in Docker Compose."""
    services: dict[str, Any] = doc.get("services") or {}
    active = set(active)
    for name in named:
        if name in services:
            active |= set((services[name] or {}).get("profiles") or [])

    def on(name: str) -> bool:
        profiles = (services[name] or {}).get("profiles") or []
        return not profiles or "*" in active or bool(active & set(profiles))

    enabled = {name for name in services if on(name)}
    for name in sorted(enabled):
        for dep in _deps(services[name]):
            if dep in services and dep not in enabled:
                raise InvalidArgument(f'service "{name}" depends on undefined service "{dep}": '
                                      "invalid compose project (its profiles "
                                      f"{', '.join(services[dep].get('profiles') or [])} are "
                                      "not active: use --profile or COMPOSE_PROFILES)")
    if enabled == set(services):
        return doc
    return {**doc, "services": {k: v for k, v in services.items() if k in enabled}}


def _deps(service: Any) -> list[str]:
    service = service or {}
    deps = list(service.get("depends_on") or [])
    for key in ("network_mode", "ipc", "pid"):
        value = str(service.get(key) or "")
        if value.startswith("service:"):
            deps.append(value.split(":", 1)[1])
    for item in service.get("volumes_from") or []:
        text = str(item)
        if not text.startswith("container:"):
            deps.append(text.split(":")[0])
    deps += [str(item).split(":")[0] for item in service.get("links") or []]
    return deps


def _environment(options: Options, working_dir: Path, cwd: Path,
                 environ: Mapping[str, str]) -> sources.Environment:
    env: dict[str, str] = {}
    if options.env_files:
        for name in options.env_files:
            env.update(read_dotenv((cwd / name).absolute(), environ))
    elif sources.is_file(working_dir / ".env"):
        env.update(read_dotenv(working_dir / ".env", environ))
    return sources.Environment(env, environ)  # the process environment wins over the file


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


@functools.cache
def compose_loader() -> Any:
    """PyYAML's safe loader (libyaml's where PyYAML has it: ~10× the pure-Python one)
    reading scalars as Docker Compose's Go YAML does: only ``true``/``false`` are
    booleans (``yes``, ``on``, ``no`` stay strings), ``0o17`` is octal as ``0400``."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: Any = type("ComposeLoader", (base,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in base.yaml_implicit_resolvers.items()}
    loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                 re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?0o[0-7_]+$"),
                                 list("-+0"))
    return loader


def _read_yaml(path: Path) -> tuple[str, dict[str, Any]]:
    import yaml

    try:
        text = sources.read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"open {path}: {exc}") from None
    try:
        doc = yaml.load(text, Loader=compose_loader())  # a safe loader
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
