"""The composition root: builds every store and service for one ``--root``."""

from __future__ import annotations

from functools import cached_property

from dockyard.engine.container_ops import ContainerOps
from dockyard.engine.containers import ContainerService
from dockyard.engine.images import ImageService
from dockyard.engine.records import ContainerStore
from dockyard.images.content import LocalContentStore
from dockyard.images.index import ImageIndex
from dockyard.snapshots.overlay import OverlaySnapshotter
from dockyard.store.db import Database
from dockyard.store.layout import Layout


class Engine:
    """One per ``--root``; services are built on first use, so ``--help`` stays fast."""

    def __init__(self, layout: Layout, *,
                 insecure_registries: frozenset[str] = frozenset()) -> None:
        self.layout = layout
        self.insecure_registries = insecure_registries

    @cached_property
    def db(self) -> Database:
        self.layout.ensure()
        return Database(self.layout.root / "metadata.db")

    @cached_property
    def container_store(self) -> ContainerStore:
        return ContainerStore(self.db)

    @cached_property
    def images(self) -> ImageService:
        content = LocalContentStore(self.layout.root / "content")
        snapshotter = OverlaySnapshotter(self.layout.root / "snapshots", self.db)
        return ImageService(content, ImageIndex(self.db), snapshotter,
                            in_use=self.container_store.users_of_image)

    @cached_property
    def containers(self) -> ContainerService:
        return ContainerService(self.layout, self.container_store, self.images)

    @cached_property
    def container_ops(self) -> ContainerOps:
        return ContainerOps(self.containers)
