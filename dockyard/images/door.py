"""The door: every layer is checked when it enters the store, not when it first runs.

``import``, ``load``, ``pull``, ``build`` and ``commit`` pass each new layer through
the unpacker's own rules (:func:`dockyard.snapshots.unpack.check_layer`, a
streaming pass that writes nothing), so a hostile layer — ``..`` names, entries
below a symlink, hard links out of the layer, names past PATH_MAX, a diff_id that
does not match — is refused with the same message ``run`` would give, and a
refused image leaves nothing behind: the blobs it brought are deleted again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import IO

from dockyard.errors import DigestMismatch, DockyardError, InvalidArgument
from dockyard.images.content import LocalContentStore
from dockyard.images.index import ImageIndex
from dockyard.oci import mediatypes as mt
from dockyard.oci.image import Manifest, parse_manifest_or_index
from dockyard.snapshots.unpack import check_layer

MAX_LAYERS = 125  # overlayfs stacks at most this many lower layers under Docker, too


def check_layer_count(count: int) -> None:
    if count > MAX_LAYERS:
        raise InvalidArgument(f"the image has {count} layers; at most {MAX_LAYERS} are "
                              "supported (overlayfs's limit, as in Docker)")


def check_diff_ids(layer_count: int, diff_ids: list[str]) -> None:
    """As many diff_ids in the config as layers in the manifest, and not too many."""
    check_layer_count(layer_count)
    if layer_count != len(diff_ids):
        raise InvalidArgument(f"the image has {layer_count} layers but its config lists "
                              f"{len(diff_ids)} diff_ids")


def verify_layer(content: LocalContentStore, digest: str, media_type: str,
                 diff_id: str | None) -> str:
    """The unpacker's rules over a stored layer blob; returns its diff_id, which must
    equal ``diff_id`` when one is given."""
    with content.open(digest) as raw:
        return verify_stream(raw, digest, media_type, diff_id)


def verify_stream(raw: IO[bytes], digest: str, media_type: str, diff_id: str | None) -> str:
    """:func:`verify_layer` over the blob ``digest``'s bytes read from ``raw`` to its end
    (a pull's download, as it arrives)."""
    actual = check_layer(raw, mt.layer_compression(media_type))
    if diff_id is not None and actual != diff_id:
        raise DigestMismatch(f"layer {digest}: uncompressed content has digest {actual}, "
                             f"but the image config says {diff_id}")
    return actual


def admit(content: LocalContentStore, layers: Iterable[tuple[str, str]],
          diff_ids: list[str]) -> None:
    """Check an image's layers (digest, media type) against its diff_ids before it is
    recorded (callers discard what they brought when this raises)."""
    pairs = list(layers)
    check_diff_ids(len(pairs), diff_ids)
    for (digest, media_type), diff_id in zip(pairs, diff_ids, strict=True):
        verify_layer(content, digest, media_type, diff_id)


def live_blobs(content: LocalContentStore, index: ImageIndex) -> set[str]:
    """Every blob a recorded image uses (manifest, config, layers)."""
    live: set[str] = set()
    for record in index.images():
        live.update({record.manifest_digest, record.config_digest})
        try:
            parsed = parse_manifest_or_index(content.read(record.manifest_digest),
                                             record.media_type)
        except (DockyardError, OSError):
            continue
        if isinstance(parsed, Manifest):
            live.update(layer.digest for layer in parsed.layers)
    return live


@contextlib.contextmanager
def discarding(content: LocalContentStore, index: ImageIndex) -> Iterator[set[str]]:
    """Collects the digests an operation stores; if it fails, those no recorded image
    uses are deleted again, so a refused image leaves nothing in the store."""
    brought: set[str] = set()
    try:
        yield brought
    except BaseException:
        keep = live_blobs(content, index)
        for digest in brought - keep:
            content.delete(digest)
        raise
