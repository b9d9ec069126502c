"""Docker's text forms of container options, shared by every front end that takes them:
``-v``/``Binds`` strings, restart policies, stop signals.

The CLI parses them from flags, the Docker Engine API from a create body's
``HostConfig.Binds`` and ``RestartPolicy``: one parser each, so both refuse the same
input with the same words.
"""

from __future__ import annotations

import os
import re

from dockyard.engine.spec import MountSpec, RestartPolicy
from dockyard.errors import InvalidArgument

# what Docker accepts after the second colon of -v (z/Z and the consistency words are
# accepted and mean nothing here, as on hosts without SELinux or on Linux)
VOLUME_MODES = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared",
                "slave", "rslave", "consistent", "cached", "delegated"}

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(text: str, flag: str) -> int:
    """A size as Docker writes it: 16m, 1g, 512k, 1.5g (binary units)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)b?", text.strip().lower())
    if not match:
        raise InvalidArgument(f"invalid value {text!r} for {flag}: want a size like 16m or 1g")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def parse_volume(text: str) -> MountSpec:
    """``-v``: /ctr (anonymous), NAME:/ctr[:ro], /host:/ctr[:ro] (host dir created)."""
    parts = text.split(":")
    if len(parts) == 1:
        return MountSpec("volume", "", parts[0])
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: {text!r}")
    modes = set(parts[2].split(",")) if len(parts) == 3 else set()
    unknown = sorted(modes - VOLUME_MODES)
    if unknown or {"ro", "rw"} <= modes:
        raise InvalidArgument(f"invalid mode: {parts[2]}")
    readonly = "ro" in modes
    source, target = parts[0], parts[1]
    if source.startswith(("/", ".")):
        return MountSpec("bind", os.path.abspath(source), target, readonly,
                         create_host_path=True)
    return MountSpec("volume", source, target, readonly)


def restart_policy(name: str, count: int = 0) -> RestartPolicy:
    """A policy by name ("" is "no"); only on-failure takes a retry count."""
    name = name or "no"
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy {name!r}")
    if count and name != "on-failure":
        raise InvalidArgument(f"invalid restart policy {name}:{count}: only on-failure takes "
                              "a count")
    return RestartPolicy(name, count)


def parse_restart(text: str) -> RestartPolicy:
    """``--restart NAME[:COUNT]``."""
    name, _, count = text.partition(":")
    if count and (name != "on-failure" or not count.isdigit()):
        raise InvalidArgument(f"invalid restart policy {text!r}: only on-failure takes a count")
    return restart_policy(name, int(count or 0)) if name in RESTART_POLICIES else \
        restart_policy(text)


def stop_signal(text: str | None) -> str | None:
    """Docker refuses an unknown stop signal when the container is created."""
    if text is None:
        return None
    from dockyard.runtime.operations import parse_signal

    try:
        parse_signal(text)
    except InvalidArgument:
        raise InvalidArgument(f"Invalid signal: {text}") from None
    return text
