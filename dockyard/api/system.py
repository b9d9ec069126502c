"""``/_ping``, ``/version`` and ``/info``: what clients ask before anything else."""

from __future__ import annotations

import os
import platform
import socket
import time
from typing import Any

from aiohttp import web

from dockyard.api.container_list import LIST, ContainerList, list_rows
from dockyard.api.server import (
    API_VERSION,
    ENGINE,
    MIN_API_VERSION,
    Router,
    _common_headers,
    engine_version,
)
from dockyard.api.streams import call
from dockyard.engine.engine import Engine
from dockyard.engine.records import ACTIVE_STATES


def register(router: Router) -> None:
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/system/df", disk_usage)


async def ping(request: web.Request) -> web.Response:
    response = web.Response(text="OK" if request.method == "GET" else None,
                            content_type="text/plain")
    response.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
    response.headers["Pragma"] = "no-cache"
    response.headers["Builder-Version"] = "1"  # the legacy builder's API only (no BuildKit)
    _common_headers(response)
    return response


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def version(request: web.Request) -> web.Response:
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
               "GoVersion": "", "Os": "linux", "Arch": _arch(),
               "KernelVersion": platform.release(), "BuildTime": "", "Experimental": "false"}
    return web.json_response({
        "Platform": {"Name": "dockyard"},
        "Components": [{"Name": "Engine", "Version": engine_version(), "Details": details}],
        "Version": engine_version(), "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "", "Os": "linux",
        "Arch": _arch(), "KernelVersion": platform.release(), "BuildTime": ""})


def _counts(engine: Engine) -> dict[str, int]:
    records = engine.containers.list(all_containers=True)
    running = sum(r.state in ACTIVE_STATES and r.state != "paused" for r in records)
    paused = sum(r.state == "paused" for r in records)
    return {"Containers": len(records), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(records) - running - paused,
            "Images": len(engine.images.index.images())}


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _mem_total() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


async def info(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    counts = await call(request, _counts, engine)
    doc: dict[str, Any] = {
        "ID": "", **counts, "Driver": "overlay2", "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "CpuCfsPeriod": True,
        "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": True, "BridgeNfIptables": True, "BridgeNfIp6tables": True,
        "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True,
        "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(), "NEventsListener": 0,
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
        "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
                           "Mirrors": None},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(),
        "GenericResources": None, "DockerRootDir": str(engine.layout.root),
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": socket.gethostname(),
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": engine_version(),
        "Runtimes": {"runc": {"path": "dockyard-runtime"}}, "DefaultRuntime": "runc",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"], "CDISpecDirs": [],
        "Warnings": None}
    return web.json_response(doc)


# --- /system/df ------------------------------------------------------------------------------
def tree_size(path: str) -> int:
    """The bytes of the regular files below ``path``, walked by descriptor (a
    container or its user made the tree); 0 when it is not there."""
    import stat

    from dockyard.errors import NotFound
    from dockyard.fs.inroot import Root
    from dockyard.fs.tree import walk

    try:
        with Root(path, what="tree") as root:
            return sum(e.stat.st_size for e in walk(root.fd) if stat.S_ISREG(e.stat.st_mode))
    except (NotFound, OSError):
        return 0


def _disk_usage(engine: Engine, lister: ContainerList) -> dict[str, Any]:
    from dockyard.api.images import _summaries

    containers = list_rows(engine, lister)
    for row in containers:
        upper = engine.images.snapshotter.upper_dir(row["Id"])
        row["SizeRw"], row["SizeRootFs"] = tree_size(str(upper)), 0
    images = _summaries(engine, {})
    for image in images:
        image["SharedSize"] = 0
        image["Containers"] = sum(1 for c in containers if c["ImageID"] == image["Id"])
    volumes = []
    for volume in engine.volumes.all():
        doc = engine.volumes.inspect(volume)
        doc["UsageData"] = {"Size": tree_size(doc["Mountpoint"]),
                            "RefCount": len(engine.containers.volume_users(volume.name))}
        volumes.append(doc)
    return {"LayersSize": sum(i["Size"] for i in images), "Images": images,
            "Containers": containers, "Volumes": volumes, "BuildCache": []}


async def disk_usage(request: web.Request) -> web.Response:
    return web.json_response(await call(request, _disk_usage, request.app[ENGINE],
                                          request.app[LIST]))
