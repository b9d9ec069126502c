"""Per-container /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker writes them.

They live in the container's directory and are bound over the image's files, so
the image is never modified and ``docker inspect``'s HostnamePath/HostsPath/
ResolvConfPath point at real files.  On a user network the resolver is the
embedded DNS on the network's gateway (it forwards what it does not know);
``--dns``/``--dns-search``/``--dns-option`` and ``--add-host`` are honoured; a
container sharing another's network stack shares its files too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dockyard.engine.spec import ContainerSpec
from dockyard.errors import InvalidArgument

_LOCALHOST = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
              "ff02::2\tip6-allrouters\n")


def _host_resolv_lines() -> list[str]:
    try:
        return Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return []


def resolv_conf(spec: ContainerSpec, network: dict[str, Any] | None) -> str:
    host = _host_resolv_lines()
    embedded = [e["gateway"] for e in (network or {}).get("endpoints", []) if e["dns"]][:1]
    if embedded:
        servers = embedded  # the embedded DNS forwards to --dns or the host's resolvers
    elif spec.dns:
        servers = list(spec.dns)
    else:  # the host's, minus loopback ones a container cannot reach
        servers = [line.split()[1] for line in host if line.startswith("nameserver") and
                   len(line.split()) > 1 and not line.split()[1].startswith(("127.", "::1"))]
    search = list(spec.dns_search) or [w for line in host if line.startswith("search")
                                       for w in line.split()[1:]]
    options = list(spec.dns_options) or [w for line in host if line.startswith("options")
                                         for w in line.split()[1:]]
    if embedded and not spec.dns_options:
        options = ["ndots:0"]  # as Docker writes for its embedded DNS
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts(spec: ContainerSpec, hostname: str, network: dict[str, Any] | None) -> str:
    if spec.network_mode == "host":
        text = Path("/etc/hosts").read_text()
    else:
        text = _LOCALHOST
        endpoints = (network or {}).get("endpoints", [])
        own = endpoints[0]["address"] if endpoints else "127.0.1.1"
        text += f"{own}\t{hostname}\n"
    for entry in spec.extra_hosts:
        name, sep, address = entry.partition(":")
        if not sep or not name or not address:
            raise InvalidArgument(f"invalid --add-host {entry!r}: want NAME:IP")
        text += f"{address}\t{name}\n"
    return text


def write(bundle: Path, spec: ContainerSpec, hostname: str,
          network: dict[str, Any] | None = None, *,
          shared_from: Path | None = None,
          owner: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Write the files (or, sharing a network stack, use the other container's);
    return the OCI mounts that put them in place.  ``owner``: a remapped root's
    container root, who may edit them as Docker's may."""
    mounts = []
    names = ("hostname", "hosts", "resolv.conf")
    if shared_from is None:
        contents = {"hostname": hostname + "\n", "hosts": hosts(spec, hostname, network),
                    "resolv.conf": resolv_conf(spec, network)}
        for name in names:
            (bundle / name).write_text(contents[name])
            if owner is not None:
                os.chown(bundle / name, *owner)
    for name in names:
        source = (shared_from or bundle) / name
        options = ["rbind", "rprivate"] + (["ro"] if spec.read_only else [])
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(source),
                       "options": options})
    return mounts
