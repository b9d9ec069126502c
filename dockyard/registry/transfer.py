"""Pull and push: whole images between a registry and the local stores.

Pull resolves the reference (an index picks the host's platform), then fetches
config and layers in parallel; each blob streams into a resumable, verified
ingest, so an interrupted pull continues where it stopped and nothing
half-written is ever visible.  The image is recorded only after every blob is in.
Push uploads what the registry lacks (cross-repository mount first when the
blob is known to be in another repository there), then the manifest.  Layers go
up gzip-compressed, as Docker's do: an uncompressed layer is compressed once,
deterministically (level 6, no name, mtime 0), into a copy in the content store;
the pushed manifest, stored beside it and recorded as the repository's digest,
names that copy, so a second push, or a push to another repository, reuses it and
gives the same manifest digest.  The config (and its diff_ids) is unchanged: the
image ID is the same wherever the image is pulled.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from dockyard import trace
from dockyard.errors import DigestMismatch, DockyardError, InvalidArgument
from dockyard.images import door
from dockyard.images.content import LocalContentStore
from dockyard.images.index import ImageIndex, ImageRecord
from dockyard.images.platform import pick
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.image import (
    Descriptor,
    Index,
    Manifest,
    load_json,
    parse_config,
    parse_manifest_or_index,
)
from dockyard.registry.auth import Credentials
from dockyard.registry.client import RegistryClient

if TYPE_CHECKING:
    from dockyard.images.referrers import Referrer

# a signature policy's check (registry.trust.policy.Gate.admit): raises to refuse
Admit = Callable[[RegistryClient, reference.Reference, list[str]], None]

# blobs uploaded at once, as skopeo (containers/image copies 6)
PARALLEL = 6
# layers downloaded at once: Docker's default (dockerd's max-concurrent-downloads), and
# what suits a layer checked as it arrives.  Each download thread also inflates,
# hashes twice and writes its layer; with six, five 40 MB layers contended for two
# cores and the GIL (~33,000 futex calls, +100 ms of CPU): bench/pull_push.py took
# 555 ms where three took 505 (skopeo 491), interleaved, 8 rounds.  Real layers, whose
# biggest one is the pull's critical path, took the same time with 2, 3, 4 or 6.
DOWNLOADS = 3
GZIP_LEVEL = 6  # Docker's: Go's gzip.DefaultCompression
_CHUNK = 1 << 20


class Progress(Protocol):
    def start(self, key: str, total: int, what: str) -> None: ...
    def advance(self, key: str, amount: int) -> None: ...
    def done(self, key: str, status: str) -> None: ...


class NoProgress:
    def start(self, key: str, total: int, what: str) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def done(self, key: str, status: str) -> None:
        pass


class _Arriving:
    """A download's pieces as the file the door's check reads (``read`` only), each
    piece handed to ``sink`` (the blob's file and digest) as the check takes it: the
    check runs in the downloading thread, on bytes still in the CPU's cache, with no
    second pass over the stored blob and none of it left for after the last piece.
    ``broken`` tells an error of the download or the store (raised through ``read``)
    from the check's own verdict on the layer."""

    def __init__(self, pieces: Iterator[bytes], sink: Callable[[bytes], None]) -> None:
        self._pieces = pieces
        self._sink = sink
        self._rest = b""
        self.broken = False

    def _next(self) -> bytes:
        try:
            for piece in self._pieces:
                if piece:
                    self._sink(piece)
                    return piece
            return b""
        except BaseException:
            self.broken = True
            raise

    def read(self, size: int = -1) -> bytes:
        piece = self._rest or self._next()
        if 0 <= size < len(piece):
            piece, self._rest = piece[:size], piece[size:]
        else:
            self._rest = b""
        return piece

    def drain(self) -> None:
        """The rest of the blob, unread, to the sink."""
        while self._next():
            pass


def _fetch_checked(client: RegistryClient, repository: str, digest: str,
                   sink: Callable[[bytes], None],
                   check: Callable[[IO[bytes]], object]) -> Exception | None:
    """Download ``digest`` whole through ``sink``, ``check`` reading it as it arrives;
    returns the check's refusal, if any: the caller raises it once the blob's own digest
    is verified, so a blob that does not match its digest is still told as such first
    (the download goes on after a refusal, as it did when the check came after it)."""
    with client.blob_pieces(repository, digest, 0) as pieces:
        assert pieces is not None  # (no Range asked)
        arriving = _Arriving(pieces, sink)
        refused: Exception | None = None
        try:
            check(cast(IO[bytes], arriving))
        except Exception as exc:
            if arriving.broken:
                raise
            refused = exc
        arriving.drain()
    return refused


def _fetch_blob(client: RegistryClient, content: LocalContentStore, repository: str,
                desc: Descriptor, progress: Progress,
                check: Callable[[IO[bytes]], object] | None = None) -> bool:
    """Download ``desc`` into the store, continuing a partial download if there is one;
    ``check`` (a layer's door check) reads the blob as it arrives when the download
    begins at its first byte, and its refusal is raised once the blob is stored (the
    caller discards what the pull brought).  Returns whether ``check`` saw the blob
    (not when it was here already, or partly here: then check the stored blob)."""
    key = desc.digest.split(":", 1)[1][:12]
    if content.exists(desc.digest):
        progress.done(key, "Already exists")
        return False
    progress.start(key, desc.size, "Downloading")
    writer = content.resume(desc.digest, desc.size)
    checked, refused = False, None
    with writer:
        progress.advance(key, writer.written)

        def sink(chunk: bytes) -> None:
            writer.write(chunk)
            progress.advance(key, len(chunk))

        if writer.written >= desc.size:
            pass  # (all here: committed, or refused as too long, below)
        elif writer.written == 0 and check is not None:
            refused = _fetch_checked(client, repository, desc.digest, sink, check)
            checked = True
        elif not client.fetch_blob(repository, desc.digest, writer.written, sink):
            writer.restart()  # no Range support: start over
            client.fetch_blob(repository, desc.digest, 0, sink)
        writer.commit()
    if refused is not None:
        raise refused
    progress.done(key, "Pull complete")
    return checked


def pull(content: LocalContentStore, index: ImageIndex, text: str, *,
         insecure: frozenset[str] = frozenset(), progress: Progress | None = None,
         admit: Admit | None = None, credentials: Credentials | None = None) -> str:
    """Pull ``text``; returns the manifest digest of the image now stored.

    ``admit`` (a signature policy) sees the manifest digests (the index's and the
    chosen image's) before anything is stored, and raises to refuse the image.
    ``credentials`` (the API's X-Registry-Auth) replace config.json's."""
    progress = progress or NoProgress()
    ref = reference.parse(text)
    client = RegistryClient(ref.registry, insecure=insecure, credentials=credentials)
    trace.mark("pull: client made")
    try:
        top = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
        trace.mark("pull: manifest read")
        top_digest = _verify_manifest(top.data, ref.digest or top.digest)
        parsed = parse_manifest_or_index(top.data, top.media_type)
        manifest_digest, manifest, media_type = top_digest, parsed, top.media_type
        inner = None
        if isinstance(parsed, Index):
            chosen = pick(parsed)
            inner = client.get_manifest(ref.repository, chosen.digest)
            _verify_manifest(inner.data, chosen.digest)
            manifest = parse_manifest_or_index(inner.data, chosen.media_type)
            manifest_digest, media_type = chosen.digest, inner.media_type or chosen.media_type
        if admit is not None:
            admit(client, ref, list(dict.fromkeys([top_digest, manifest_digest])))
        content.write(top.data, top_digest)
        if inner is not None:
            content.write(inner.data, manifest_digest)
        if not isinstance(manifest, Manifest):
            raise InvalidArgument(f"{text}: nested indexes are not supported")
        names = [str(ref)] if ref.tag else []
        here = _image_with_config(index, content, manifest.config.digest)
        if here is not None:  # the same image (config) is here, pushed from or pulled before
            for layer in manifest.layers:
                progress.done(layer.digest.split(":", 1)[1][:12], "Already exists")
            index.add(here.manifest_digest, here.config_digest, here.media_type, here.size,
                      here.created, names, (ref.name, top_digest))
            return here.manifest_digest
        blobs = [manifest.config, *manifest.layers]
        door.check_layer_count(len(manifest.layers))
        with door.discarding(content, index) as brought:
            brought.update({top_digest, manifest_digest})
            brought.update(d.digest for d in blobs if not content.exists(d.digest))
            # the config first: it names the diff_id each layer is checked against
            _fetch_blob(client, content, ref.repository, manifest.config, progress)
            config = parse_config(content.read(manifest.config.digest))
            trace.mark("pull: config read")
            diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
            door.check_diff_ids(len(manifest.layers), diff_ids)

            def fetch_and_check(layer: Descriptor, diff_id: str) -> None:
                """The door as each layer arrives (every layer passes the unpacker's
                rules before the image exists), overlapping the other downloads and,
                read as it comes in, its own: checking them all after the last one
                made pulls ~1.3x skopeo's time."""
                def check(raw: IO[bytes]) -> str:
                    return door.verify_stream(raw, layer.digest, layer.media_type, diff_id)

                short = layer.digest[7:19]
                if _fetch_blob(client, content, ref.repository, layer, progress, check):
                    trace.mark(f"pull: layer {short} in, checked as it came")
                    return
                trace.mark(f"pull: layer {short} in")
                door.verify_layer(content, layer.digest, layer.media_type, diff_id)
                trace.mark(f"pull: layer {short} checked")

            with concurrent.futures.ThreadPoolExecutor(DOWNLOADS) as pool:
                jobs = [pool.submit(fetch_and_check, layer, diff_id)
                        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True)]
                for job in jobs:
                    job.result()
        index.add(manifest_digest, manifest.config.digest, media_type or manifest.media_type,
                  sum(d.size for d in blobs), str(config.get("created", "")), names,
                  (ref.name, top_digest))
        trace.mark("pull: image recorded")
        return manifest_digest
    finally:
        client.close()


