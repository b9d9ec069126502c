"""Writing a new image (config + manifest) into the content store and index."""

from __future__ import annotations

import datetime
import os
from typing import Any, NamedTuple

from dockyard.images.content import LocalContentStore
from dockyard.images.index import ImageIndex
from dockyard.oci import mediatypes as mt
from dockyard.oci.image import Descriptor, canonical_json, manifest_bytes

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> dict[str, str]:
    return {"os": "linux", "architecture": _ARCH.get(os.uname().machine, os.uname().machine)}


def now_iso() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch
              else datetime.datetime.now(datetime.UTC))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Layer(NamedTuple):
    """A layer blob already in the content store."""

    digest: str
    media_type: str
    size: int
    diff_id: str


def write_image(content: LocalContentStore, index: ImageIndex, layers: list[Layer],
                config: dict[str, Any], names: list[str],
                repo_digest: tuple[str, str] | None = None,
                config_bytes: bytes | None = None) -> str:
    """Store config and manifest, record the image under ``names``; returns the manifest digest.

    ``config_bytes``, when given, are stored as they are: an image's ID is the digest of
    its config bytes, so a loaded image keeps the ID it had where it came from.
    """
    from dockyard.images.door import check_layer_count

    check_layer_count(len(layers))
    config_bytes = config_bytes if config_bytes is not None else canonical_json(config)
    config_digest = content.write(config_bytes)
    config_desc = Descriptor(mt.OCI_CONFIG, config_digest, len(config_bytes))
    layer_descs = [Descriptor(layer.media_type, layer.digest, layer.size) for layer in layers]
    manifest = manifest_bytes(config_desc, layer_descs)
    manifest_digest = content.write(manifest)
    size = len(config_bytes) + sum(layer.size for layer in layers)
    index.add(manifest_digest, config_digest, mt.OCI_MANIFEST, size,
              str(config.get("created", "")), names, repo_digest)
    return manifest_digest


def base_config(diff_ids: list[str], *, created: str, comment: str,
                container_config: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = dict(host_platform())
    config.update({
        "created": created,
        "config": container_config or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": comment}],
    })
    return config
