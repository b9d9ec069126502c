"""The image service: every image operation the front ends offer, over the stores.

Front ends (CLI now, the Docker API later) call these methods and render the
plain data they return; Docker's JSON shapes (``image inspect``) are built here
so every front end shows the same thing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from dockyard.errors import Conflict, ImageNotFound, InvalidArgument, NotFound
from dockyard.images.content import LocalContentStore
from dockyard.images.index import ImageIndex, ImageRecord
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.image import Manifest, parse_config, parse_manifest_or_index
from dockyard.snapshots.overlay import OverlaySnapshotter, chain_ids

if TYPE_CHECKING:
    from dockyard.engine.events import EventLog


class ImageSummary(NamedTuple):
    repository: str
    tag: str
    id: str
    digest: str
    created: str
    size: int
    manifest_digest: str


class ImageService:
    def __init__(self, content: LocalContentStore, index: ImageIndex,
                 snapshotter: OverlaySnapshotter,
                 in_use: Callable[[str], list[tuple[str, bool]]] | None = None,
                 extra_live: Callable[[], set[str]] | None = None,
                 container_images: Callable[[], set[str]] | None = None) -> None:
        self.content = content
        self.index = index
        self.snapshotter = snapshotter
        self._in_use = in_use or (lambda _digest: [])
        self._extra_live = extra_live or set
        # the image config digests of every container: their configs and unpacked
        # layers live on when the image goes (``container_config``)
        self._container_images = container_images or set
        self.events: EventLog | None = None  # set by the engine: tag, untag, delete
        self._configs: dict[str, bytes] = {}  # config bytes by digest (see ``config``)

    def _event(self, action: str, image_id: str, name: str) -> None:
        if self.events is not None:
            self.events.record("image", action, image_id, {"name": name})

    def pulled(self, manifest_digest: str, name: str) -> None:
        """Record a pull (the registry client pulls; this is its event)."""
        record = self.index.get(manifest_digest)
        self._event("pull", record.config_digest if record else manifest_digest,
                    _familiar(name))

    # --- reading -------------------------------------------------------------
    def get(self, name: str) -> ImageRecord:
        return self.index.resolve(name)

    def manifest(self, record: ImageRecord) -> Manifest:
        parsed = parse_manifest_or_index(self.content.read(record.manifest_digest),
                                         record.media_type)
        if not isinstance(parsed, Manifest):
            raise InvalidArgument(f"{record.manifest_digest} is an index, not an image")
        return parsed

    def config(self, record: ImageRecord) -> dict[str, Any]:
        """The image's config, parsed anew for each caller (who may change it)."""
        return self._config_by_digest(record.config_digest)

    def _config_by_digest(self, digest: str) -> dict[str, Any]:
        """Its bytes are kept by digest (content-addressed, so never stale): ``ps`` and
        the API's container list read one image's config for each of its containers."""
        data = self._configs.get(digest)
        if data is None:
            data = self.content.read(digest)
            if len(self._configs) >= 64:
                self._configs.clear()
            self._configs[digest] = data
        return parse_config(data)

    def container_config(self, config_digest: str) -> dict[str, Any]:
        """The ``config`` part (Cmd, Env, User, Healthcheck…) of the image a container
        was made from, by its config's digest (the record's ``image_id``): a container
        keeps it when its image is removed (the blob lives while a container names
        it, see ``collect_garbage``), as dockerd keeps a container's config.  {} when
        the blob is gone (a container whose image was removed before that rule); a
        damaged one is an error, never a container quietly run as root."""
        try:
            return dict(self._config_by_digest(config_digest).get("config") or {})
        except NotFound:
            return {}

    def summaries(self, *, all_images: bool = False, dangling: bool | None = None,
                  reference_pattern: str | None = None, digests: bool = False,
                  digest_columns: bool | None = None) -> list[ImageSummary]:
        """``docker images``' rows (the docker CLI's imageFormatTaggedAndDigest): a row
        per tag, its digest the registry digest recorded for that tag's repository
        (``<none>`` for a tag never pushed or pulled there); with ``digest_columns``
        (``--digests``, or a format naming ``.Digest``: ``digests`` by default) a row
        per such digest; then a row per repository known by digest only."""
        import fnmatch

        expand = digests if digest_columns is None else digest_columns
        rows: list[ImageSummary] = []

        def add(repo: str, tag: str, digest: str, record: ImageRecord) -> None:
            if reference_pattern and not fnmatch.fnmatch(repo, reference_pattern) and not \
                    fnmatch.fnmatch(f"{repo}:{tag}", reference_pattern):
                return
            rows.append(ImageSummary(repo, tag, record.config_digest, digest,
                                     record.created, record.size, record.manifest_digest))

        for record in self.index.images():
            names = self.index.names_of(record.manifest_digest)
            if dangling is True and names or dangling is False and not names:
                continue
            by_repo: dict[str, list[str]] = {}
            for text in self.index.repo_digests_of(record.manifest_digest):
                name, _, digest = text.partition("@")
                by_repo.setdefault(reference.parse(name).familiar, []).append(digest)
            if not names and not by_repo:
                add("<none>", "<none>", "<none>", record)
                continue
            for name in names:
                repo, tag = _split_name(name)
                for digest in (by_repo.get(repo) if expand else None) or ["<none>"]:
                    add(repo, tag, digest, record)
            tagged = {_split_name(name)[0] for name in names}
            for repo, repo_digests in by_repo.items():
                if repo not in tagged:
                    for digest in repo_digests if digests else [""]:
                        add(repo, "<none>", digest, record)
        return rows

    def inspect(self, name: str) -> dict[str, Any]:
        """``docker image inspect``'s shape."""
        record = self.get(name)
        config = self.config(record)
        tags = [_familiar(n) for n in self.index.names_of(record.manifest_digest)]
        digests = [_familiar_digest(d) for d in self.index.repo_digests_of(
            record.manifest_digest)]
        return {
            "Id": record.config_digest,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": "",
            "Comment": (config.get("history") or [{}])[-1].get("comment", ""),
            "Created": config.get("created", ""),
            "Container": "",
            "ContainerConfig": {},
            "DockerVersion": config.get("docker_version", ""),
            "Author": config.get("author", ""),
            "Config": config.get("config") or {},
            "Architecture": config.get("architecture", ""),
            "Variant": config.get("variant", ""),
            "Os": config.get("os", ""),
            "Size": record.size,
            "VirtualSize": record.size,
            "GraphDriver": {"Name": "overlay2", "Data": {}},
            "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
            "Metadata": {"LastTagTime": record.added},
            "Descriptor": {"mediaType": record.media_type, "digest": record.manifest_digest,
                           "size": self.content.size(record.manifest_digest)},
        }

    def history(self, name: str) -> list[dict[str, Any]]:
        record = self.get(name)
        config = self.config(record)
        manifest = self.manifest(record)
        layers = list(manifest.layers)
        rows: list[dict[str, Any]] = []
        for entry in reversed(config.get("history") or []):
            empty = bool(entry.get("empty_layer"))
            size = 0 if empty or not layers else layers.pop().size
            rows.append({"Id": record.config_digest if not rows else "<missing>",
                         "Created": entry.get("created", ""),
                         "CreatedBy": entry.get("created_by", ""),
                         "Size": size, "Comment": entry.get("comment", "")})
        return rows

    # --- writing -------------------------------------------------------------
    def import_rootfs(self, stream: IO[bytes], ref: str | None, message: str = "",
                      changes: dict[str, Any] | None = None) -> str:
        names = [str(reference.parse(ref))] if ref else []
        from dockyard.images import archive  # tarfile & co: only these commands need it

        digest = archive.import_rootfs(self.content, self.index, stream, names,
                                       message=message, changes=changes)
        record = self.index.get(digest)
        assert record is not None
        return record.config_digest

    def tag(self, source: str, target: str) -> None:
        record = self.get(source)
        self.index.tag(str(reference.parse(target)), record.manifest_digest)
        self._event("tag", record.config_digest, _familiar(str(reference.parse(target))))

    def remove(self, name: str, *, force: bool = False) -> list[str]:
        """``rmi``, as dockerd decides it.  A name: that name is untagged (``-f`` or not;
        without it, refused when it is the image's last and a container uses it); the
        image goes with its last name, but stays, nameless, while a container runs
        from it.  An ID: every name and the image; refused while a container runs from
        it, and without ``-f`` when a stopped one does or it is in several
        repositories.  A container keeps its image's config either way
        (``container_config``)."""
        record = self.get(name)
        names = self.index.names_of(record.manifest_digest)
        target = _matching_name(name, names)
        users = self._in_use(record.manifest_digest)
        running = [user for user, runs in users if runs]
        short = record.config_digest.split(":")[1][:12]
        events: list[str] = []
        if target:
            if users and not force and len(names) == 1:
                raise Conflict(f"conflict: unable to remove repository reference \"{name}\" "
                               f"(must force) - container {users[0][0][:12]} is using its "
                               f"referenced image {short}")
            self.index.untag(target)
            self._event("untag", record.config_digest, _familiar(target))
            events.append(f"Untagged: {_familiar(target)}")
            if len(names) > 1 or running:  # (a running container's image stays, dangling)
                return events
        else:
            if running:
                raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image "
                               f"is being used by running container {running[0][:12]}")
            if not force and len(names) > 1:  # (two tags of one repository too)
                raise Conflict(f"conflict: unable to delete {short} (must be forced) - image "
                               "is referenced in multiple repositories")
            if not force and users:
                raise Conflict(f"conflict: unable to delete {short} (must be forced) - image "
                               f"is being used by stopped container {users[0][0][:12]}")
            for each in names:
                self.index.untag(each)
                self._event("untag", record.config_digest, _familiar(each))
                events.append(f"Untagged: {_familiar(each)}")
        self.index.remove(record.manifest_digest)
        self._event("delete", record.config_digest, _familiar(names[0]) if names else "")
        events.append(f"Deleted: {record.config_digest}")
        self.collect_garbage()
        return events

    def save(self, names: list[str], out: IO[bytes], fmt: str = "docker") -> None:
        if not names:
            raise InvalidArgument("save: name at least one image")
        images = []
        for name in names:
            record = self.get(name)
            wanted = _matching_name(name, self.index.names_of(record.manifest_digest))
            images.append((record, [wanted] if wanted else []))
        from dockyard.images import archive

        if fmt == "docker":
            archive.save_docker(self.content, images, out)
        elif fmt in ("oci", "oci-archive"):
            archive.save_oci(self.content, images, out)
        else:
            raise InvalidArgument(f"save: unknown format {fmt!r} (want docker or oci-archive)")

    def load(self, stream: IO[bytes]) -> list[str]:
        from dockyard.images import archive

        return archive.load(self.content, self.index, stream)

    def prune(self, *, all_images: bool = False) -> tuple[list[str], int]:
        """Remove dangling images (or every unused one with ``all_images``)."""
        deleted: list[str] = []
        for record in self.index.images():
            if self._in_use(record.manifest_digest):
                continue
            if all_images or not self.index.names_of(record.manifest_digest):
                for name in self.index.names_of(record.manifest_digest):
                    self.index.untag(name)
                self.index.remove(record.manifest_digest)
                deleted.append(record.config_digest)
        return deleted, self.collect_garbage()

    def collect_garbage(self) -> int:
        """Delete blobs and unpacked layers no image (and no container: its image's
        config and every layer under its snapshot) references; returns bytes freed."""
        live: set[str] = set(self._extra_live())
        live_chains: set[str] = set()
        for digest in self._container_images():
            live.add(digest)
            with contextlib.suppress(NotFound):  # (a config gone before this rule)
                live_chains.update(chain_ids(self._config_by_digest(digest)["rootfs"]
                                             ["diff_ids"]))
        for record in self.index.images():
            live.update({record.manifest_digest, record.config_digest})
            manifest = self.manifest(record)
            live.update(layer.digest for layer in manifest.layers)
            live_chains.update(chain_ids(self.config(record)["rootfs"]["diff_ids"]))
        freed = 0
        for digest, size in list(self.content.walk()):
            if digest not in live:
                self.content.delete(digest)
                freed += size
        for layer in self.snapshotter.layers():
            if layer.chain_id not in live_chains and not self._layer_busy(layer.chain_id):
                self.snapshotter.remove_layer(layer.chain_id)
                freed += layer.size
        return freed

    def _layer_busy(self, chain_id: str) -> bool:
        rows = self.snapshotter.db.query("SELECT 1 FROM active WHERE parent=?", (chain_id,))
        return bool(rows)

    # --- for containers -------------------------------------------------------
    def unpack(self, record: ImageRecord) -> str | None:
        """Make sure every layer of the image is extracted; returns the top chain ID."""
        manifest = self.manifest(record)
        diff_ids = self.config(record)["rootfs"]["diff_ids"]
        if len(diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"image {record.config_digest}: {len(manifest.layers)} layers "
                                  f"but {len(diff_ids)} diff_ids")
        return self.unpack_layers([(d.digest, d.media_type) for d in manifest.layers], diff_ids)

    def unpack_layers(self, blobs: list[tuple[str, str]], diff_ids: list[str]) -> str | None:
        """Extract layer blobs (digest, media type) as snapshots, bottom first; returns
        the top chain ID (None for no layers).  Already extracted layers are kept."""
        parent = None
        for (digest, media_type), diff_id, chain_id in zip(blobs, diff_ids, chain_ids(diff_ids),
                                                           strict=True):
            if self.snapshotter.has_layer(chain_id):
                parent = chain_id
                continue
            compression = mt.layer_compression(media_type)

            @contextlib.contextmanager
            def opener(digest: str = digest, kind: str = compression) -> Iterator[IO[bytes]]:
                from dockyard.snapshots.layer_stream import decompressed

                with self.content.open(digest) as raw:
                    yield decompressed(raw, kind)

            self.snapshotter.unpack(chain_id, parent, diff_id, opener)
            parent = chain_id
        return parent

    def disk_usage(self) -> dict[str, Any]:
        images = self.index.images()
        blob_total = sum(size for _d, size in self.content.walk())
        unpacked = sum(layer.size for layer in self.snapshotter.layers())
        return {"Images": len(images), "BlobBytes": blob_total, "LayerBytes": unpacked,
                "Reclaimable": sum(r.size for r in images
                                   if not self.index.names_of(r.manifest_digest))}

    def check(self, *, repair: bool = False) -> list[str]:
        """Problems ``system check`` reports: corrupt or missing blobs, broken records,
        and what interrupted imports, pulls and unpacks left (``repair`` removes those:
        only files and dirs no live process holds)."""
        problems = [f"blob {d}: content does not match its digest"
                    for d in self.content.verify_all()]
        for record in self.index.images():
            for digest in (record.manifest_digest, record.config_digest):
                if not self.content.exists(digest):
                    problems.append(f"image {record.config_digest}: blob {digest} is missing")
            if self.content.exists(record.manifest_digest):
                for layer in self.manifest(record).layers:
                    if not self.content.exists(layer.digest):
                        problems.append(f"image {record.config_digest}: layer {layer.digest} "
                                        "is missing")
        leftovers = self.content.abandoned_ingests()
        if leftovers:
            problems.append(f"{len(leftovers)} interrupted write(s) in {self.content.ingest_dir}")
        unpacks = self.snapshotter.abandoned_work()
        if unpacks:
            problems.append(f"{len(unpacks)} interrupted layer unpack(s) in "
                            f"{unpacks[0].parent}")
        if repair:
            from dockyard.fs.tree import remove_tree

            for path in leftovers:
                path.unlink(missing_ok=True)
            for work in unpacks:
                remove_tree(work, ignore_errors=True)
        return problems


def _split_name(name: str) -> tuple[str, str]:
    if name == "<none>:<none>":
        return "<none>", "<none>"
    ref = reference.parse(name)
    return ref.familiar, ref.tag or "<none>"


def _familiar(name: str) -> str:
    ref = reference.parse(name)
    return f"{ref.familiar}:{ref.tag}" if ref.tag else ref.familiar


def _familiar_digest(text: str) -> str:
    name, digest = text.split("@", 1)
    ref = reference.parse(name)
    return f"{ref.familiar}@{digest}"


def _matching_name(text: str, names: list[str]) -> str | None:
    try:
        wanted = str(reference.parse(text))
    except InvalidArgument:
        return None
    return wanted if wanted in names else None


def dumps(value: Any) -> str:
    return json.dumps(value, indent=4)


__all__ = ["ImageNotFound", "ImageService", "ImageSummary"]
