"""Choosing the host's manifest from an index (manifest list)."""

from __future__ import annotations

from dockyard.errors import NotFound
from dockyard.images.imagefile import host_platform
from dockyard.oci.image import Descriptor, Index


def pick(index: Index) -> Descriptor:
    host = host_platform()
    for entry in index.manifests:
        platform = entry.platform or {}
        if platform.get("os") == host["os"] and platform.get("architecture") == \
                host["architecture"]:
            return entry
    if len(index.manifests) == 1 and not index.manifests[0].platform:
        return index.manifests[0]
    raise NotFound(f"no manifest for {host['os']}/{host['architecture']} in the index")