def _image_with_config(index: ImageIndex, content: LocalContentStore,
                       config_digest: str) -> ImageRecord | None:
    """The recorded image whose ID is ``config_digest``, its blobs all here: an image is
    its config (Docker's image ID), whatever manifest (compressed or not) it came by."""
    for record in index.images():
        if record.config_digest != config_digest:
            continue
        try:
            parsed = parse_manifest_or_index(content.read(record.manifest_digest),
                                             record.media_type)
        except (DockyardError, OSError):
            continue
        if isinstance(parsed, Manifest) and all(
                content.exists(d.digest) for d in (parsed.config, *parsed.layers)):
            return record
    return None


def _verify_manifest(data: bytes, expected: str) -> str:
    from dockyard.oci.digest import Digest, verify

    if expected:
        verify(data, Digest.parse(expected), "manifest")
        return expected
    return str(Digest.of(data))


def push(content: LocalContentStore, index: ImageIndex, record: ImageRecord, text: str, *,
         insecure: frozenset[str] = frozenset(), progress: Progress | None = None,
         chunk_size: int | None = None,
         mount_source: Callable[[str], str | None] | None = None,
         referrers: list[Referrer] | None = None,
         credentials: Credentials | None = None) -> str:
    """Push ``record`` as ``text``; returns the pushed manifest's digest (its bytes are
    in the content store).  ``referrers`` (an attached SBOM) follow the image, their
    subject the manifest as pushed (``registry/referrers.py``)."""
    progress = progress or NoProgress()
    ref = reference.parse(text)
    parsed = parse_manifest_or_index(content.read(record.manifest_digest), record.media_type)
    if not isinstance(parsed, Manifest):
        raise InvalidArgument(f"{text}: only single-platform images can be pushed")
    diff_ids = [str(d) for d in parse_config(content.read(parsed.config.digest))
                ["rootfs"]["diff_ids"]]
    if len(diff_ids) != len(parsed.layers):
        raise InvalidArgument(f"{text}: {len(parsed.layers)} layers but {len(diff_ids)} "
                              "diff_ids in the config")
    copies = gzip_copies(content, index)
    client = RegistryClient(ref.registry, insecure=insecure, credentials=credentials)
    try:
        def upload(desc: Descriptor, key: str | None) -> Descriptor:
            """One blob (a layer compressed first if it is not); a layer's progress is
            shown under its diff ID, as Docker's: the config goes up silently."""
            if key is not None:
                progress.start(key, desc.size, "Pushing")
                desc = _compressed(content, desc, parsed.media_type, copies)
            source = mount_source(desc.digest) if mount_source else None
            status = client.upload_blob(
                ref.repository, desc.digest, desc.size,
                lambda: content.open(desc.digest), mount_from=source, chunk_size=chunk_size)
            if key is not None:
                progress.advance(key, desc.size)
                progress.done(key, {"exists": "Layer already exists",
                                    "mounted": f"Mounted from {source}",
                                    "pushed": "Pushed"}[status])
            return desc

        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            jobs = [pool.submit(upload, d, diff_id.split(":", 1)[1][:12])
                    for d, diff_id in zip(parsed.layers, diff_ids, strict=True)]
            config_job = pool.submit(upload, parsed.config, None)
            pushed = [job.result() for job in jobs]
            config_job.result()
        data = _manifest_with_layers(content.read(record.manifest_digest), parsed, pushed)
        digest = content.write(data)
        remote = client.put_manifest(ref.repository, ref.digest or ref.tag or "latest", data,
                                     record.media_type)
        if remote and remote != digest:
            raise DigestMismatch(f"{text}: the registry stored the manifest as {remote}, "
                                 f"not {digest}")
        index.add(record.manifest_digest, record.config_digest, record.media_type, record.size,
                  record.created, [], (ref.name, digest))
        if referrers:
            from dockyard.registry.referrers import push_referrers

            push_referrers(client, content, ref.repository,
                           Descriptor(record.media_type, digest, len(data)), referrers)
        return digest
    finally:
        client.close()


