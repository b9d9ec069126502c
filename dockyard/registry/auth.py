"""Registry credentials in Docker's config.json format, and the auth challenge flow.

``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) holds
``{"auths": {"host": {"auth": base64("user:password")}}}``, so ``docker login``
and ``dockyard login`` share credentials.  Writes are atomic.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

from dockyard.errors import InvalidArgument
from dockyard.store.atomic import atomic_write

_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "docker.io", "index.docker.io",
                    "registry-1.docker.io")


class Credentials(NamedTuple):
    username: str
    password: str


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    return Path(base) / "config.json"


def _load() -> dict[str, object]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidArgument(f"{path}: not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _key(registry: str) -> str:
    return "https://index.docker.io/v1/" if registry == "docker.io" else registry


def lookup(registry: str) -> Credentials | None:
    auths = _load().get("auths")
    if not isinstance(auths, dict):
        return None
    keys = _DOCKER_HUB_KEYS if registry == "docker.io" else (registry, f"https://{registry}",
                                                              f"http://{registry}")
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return Credentials(user, password)
    return None


def registry_of(server: str) -> str:
    """A server address as Docker's auth configs name it (``https://index.docker.io/v1/``,
    ``http://127.0.0.1:5000``, ``127.0.0.1:5000/v2/``) → the registry (``docker.io``)."""
    host = server.strip()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/", 1)[0]
    return "docker.io" if host in _DOCKER_HUB_KEYS or host == "" else host


def from_auth_config(raw: object) -> tuple[str, Credentials | None]:
    """Docker's AuthConfig (``{"username", "password", "serveraddress", "auth"}``, as the
    Engine API's ``X-Registry-Auth`` carries it) → (registry, credentials or None)."""
    if not isinstance(raw, dict):
        raise InvalidArgument("registry auth: want a JSON object")
    fields = {k.lower(): v for k, v in raw.items()}
    if not all(isinstance(v, str) for k, v in fields.items()
               if k in ("username", "password", "auth", "serveraddress")):
        raise InvalidArgument("registry auth: username, password, auth and serveraddress "
                              "must be strings")
    user, password = fields.get("username") or "", fields.get("password") or ""
    if not (user or password) and fields.get("auth"):
        try:
            user, _, password = base64.b64decode(fields["auth"]).decode().partition(":")
        except ValueError as exc:
            raise InvalidArgument(f"registry auth: invalid auth field: {exc}") from None
    registry = registry_of(fields.get("serveraddress") or "")
    return registry, Credentials(user, password) if user or password else None


def parse_auth_configs(raw: object) -> dict[str, Credentials]:
    """``X-Registry-Config``'s ``{server: AuthConfig}`` → {registry: credentials}."""
    if not isinstance(raw, dict):
        raise InvalidArgument("registry config: want a JSON object")
    logins = {}
    for server, config in raw.items():
        _registry, creds = from_auth_config(config)
        if creds is not None:
            logins[registry_of(str(server))] = creds
    return logins


def store(registry: str, creds: Credentials) -> Path:
    data = _load()
    auths = data.setdefault("auths", {})
    assert isinstance(auths, dict)
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths[_key(registry)] = {"auth": token}
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1).encode(), 0o600)
    return path


def remove(registry: str) -> bool:
    data = _load()
    auths = data.get("auths")
    if not isinstance(auths, dict) or _key(registry) not in auths:
        return False
    del auths[_key(registry)]
    atomic_write(config_path(), json.dumps(data, indent=1).encode(), 0o600)
    return True


class Challenge(NamedTuple):
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^\s,]+)')


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _PARAM.finditer(rest):
        key = match.group(1) or match.group(3)
        params[key] = match.group(2) if match.group(1) else match.group(4)
    return Challenge(scheme.lower(), params)
