"""Images in and out of the host as files: rootfs tarballs (import), docker-archive
(``docker save``/``docker load``) and OCI image layout archives.

Every blob read from an archive goes through the content store's verified ingest;
a layer's uncompressed digest must equal the config's diff_id; an image is
recorded only once all its blobs are stored, so a bad archive leaves the index
untouched (stray blobs are garbage for ``image prune``/``system check``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from typing import IO, Any

from dockyard.errors import DataLoss, InvalidArgument
from dockyard.images import door
from dockyard.images.content import LocalContentStore
from dockyard.images.imagefile import Layer, base_config, now_iso, write_image
from dockyard.images.index import ImageIndex, ImageRecord
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.digest import Digest
from dockyard.oci.image import (
    Index,
    Manifest,
    descriptor,
    load_json,
    load_json_value,
    parse_config,
    parse_manifest_or_index,
)
from dockyard.snapshots.layer_stream import decompressed, told_as_bad
from dockyard.snapshots.unpack import HashingReader


def _sniff_compression(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return ""


def store_layer_stream(content: LocalContentStore, stream: IO[bytes],
                       brought: set[str]) -> Layer:
    """Store a layer (compressed or not) as an uncompressed tar blob; diff_id = digest.
    Its digest joins ``brought`` (see :func:`dockyard.images.door.discarding`)."""
    peek = io.BufferedReader(stream, 1 << 16)  # type: ignore[type-var]
    compression = _sniff_compression(peek.peek(4)[:4])
    plain = decompressed(peek, compression)
    hashing = HashingReader(plain)
    with content.ingest() as writer, told_as_bad("layer"):
        while chunk := hashing.read(1 << 20):
            writer.write(chunk)
        digest = writer.commit()
    brought.add(digest)
    return Layer(digest, mt.OCI_LAYER, content.size(digest), digest)


def import_rootfs(content: LocalContentStore, index: ImageIndex, stream: IO[bytes],
                  names: list[str], *, message: str = "",
                  changes: dict[str, Any] | None = None) -> str:
    """``dockyard import``: a rootfs tarball becomes a one-layer image, checked at the
    door by the unpacker's rules (a refused one leaves nothing stored)."""
    with door.discarding(content, index) as brought:
        layer = store_layer_stream(content, stream, brought)
        door.admit(content, [(layer.digest, layer.media_type)], [layer.diff_id])
    created = now_iso()
    config = base_config([layer.diff_id], created=created,
                         comment=message or "dockyard import", container_config=changes or {})
    return write_image(content, index, [layer], config, names)


def _spool(stream: IO[bytes]) -> IO[bytes]:
    """Archives need random access; a pipe is copied to a temp file first."""
    try:
        stream.seek(0, os.SEEK_CUR)
        return stream
    except (OSError, ValueError, io.UnsupportedOperation):
        spooled = tempfile.TemporaryFile()  # noqa: SIM115 - returned; the caller closes it
        shutil.copyfileobj(stream, spooled, 1 << 20)
        spooled.seek(0)
        return spooled


def load(content: LocalContentStore, index: ImageIndex, stream: IO[bytes]) -> list[str]:
    """``dockyard load``: docker-archive or OCI archive; returns the names loaded."""
    try:
        with tarfile.open(fileobj=_spool(stream), mode="r:*") as archive:
            members = {m.name.removeprefix("./"): m for m in archive.getmembers()}
            if "index.json" in members and "oci-layout" in members:
                return _load_oci(content, index, archive, members)
            if "manifest.json" in members:
                return _load_docker(content, index, archive, members)
    except tarfile.TarError as exc:
        raise InvalidArgument(f"load: not a valid tar archive: {exc}") from exc
    raise InvalidArgument("load: neither a docker-archive (manifest.json) nor an OCI archive "
                          "(index.json + oci-layout)")


def _member(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> IO[bytes]:
    member = members.get(name.removeprefix("./"))
    handle = archive.extractfile(member) if member is not None else None
    if handle is None:
        raise InvalidArgument(f"load: the archive has no file {name!r}")
    return handle


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"load: {where} must be a list of strings")
    return value


