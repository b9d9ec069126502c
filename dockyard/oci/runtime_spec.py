"""Typed, validated model of an OCI runtime-spec ``config.json`` (Linux).

Raw dicts never travel past :func:`parse_spec`: everything downstream works on these
immutable NamedTuples (not dataclasses: this module sits on every container start,
and 30 dataclasses cost ~12 ms of import against ~2 ms for NamedTuples).  A
malformed or incomplete document raises ``InvalidSpec`` naming
the JSON path that is wrong, so the user sees ``process.args: must be a non-empty
list of strings`` rather than a ``KeyError``.
"""

from __future__ import annotations

from dockyard.errors import InvalidSpec
from dockyard.stdlite import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


class User(NamedTuple):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


class Capabilities(NamedTuple):
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


class Rlimit(NamedTuple):
    type: str
    soft: int
    hard: int


class ConsoleSize(NamedTuple):
    height: int
    width: int


class Process(NamedTuple):
    args: tuple[str, ...]
    cwd: str = "/"
    env: tuple[str, ...] = ()
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = User()
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""


class Root(NamedTuple):
    path: str
    readonly: bool = False


class Mount(NamedTuple):
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()


class Hook(NamedTuple):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


class Namespace(NamedTuple):
    type: str
    path: str = ""


class Device(NamedTuple):
    path: str
    type: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class DeviceRule(NamedTuple):
    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"


class WeightDevice(NamedTuple):
    """``blockIO.weightDevice[]``: a weight and/or leaf weight for one block device."""

    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


class ThrottleDevice(NamedTuple):
    """``blockIO.throttle*Device[]``: bytes or I/O operations per second on one device."""

    major: int
    minor: int
    rate: int


class BlockIO(NamedTuple):
    weight: int | None = None
    leaf_weight: int | None = None
    weight_devices: tuple[WeightDevice, ...] = ()
    throttle_read_bps: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops: tuple[ThrottleDevice, ...] = ()


class HugepageLimit(NamedTuple):
    page_size: str  # the kernel's name for it: "2MB", "1GB", "64KB"
    limit: int


class InterfacePriority(NamedTuple):
    name: str
    priority: int


class Resources(NamedTuple):
    memory_limit: int | None = None
    memory_reservation: int | None = None
    memory_swap: int | None = None
    memory_swappiness: int | None = None
    disable_oom_killer: bool | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    devices: tuple[DeviceRule, ...] = ()
    unified: tuple[tuple[str, str], ...] = ()
    block_io: BlockIO = BlockIO()
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    net_class_id: int | None = None
    net_priorities: tuple[InterfacePriority, ...] = ()


class SyscallArg(NamedTuple):
    arg_index: int  # 'index' would shadow tuple.index
    value: int
    op: str
    value_two: int = 0


class SyscallRule(NamedTuple):
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[SyscallArg, ...] = ()


class Seccomp(NamedTuple):
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    syscalls: tuple[SyscallRule, ...] = ()


class IdMapping(NamedTuple):
    container_id: int
    host_id: int
    size: int


