"""Per-container /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker writes them.

They live in the container's directory and are bound over the image's files, so
the image is never modified and ``docker inspect``'s HostnamePath/HostsPath/
ResolvConfPath point at real files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.engine.spec import ContainerSpec

_LOCALHOST = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
              "ff02::2\tip6-allrouters\n")


def _host_resolv_conf() -> str:
    """The host's resolvers, minus loopback ones a container cannot reach."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return ""
    kept = [line for line in lines if not (line.startswith("nameserver") and (
        " 127." in line or " ::1" in line))]
    return "\n".join(kept) + "\n"


def write(bundle: Path, spec: ContainerSpec, hostname: str) -> list[dict[str, Any]]:
    """Write the files; return the OCI mounts that put them in place."""
    files = {
        "hostname": hostname + "\n",
        "hosts": (Path("/etc/hosts").read_text() if spec.network_mode == "host"
                  else _LOCALHOST + f"127.0.1.1\t{hostname}\n"),
        "resolv.conf": _host_resolv_conf(),
    }
    mounts = []
    for name, content in files.items():
        path = bundle / name
        path.write_text(content)
        options = ["rbind", "rprivate"] + (["ro"] if spec.read_only else [])
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(path),
                       "options": options})
    return mounts
