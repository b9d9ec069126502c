"""The composition root: builds every store and service for one ``--root``.

Services and their modules are imported on first use, so ``dockyard --help`` and
commands that need one service do not pay for the others.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.store.layout import Layout

if TYPE_CHECKING:
    from dockyard.engine.builds import BuildService
    from dockyard.engine.container_ops import ContainerOps
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.events import EventLog
    from dockyard.engine.images import ImageService
    from dockyard.engine.networks import NetworkService
    from dockyard.engine.records import ContainerStore
    from dockyard.images.index import ImageIndex, ImageRecord
    from dockyard.registry.auth import Credentials
    from dockyard.registry.transfer import Admit, Progress
    from dockyard.store.config import EngineConfig
    from dockyard.store.db import Database
    from dockyard.store.idmap import IdMap
    from dockyard.volumes.store import VolumeStore


class Engine:
    """One per ``--root``; services are built on first use."""

    def __init__(self, layout: Layout, *,
                 insecure_registries: frozenset[str] = frozenset(),
                 policy: Path | None = None, registries_d: Path | None = None) -> None:
        self.layout = layout
        self.insecure_registries = insecure_registries
        self.policy_path = policy  # --policy: containers-policy.json (None: the default)
        self.registries_d = registries_d  # --registries.d (None: /etc/containers/...)

    @cached_property
    def admit(self) -> Admit | None:
        """The signature policy every pull obeys (``registry.trust.policy``); None when
        there is no policy file: every image is accepted."""
        from dockyard.registry.trust.policy import Gate

        gate = Gate.load(self.policy_path, self.registries_d)
        return gate.admit if gate is not None else None

    def pull_image(self, ref: str, *, insecure: frozenset[str] = frozenset(),
                   progress: Progress | None = None,
                   credentials: Credentials | None = None) -> str:
        """Pull ``ref`` under the policy (nothing stored if it refuses); records the
        pull's event; returns the manifest digest.  ``credentials``: a client's own
        (the API's X-Registry-Auth) instead of those in config.json."""
        from dockyard.oci import reference
        from dockyard.registry.transfer import pull

        images = self.images
        digest = pull(images.content, images.index, ref,
                      insecure=self.insecure_registries | insecure, progress=progress,
                      admit=self.admit, credentials=credentials)
        images.pulled(digest, str(reference.parse(ref)))
        return digest

    def push_image(self, ref: str, *, insecure: frozenset[str] = frozenset(),
                   progress: Progress | None = None, chunk_size: int | None = None,
                   credentials: Credentials | None = None) -> tuple[ImageRecord, str]:
        """Push the image ``ref`` names, as ``ref``: blobs mounted from another
        repository of the same registry it came from, its attached referrers (an
        SBOM) after it.  Returns the image and the pushed manifest's digest."""
        from dockyard.images.referrers import ReferrerIndex
        from dockyard.oci import reference
        from dockyard.registry.transfer import push

        images = self.images
        record = images.get(ref)
        parsed = reference.parse(ref)
        sources = [reference.parse(d.split("@", 1)[0]) for d in
                   images.index.repo_digests_of(record.manifest_digest)]
        mount_from = next((s.repository for s in sources if s.registry == parsed.registry
                           and s.repository != parsed.repository), None)
        digest = push(images.content, images.index, record, ref,
                      insecure=self.insecure_registries | insecure, progress=progress,
                      chunk_size=chunk_size,
                      mount_source=(lambda _digest: mount_from) if mount_from else None,
                      referrers=ReferrerIndex(self.db).of(record.manifest_digest),
                      credentials=credentials)
        return record, digest

    @cached_property
    def db(self) -> Database:
        from dockyard.store.db import Database

        self.layout.ensure()
        return Database(self.layout.root / "metadata.db")

    @cached_property
    def container_store(self) -> ContainerStore:
        from dockyard.engine.records import ContainerStore

        return ContainerStore(self.db)

    @cached_property
    def images(self) -> ImageService:
        from dockyard.engine.images import ImageService
        from dockyard.images.content import LocalContentStore
        from dockyard.snapshots.overlay import OverlaySnapshotter

        db = self.db  # first: the root is checked and made (and its reserve) here
        content = LocalContentStore(self.layout.root / "content", make=not db.read_only)
        snapshotter = OverlaySnapshotter(self.layout.root / "snapshots", db, self.idmap)
        service = ImageService(content, self.image_index, snapshotter,
                               # the container store is opened only when an image is removed
                               in_use=lambda digest: self.container_store.users_of_image(
                                   digest),
                               extra_live=self._extra_live_blobs,
                               container_images=lambda: self.container_store.image_ids())
        service.events = self.events
        return service

    @cached_property
    def image_index(self) -> ImageIndex:
        """Names → images alone (``images.index``): what resolving a reference needs,
        without the image service's content store and snapshotter."""
        from dockyard.images.index import ImageIndex

        return ImageIndex(self.db)

    def _extra_live_blobs(self) -> set[str]:
        """Layers only the build cache refers to, and the referrers (an SBOM attached by
        ``build --sbom``) of the images here, survive image garbage collection."""
        from dockyard.build.cache import BuildCache
        from dockyard.images.referrers import ReferrerIndex

        subjects = {record.manifest_digest for record in self.images.index.images()}
        return BuildCache(self.db).digests() | ReferrerIndex(self.db).live_blobs(
            self.images.content, subjects)

    @cached_property
    def events(self) -> EventLog:
        """The root's event log (``engine.events``): recorded by the services, read by
        ``dockyard events`` and the API's ``/events``."""
        from dockyard.engine.events import EventLog

        return EventLog(self.layout.root)

    @cached_property
    def builds(self) -> BuildService:
        from dockyard.engine.builds import BuildService

        return BuildService(self)

    @cached_property
    def volumes(self) -> VolumeStore:
        from dockyard.volumes.store import VolumeStore

        store = VolumeStore(self.layout.root / "volumes", self.db)
        store.on_event = lambda action, name: self.events.record("volume", action, name,
                                                                 {"driver": "local"})
        return store

    @cached_property
    def containers(self) -> ContainerService:
        from dockyard.engine.containers import ContainerService

        return ContainerService(self.layout, self.container_store, lambda: self.images,
                                lambda: self.volumes, networks=lambda: self.networks)

    @cached_property
    def config(self) -> EngineConfig:
        from dockyard.store.config import load

        return load(self.layout.root)

    @cached_property
    def idmap(self) -> IdMap | None:
        """The root's user namespace mapping (``userns_remap``), None when unset."""
        from dockyard.store.idmap import check_reachable, resolve

        idmap = resolve(self.config.userns_remap)
        if idmap is not None:
            check_reachable(self.layout.root, idmap)
        return idmap

    @cached_property
    def networks(self) -> NetworkService:
        from dockyard.engine.networks import NetworkService

        return NetworkService(self.layout, self.db, self.config)

    @cached_property
    def container_ops(self) -> ContainerOps:
        from dockyard.engine.container_ops import ContainerOps

        return ContainerOps(self.containers)
