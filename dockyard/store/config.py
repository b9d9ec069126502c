"""The engine's settings for one root: ``<root>/engine.json`` (optional; Docker keeps
the like in daemon.json), each overridable by an environment variable.

  {"bridge_subnet": "10.213.0.0/24",   # the default network's subnet  DOCKYARD_SUBNET
   "network_pool": "10.215.0.0/16",    # user networks' /24s come from  DOCKYARD_NETWORK_POOL
   "default_bind_ip": "127.0.0.1",     # -p without an address binds    DOCKYARD_DEFAULT_BIND_IP
   "userns_remap": "default",          # containers' root an unprivileged DOCKYARD_USERNS_REMAP
                                       # host uid (see dockyard.store.idmap)
   "userland_proxy": false,            # true: loopback and containers  DOCKYARD_USERLAND_PROXY
                                       # reach published ports through a proxy, not
                                       # DNAT (dockerd's userland-proxy)
   "ip_forward": true}                 # false: never turn the host's   DOCKYARD_IP_FORWARD
                                       # IP forwarding on (dockerd's ip-forward; see
                                       # dockyard.network.forwarding)
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import NamedTuple

from dockyard.errors import InvalidArgument

CONFIG_FILE = "engine.json"
_ENV = {"bridge_subnet": "DOCKYARD_SUBNET", "network_pool": "DOCKYARD_NETWORK_POOL",
        "default_bind_ip": "DOCKYARD_DEFAULT_BIND_IP", "userns_remap": "DOCKYARD_USERNS_REMAP",
        "userland_proxy": "DOCKYARD_USERLAND_PROXY", "ip_forward": "DOCKYARD_IP_FORWARD"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


class EngineConfig(NamedTuple):
    bridge_subnet: str | None = None  # None: 10.213.0.0/24 (default root) or per-root
    network_pool: str = "10.215.0.0/16"
    default_bind_ip: str = ""  # "": every address, as dockerd's default
    userns_remap: str = ""  # "": containers' root is the host's root (Docker's default)
    userland_proxy: bool = False  # False: published ports DNATed, loopback included
    ip_forward: bool = True  # True: routed networks turn the host's forwarding on


def _flag(key: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in _TRUE + _FALSE:
        raise InvalidArgument(f"engine setting {key}: {value!r} is not a boolean (true or "
                              "false)")
    return word in _TRUE


def load(root: Path) -> EngineConfig:
    path = root / CONFIG_FILE
    values: dict[str, str] = {}
    if path.exists():
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{path}: expected a JSON object")
        unknown = sorted(set(raw) - set(_ENV))
        if unknown:
            raise InvalidArgument(f"{path}: unknown setting(s) {', '.join(unknown)} (known: "
                                  f"{', '.join(sorted(_ENV))})")
        values = {key: str(value) for key, value in raw.items()}
    for key, variable in _ENV.items():
        if variable in os.environ:
            values[key] = os.environ[variable]
    proxy = _flag("userland_proxy", values.pop("userland_proxy", "false"))
    forward = _flag("ip_forward", values.pop("ip_forward", "true"))
    config = EngineConfig(**values, userland_proxy=proxy, ip_forward=forward)
    for key in ("bridge_subnet", "network_pool"):
        value = getattr(config, key)
        if value is not None:
            try:
                ipaddress.IPv4Network(value)
            except ValueError as exc:
                raise InvalidArgument(f"engine setting {key}: {value!r} is not an IPv4 "
                                      f"subnet: {exc}") from exc
    if config.default_bind_ip:
        try:
            ipaddress.ip_address(config.default_bind_ip)
        except ValueError as exc:
            raise InvalidArgument(f"engine setting default_bind_ip: {exc}") from exc
    return config
