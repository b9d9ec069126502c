"""Docker's text forms of container options, shared by every front end that takes them:
``-v``/``Binds`` strings, restart policies, stop signals, ``-p``, durations, ulimits and
env files (compose reads the same forms).

The CLI parses them from flags, the Docker Engine API from a create body's
``HostConfig.Binds`` and ``RestartPolicy``: one parser each, so both refuse the same
input with the same words.
"""

from __future__ import annotations

import os
import re

from dockyard.engine.spec import MountSpec, PortSpec, RestartPolicy, Ulimit
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
    return MountSpec("volume", source, target, readonly, nocopy="nocopy" in modes)


def go_bool(text: str, what: str) -> bool:
    """A boolean as the docker CLI reads one (Go's strconv.ParseBool)."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise InvalidArgument(f"invalid value for {what}: {text!r} is not a boolean")


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


def parse_cpus(text: str) -> int:
    """``--cpus`` as nano-CPUs (the range is the engine's to check)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to parse '
                              f"{text} as a rational number")
    return round(value * 1e9)


def parse_ulimit(text: str) -> Ulimit:
    name, _, values = text.partition("=")
    soft, _, hard = values.partition(":")
    if not name or not soft.lstrip("-").isdigit() or (hard and not hard.lstrip("-").isdigit()):
        raise InvalidArgument(f"invalid ulimit {text!r}: want name=soft[:hard]")
    return Ulimit(name, int(soft), int(hard or soft))


def env_file(path: str) -> list[str]:
    """The docker CLI's env file: ``NAME=value`` (the value kept as it is), ``NAME``
    (its value from this environment), ``#`` comments and blank lines."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "invalid utf8 bytes"
        raise InvalidArgument(f"open {path}: {str(reason).lower()}") from None
    result = []
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, has_value, value = line.partition("=")
        if not name:
            raise InvalidArgument(f"no variable name on line '{line}'")
        if any(c.isspace() for c in name):
            raise InvalidArgument(f"poorly formatted environment: variable '{name}' contains "
                                  "whitespaces")
        if has_value:
            result.append(f"{name}={value}")
        else:
            result.append(f"{name}={os.environ[name]}" if name in os.environ else name)
    return result


def _port_range(text: str, spec: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise InvalidArgument(f"invalid publish specification: {spec!r}") from None
    if not (0 <= first <= last <= 65535):
        raise InvalidArgument(f"invalid port range in {spec!r}")
    return first, last


def parse_publish(text: str) -> list[PortSpec]:
    """``-p [IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/tcp|/udp]`` (ranges pair up)."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"-p {text}: protocol must be tcp or udp")
    parts = spec.rsplit(":", 2)
    host_ip, host_text = ("", "") if len(parts) == 1 else (
        ("", parts[0]) if len(parts) == 2 else (parts[0], parts[1]))
    first, last = _port_range(parts[-1], text)
    if host_text:
        host_first, host_last = _port_range(host_text, text)
        if host_last - host_first not in (0, last - first) or (
                host_last != host_first and last == first):
            raise InvalidArgument(f"invalid ranges in {text!r}: host and container ranges "
                                  "must be the same size")
    else:
        host_first = host_last = 0
    specs = []
    for offset, port in enumerate(range(first, last + 1)):
        host_port = host_first + offset if host_last > host_first else host_first
        specs.append(PortSpec(host_ip, host_port, port, proto))
    return specs


def parse_duration(text: str | None, flag: str, default: float) -> float:
    """Go-style durations as Docker takes them: 30s, 1m30s, 500ms, 2h."""
    if not text:
        return default
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text):
        number = match.group(0)
        total += float(match.group(1)) * units[match.group(2)]
    if not number or re.sub(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", "", text):
        raise InvalidArgument(f"invalid duration {text!r} for {flag}")
    return total


def namespace_mode(mode: str | None) -> str | None:
    """``--ipc``/``IpcMode``: Docker's own defaults (``private``, ``shareable``, "") are
    a namespace of the container's own (None); ``container:NAME`` joins that one's."""
    if mode in (None, "", "private", "shareable"):
        return None
    if not mode.startswith("container:") or mode == "container:":
        raise InvalidArgument(f"invalid IPC mode {mode!r}: private, shareable or "
                              "container:NAME")
    return mode


def pid_mode(mode: str | None) -> str | None:
    """``--pid``/``PidMode``: ``host``, ``container:NAME``, or a namespace of its own."""
    if mode in (None, "", "private"):
        return None
    if mode != "host" and (not mode.startswith("container:") or mode == "container:"):
        raise InvalidArgument(f"invalid PID mode {mode!r}: host or container:NAME")
    return mode
