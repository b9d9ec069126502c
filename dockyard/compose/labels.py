"""Docker Compose's labels: what marks a container, network or volume as a project's,
so that ``docker compose ps`` and ``dockyard compose ps`` agree on what belongs to it."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from dockyard import __version__

PREFIX = "com.docker.compose"
PROJECT = f"{PREFIX}.project"
SERVICE = f"{PREFIX}.service"
NUMBER = f"{PREFIX}.container-number"
IMAGE = f"{PREFIX}.image"  # the image's ID (config digest) when the container was made
CONFIG_HASH = f"{PREFIX}.config-hash"
ONEOFF = f"{PREFIX}.oneoff"
SLUG = f"{PREFIX}.slug"  # a one-off container's random ID
WORKING_DIR = f"{PREFIX}.project.working_dir"
CONFIG_FILES = f"{PREFIX}.project.config_files"
DEPENDS_ON = f"{PREFIX}.depends_on"
NETWORK = f"{PREFIX}.network"
VOLUME = f"{PREFIX}.volume"
# the version of the tool that made a container, network or volume (Compose writes its
# own); outside every config hash, so a new dockyard recreates nothing
VERSION = f"{PREFIX}.version"


def service_labels(project: Any, service: str, config_hash: str,
                   depends_on: Mapping[str, str],
                   restarts: Set[str] = frozenset()) -> dict[str, str]:
    """The labels every container of ``service`` carries (its number added per replica);
    ``project`` is a ``loader.LoadedProject``."""
    return {
        PROJECT: project.name, SERVICE: service, ONEOFF: "False",
        CONFIG_HASH: config_hash, VERSION: __version__, WORKING_DIR: str(project.working_dir),
        CONFIG_FILES: ",".join(str(p) for p in project.config_files),
        DEPENDS_ON: ",".join(f"{dep}:{cond}:{'true' if dep in restarts else 'false'}"
                             for dep, cond in sorted(depends_on.items())),
    }
