"""The typed project a compose file lowers to (``compose.lower``), which converge
makes real.  Plain data only — what the project cache (``compose.cache``) keeps — so
that a command that reads a cached project imports no YAML, schema or lowering code.
"""


from pathlib import Path
from typing import Any, NamedTuple

from dockyard.engine.spec import ContainerSpec


class NetworkPlan(NamedTuple):
    key: str  # the name in the file
    name: str  # <project>_<key>, or its `name:`
    internal: bool
    labels: dict[str, str]
    external: bool
    subnet: str | None = None  # ipam.config[0]
    gateway: str | None = None
    config_hash: str = ""  # Compose's config-hash label: a change recreates the network


class VolumePlan(NamedTuple):
    key: str
    name: str
    options: dict[str, str]
    labels: dict[str, str]
    external: bool
    config_hash: str = ""  # Compose's config-hash label (a change is reported, not applied)


class BuildPlan(NamedTuple):
    """A service's ``build:``, as the engine's builder takes it."""

    image: str  # the tag the build makes: the service's image, else <project>-<service>
    context: str  # an absolute directory
    dockerfile: str | None  # relative to the context; None: its Dockerfile
    dockerfile_inline: str | None
    args: dict[str, str]
    target: str | None
    labels: dict[str, str]
    no_cache: bool
    pull: bool
    network: str
    secrets: dict[str, str]  # id → host file
    tags: tuple[str, ...]
    contexts: dict[str, str] = {}  # noqa: RUF012 - additional_contexts: name → dir or image
    cache_from: tuple[str, ...] = ()  # images whose inline cache the build may use
    inline_cache: bool = False  # cache_to type=inline
    notes: tuple[str, ...] = ()  # what is known and not used (other cache kinds)


class FilePlan(NamedTuple):
    """A secret or config a service mounts: a host file bound as it is (``source``),
    or ``content`` that converge writes into the project's directory first."""

    kind: str  # "secrets" | "configs"
    name: str  # its key in the file
    source: str | None
    content: bytes | None
    target: str
    uid: int | None
    gid: int | None
    mode: int | None
    missing: str | None = None  # neither: why (an unset variable), told when it is mounted


class Hook(NamedTuple):
    """A ``post_start``/``pre_stop`` command, run in the container as ``exec`` runs one."""

    command: tuple[str, ...]
    user: str | None
    working_dir: str | None
    env: tuple[str, ...]


class Attachment(NamedTuple):
    network: str  # the network's name
    aliases: tuple[str, ...]
    ip: str | None


class WatchRule(NamedTuple):
    service: str
    action: str  # rebuild | sync | restart | sync+restart | sync+exec
    path: str  # absolute, on the host
    target: str | None  # in the container (sync actions)
    ignore: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exec: Hook | None = None
    initial_sync: bool = False


class ServicePlan(NamedTuple):
    name: str
    spec: ContainerSpec  # name unset (but container_name); labels without the number
    replicas: int
    depends_on: dict[str, str]  # service → condition
    networks: tuple[Attachment, ...]  # first: primary; () with a network_mode
    config_hash: str
    build: BuildPlan | None = None
    files: tuple[FilePlan, ...] = ()
    pull_policy: str = "missing"  # always | missing | never | build
    post_start: tuple[Hook, ...] = ()
    pre_stop: tuple[Hook, ...] = ()
    watch: tuple[WatchRule, ...] = ()  # develop.watch


class ProjectPlan(NamedTuple):
    name: str
    working_dir: Path
    config_files: tuple[Path, ...]
    services: dict[str, ServicePlan]  # in start order
    networks: dict[str, NetworkPlan]
    volumes: dict[str, VolumePlan]
    doc: dict[str, Any]
