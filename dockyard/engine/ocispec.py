"""Image config + ContainerSpec → OCI runtime spec: pure, unit-tested, Docker's rules.

Docker's rules reproduced here: ``--entrypoint`` replaces the image's entrypoint
and drops its Cmd unless a command is given; the command replaces Cmd; env is
the image's with the container's overriding by key; ``--user`` names resolve
through the image's /etc/passwd and /etc/group; ``--privileged`` means every
capability, no seccomp, no masked or read-only paths; ``--cpus`` is a CFS quota
over a 100 ms period; block I/O devices are named by path and become the
major:minor of the host's device node when the config is built (at each start,
as moby's getBlkio*Devices do).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from typing import Any

from dockyard.engine.spec import BlkioThrottleDevice, ContainerSpec
from dockyard.errors import ExecutableNotFound, InvalidArgument
from dockyard.images.users import UserIds, resolve_user
from dockyard.runtime.linux.capabilities import CAPABILITY_NAMES, DOCKER_DEFAULT_CAPABILITIES
from dockyard.runtime.linux.network import LOOPBACK_ANNOTATION
from dockyard.runtime.seccomp_profile import default_profile
from dockyard.runtime.spec import DEFAULT_ENV, default_spec
from dockyard.store.idmap import IdMap

CPU_PERIOD = 100_000


def process_args(image_config: dict[str, Any], spec: ContainerSpec) -> list[str]:
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    if spec.entrypoint is not None:
        entrypoint = list(spec.entrypoint)
        cmd = []
    if spec.command is not None:
        cmd = list(spec.command)
    args = entrypoint + cmd
    if not args:
        raise InvalidArgument("no command specified")
    return args


def merge_env(image_env: list[str], extra: tuple[str, ...]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *extra]:
        key, sep, value = item.partition("=")
        merged[key] = f"{key}={value}" if sep else key
    if "PATH" not in merged:
        merged["PATH"] = DEFAULT_ENV
    return list(merged.values())


def available_capabilities() -> list[str]:
    """Every capability this environment can grant: those of our bounding set (moby's
    GetAllCapabilities; a host without CAP_SYS_RESOURCE, as this VM kind, cannot give
    it to a container, and asking for it makes capset fail)."""
    try:
        with open("/proc/self/status") as handle:
            line = next(x for x in handle if x.startswith("CapBnd:"))
        bounding = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return list(CAPABILITY_NAMES)
    return [name for number, name in enumerate(CAPABILITY_NAMES) if bounding >> number & 1]


def capabilities(spec: ContainerSpec) -> list[str]:
    if spec.privileged:
        return available_capabilities()
    caps = list(DOCKER_DEFAULT_CAPABILITIES)
    adds = [_cap(c) for c in spec.cap_add]
    drops = [_cap(c) for c in spec.cap_drop]
    if "ALL" in adds:
        caps = available_capabilities()
    if "ALL" in drops:
        caps = []
    caps += [c for c in adds if c != "ALL" and c not in caps]
    return [c for c in caps if c not in drops]


def _cap(name: str) -> str:
    upper = name.upper()
    if upper == "ALL":
        return upper
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in CAPABILITY_NAMES:
        raise InvalidArgument(f"invalid capability: {name}")
    return full


INIT_PATH = "/sbin/docker-init"


def build(image_config: dict[str, Any], spec: ContainerSpec, *, rootfs: str, hostname: str,
          cgroup_path: str, user: UserIds, seccomp_json: str | None = None,
          init_binary: str | None = None,
          volume_dirs: dict[str, str] | None = None,
          device_numbers: Callable[[str], tuple[int, int]] | None = None,
          idmap: IdMap | None = None) -> dict[str, Any]:
    """The config.json for this container.

    With ``--init``, ``init_binary`` (tini) is bound read-only at /sbin/docker-init
    and runs as pid 1 in front of the command, reaping zombies and forwarding signals.
    ``device_numbers`` maps a block device path to its major:minor (the host's
    device nodes by default).  ``idmap`` (a remapped root) puts the container in a
    user namespace of that mapping.
    """
    config = image_config.get("config") or {}
    caps = capabilities(spec)
    args = process_args(config, spec)
    if spec.init:
        if not init_binary:
            raise InvalidArgument("--init: no init binary found (apt-get install tini)")
        args = [INIT_PATH, "--", *args]
    oci = default_spec(tuple(args), rootfs=rootfs, terminal=spec.tty,
                       hostname=hostname, capabilities=tuple(caps), seccomp=False)
    if spec.init and init_binary:
        oci["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": init_binary,
                              "options": ["bind", "ro", "nosuid", "nodev"]})
    process = oci["process"]
    process["env"] = merge_env(list(config.get("Env") or []), spec.env)
    if spec.tty and not any(e.startswith("TERM=") for e in process["env"]):
        process["env"].append("TERM=xterm")
    process["cwd"] = spec.working_dir or config.get("WorkingDir") or "/"
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    process["noNewPrivileges"] = spec.no_new_privileges
    process["rlimits"] = [{"type": f"RLIMIT_{u.name.upper()}", "soft": u.soft, "hard": u.hard}
                          for u in spec.ulimits]
    process["capabilities"]["inheritable"] = []
    linux = oci["linux"]
    linux["cgroupsPath"] = cgroup_path
    linux["resources"] = _resources(spec, device_numbers or host_block_device)
    if spec.privileged:
        linux["devices"] = host_devices()
    elif spec.devices:
        linux["devices"], allowed = device_nodes(spec.devices)
        linux["resources"]["devices"] += allowed
    if spec.network_mode == "host":
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
    if idmap is not None:
        _user_namespace(linux, spec, idmap)
    _security(oci, spec, caps, seccomp_json)
    oci["root"]["readonly"] = spec.read_only
    for tmpfs in spec.tmpfs:
        options = ["nosuid", "nodev", "noexec"] + [o for o in tmpfs.options.split(",") if o]
        oci["mounts"].append({"destination": tmpfs.target, "type": "tmpfs",
                              "source": "tmpfs", "options": options})
    oci["mounts"] += user_mounts(spec, volume_dirs or {})
    oci["annotations"] = dict(spec.labels)
    if spec.network_mode == "none":  # (dockyard-runtime's init sets lo up: no attach)
        oci["annotations"][LOOPBACK_ANNOTATION] = "up"
    if spec.domainname:
        oci["domainname"] = spec.domainname
    if spec.sysctls:
        check_sysctls(spec)
        linux["sysctl"] = dict(spec.sysctls)
    if spec.shm_size is not None:
        for mount in oci["mounts"]:
            if mount["destination"] == "/dev/shm":
                mount["options"] = [o for o in mount["options"] if not o.startswith("size=")
                                    ] + [f"size={spec.shm_size}"]
    return oci


_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def check_sysctls(spec: ContainerSpec) -> None:
    """Docker's (runc's) rule: only sysctls of the container's own namespaces — IPC
    (``kernel.msg*``, ``kernel.sem``, ``kernel.shm*``, ``fs.mqueue.*``) unless it shares
    the host's or another's IPC, ``net.*`` unless it shares a network namespace;
    anything else would change the host's kernel."""
    for key, _value in spec.sysctls:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if spec.ipc_mode and spec.ipc_mode != "private" and spec.ipc_mode != "shareable":
                raise InvalidArgument(f"sysctl {key!r} not allowed with ipc {spec.ipc_mode}")
        elif key.startswith("net."):
            if spec.network_mode == "host" or spec.network_mode.startswith("container:"):
                raise InvalidArgument(f"sysctl {key!r} not allowed with network "
                                      f"{spec.network_mode}")
        else:
            raise InvalidArgument(f"sysctl {key!r} is not allowed (not namespaced: it "
                                  "would change the host)")