def _compressed(content: LocalContentStore, desc: Descriptor, manifest_type: str,
                copies: dict[str, Descriptor]) -> Descriptor:
    """``desc`` as it is pushed: a compressed layer as it is, an uncompressed one as its
    gzip copy (made now if there is none yet), typed for the manifest's family."""
    if mt.layer_compression(desc.media_type) or desc.media_type != mt.OCI_LAYER:
        return desc
    known = copies.get(desc.digest)
    if known is not None and content.exists(known.digest):
        digest, size = known.digest, known.size
    else:
        digest, size = gzip_into_store(content, desc.digest)
    media_type = mt.DOCKER_LAYER_GZIP if manifest_type == mt.DOCKER_MANIFEST else \
        mt.OCI_LAYER_GZIP
    return desc._replace(media_type=media_type, digest=digest, size=size)


def gzip_into_store(content: LocalContentStore, digest: str) -> tuple[str, int]:
    """Compress the stored uncompressed blob ``digest`` into a new blob, 1 MiB at a time,
    hashing both sides as they stream (the source must still match its name); the gzip
    stream is deterministic: level 6, no file name, mtime 0 (zlib's own header)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    source_hash = hashlib.sha256()
    with content.open(digest) as source, content.ingest() as writer:
        while chunk := source.read(_CHUNK):
            source_hash.update(chunk)
            writer.write(compressor.compress(chunk))
        writer.write(compressor.flush())
        if f"sha256:{source_hash.hexdigest()}" != digest:
            raise DigestMismatch(f"blob {digest}: content does not match its digest")
        compressed = writer.commit()
    return compressed, content.size(compressed)


def gzip_copies(content: LocalContentStore, index: ImageIndex) -> dict[str, Descriptor]:
    """Gzip blobs in the store by the digest of what they decompress to: the layers of
    pulled images and of the manifests pushed from here (each image's manifest and those
    its repo digests name, where stored), matched to layers by the config's diff_ids."""
    copies: dict[str, Descriptor] = {}
    for record in index.images():
        manifests = [record.manifest_digest] + [
            text.split("@", 1)[1] for text in index.repo_digests_of(record.manifest_digest)]
        try:
            diff_ids = [str(d) for d in parse_config(content.read(record.config_digest))
                        ["rootfs"]["diff_ids"]]
        except (DockyardError, OSError):
            continue
        for digest in manifests:
            try:
                manifest = parse_manifest_or_index(content.read(digest))
            except (DockyardError, OSError):
                continue
            if not isinstance(manifest, Manifest) or len(manifest.layers) != len(diff_ids) or \
                    manifest.config.digest != record.config_digest:
                continue
            for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
                if mt.layer_compression(layer.media_type) == "gzip" and \
                        content.exists(layer.digest):
                    copies.setdefault(diff_id, layer)
    return copies