def _load_docker(content: LocalContentStore, index: ImageIndex, archive: tarfile.TarFile,
                 members: dict[str, tarfile.TarInfo]) -> list[str]:
    entries = load_json_value(_member(archive, members, "manifest.json").read(),
                              "load: manifest.json")
    if not isinstance(entries, list):
        raise InvalidArgument("load: manifest.json must be a list")
    loaded: list[str] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidArgument(f"load: manifest.json[{i}] needs Config and Layers")
        layer_names = _strings(entry.get("Layers"), f"manifest.json[{i}].Layers")
        names = [str(reference.parse(tag)) for tag in
                 _strings(entry.get("RepoTags") or [], f"manifest.json[{i}].RepoTags")]
        door.check_layer_count(len(layer_names))
        config_bytes = _member(archive, members, entry["Config"]).read()
        config = parse_config(config_bytes)
        with door.discarding(content, index) as brought:
            layers = [store_layer_stream(content, _member(archive, members, name), brought)
                      for name in layer_names]
            _check_diff_ids(config, layers)
            door.admit(content, [(layer.digest, layer.media_type) for layer in layers],
                       [layer.diff_id for layer in layers])
        write_image(content, index, layers, config, names, config_bytes=config_bytes)
        loaded += names or [f"sha256:{_config_id(config_bytes)}"]
    return loaded


def _config_id(config_bytes: bytes) -> str:
    import hashlib

    return hashlib.sha256(config_bytes).hexdigest()


def _check_diff_ids(config: dict[str, Any], layers: list[Layer]) -> None:
    want = list(config["rootfs"]["diff_ids"])
    got = [layer.diff_id for layer in layers]
    if want != got:
        raise DataLoss(f"load: layers do not match the config's diff_ids (want {want}, got {got})")


def _load_oci(content: LocalContentStore, index: ImageIndex, archive: tarfile.TarFile,
              members: dict[str, tarfile.TarInfo]) -> list[str]:
    top = load_json(_member(archive, members, "index.json").read(), "index.json")
    entries = top.get("manifests") or []
    if not isinstance(entries, list):
        raise InvalidArgument("load: index.json manifests must be a list")
    loaded: list[str] = []
    for i, raw in enumerate(entries):
        entry = descriptor(raw, f"index.json manifests[{i}]")
        with door.discarding(content, index) as brought:
            def blob(digest: str, size: int | None = None) -> str:
                algorithm, hexpart = Digest.parse(digest).algorithm, Digest.parse(digest).hex
                stored = content.write_stream(
                    _member(archive, members, f"blobs/{algorithm}/{hexpart}"), digest, size)
                brought.add(stored)
                return stored

            blob(entry.digest, entry.size)
            parsed = parse_manifest_or_index(content.read(entry.digest), entry.media_type)
            manifest_digest, manifest = _pick_manifest(content, parsed, entry.digest, blob)
            blob(manifest.config.digest, manifest.config.size)
            door.check_layer_count(len(manifest.layers))
            for layer in manifest.layers:
                blob(layer.digest, layer.size)
            config = content.read(manifest.config.digest)
            diff_ids = parse_config(config)["rootfs"]["diff_ids"]
            door.admit(content, [(x.digest, x.media_type) for x in manifest.layers],
                       [str(d) for d in diff_ids])
        name = entry.annotations.get("io.containerd.image.name") or \
            entry.annotations.get("org.opencontainers.image.ref.name")
        names = [str(reference.parse(str(name)))] if name else []
        index.add(manifest_digest, manifest.config.digest, manifest.media_type,
                  manifest.config.size + sum(x.size for x in manifest.layers),
                  str(load_json(config, "image config").get("created", "")), names)
        loaded += names or [manifest_digest]
    return loaded