def _user_namespace(linux: dict[str, Any], spec: ContainerSpec, idmap: IdMap) -> None:
    """A remapped root's container: its own user namespace (a RUN step on the host's
    network too: it joins that network namespace, and administers nothing in it)."""
    check_remappable(spec)
    linux["namespaces"].append({"type": "user"})
    linux.update(idmap.oci())


def check_remappable(spec: ContainerSpec) -> None:
    """dockerd's refusals, on a remapped root, of what only the host's root may have."""
    if spec.privileged:
        raise InvalidArgument("privileged mode is incompatible with user namespaces.  You "
                              "must run the container in the host namespace when running "
                              "privileged mode")
    if spec.network_mode == "host" and spec.image:
        raise InvalidArgument("cannot share the host's network namespace when user "
                              "namespaces are enabled")


def user_mounts(spec: ContainerSpec, volume_dirs: dict[str, str]) -> list[dict[str, Any]]:
    """-v/--mount as OCI mounts; volumes are bound from their data directory."""
    mounts = []
    for mount in spec.mounts:
        if mount.type == "tmpfs":
            options = ["nosuid", "nodev"] + [o for o in mount.options.split(",") if o]
            mounts.append({"destination": mount.target, "type": "tmpfs", "source": "tmpfs",
                           "options": options + (["ro"] if mount.readonly else [])})
            continue
        source = volume_dirs[mount.source] if mount.type == "volume" else mount.source
        mounts.append({"destination": mount.target, "type": "bind", "source": source,
                       "options": ["rbind", "rprivate"] + (["ro"] if mount.readonly else [])})
    return mounts


def check_blkio(spec: ContainerSpec) -> None:
    """The daemon's own check of ``--blkio-weight`` (moby's words); the CLI checks the
    per-device weights as it parses them."""
    if spec.blkio_weight and not 10 <= spec.blkio_weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")


