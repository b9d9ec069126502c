"""``ContainerSpec``: the one internal description of a container.

Every front end (CLI flags, Docker API bodies, compose services, Kubernetes pods)
lowers into this; the engine turns it plus an image config into an OCI runtime
spec (``engine.ocispec``).  Fields mirror Docker's ``docker run`` options.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple


class Ulimit(NamedTuple):
    name: str  # "nofile"
    soft: int
    hard: int


class RestartPolicy(NamedTuple):
    name: str = "no"  # no | on-failure | always | unless-stopped
    maximum_retry_count: int = 0


class Healthcheck(NamedTuple):
    """A container's own healthcheck, as Docker keeps it: an unset field (an empty
    ``test``, a 0) is the image's HEALTHCHECK's (``merged_healthcheck``), else Docker's
    default (30 s interval and timeout, 3 retries, no start period, 5 s start
    interval: ``supervise.health``)."""

    test: tuple[str, ...] = ()  # ("CMD-SHELL", "curl …") or ("NONE",)
    interval: float = 0.0
    timeout: float = 0.0
    retries: int = 0
    start_period: float = 0.0
    # between checks while the start period lasts and the container is still starting
    # (Docker 25's StartInterval)
    start_interval: float = 0.0


_IMAGE_HEALTH_FIELDS = (("interval", "Interval"), ("timeout", "Timeout"),
                        ("start_period", "StartPeriod"), ("start_interval", "StartInterval"))


def merged_healthcheck(own: Healthcheck | None,
                       image: Mapping[str, Any] | None) -> Healthcheck | None:
    """The healthcheck a container runs: its own fields, each unset one taken from its
    image's config (``Healthcheck`` as the image config has it, durations in
    nanoseconds), as dockerd merges them at create, so ``--health-interval 5s`` alone
    speeds up the image's own check.  None when neither has one."""
    if not image:
        return own
    from_image = Healthcheck(
        tuple(image.get("Test") or ()),
        **{field: (image.get(key) or 0) / 1e9 for field, key in _IMAGE_HEALTH_FIELDS},
        retries=int(image.get("Retries") or 0))
    if own is None:
        return from_image
    return Healthcheck(own.test or from_image.test, own.interval or from_image.interval,
                       own.timeout or from_image.timeout, own.retries or from_image.retries,
                       own.start_period or from_image.start_period,
                       own.start_interval or from_image.start_interval)


def active_healthcheck(check: Healthcheck | None) -> Healthcheck | None:
    """``check`` when it has something to run (not none, not ``NONE``)."""
    if check is None or not check.test or check.test[0] == "NONE":
        return None
    return check


class TmpfsMount(NamedTuple):
    target: str
    options: str = ""


class MountSpec(NamedTuple):
    """``-v``/``--mount``: type volume (source = volume name, "" for anonymous), bind
    (source = host path) or tmpfs."""

    type: str
    source: str
    target: str
    readonly: bool = False
    options: str = ""  # tmpfs: size=…,mode=…
    create_host_path: bool = False  # -v creates a missing bind source; --mount refuses
    nocopy: bool = False  # a volume: an empty one is not filled from the image


class PortSpec(NamedTuple):
    """``-p [IP:]HOST:CONTAINER[/tcp]``."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"


class BlkioWeightDevice(NamedTuple):
    """``--blkio-weight-device /dev/sda:500`` (Docker's blkiodev.WeightDevice)."""

    path: str
    weight: int


class BlkioThrottleDevice(NamedTuple):
    """``--device-read-bps /dev/sda:1mb`` and the like: bytes or I/O operations per
    second (Docker's blkiodev.ThrottleDevice)."""

    path: str
    rate: int


class ContainerSpec(NamedTuple):
    image: str
    name: str | None = None
    command: tuple[str, ...] | None = None  # None: the image's Cmd
    entrypoint: tuple[str, ...] | None = None  # None: the image's; () clears it
    env: tuple[str, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    labels: dict[str, str] = {}  # noqa: RUF012 - never mutated
    tty: bool = False
    stdin_open: bool = False
    read_only: bool = False
    tmpfs: tuple[TmpfsMount, ...] = ()
    init: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    restart: RestartPolicy = RestartPolicy()
    auto_remove: bool = False
    memory: int | None = None
    memory_swap: int | None = None
    # a soft limit (bytes): what the kernel reclaims down to under memory pressure
    # (cgroup v2 memory.low, v1 soft_limit_in_bytes), as Docker's MemoryReservation
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None  # 10-1000; 0 or None: unset
    blkio_weight_device: tuple[BlkioWeightDevice, ...] = ()
    device_read_bps: tuple[BlkioThrottleDevice, ...] = ()
    device_write_bps: tuple[BlkioThrottleDevice, ...] = ()
    device_read_iops: tuple[BlkioThrottleDevice, ...] = ()
    device_write_iops: tuple[BlkioThrottleDevice, ...] = ()
    ulimits: tuple[Ulimit, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp_profile: str | None = None  # None: Docker's default; "unconfined"; a JSON path
    oom_kill_disable: bool = False
    network_mode: str = "bridge"  # bridge | none | host | container:NAME | a network's name
    ipc_mode: str | None = None  # "container:NAME" joins that container's IPC namespace
    uts_mode: str | None = None  # "container:NAME" joins its UTS namespace (a kube pod)
    pid_mode: str | None = None  # "host", or "container:NAME" joins its PID namespace
    group_add: tuple[str, ...] = ()  # more groups of the process (names or gids)
    devices: tuple[str, ...] = ()  # host device nodes: "HOST[:CONTAINER[:PERMS]]"
    domainname: str | None = None  # the UTS namespace's NIS domain name
    network_aliases: tuple[str, ...] = ()  # more names the embedded DNS answers for it
    ip_address: str | None = None  # --ip, on a user network
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()  # --add-host NAME:IP
    healthcheck: Healthcheck | None = None
    no_healthcheck: bool = False
    log_max_size: int = 0  # json-file --log-opt max-size (0: unlimited)
    log_max_file: int = 1
    mounts: tuple[MountSpec, ...] = ()
    volumes_from: tuple[str, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    publish_all: bool = False
    expose: tuple[str, ...] = ()  # more exposed ports, "PORT/PROTO" (compose's `expose`)
    sysctls: tuple[tuple[str, str], ...] = ()  # namespaced ones only (check_sysctls)
    shm_size: int | None = None  # bytes of /dev/shm (None: Docker's 64 MiB)