def _pick_manifest(content: LocalContentStore, parsed: Manifest | Index, digest: str,
                   blob: Any) -> tuple[str, Manifest]:
    if isinstance(parsed, Manifest):
        return digest, parsed
    from dockyard.images.platform import pick

    chosen = pick(parsed)
    blob(chosen.digest, chosen.size)
    inner = parse_manifest_or_index(content.read(chosen.digest), chosen.media_type)
    if not isinstance(inner, Manifest):
        raise InvalidArgument("load: nested index inside an index is not supported")
    return chosen.digest, inner


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def _add_blob(archive: tarfile.TarFile, content: LocalContentStore, digest: str,
              name: str | None = None) -> None:
    path = content.path(digest)
    info = tarfile.TarInfo(name or f"blobs/{digest.replace(':', '/')}")
    info.size = path.stat().st_size
    info.mtime = 0
    with open(path, "rb") as handle:
        archive.addfile(info, handle)


def _manifest_of(content: LocalContentStore, record: ImageRecord) -> Manifest:
    parsed = parse_manifest_or_index(content.read(record.manifest_digest), record.media_type)
    assert isinstance(parsed, Manifest)
    return parsed


def save_oci(content: LocalContentStore, images: list[tuple[ImageRecord, list[str]]],
             out: IO[bytes]) -> None:
    """An OCI image layout as a tar (what ``skopeo``/``umoci`` read once unpacked)."""
    entries = []
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for record, names in images:
            manifest = _manifest_of(content, record)
            for digest in (record.manifest_digest, manifest.config.digest,
                           *[layer.digest for layer in manifest.layers]):
                if digest not in written:
                    _add_blob(archive, content, digest)
                    written.add(digest)
            for name in names or [""]:
                entry: dict[str, Any] = {"mediaType": record.media_type,
                                         "digest": record.manifest_digest,
                                         "size": content.size(record.manifest_digest)}
                if name:
                    ref = reference.parse(name)
                    entry["annotations"] = {"io.containerd.image.name": str(ref),
                                            "org.opencontainers.image.ref.name": ref.tag or ""}
                entries.append(entry)
        _add_bytes(archive, "index.json", json.dumps(
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode())


def save_docker(content: LocalContentStore, images: list[tuple[ImageRecord, list[str]]],
                out: IO[bytes]) -> None:
    """docker-archive, the classic layout ``docker load`` reads (uncompressed layers)."""
    manifest_json = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for record, names in images:
            manifest = _manifest_of(content, record)
            config_hex = manifest.config.digest.split(":", 1)[1]
            if config_hex not in written:
                _add_blob(archive, content, manifest.config.digest, f"{config_hex}.json")
                written.add(config_hex)
            layer_files = []
            for layer in manifest.layers:
                name = f"{layer.digest.split(':', 1)[1]}/layer.tar"
                if name not in written:
                    _add_uncompressed_layer(archive, content, layer.digest, layer.media_type,
                                            name)
                    written.add(name)
                layer_files.append(name)
            tags = [reference.parse(n) for n in names]
            manifest_json.append({"Config": f"{config_hex}.json",
                                  "RepoTags": [f"{t.familiar}:{t.tag}" for t in tags if t.tag],
                                  "Layers": layer_files})
            for tag in tags:
                if tag.tag and layer_files:
                    repositories.setdefault(tag.familiar, {})[tag.tag] = \
                        layer_files[-1].split("/")[0]
        _add_bytes(archive, "manifest.json", json.dumps(manifest_json).encode())
        _add_bytes(archive, "repositories", json.dumps(repositories).encode())


def _add_uncompressed_layer(archive: tarfile.TarFile, content: LocalContentStore, digest: str,
                            media_type: str, name: str) -> None:
    compression = mt.layer_compression(media_type)
    if not compression:
        _add_blob(archive, content, digest, name)
        return
    with tempfile.TemporaryFile() as plain, content.open(digest) as raw:
        shutil.copyfileobj(decompressed(raw, compression), plain, 1 << 20)
        info = tarfile.TarInfo(name)
        info.size = plain.tell()
        plain.seek(0)
        archive.addfile(info, plain)
