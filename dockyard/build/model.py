"""What a build is made of and talks to: the options, the engine parts handed down,
the progress reporter, and the state of a stage as it is built."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from dockyard.build.sandbox import StepProcess
from dockyard.errors import DockyardError
from dockyard.images.imagefile import Layer, now_iso

if TYPE_CHECKING:
    from dockyard.images.content import LocalContentStore
    from dockyard.images.index import ImageIndex, ImageRecord
    from dockyard.oci.image import Manifest
    from dockyard.registry.auth import Credentials
    from dockyard.registry.transfer import Admit
    from dockyard.snapshots.overlay import OverlaySnapshotter
    from dockyard.store.db import Database
    from dockyard.store.layout import Layout

HISTORY_COMMENT = "dockyard.build.v0"
OWNER_FILE = "owner"  # in a step's work dir: "PID START" of the build that made it


def owner_text() -> str:
    """This process as a step's owner: pid and start time (a reused pid is not it)."""
    from dockyard.supervise.process import start_time

    return f"{os.getpid()} {start_time(os.getpid()) or 0}"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildError(DockyardError):
    """A step failed; the message names the Dockerfile line."""


class Reporter(Protocol):
    def step_started(self, step: int, title: str) -> None: ...
    def step_output(self, step: int, line: str) -> None: ...
    def step_finished(self, step: int, *, cached: bool, seconds: float) -> None: ...
    def step_failed(self, step: int, message: str) -> None: ...
    def warning(self, text: str) -> None: ...


class SilentReporter:
    """A Reporter that says nothing (``build -q``, compose's builds)."""

    def step_started(self, step: int, title: str) -> None:
        pass

    def step_output(self, step: int, line: str) -> None:
        pass

    def step_finished(self, step: int, *, cached: bool, seconds: float) -> None:
        pass

    def step_failed(self, step: int, message: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass


class ImageAccess(Protocol):
    """What the builder needs from the engine's image service."""

    content: LocalContentStore
    index: ImageIndex
    snapshotter: OverlaySnapshotter

    def get(self, name: str) -> ImageRecord: ...
    def config(self, record: ImageRecord) -> dict[str, Any]: ...
    def manifest(self, record: ImageRecord) -> Manifest: ...
    def unpack_layers(self, blobs: list[tuple[str, str]], diff_ids: list[str]) -> str | None: ...


class BuildEnvironment(NamedTuple):
    """The engine's parts a build uses, handed down (the builder sits below the engine)."""

    images: ImageAccess
    db: Database
    layout: Layout
    insecure_registries: frozenset[str]
    runtime_argv: list[str]
    # (image config, step, mounted rootfs, step id) → OCI config for a RUN step
    step_config: Callable[[dict[str, Any], StepProcess, Path, str], dict[str, Any]]
    # the signature policy a FROM's pull obeys, loaded only when a pull needs it (the
    # policy's module imports the registry client and httpx: ~70 ms of a build that
    # pulls nothing)
    admit: Callable[[], Admit | None] = lambda: None


class BuildOptions(NamedTuple):
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = {}  # noqa: RUF012 - never mutated
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = {}  # noqa: RUF012
    secrets: dict[str, str] = {}  # noqa: RUF012 - id → host file
    network: str = "default"
    # registry → credentials for base images (the API's X-Registry-Config); else config.json
    logins: Mapping[str, Credentials] = {}  # noqa: RUF012 - never mutated
    # named contexts (``--build-context``): name → an absolute directory, or
    # ``docker-image://REF``; used by ``FROM name``, ``COPY --from=name`` and RUN's
    # ``--mount=from=name`` where no stage has that name
    contexts: Mapping[str, str] = {}  # noqa: RUF012 - never mutated
    # images whose inline cache (``INLINE_CACHE`` in their config) seeds this build's
    cache_from: tuple[str, ...] = ()
    inline_cache: bool = False  # write the final stage's step keys into the image


# an image config's field listing the steps that made its layers: [[step key, index of
# the step's layer (-1: none), created], …], what ``cache_from`` reads (BuildKit's
# inline cache plays the same part)
INLINE_CACHE = "dev.dockyard.build.cache.v0"


class StageResult:
    """A stage's outcome, awaited by the stages that use it (a minimal future: the
    standard one pulls in logging and the thread-pool machinery)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: StageState | None = None
        self._error: BaseException | None = None

    def set(self, value: StageState | None, error: BaseException | None) -> None:
        self._value, self._error = value, error
        self._done.set()

    def result(self) -> StageState:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


class StageState:
    """A stage's image as it is being built."""

    def __init__(self, image: dict[str, Any], layers: list[Layer], key: str, *,
                 cmd_from_base: bool) -> None:
        self.image = image
        self.layers = layers
        self.key = key
        self.args: dict[str, str | None] = {}
        self.cmd_from_base = cmd_from_base
        self.steps: list[list[Any]] = []  # the layer steps so far (``INLINE_CACHE``)

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.image.setdefault("config", {})
        return config

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    def clone(self) -> StageState:
        import copy

        state = StageState(copy.deepcopy(self.image), list(self.layers), self.key,
                           cmd_from_base=True)
        state.steps = list(self.steps)
        return state

    @property
    def created(self) -> str:
        """When the stage's content last changed: the newest layer step's time (kept in
        the cache, so a fully cached build gives the same image ID), else the base's."""
        return str(self.image.get("created") or now_iso())

    def history(self, created_by: str, *, empty: bool, created: str | None = None) -> None:
        if created is not None:
            self.image["created"] = created
        entry: dict[str, Any] = {"created": self.created, "created_by": created_by,
                                 "comment": HISTORY_COMMENT}
        if empty:
            entry["empty_layer"] = True
        self.image.setdefault("history", []).append(entry)


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]