def _manifest_with_layers(data: bytes, parsed: Manifest, pushed: list[Descriptor]) -> bytes:
    """The manifest as pushed: the same bytes when no layer changed, else the same
    document with the layers' mediaType, digest and size replaced."""
    if list(parsed.layers) == pushed:
        return data
    doc: dict[str, Any] = load_json(data, "manifest")
    for entry, desc in zip(doc["layers"], pushed, strict=True):
        entry.update({"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size})
    return json.dumps(doc, separators=(",", ":")).encode()


def describe(text: str, *, insecure: frozenset[str] = frozenset(),
             credentials: Credentials | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the registry has at ``text`` (the Engine API's ``/distribution``): the top
    descriptor (manifest or index) and the platforms it offers; a single manifest's
    platform comes from its config."""
    ref = reference.parse(text)
    client = RegistryClient(ref.registry, insecure=insecure, credentials=credentials)
    try:
        top = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
        digest = _verify_manifest(top.data, ref.digest or top.digest)
        parsed = parse_manifest_or_index(top.data, top.media_type)
        descriptor = {"mediaType": top.media_type or parsed.media_type, "digest": digest,
                      "size": len(top.data)}
        if isinstance(parsed, Index):
            return descriptor, [d.platform for d in parsed.manifests if d.platform]
        if parsed.config.size > 8 << 20:
            raise InvalidArgument(f"{text}: image config of {parsed.config.size} bytes")
        chunks: list[bytes] = []
        client.fetch_blob(ref.repository, parsed.config.digest, 0, chunks.append)
        data = b"".join(chunks)
        if "sha256:" + hashlib.sha256(data).hexdigest() != parsed.config.digest:
            raise DigestMismatch(f"{text}: the registry's config does not match "
                                 f"{parsed.config.digest}")
        config = parse_config(data)
        platform = {key: config[key] for key in ("architecture", "os", "variant")
                    if config.get(key)}
        return descriptor, [platform]
    finally:
        client.close()
