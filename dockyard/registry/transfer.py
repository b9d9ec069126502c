"""Pull and push: whole images between a registry and the local stores.

Pull resolves the reference (an index picks the host's platform), then fetches
config and layers in parallel; each blob streams into a resumable, verified
ingest, so an interrupted pull continues where it stopped and nothing
half-written is ever visible.  The image is recorded only after every blob is in.
Push uploads what the registry lacks (cross-repository mount first when the
blob is known to be in another repository there), then the manifest.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Protocol

from dockyard.errors import InvalidArgument
from dockyard.images import door
from dockyard.images.content import LocalContentStore, ResumableWriter
from dockyard.images.index import ImageIndex, ImageRecord
from dockyard.images.platform import pick
from dockyard.oci import reference
from dockyard.oci.image import Descriptor, Index, Manifest, parse_config, parse_manifest_or_index
from dockyard.registry.client import RegistryClient

PARALLEL = 4


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


def _fetch_blob(client: RegistryClient, content: LocalContentStore, repository: str,
                desc: Descriptor, progress: Progress) -> None:
    key = desc.digest.split(":", 1)[1][:12]
    if content.exists(desc.digest):
        progress.done(key, "Already exists")
        return
    progress.start(key, desc.size, "Downloading")
    for _attempt in range(3):
        writer = content.resume(desc.digest, desc.size)
        with writer:
            progress.advance(key, writer.written)

            def sink(chunk: bytes, writer: ResumableWriter = writer) -> None:
                writer.write(chunk)
                progress.advance(key, len(chunk))

            if writer.written >= desc.size:
                writer.commit()
                break
            if not client.fetch_blob(repository, desc.digest, writer.written, sink):
                writer.restart()  # no Range support: start over
                client.fetch_blob(repository, desc.digest, 0, sink)
            writer.commit()
            break
    progress.done(key, "Pull complete")


def pull(content: LocalContentStore, index: ImageIndex, text: str, *,
         insecure: frozenset[str] = frozenset(), progress: Progress | None = None) -> str:
    """Pull ``text``; returns the manifest digest of the image now stored."""
    progress = progress or NoProgress()
    ref = reference.parse(text)
    client = RegistryClient(ref.registry, insecure=insecure)
    try:
        top = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
        top_digest = _verify_manifest(top.data, ref.digest or top.digest)
        parsed = parse_manifest_or_index(top.data, top.media_type)
        content.write(top.data, top_digest)
        manifest_digest, manifest, media_type = top_digest, parsed, top.media_type
        if isinstance(parsed, Index):
            chosen = pick(parsed)
            inner = client.get_manifest(ref.repository, chosen.digest)
            _verify_manifest(inner.data, chosen.digest)
            content.write(inner.data, chosen.digest)
            manifest = parse_manifest_or_index(inner.data, chosen.media_type)
            manifest_digest, media_type = chosen.digest, inner.media_type or chosen.media_type
        if not isinstance(manifest, Manifest):
            raise InvalidArgument(f"{text}: nested indexes are not supported")
        blobs = [manifest.config, *manifest.layers]
        door.check_layer_count(len(manifest.layers))
        with door.discarding(content, index) as brought:
            brought.update({top_digest, manifest_digest})
            brought.update(d.digest for d in blobs if not content.exists(d.digest))
            with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
                jobs = [pool.submit(_fetch_blob, client, content, ref.repository, d, progress)
                        for d in blobs]
                for job in jobs:
                    job.result()
            config = parse_config(content.read(manifest.config.digest))
            # the door: every layer passes the unpacker's rules before the image exists
            door.admit(content, [(d.digest, d.media_type) for d in manifest.layers],
                       [str(d) for d in config["rootfs"]["diff_ids"]])
        names = [str(ref)] if ref.tag else []
        index.add(manifest_digest, manifest.config.digest, media_type or manifest.media_type,
                  sum(d.size for d in blobs), str(config.get("created", "")), names,
                  (ref.name, top_digest))
        return manifest_digest
    finally:
        client.close()


def _verify_manifest(data: bytes, expected: str) -> str:
    from dockyard.oci.digest import Digest, verify

    if expected:
        verify(data, Digest.parse(expected), "manifest")
        return expected
    return str(Digest.of(data))


def push(content: LocalContentStore, index: ImageIndex, record: ImageRecord, text: str, *,
         insecure: frozenset[str] = frozenset(), progress: Progress | None = None,
         chunk_size: int | None = None,
         mount_source: Callable[[str], str | None] | None = None) -> str:
    """Push ``record`` as ``text``; returns the pushed manifest's digest."""
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
    client = RegistryClient(ref.registry, insecure=insecure)
    try:
        def upload(desc: Descriptor, key: str | None) -> None:
            """One blob; a layer's progress is shown under its diff ID (as Docker's:
            the config goes up silently)."""
            if key is not None:
                progress.start(key, desc.size, "Pushing")
            source = mount_source(desc.digest) if mount_source else None
            status = client.upload_blob(
                ref.repository, desc.digest, desc.size,
                lambda: content.open(desc.digest), mount_from=source, chunk_size=chunk_size)
            if key is not None:
                progress.advance(key, desc.size)
                progress.done(key, {"exists": "Layer already exists",
                                    "mounted": f"Mounted from {source}",
                                    "pushed": "Pushed"}[status])

        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            jobs = [pool.submit(upload, d, diff_id.split(":", 1)[1][:12])
                    for d, diff_id in zip(parsed.layers, diff_ids, strict=True)]
            jobs.append(pool.submit(upload, parsed.config, None))
            for job in jobs:
                job.result()
        data = content.read(record.manifest_digest)
        digest = client.put_manifest(ref.repository, ref.digest or ref.tag or "latest", data,
                                     record.media_type)
        index.add(record.manifest_digest, record.config_digest, record.media_type, record.size,
                  record.created, [], (ref.name, record.manifest_digest))
        return digest or record.manifest_digest
    finally:
        client.close()