def host_block_device(path: str) -> tuple[int, int]:
    """major, minor of the block device node at ``path`` on the host (symlinks such as
    /dev/disk/by-id/… followed, as moby's stat(2) does)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidArgument(f"stat {path}: {reason[:1].lower()}{reason[1:]}") from exc
    if not stat.S_ISBLK(info.st_mode):
        raise InvalidArgument(f"{path} is not a block device: a block I/O limit needs one")
    return os.major(info.st_rdev), os.minor(info.st_rdev)


_THROTTLES = (("device_read_bps", "throttleReadBpsDevice"),
              ("device_write_bps", "throttleWriteBpsDevice"),
              ("device_read_iops", "throttleReadIOPSDevice"),
              ("device_write_iops", "throttleWriteIOPSDevice"))


def _block_io(spec: ContainerSpec,
              device_numbers: Callable[[str], tuple[int, int]]) -> dict[str, Any]:
    check_blkio(spec)

    def entry(path: str, key: str, value: int) -> dict[str, int]:
        major, minor = device_numbers(path)
        return {"major": major, "minor": minor, key: value}

    block_io: dict[str, Any] = {}
    if spec.blkio_weight:
        block_io["weight"] = spec.blkio_weight
    if spec.blkio_weight_device:
        block_io["weightDevice"] = [entry(d.path, "weight", d.weight)
                                    for d in spec.blkio_weight_device]
    for field, key in _THROTTLES:
        throttles: tuple[BlkioThrottleDevice, ...] = getattr(spec, field)
        if throttles:
            block_io[key] = [entry(t.path, "rate", t.rate) for t in throttles]
    return block_io


def _resources(spec: ContainerSpec,
               device_numbers: Callable[[str], tuple[int, int]]) -> dict[str, Any]:
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    memory: dict[str, Any] = {}
    if spec.memory:
        memory["limit"] = spec.memory
        memory["swap"] = spec.memory_swap if spec.memory_swap else spec.memory * 2
    if spec.memory_reservation:
        memory["reservation"] = spec.memory_reservation
    if spec.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    if spec.nano_cpus:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = spec.nano_cpus * CPU_PERIOD // 1_000_000_000
    if spec.cpu_shares:
        cpu["shares"] = spec.cpu_shares
    if cpu:
        resources["cpu"] = cpu
    if spec.pids_limit:
        resources["pids"] = {"limit": spec.pids_limit}
    block_io = _block_io(spec, device_numbers)
    if block_io:
        resources["blockIO"] = block_io
    return resources


# made by the runtime in every container (or by its mounts): not listed again
_RUNTIME_DEVICES = {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx"}
_SKIPPED_DEV_DIRS = {"pts", "shm", "mqueue", ".lxc", ".lxd-mounts"}


def device_nodes(items: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``--device``/compose ``devices``: ``HOST[:CONTAINER[:PERMS]]`` (PERMS of r, w, m;
    default rwm) — the host's node made in the container, and the devices cgroup rule
    that lets it be used; a path that is not a device node is refused."""
    nodes, rules = [], []
    for item in items:
        parts = item.split(":")
        host = parts[0]
        inside = parts[1] if len(parts) > 1 and parts[1] else host
        perms = parts[2] if len(parts) > 2 else "rwm"
        if len(parts) == 2 and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
            inside, perms = host, parts[1]
        if len(parts) > 3 or not perms or not set(perms) <= set("rwm") or \
                not inside.startswith("/"):
            raise InvalidArgument(f"invalid device specification: {item}")
        try:
            st = os.stat(host)
        except OSError as exc:
            raise InvalidArgument(f"error gathering device information while adding custom "
                                  f"device {host!r}: {exc.strerror}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidArgument(f"error gathering device information while adding custom "
                                  f"device {host!r}: not a device node")
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        nodes.append({"path": inside, "type": kind, "major": major, "minor": minor,
                      "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                      "gid": st.st_gid})
        rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                      "access": perms})
    return nodes, rules


def host_devices() -> list[dict[str, Any]]:
    """``--privileged``: every device node of the host's /dev, as moby's HostDevices
    (the devices cgroup already allows all of them)."""
    found: list[dict[str, Any]] = []
    for directory, dirs, files in os.walk("/dev"):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DEV_DIRS)
        for name in sorted(files):
            path = os.path.join(directory, name)
            if directory == "/dev" and name in _RUNTIME_DEVICES:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                continue
            found.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                          "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                          "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                          "gid": st.st_gid})
    return found


def _security(oci: dict[str, Any], spec: ContainerSpec, caps: list[str],
              seccomp_json: str | None) -> None:
    linux = oci["linux"]
    if spec.privileged:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
        return
    if spec.seccomp_profile == "unconfined":
        return
    if seccomp_json is not None:
        try:
            linux["seccomp"] = json.loads(seccomp_json)
        except ValueError as exc:
            raise InvalidArgument(f"--security-opt seccomp: not valid JSON: {exc}") from exc
        return
    linux["seccomp"] = default_profile(tuple(caps))


__all__ = ["ExecutableNotFound", "UserIds", "build", "capabilities", "check_blkio",
           "host_block_device", "merge_env", "process_args", "resolve_user"]