class Linux(NamedTuple):
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    cgroups_path: str = ""
    resources: Resources = Resources()
    rootfs_propagation: str = ""
    seccomp: Seccomp | None = None
    sysctl: tuple[tuple[str, str], ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    mount_label: str = ""

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


class Spec(NamedTuple):
    oci_version: str
    root: Root
    process: Process | None
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: dict[str, tuple[Hook, ...]] = {}  # noqa: RUF012 - never mutated
    linux: Linux = Linux()
    annotations: dict[str, str] = {}  # noqa: RUF012 - never mutated


class _Reader:
    """Typed access to one JSON object, reporting errors by JSON path."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise InvalidSpec(f"{path or 'config.json'}: must be an object")
        self.data: dict[str, Any] = data
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def string(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise InvalidSpec(f"{self._where(key)}: must be a string")
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidSpec(f"{self._where(key)}: must be an integer")
        return value

    def opt_int(self, key: str) -> int | None:
        return self.integer(key) if self.has(key) else None

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise InvalidSpec(f"{self._where(key)}: must be true or false")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidSpec(f"{self._where(key)}: must be a list of strings")
        return tuple(value)

    def ints(self, key: str) -> tuple[int, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            raise InvalidSpec(f"{self._where(key)}: must be a list of integers")
        return tuple(value)

    def child(self, key: str) -> _Reader:
        return _Reader(self.data.get(key) or {}, self._where(key))

    def children(self, key: str) -> list[_Reader]:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            raise InvalidSpec(f"{self._where(key)}: must be a list")
        return [_Reader(item, f"{self._where(key)}[{i}]") for i, item in enumerate(value)]

    def str_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidSpec(f"{self._where(key)}: must be an object of strings")
        return dict(value)


def _parse_user(r: _Reader) -> User:
    return User(
        uid=r.integer("uid", 0),
        gid=r.integer("gid", 0),
        umask=r.opt_int("umask"),
        additional_gids=r.ints("additionalGids"),
    )


def _parse_capabilities(r: _Reader) -> Capabilities:
    return Capabilities(
        bounding=r.strings("bounding"),
        effective=r.strings("effective"),
        inheritable=r.strings("inheritable"),
        permitted=r.strings("permitted"),
        ambient=r.strings("ambient"),
    )


def parse_process(data: object, path: str = "process") -> Process:
    """Parse a process object (also the body of ``exec --process``)."""
    r = _Reader(data, path)
    args = r.strings("args")
    if not args:
        raise InvalidSpec(f"{path}.args: must be a non-empty list of strings")
    cwd = r.string("cwd", "/")
    if not cwd.startswith("/"):
        raise InvalidSpec(f"{path}.cwd: must be an absolute path, got {cwd!r}")
    size = None
    if r.has("consoleSize"):
        cs = r.child("consoleSize")
        size = ConsoleSize(height=cs.integer("height", 0), width=cs.integer("width", 0))
    return Process(
        args=args,
        cwd=cwd,
        env=r.strings("env"),
        terminal=r.boolean("terminal"),
        console_size=size,
        user=_parse_user(r.child("user")),
        capabilities=_parse_capabilities(r.child("capabilities"))
        if r.has("capabilities")
        else None,
        rlimits=tuple(
            Rlimit(type=x.string("type"), soft=x.integer("soft"), hard=x.integer("hard"))
            for x in r.children("rlimits")
        ),
        no_new_privileges=r.boolean("noNewPrivileges"),
        oom_score_adj=r.opt_int("oomScoreAdj"),
        apparmor_profile=r.string("apparmorProfile", ""),
        selinux_label=r.string("selinuxLabel", ""),
    )


def _parse_mount(r: _Reader) -> Mount:
    dest = r.string("destination")
    if not dest.startswith("/"):
        raise InvalidSpec(f"{r.path}.destination: must be an absolute path, got {dest!r}")
    return Mount(
        destination=dest,
        type=r.string("type", ""),
        source=r.string("source", ""),
        options=r.strings("options"),
    )


def _parse_hooks(r: _Reader) -> dict[str, tuple[Hook, ...]]:
    hooks: dict[str, tuple[Hook, ...]] = {}
    for kind in HOOK_KINDS:
        items = []
        for h in r.children(kind):
            path = h.string("path")
            if not path.startswith("/"):
                raise InvalidSpec(f"{h.path}.path: must be an absolute path, got {path!r}")
            items.append(
                Hook(path=path, args=h.strings("args"), env=h.strings("env"),
                     timeout=h.opt_int("timeout"))
            )
        if items:
            hooks[kind] = tuple(items)
    unknown = set(r.data) - set(HOOK_KINDS)
    if unknown:
        raise InvalidSpec(f"hooks: unknown hook kind {sorted(unknown)[0]!r}")
    return hooks


def _parse_namespace(r: _Reader) -> Namespace:
    ns_type = r.string("type")
    if ns_type not in NAMESPACE_TYPES:
        raise InvalidSpec(
            f"{r.path}.type: unknown namespace type {ns_type!r}",
            hint=f"known types: {', '.join(NAMESPACE_TYPES)}",
        )
    return Namespace(type=ns_type, path=r.string("path", ""))


def _parse_device(r: _Reader) -> Device:
    dev_type = r.string("type")
    if dev_type not in ("c", "b", "u", "p"):
        raise InvalidSpec(f"{r.path}.type: must be one of c, b, u, p; got {dev_type!r}")
    path = r.string("path")
    if not path.startswith("/dev/"):
        raise InvalidSpec(f"{r.path}.path: must be under /dev, got {path!r}")
    return Device(
        path=path,
        type=dev_type,
        major=r.integer("major", 0),
        minor=r.integer("minor", 0),
        file_mode=r.opt_int("fileMode"),
        uid=r.opt_int("uid"),
        gid=r.opt_int("gid"),
    )


_UINT16, _UINT32, _UINT64 = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1


def _bounded(r: _Reader, key: str, top: int) -> int | None:
    """An optional integer in [0, top] (the spec's uint16/uint32 fields)."""
    if not r.has(key):
        return None
    value = r.data[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise InvalidSpec(f"{r._where(key)}: must be an integer from 0 to {top}")
    return value


def _count(r: _Reader, key: str) -> int:
    """A required integer in [0, 2**64) (rates, limits)."""
    value = r.data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _UINT64:
        raise InvalidSpec(f"{r._where(key)}: must be a non-negative integer")
    return value


def _parse_block_io(r: _Reader) -> BlockIO:
    def throttles(key: str) -> tuple[ThrottleDevice, ...]:
        return tuple(ThrottleDevice(major=t.integer("major"), minor=t.integer("minor"),
                                    rate=_count(t, "rate")) for t in r.children(key))

    return BlockIO(
        weight=_bounded(r, "weight", _UINT16),
        leaf_weight=_bounded(r, "leafWeight", _UINT16),
        weight_devices=tuple(
            WeightDevice(major=w.integer("major"), minor=w.integer("minor"),
                         weight=_bounded(w, "weight", _UINT16),
                         leaf_weight=_bounded(w, "leafWeight", _UINT16))
            for w in r.children("weightDevice")),
        throttle_read_bps=throttles("throttleReadBpsDevice"),
        throttle_write_bps=throttles("throttleWriteBpsDevice"),
        throttle_read_iops=throttles("throttleReadIOPSDevice"),
        throttle_write_iops=throttles("throttleWriteIOPSDevice"),
    )


_DIGITS = frozenset("0123456789")


def _is_page_size(size: str) -> bool:
    """A hugetlb size as the cgroup files name it: [1-9][0-9]*[KMGTP]B."""
    number, unit = size[:-2], size[-2:]
    return unit in ("KB", "MB", "GB", "TB", "PB") and number[:1] in _DIGITS - {"0"} and \
        all(digit in _DIGITS for digit in number)


def _is_interface_name(name: str) -> bool:
    """One token of net_prio's "NAME PRIORITY" line: 1-15 characters (IFNAMSIZ less the
    NUL), none of them white space, "/" or ":", and not "." or ".."."""
    return 0 < len(name) <= 15 and name not in (".", "..") and not any(
        char.isspace() or char in "/:" for char in name)


def _parse_hugepage_limit(r: _Reader) -> HugepageLimit:
    size = r.string("pageSize")
    if not _is_page_size(size):
        raise InvalidSpec(f"{r._where('pageSize')}: want a size like 2MB or 1GB, got {size!r}")
    return HugepageLimit(page_size=size, limit=_count(r, "limit"))


def _parse_priority(r: _Reader) -> InterfacePriority:
    name = r.string("name")
    if not _is_interface_name(name):
        raise InvalidSpec(f"{r._where('name')}: not a network interface name: {name!r}")
    priority = _bounded(r, "priority", _UINT32)
    return InterfacePriority(name=name, priority=priority or 0)


def _parse_resources(r: _Reader) -> Resources:
    mem, cpu, pids = r.child("memory"), r.child("cpu"), r.child("pids")
    network = r.child("network")
    rules = tuple(
        DeviceRule(
            allow=d.boolean("allow"),
            type=d.string("type", "a"),
            major=d.opt_int("major"),
            minor=d.opt_int("minor"),
            access=d.string("access", "rwm"),
        )
        for d in r.children("devices")
    )
    return Resources(
        memory_limit=mem.opt_int("limit"),
        memory_reservation=mem.opt_int("reservation"),
        memory_swap=mem.opt_int("swap"),
        memory_swappiness=mem.opt_int("swappiness"),
        disable_oom_killer=mem.boolean("disableOOMKiller") if mem.has("disableOOMKiller") else None,
        cpu_shares=cpu.opt_int("shares"),
        cpu_quota=cpu.opt_int("quota"),
        cpu_period=cpu.opt_int("period"),
        cpuset_cpus=cpu.string("cpus") if cpu.has("cpus") else None,
        cpuset_mems=cpu.string("mems") if cpu.has("mems") else None,
        pids_limit=pids.opt_int("limit"),
        devices=rules,
        unified=tuple(sorted(r.str_map("unified").items())),
        block_io=_parse_block_io(r.child("blockIO")),
        hugepage_limits=tuple(_parse_hugepage_limit(h) for h in r.children("hugepageLimits")),
        net_class_id=_bounded(network, "classID", _UINT32),
        net_priorities=tuple(_parse_priority(p) for p in network.children("priorities")),
    )


def _parse_seccomp(r: _Reader) -> Seccomp:
    rules = []
    for s in r.children("syscalls"):
        args = tuple(
            SyscallArg(arg_index=a.integer("index"), value=a.integer("value"), op=a.string("op"),
                       value_two=a.integer("valueTwo", 0))
            for a in s.children("args")
        )
        rules.append(SyscallRule(names=s.strings("names"), action=s.string("action"),
                                 errno_ret=s.opt_int("errnoRet"), args=args))
    return Seccomp(
        default_action=r.string("defaultAction"),
        default_errno_ret=r.opt_int("defaultErrnoRet"),
        architectures=r.strings("architectures"),
        flags=r.strings("flags"),
        syscalls=tuple(rules),
    )


def _parse_mappings(items: list[_Reader]) -> tuple[IdMapping, ...]:
    return tuple(
        IdMapping(container_id=m.integer("containerID"), host_id=m.integer("hostID"),
                  size=m.integer("size"))
        for m in items
    )


def _parse_linux(r: _Reader) -> Linux:
    namespaces = tuple(_parse_namespace(n) for n in r.children("namespaces"))
    seen: set[str] = set()
    for ns in namespaces:
        if ns.type in seen:
            raise InvalidSpec(f"linux.namespaces: namespace {ns.type!r} listed twice")
        seen.add(ns.type)
    propagation = r.string("rootfsPropagation", "")
    allowed = ("", "shared", "slave", "private", "rshared", "rslave", "rprivate", "unbindable",
               "runbindable")
    if propagation not in allowed:
        raise InvalidSpec(f"linux.rootfsPropagation: unknown propagation {propagation!r}")
    return Linux(
        namespaces=namespaces,
        uid_mappings=_parse_mappings(r.children("uidMappings")),
        gid_mappings=_parse_mappings(r.children("gidMappings")),
        devices=tuple(_parse_device(d) for d in r.children("devices")),
        cgroups_path=r.string("cgroupsPath", ""),
        resources=_parse_resources(r.child("resources")),
        rootfs_propagation=propagation,
        seccomp=_parse_seccomp(r.child("seccomp")) if r.has("seccomp") else None,
        sysctl=tuple(sorted(r.str_map("sysctl").items())),
        masked_paths=r.strings("maskedPaths"),
        readonly_paths=r.strings("readonlyPaths"),
        mount_label=r.string("mountLabel", ""),
    )


def parse_spec(data: object) -> Spec:
    """Validate a decoded config.json and return the typed :class:`Spec`."""
    r = _Reader(data, "")
    version = r.string("ociVersion") if r.has("ociVersion") else ""
    if not version:
        raise InvalidSpec("ociVersion: missing")
    if not version.startswith("1."):
        raise InvalidSpec(f"ociVersion: unsupported version {version!r}, want 1.x")
    if not r.has("root"):
        raise InvalidSpec("root: missing")
    root = r.child("root")
    return Spec(
        oci_version=version,
        root=Root(path=root.string("path"), readonly=root.boolean("readonly")),
        process=parse_process(r.data["process"]) if r.has("process") else None,
        hostname=r.string("hostname", ""),
        domainname=r.string("domainname", ""),
        mounts=tuple(_parse_mount(m) for m in r.children("mounts")),
        hooks=_parse_hooks(r.child("hooks")),
        linux=_parse_linux(r.child("linux")),
        annotations=r.str_map("annotations"),
    )
