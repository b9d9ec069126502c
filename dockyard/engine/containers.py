"""The container service: create, start, stop, kill, remove, inspect, logs.

A container's files live in ``<root>/containers/<id>/`` (the OCI bundle, its
rootfs mount point, the json-file log); its writable layer is a snapshot keyed by
the container id; its process is owned by a supervisor (``supervise.monitor``),
started per container in its own session so the container outlives the CLI.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import trace
from dockyard.engine import names
from dockyard.engine.attach_socket import Frames
from dockyard.engine.attach_socket import connect as connect_attach
from dockyard.engine.records import ACTIVE_STATES, ContainerRecord, ContainerStore
from dockyard.engine.spec import (
    ContainerSpec,
    Healthcheck,
    MountSpec,
    active_healthcheck,
    merged_healthcheck,
)
from dockyard.errors import (
    Conflict,
    ContainerNotFound,
    DockyardError,
    InternalError,
    InvalidArgument,
)
from dockyard.stdcopy import DONE, EXIT_STREAM, HOOK_STREAM, TAKEN
from dockyard.store.layout import Layout
from dockyard.supervise import process as processes
from dockyard.supervise.logfile import now_iso

if TYPE_CHECKING:
    from dockyard.engine.events import EventLog
    from dockyard.engine.images import ImageService
    from dockyard.engine.networks import NetworkService
    from dockyard.store.idmap import IdMap
    from dockyard.volumes.store import VolumeStore

# The engine's choice of runtime driver for supervisors: the runtime library in-process.
BUILTIN_DRIVER = "dockyard.runtime.driver"
EXIT_HOOK_MODULE = "dockyard.engine.exit_hook"
EXIT_HOOK_TAG = "@python"  # supervise.monitor.PYTHON_HOOK
DIE_EVENT_MARKER = "die-event"  # in a container's folder: its exit's event went out
# in a container's folder: ``rm -f`` asked for its removal, which its supervisor's exit
# hook carries out (its text: "volumes" when anonymous volumes go too); a start removes it
REMOVE_MARKER = "remove-requested"
REMOVAL_WAIT = 60.0  # seconds ``rm -f`` waits for the exit hook before it removes itself


def supervised(record: ContainerRecord) -> bool:
    """The container's supervisor — the very process recorded — still runs."""
    return processes.is_alive(record.supervisor_pid, record.supervisor_start)


def init_alive(record: ContainerRecord) -> bool:
    return processes.is_alive(record.pid, record.pid_start)


def check_nano_cpus(nano_cpus: int | None) -> None:
    """Docker's range for ``--cpus`` (dockerd's verifyPlatformContainerResources)."""
    count = len(os.sched_getaffinity(0))
    if nano_cpus is not None and (nano_cpus < 0 or nano_cpus > count * 1_000_000_000):
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {count}.00, as there are only "
                              f"{count} CPUs available")


def check_spec_ranges(spec: ContainerSpec) -> None:
    """What dockerd refuses at create, in its words, whichever front end made the spec:
    the CPU range, a memory reservation below 6 MB or above the limit, and healthcheck
    durations below 1 ms but for 0, Docker's "the default" (a negative interval would
    run the check back to back)."""
    check_nano_cpus(spec.nano_cpus)
    reservation = spec.memory_reservation
    if reservation:  # (0: unset, as Docker's)
        if reservation < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory reservation allowed is 6MB")
        if spec.memory and spec.memory < reservation:
            raise InvalidArgument("Minimum memory limit can not be less than memory "
                                  "reservation limit, see usage")
    check = spec.healthcheck
    if check is not None:
        for name, seconds in (("Interval", check.interval), ("Timeout", check.timeout),
                              ("StartPeriod", check.start_period),
                              ("StartInterval", check.start_interval)):
            if seconds != 0 and seconds < 0.001:
                raise InvalidArgument(f"{name} in Healthcheck cannot be less than 1ms")
        if check.retries < 0:
            raise InvalidArgument("Retries in Healthcheck cannot be negative")


class ContainerService:
    """``images`` and ``volumes`` are given as builders, called on first use: listing
    and inspecting containers (``ps``) need neither's imports nor their tables."""

    def __init__(self, layout: Layout, store: ContainerStore,
                 images: Callable[[], ImageService], volumes: Callable[[], VolumeStore],
                 networks: Callable[[], NetworkService] | None = None) -> None:
        self.layout = layout
        self.store = store
        self._images = images
        self._volumes = volumes
        self._networks = networks
        self._held: set[str] = set()  # containers whose lock this process holds
        self._attached: dict[str, socket.socket] = {}  # see ``start(attach_here=…)``
        # containers whose supervisor recorded the exit and died before its exit work
        # (runtime state, DNAT rules, unmount, --rm) was done: seen by ``refresh``
        self._lost_exits: set[str] = set()
        # False for a reader that must not act on what it sees (the warm path's
        # warm-up): a dead supervisor is left for the next command to notice
        self.recovers = True

    @functools.cached_property
    def events(self) -> EventLog:
        from dockyard.engine.events import EventLog

        return EventLog(self.layout.root)

    def _event(self, action: str, record: ContainerRecord, **extra: str) -> None:
        self.events.container(action, record.id, record.name, record.image,
                              dict(record.spec.labels), **extra)

    def health_changed(self, container_id: str, status: str) -> None:
        """Docker's ``health_status: STATUS`` event (the supervisor's health hook)."""
        self._event(f"health_status: {status}", self.store.find(container_id))

    def _died(self, record: ContainerRecord) -> None:
        """The ``die`` event of an exit, once: called with the container's lock held,
        by its exit hook or by a removal that came first (``rm`` right after ``wait``
        may take the lock before the hook), whichever is first; a marker in the
        container's folder says it went out (a start removes it)."""
        marker = self.bundle(record.id) / DIE_EVENT_MARKER
        if record.state in ACTIVE_STATES or not record.started_at or marker.exists():
            return
        self._event("die", record, exitCode=str(record.exit_code))
        with contextlib.suppress(OSError):
            marker.touch()

    @functools.cached_property
    def images(self) -> ImageService:
        return self._images()

    @functools.cached_property
    def volumes(self) -> VolumeStore:
        return self._volumes()

    @property
    def networks(self) -> NetworkService:
        """Built on first use: containers without a network never open it."""
        if self._networks is None:
            from dockyard.engine.networks import NetworkService
            from dockyard.store.config import load

            service = NetworkService(self.layout, self.store.db, load(self.layout.root))
            self._networks = lambda: service
        return self._networks()

    # --- paths ---------------------------------------------------------------
    @functools.cached_property
    def containers_dir(self) -> Path:
        return self.layout.root / "containers"

    def bundle(self, container_id: str) -> Path:
        return self.containers_dir / container_id

    def log_path(self, container_id: str) -> Path:
        return self.bundle(container_id) / "container.log"

    # --- lifecycle -------------------------------------------------------------
    @property
    def idmap(self) -> IdMap | None:
        """The root's user namespace mapping (``userns_remap``); None: not remapped."""
        return self.images.snapshotter.idmap

    def create(self, spec: ContainerSpec) -> ContainerRecord:
        check_spec_ranges(spec)
        if self.idmap is not None:
            from dockyard.engine.ocispec import check_remappable

            check_remappable(spec)
        from dockyard.runtime.linux.cgroup_peek import warm_attach_lock

        warm_attach_lock()  # see there: the init's cgroup move, ~50 ms from now, is quick
        image = self.images.get(spec.image)
        trace.mark("image resolved")
        container_id = os.urandom(32).hex()  # not `secrets`: ~5 ms of imports per run
        name = (spec.name or names.generate(lambda n: self._name_taken(n))).lstrip("/")
        if not names.valid(name):
            raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-]'
                                  " are allowed")
        top = self.images.unpack(image)
        trace.mark("layers unpacked")
        spec = spec._replace(mounts=self._resolve_mounts(spec, image),
                             healthcheck=self._kept_healthcheck(spec, image))
        bundle = self.bundle(container_id)
        with contextlib.ExitStack() as held, contextlib.ExitStack() as undo:
            with self._folders_locked(shared=True):  # a folder is never seen unlocked
                bundle.mkdir()
                import shutil

                undo.callback(shutil.rmtree, bundle, True)
                # held until the record exists: `system check` leaves a folder in the
                # making alone
                held.enter_context(self._locked(container_id))
            (bundle / "rootfs").mkdir()
            self.images.snapshotter.prepare(container_id, top)
            undo.callback(self.images.snapshotter.remove, container_id)
            record = ContainerRecord(
                id=container_id, name=name, image=spec.image, image_id=image.config_digest,
                manifest_digest=image.manifest_digest, spec=spec._replace(name=name),
                created=now_iso(), state="created", pid=0, exit_code=0, started_at="",
                finished_at="", restart_count=0, oom_killed=False, error="", supervisor_pid=0,
                stopped_by_user=False)
            record = self.store.add(record, generated_name=not spec.name)
            undo.pop_all()
        trace.mark("created: snapshot and record")
        self._event("create", record)
        return record

    def _resolve_mounts(self, spec: ContainerSpec, image: Any) -> tuple[MountSpec, ...]:
        """Everything a start needs, decided at create: --volumes-from copied, volumes
        created (anonymous ones named), bind sources checked, the image's VOLUMEs added."""
        mounts: list[MountSpec] = []
        for item in spec.volumes_from:
            ref, _, mode = item.partition(":")
            for mount in self.get(ref).spec.mounts:
                if mount.type != "tmpfs":  # (no copy-up: dockerd's CopyData false)
                    mounts.append(mount._replace(readonly=mode == "ro" or (
                        mount.readonly and mode != "rw"), nocopy=mount.type == "volume"))
        mounts += spec.mounts
        resolved = []
        for mount in mounts:
            if not mount.target.startswith("/"):
                raise InvalidArgument(f"invalid mount config: target {mount.target!r} must be "
                                      "an absolute path")
            if mount.type == "volume":
                volume = self.volumes.create(mount.source or None, anonymous=not mount.source)
                mount = mount._replace(source=volume.name)
            elif mount.type == "bind" and not os.path.exists(mount.source):
                if not mount.create_host_path:
                    raise InvalidArgument(f'invalid mount config for type "bind": bind source '
                                          f"path does not exist: {mount.source}")
                try:
                    os.makedirs(mount.source, exist_ok=True)
                except OSError as exc:  # a dangling symlink, a file in the way, EACCES
                    raise InvalidArgument(f"error while creating mount source path "
                                          f"'{mount.source}': {exc.strerror}") from None
            resolved.append(mount)
        targets = {m.target.rstrip("/") for m in resolved}
        image_volumes = (self.images.config(image).get("config") or {}).get("Volumes") or {}
        for path in sorted(image_volumes):
            if path.rstrip("/") not in targets:
                volume = self.volumes.create(anonymous=True)
                resolved.append(MountSpec("volume", volume.name, path))
        return tuple(resolved)

    def _network(self, record: ContainerRecord) -> dict[str, Any] | None:
        from dockyard.engine import container_network

        if record.spec.network_mode == "none":  # only lo, which the supervisor brings up
            return {"endpoints": [], "ports": [], "dns": {}}
        if not container_network.uses_networks(record.spec.network_mode):
            (self.bundle(record.id) / "network.json").unlink(missing_ok=True)
            return None
        return container_network.attach_config(self, record)

    def network_users(self, network: str) -> list[str]:
        return [e.container_id for e in self.networks.endpoints(network=network)]

    def volume_users(self, name: str) -> list[str]:
        return [r.name for r in self.store.all() if any(
            m.type == "volume" and m.source == name for m in r.spec.mounts)]

    def _prepare_volumes(self, record: ContainerRecord, rootfs: Path) -> dict[str, str]:
        """Mount volumes that are filesystems; fill empty ones from the image (Docker's
        copy-up on first use); return volume name -> host directory."""
        from dockyard.snapshots.mount import Mount, mount_all

        dirs = {}
        for mount in record.spec.mounts:
            if mount.type != "volume":
                continue
            volume = self.volumes.get(mount.source)
            data = self.volumes.data_dir(volume.name)
            plan = volume.mount_plan(data)
            if plan is not None and not os.path.ismount(data):
                mount_all([Mount(*plan)], str(data))
            if not mount.nocopy and not any(data.iterdir()):
                _copy_up(rootfs, mount.target, data)
                if self.idmap is not None and data.stat().st_uid == 0:
                    os.chown(data, *self.idmap.root)  # dockerd: the mapped root owns it
            dirs[volume.name] = str(data)
        return dirs

    def remove_anonymous_volumes(self, record: ContainerRecord) -> None:
        for mount in record.spec.mounts:
            if mount.type != "volume":
                continue
            volume = self.volumes.find(mount.source)
            if volume is not None and volume.anonymous and \
                    self.volume_users(volume.name) == [record.name]:
                self._unmount_volume(volume.name)
                self.volumes.remove(volume.name, [])

    def unmount_volume(self, name: str) -> None:
        """Before a volume is removed: its filesystem (tmpfs, bind device) comes off."""
        self._unmount_volume(name)

    def _unmount_volume(self, name: str) -> None:
        from dockyard.snapshots.mount import unmount

        _unmount_quietly(self.volumes.data_dir(name), unmount)

    def _name_taken(self, name: str) -> bool:
        return bool(self.store.db.query("SELECT 1 FROM containers WHERE name=?", (name,)))

    def get(self, ref: str) -> ContainerRecord:
        return self.recovered(self.refresh(self.store.find(ref)))

    def refresh(self, record: ContainerRecord) -> ContainerRecord:
        """Fold the supervisor's status.json into the record (bookkeeping only: a dead
        supervisor is noticed, and its container re-adopted, by ``recovered``)."""
        status = _read_status(self.bundle(record.id))
        if status.get("exit_pending") and not processes.is_alive(
                int(status.get("monitor_pid") or 0), int(status.get("monitor_start") or 0)):
            self._lost_exits.add(record.id)
        else:
            self._lost_exits.discard(record.id)
        if status:
            keys = ("state", "pid", "exit_code", "started_at", "finished_at", "restart_count",
                    "error", "supervisor_pid", "pid_start", "supervisor_start")
            fields: dict[str, Any] = {k: status[k] for k in keys if k in status}
            fields["oom_killed"] = int(bool(status.get("oom_killed")))
            current: dict[str, Any] = {k: getattr(record, k) for k in fields}
            current["oom_killed"] = int(record.oom_killed)
            if fields != current:
                self.store.update(record.id, **fields)
                record = self.store.find(record.id)
        if record.state == "running" and init_alive(record) and self._paused(record.id):
            return record._replace(state="paused")
        return record

    @staticmethod
    def orphaned(record: ContainerRecord) -> bool:
        """A supervisor was recorded (it clears itself when it finishes) and is gone."""
        return bool(record.supervisor_pid) and not supervised(record)

    def recovered(self, record: ContainerRecord) -> ContainerRecord:
        """Every command notices a dead supervisor: a live container gets a new one
        (re-adopted: logs, exit, restart policy); a dead one gets its exit recorded
        and its restart policy applied — what dockerd does for its containers."""
        if record.id in self._held or not self.recovers:
            return record
        if record.id in self._lost_exits and record.state not in ACTIVE_STATES:
            return self._finish_lost_exit(record)
        if not self.orphaned(record):
            return record
        try:
            with self._locked(record.id):
                record = self.refresh(self.store.find(record.id))
                if not self.orphaned(record):
                    return record
                return self._recover_locked(record)
        except FileNotFoundError:  # removed meanwhile (its directory and lock went)
            return record

    def _finish_lost_exit(self, record: ContainerRecord) -> ContainerRecord:
        """A supervisor killed after it recorded the exit (its waiters are not kept
        waiting for its clean-up) and before that clean-up was done: whoever notices
        does it, as for an orphan (``recovered``)."""
        try:
            with self._locked(record.id):
                record = self.refresh(self.store.find(record.id))
                if record.id in self._lost_exits and record.state not in ACTIVE_STATES:
                    self._finish_exit(record)
                    self._lost_exits.discard(record.id)
            return self.refresh(self.store.find(record.id))
        except (FileNotFoundError, ContainerNotFound):  # (removed: --rm, rm -f handed)
            return record

    def _finish_exit(self, record: ContainerRecord) -> None:
        """A dead supervisor's work after a recorded exit, under the lock: the runtime
        state deleted, its ports' DNAT rules withdrawn, then the exit hook's (``die``
        event, names, unmount, --rm)."""
        self._withdraw_runtime(record.id)
        self._died(record)
        self._after_exit(record)
        self._exit_done(record.id)

    def _withdraw_runtime(self, container_id: str) -> None:
        """A dead supervisor's container: its runtime state deleted (and so a created
        init waiting to be started, and the cgroup), its ports' DNAT rules withdrawn."""
        from dockyard.runtime import operations

        if (self.layout.runtime_root / container_id).exists():
            with contextlib.suppress(Exception):
                operations.delete(self.layout.runtime_root, container_id, force=True)
        self._unpublish_ports(container_id)

    def _exit_done(self, container_id: str) -> None:
        """The exit's work all done (the supervisor's ``exit_pending`` cleared), unless
        the container went with it (--rm).  Under the lock."""
        if self.bundle(container_id).is_dir():
            _write_status(self.bundle(container_id), {"exit_pending": False})

    def _recover_locked(self, record: ContainerRecord) -> ContainerRecord:
        if record.state in ACTIVE_STATES and init_alive(record):
            return self._adopt_locked(record)
        # dead (or never started): a container waiting to restart already has its exit
        code = record.exit_code if record.state == "restarting" else 255
        why = "the container's supervisor died"
        if self._policy_restarts(record, code):
            self._bury(record, why, code, after_exit=False)
            return self._start_locked(self.store.find(record.id), False,
                                      restart_count=record.restart_count + 1)
        return self._bury(record, why, code)

    def _policy_restarts(self, record: ContainerRecord, code: int) -> bool:
        """The restart policy's answer to an exit (the supervisor's ``wants_restart``)."""
        if (self.bundle(record.id) / "stop-requested").exists():
            return False
        policy = record.spec.restart
        if policy.name in ("always", "unless-stopped"):
            return True
        return policy.name == "on-failure" and code != 0 and (
            policy.maximum_retry_count == 0 or
            record.restart_count < policy.maximum_retry_count)

    def _adopt_locked(self, record: ContainerRecord) -> ContainerRecord:
        """A new supervisor for a running container (its stdio pipes reopened through
        /proc, its published ports served again): it records the exit and applies the
        policy.  The exit code is lost with the old supervisor (the init's parent): 255."""
        try:
            network: dict[str, Any] | None = json.loads(
                (self.bundle(record.id) / "network.json").read_text())
        except (OSError, ValueError):
            network = {"endpoints": [], "ports": [], "dns": {}} \
                if record.spec.network_mode == "none" else None
        argv = self._supervisor_argv(record, network, attach=False,
                                     restart_count=record.restart_count,
                                     adopt=f"{record.pid}:{record.pid_start}")
        trace.mark("supervisor requested")
        answer = self._launch_supervisor(argv)
        trace.mark(f"supervisor answered {answer!r}")
        if answer != "ok":
            raise InternalError(f"container {record.id[:12]}: its supervisor died and a new "
                                f"one could not adopt it: {answer or 'it exited'}")
        return self.refresh(self.store.find(record.id))

    def runtime_argv(self) -> list[str]:
        from dockyard.engine.runtime_command import runtime_argv

        return runtime_argv()

    def _write_runtime_config(self, record: ContainerRecord,
                              network: dict[str, Any] | None) -> None:
        from dockyard.engine import ocispec
        from dockyard.snapshots.mount import mount_all

        rootfs = self.bundle(record.id) / "rootfs"
        if not os.path.ismount(rootfs):
            mount_all(self.images.snapshotter.mounts(
                record.id, volatile=record.spec.auto_remove), str(rootfs))
        image_config = {"config": self.images.container_config(record.image_id)}
        spec = record.spec
        user_text = spec.user or (image_config.get("config") or {}).get("User") or "0"
        from dockyard.images.users import resolve_groups_in, resolve_user_in

        user = resolve_user_in(rootfs, user_text)
        if spec.group_add:
            extra = resolve_groups_in(rootfs, spec.group_add)
            user = user._replace(additional_gids=(*user.additional_gids, *(
                g for g in extra if g not in user.additional_gids)))
        seccomp = None
        if spec.seccomp_profile not in (None, "unconfined"):
            seccomp = Path(str(spec.seccomp_profile)).read_text()
        from dockyard.engine import etcfiles

        hostname = spec.hostname or record.id[:12]
        shared = self._shared_netns(spec)
        if shared is not None:
            hostname = shared.spec.hostname or shared.id[:12]
        config = ocispec.build(image_config, spec, rootfs=str(rootfs), hostname=hostname,
                               cgroup_path=self.layout.cgroup_path(record.id[:24]), user=user,
                               seccomp_json=seccomp, init_binary=_init_binary(),
                               volume_dirs=self._prepare_volumes(record, rootfs),
                               idmap=self.idmap)
        if shared is not None:  # --network container:NAME joins that container's netns
            config["linux"]["namespaces"] = [
                n for n in config["linux"]["namespaces"] if n["type"] != "network"] + [
                {"type": "network", "path": f"/proc/{shared.pid}/ns/net"}]
        self._join_namespaces(spec, config)
        targets = {m["destination"] for m in config["mounts"]}
        etc = etcfiles.write(self.bundle(record.id), spec, hostname, network,
                             shared_from=self.bundle(shared.id) if shared else None,
                             owner=self.idmap.root if self.idmap else None)
        config["mounts"] += [m for m in etc if m["destination"] not in targets]
        (self.bundle(record.id) / "config.json").write_text(json.dumps(config))

    def _shared_netns(self, spec: ContainerSpec) -> ContainerRecord | None:
        if not spec.network_mode.startswith("container:"):
            return None
        other = self.get(spec.network_mode.split(":", 1)[1])
        if other.state != "running" or not other.pid:
            raise Conflict(f"cannot join network of a non running container: {other.name}")
        return other

    def _join_namespaces(self, spec: ContainerSpec, config: dict[str, Any]) -> None:
        """``ipc_mode``/``uts_mode``/``pid_mode`` ``container:NAME``: that running
        container's IPC, UTS or PID namespace is joined (a kube pod's containers share
        its infra's); ``pid_mode`` ``host``: no PID namespace of its own."""
        if spec.pid_mode == "host":
            config["linux"]["namespaces"] = [
                n for n in config["linux"]["namespaces"] if n["type"] != "pid"]
        for kind, mode in (("ipc", spec.ipc_mode), ("uts", spec.uts_mode),
                           ("pid", spec.pid_mode)):
            if not mode or not mode.startswith("container:"):
                continue
            other = self.get(mode.split(":", 1)[1])
            if other.state != "running" or not other.pid:
                raise Conflict(f"cannot join {kind} namespace of a non running container: "
                               f"{other.name}")
            config["linux"]["namespaces"] = [
                n for n in config["linux"]["namespaces"] if n["type"] != kind] + [
                {"type": kind, "path": f"/proc/{other.pid}/ns/{kind}"}]

    def _paused(self, container_id: str) -> bool:
        """The running container's freezer says frozen (read as the runtime's state
        records its cgroup; ``operations.get_state`` costs ~4 ms a container)."""
        from dockyard.runtime.linux.cgroup_peek import is_frozen

        return is_frozen(self.layout.runtime_root / container_id)

    def start(self, ref: str, *, attach: bool = False,
              attach_here: str = "") -> ContainerRecord:
        """Start through a new supervisor; with ``attach``, the supervisor creates the
        container and waits (up to 10 s) for a client on its attach socket before
        starting it, so an attached terminal sees the first byte of output.

        ``attach_here``: this process is that client, with this first line (``attach
        exit``): the supervisor's answer comes on a socket pair instead of a pipe,
        and the supervisor keeps its end as that client's connection, the line read
        already, so the container starts as soon as it is created (no connection made
        after the answer: ~1.5 ms of a foreground ``run``).  ``attached`` has it."""
        record = self.get(ref)
        if record.state in ACTIVE_STATES:
            return record
        with self._locked(record.id):
            record = self.refresh(self.store.find(record.id))
            if record.state in ACTIVE_STATES or supervised(record):
                return record  # started meanwhile
            return self._start_locked(record, attach or bool(attach_here),
                                      attach_here=attach_here)

    def attached(self, container_id: str) -> socket.socket | None:
        """The connection a ``start(attach_here=…)`` left attached (once), or None."""
        return self._attached.pop(container_id, None)

    @contextlib.contextmanager
    def _locked(self, container_id: str) -> Iterator[None]:
        """Serialises start against the previous supervisor's exit hook (which unmounts
        the rootfs): without it a restart could lose its rootfs to a late unmount.

        The lock is the container's folder itself (flock on a descriptor of it): it
        stays held until the folder is gone (``cleanup`` removes the record before
        the folder), so ``system check`` never finds a removal half-way unlocked."""
        fd = self._lock_fd(container_id, blocking=True)
        try:
            self._held.add(container_id)
            yield
        finally:
            self._held.discard(container_id)
            os.close(fd)

    def _lock_fd(self, container_id: str, *, blocking: bool) -> int:
        """A descriptor of the container's folder, locked; FileNotFoundError if the
        folder is gone, BlockingIOError if someone holds it and not ``blocking``."""
        import fcntl

        fd = os.open(self.bundle(container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def _folders_locked(self, *, shared: bool) -> Iterator[None]:
        """The folder of all containers, locked: shared by a create from making its
        container's folder until it holds that folder's lock; exclusively by ``check``
        while it looks at folders without a record (one made and not locked yet is
        not there for it to see)."""
        import fcntl

        root = self.layout.root / "containers"
        root.mkdir(exist_ok=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _unless_busy(self, container_id: str) -> Iterator[bool]:
        """The container's lock, if no live process holds it (creating, starting,
        running its exit hook, removing it): True then, held for the block.  False if
        it is held, or if the folder is gone (removed meanwhile, or never there)."""
        if container_id in self._held:
            yield True
            return
        try:
            fd = self._lock_fd(container_id, blocking=False)
        except OSError:
            fd = -1
        if fd < 0:
            yield False
            return
        try:
            self._held.add(container_id)
            yield True
        finally:
            self._held.discard(container_id)
            os.close(fd)

    def _start_locked(self, record: ContainerRecord, attach: bool, *,
                      restart_count: int = 0, attach_here: str = "") -> ContainerRecord:
        bundle = self.bundle(record.id)
        (bundle / "stop-requested").unlink(missing_ok=True)
        (bundle / "status.json").unlink(missing_ok=True)
        (bundle / DIE_EVENT_MARKER).unlink(missing_ok=True)
        (bundle / REMOVE_MARKER).unlink(missing_ok=True)
        try:
            network = self._network(record)
            trace.mark("network planned")
            self._write_runtime_config(record, network)
            trace.mark("rootfs mounted, config written")
            if network is not None:
                from dockyard.engine.container_network import publish_names

                publish_names(self, record, network)
        except BaseException:
            self._unmount_if_idle(record.id)
            raise
        argv = self._supervisor_argv(record, network, attach=attach,
                                     restart_count=restart_count)
        if attach_here:
            argv.append("--attach-on-ready")
        answer = self._launch_supervisor(argv, record.id, attach_here)
        if answer != "ok":
            record = self.wait_exited(record.id)
            if not answer:  # it died without a word (killed): do what it owed
                self._bury(record, "the supervisor exited before the container started")
            raise _start_error(answer or "the supervisor exited before the container started")
        self._event("start", record)
        return self.get(record.id)

    def _supervisor_argv(self, record: ContainerRecord, network: dict[str, Any] | None, *,
                         attach: bool, restart_count: int, adopt: str = "") -> list[str]:
        bundle = self.bundle(record.id)
        self.layout.runtime_root.mkdir(parents=True, exist_ok=True)
        restart = record.spec.restart
        # a call in the supervisor of a module the zygote preloads (see engine.exit_hook)
        exit_hook = [EXIT_HOOK_TAG, EXIT_HOOK_MODULE, "container_exited",
                     str(self.layout.root), record.id]
        # run by the zygote if this supervisor is killed: the container re-adopted now
        on_lost = [EXIT_HOOK_TAG, EXIT_HOOK_MODULE, "supervisor_lost",
                   str(self.layout.root), record.id]
        spec = record.spec
        flags = [flag for flag, wanted in (("--tty", spec.tty), ("--stdin", spec.stdin_open),
                                           ("--wait-attach", attach)) if wanted]
        health = self._health(record)
        argv = ["--id", record.id, "--bundle", str(bundle),
                "--runtime", json.dumps(self.runtime_argv()),
                "--runtime-root", str(self.layout.runtime_root),
                "--driver", BUILTIN_DRIVER,
                "--restart", f"{restart.name}:{restart.maximum_retry_count}",
                "--exit-hook", json.dumps(exit_hook),
                "--on-lost", json.dumps(on_lost),
                "--log-max-size", str(spec.log_max_size),
                "--log-max-file", str(spec.log_max_file),
                "--health", json.dumps(health) if health else "",
                "--health-hook", json.dumps([EXIT_HOOK_TAG, EXIT_HOOK_MODULE, "health_changed",
                                             str(self.layout.root), record.id]
                                            if health else []),
                "--network", json.dumps(network) if network else "",
                "--restart-count", str(restart_count),
                "--pause-at", os.environ.get(processes.PAUSE_ENV, ""), *flags]
        if trace.path():
            argv += ["--trace", trace.path()]
        if self.idmap is not None:  # its pipes belong to the container's mapped root
            argv += ["--stdio-owner", "{}:{}".format(*self.idmap.root)]
        if attach:  # we attach: waited for while we live (see supervise.monitor)
            argv += ["--attach-client", f"{os.getpid()}:{processes.start_time(os.getpid()) or 0}"]
        return [*argv, "--adopt", adopt] if adopt else argv

    def _launch_supervisor(self, argv: list[str], container_id: str = "",
                           attach_here: str = "") -> str:
        """A supervisor from the zygote; its one-line answer ("ok" or the error), or ""
        if it died first: waited for with an eye on the supervisor itself, never on
        the pipe alone (whoever else holds it could keep us waiting for ever).
        ``attach_here``: a socket pair instead, ``attach_here`` sent first, and ours
        kept as the attached client's (``attached``) once the answer is "ok"."""
        from dockyard.supervise.zygote import request

        if attach_here:
            ours, theirs = socket.socketpair()
            ours.sendall(attach_here.encode() + b"\n")
            ready_r, ready_w = ours.fileno(), theirs.detach()
        else:
            ours = None
            ready_r, ready_w = os.pipe()
        answer = ""
        try:
            try:
                self.layout.run_dir.mkdir(parents=True, exist_ok=True)
                supervisor = request(self.layout.run_dir, argv, ready_w, sys.executable,
                                     preload=(BUILTIN_DRIVER, EXIT_HOOK_MODULE))
            finally:
                os.close(ready_w)
            # (the socket's line read up to its end: output frames may follow it)
            answer = processes.read_answer(ready_r, supervisor, past_line=ours is None)
            return answer
        finally:
            if ours is None:
                os.close(ready_r)
            elif answer == "ok":
                stale = self._attached.pop(container_id, None)
                if stale is not None:
                    stale.close()
                self._attached[container_id] = ours
            else:
                ours.close()

    def _bury(self, record: ContainerRecord, error: str, exit_code: int = 255, *,
              after_exit: bool = True) -> ContainerRecord:
        """What a supervisor that died owed its dead (or never started) container: the
        runtime state deleted (with a created init waiting to be started), the exit
        recorded (255 unless known: the status died with the init's parent), its ports'
        DNAT rules withdrawn; then (``after_exit``) the exit hook's work: names
        withdrawn, rootfs unmounted, ``--rm`` removal.  Under the lock."""
        self._withdraw_runtime(record.id)
        fields = {"state": "exited", "pid": 0, "pid_start": 0, "exit_code": exit_code,
                  "finished_at": now_iso(), "error": error, "supervisor_pid": 0,
                  "supervisor_start": 0}
        _write_status(self.bundle(record.id), fields)
        self.store.update(record.id, **fields)
        record = self.store.find(record.id)
        if after_exit:
            self._after_exit(record)
        return record

    def _unpublish_ports(self, container_id: str) -> None:
        try:
            config = json.loads((self.bundle(container_id) / "network.json").read_text())
        except (OSError, ValueError):
            return
        if config.get("ports") and config.get("firewall_root"):
            from dockyard.network import firewall

            with contextlib.suppress(Exception):
                firewall.unpublish_ports(config["firewall_root"], container_id)

    def check(self, *, repair: bool = False) -> list[str]:
        """Problems a crash can leave, for ``system check`` (``--repair`` fixes them):
        records without files, files without records, rootfs mounts of containers
        nothing runs, runtime state of dead containers, runtime state and cgroups of
        containers without a record.

        Only what is provably abandoned: each container is looked at under its lock
        (one a live command holds is at work: left alone), its record read again
        under it, and one whose supervisor still runs (finishing an exit: its hook
        unmounts, takes the runtime state) is left to it."""
        from dockyard.engine import leftovers

        problems = []
        records = {r.id: r for r in self.list(all_containers=True, recover=False)}
        root = self.layout.root / "containers"
        on_disk = {p.name for p in root.iterdir()} if root.is_dir() else set()
        for container_id in sorted(set(records) - on_disk):
            # (a removal takes the record before the folder: this is no removal at work)
            if not self.bundle(container_id).exists() and self._recorded(container_id):
                problems.append(f"container {container_id[:12]}: record without files")
                if repair:
                    self.store.remove(container_id)
        if on_disk - set(records):
            with self._folders_locked(shared=False):
                problems += self._check_unrecorded(sorted(on_disk - set(records)), repair)
        for container_id in records:
            with self._unless_busy(container_id) as free:
                if free:
                    problems += self._check_one(container_id, repair)
        return problems + leftovers.check(self.layout, self._known_prefix, repair=repair)

    def _check_unrecorded(self, names: list[str], repair: bool) -> list[str]:
        problems = []
        for name in names:
            with self._unless_busy(name) as free:
                if free and not self._recorded(name):
                    problems.append(f"container directory {name[:12]}: no record")
                    if repair:
                        self.cleanup(name)
        return problems

    def _recorded(self, container_id: str) -> bool:
        return bool(self.store.db.query("SELECT 1 FROM containers WHERE id=?",
                                        (container_id,)))

    def _known_prefix(self, prefix: str) -> bool:
        """A record, or a container folder, whose id starts with ``prefix``."""
        root = self.layout.root / "containers"
        return bool(self.store.db.query("SELECT 1 FROM containers WHERE id LIKE ?",
                                        (prefix + "%",))) or (root.is_dir() and any(
            name.startswith(prefix) for name in os.listdir(root)))

    def _finishing(self, container_id: str) -> bool:
        """Its supervisor still runs (it recorded the exit and is still deleting the
        runtime state or running the exit hook): not abandoned."""
        status = _read_status(self.bundle(container_id))
        start = int(status.get("monitor_start") or 0)
        return bool(start) and processes.is_alive(int(status.get("monitor_pid") or 0), start)

    def _check_one(self, container_id: str, repair: bool) -> list[str]:
        """One container's problems, under its lock (held by the caller)."""
        from dockyard.runtime import operations

        try:
            record = self.refresh(self.store.find(container_id))
        except ContainerNotFound:
            return []  # removed meanwhile
        problems = []
        orphaned = self.orphaned(record)
        if not orphaned and (supervised(record) or self._finishing(record.id)):
            return []  # its supervisor is at work
        if not orphaned and record.id in self._lost_exits and \
                record.state not in ACTIVE_STATES:  # (any command finishes it, as here)
            if repair:
                self._finish_exit(record)
            return [f"container {record.id[:12]}: supervisor gone before its exit was "
                    "cleaned up"]
        live = orphaned and record.state in ACTIVE_STATES and init_alive(record)
        if orphaned:
            problems.append(f"container {record.id[:12]}: supervisor gone" + (
                ", container running unsupervised" if live else ", exit not recorded"))
        idle = (record.state not in ACTIVE_STATES or orphaned) and not live
        mounted = idle and os.path.ismount(self.bundle(record.id) / "rootfs")
        if mounted:
            problems.append(f"container {record.id[:12]}: rootfs mounted but not running")
        stale = idle and (self.layout.runtime_root / record.id).exists()
        if stale:
            problems.append(f"container {record.id[:12]}: stale runtime state")
        if not repair:
            return problems
        if orphaned:  # re-adopted, or exit recorded (unmounted...) and policy applied
            with contextlib.suppress(ContainerNotFound):
                self._recover_locked(record)
            return problems
        if mounted:
            self._unmount_if_idle(record.id)
        if stale:
            with contextlib.suppress(Exception):
                operations.delete(self.layout.runtime_root, record.id, force=True)
        return problems

    def restore(self) -> list[str]:
        """After a crash or reboot: bring back ``--restart always`` containers (and
        ``unless-stopped`` ones the user did not stop), as dockerd does when it starts.
        Idempotent; run it at boot (``dockyard system restore``)."""
        restarted = []
        for record in self.list(all_containers=True, recover=False):
            if self.orphaned(record):  # re-adopted, or restarted by its policy
                with contextlib.suppress(ContainerNotFound):
                    if self.recovered(record).state in ACTIVE_STATES:
                        restarted.append(record.id)
                continue
            if record.state in ACTIVE_STATES or supervised(record):
                continue
            policy = record.spec.restart.name
            stopped = (self.bundle(record.id) / "stop-requested").exists()
            if policy == "always" or (policy == "unless-stopped" and not stopped):
                self.start(record.id)
                restarted.append(record.id)
        return restarted

    def _kept_healthcheck(self, spec: ContainerSpec, image: Any) -> Healthcheck | None:
        """What the record keeps: the container's own check merged with its image's, as
        dockerd stores it at create, so it holds when the image is gone or retagged."""
        own = spec.healthcheck
        if spec.no_healthcheck or (own is not None and all(own)):
            return own
        config = self.images.config(image).get("config") or {}
        return merged_healthcheck(own, config.get("Healthcheck"))

    def healthcheck(self, record: ContainerRecord) -> Healthcheck | None:
        """The check the container runs: its own merged with its image's (Docker's
        merge: ``spec.merged_healthcheck``); None when it has none, it is ``NONE`` or
        ``--no-healthcheck``."""
        spec = record.spec
        if spec.no_healthcheck:
            return None
        own = spec.healthcheck
        image_check = None
        if own is None or not all(own):  # a field unset: the image may have it
            image_check = self.images.container_config(record.image_id).get("Healthcheck")
        return active_healthcheck(merged_healthcheck(own, image_check))

    def _health(self, record: ContainerRecord) -> dict[str, Any] | None:
        """The supervisor's healthcheck settings (0: Docker's default, there)."""
        check = self.healthcheck(record)
        if check is None:
            return None
        return dict(check._asdict(), test=list(check.test))

    def on_exit(self, ref: str, *, supervisor_done: Callable[[], bool] | None = None,
                ) -> None:
        """The supervisor's exit hook: unmount the rootfs; ``--rm`` removes everything.
        Skipped when the container was started again meanwhile.  ``supervisor_done``:
        waits, once the lock is ours (so ``system check`` never finds the exit's work
        unlocked and undone), for the supervisor's last step beside us, the runtime
        state's delete; False when it died first (or failed): that goes first here, as
        for any dead supervisor's container."""
        try:
            # (the hook is given the full id; a taker of it (``take_exit``) may find
            # the container removed already, by a watchdog that saw its supervisor die)
            container_id = ref if self.bundle(ref).is_dir() else self.store.find(ref).id
            with self._locked(container_id):
                withdraw_runtime = supervisor_done is not None and not supervisor_done()
                if supervisor_done is not None:
                    trace.mark("exit hook: supervisor's part awaited")
                record = self.get(container_id)
                trace.mark("exit hook: record read")
                self._died(record)
                if record.state in ACTIVE_STATES or supervised(record):
                    return
                if withdraw_runtime:
                    self._withdraw_runtime(record.id)
                self._after_exit(record)
                self._exit_done(container_id)
        except (FileNotFoundError, ContainerNotFound):
            return  # removed (rm -f) while we waited for the lock: nothing left to do

    def take_exit(self, container_id: str, frames: Frames) -> bool:
        """The exit hook's work done here, by a client that waits for it anyway (a
        foreground ``run --rm``, an ``rm -f``) and took it over on its connection to
        the supervisor (``supervise.iohub``): the engine and database already open,
        where the hook would be a fork that opens them.  As the hook, the lock is taken
        and the record read while the supervisor deletes the runtime's state; the
        connection is closed once done (the supervisor then runs its own hook if the
        container's folder is still there).  Whether the container is gone."""
        try:
            processes.pause_at("exit-taking", self.bundle(container_id))
            self.on_exit(container_id,
                         supervisor_done=lambda: frames.until(HOOK_STREAM) == DONE)
        finally:
            frames.sock.close()
        return not self.bundle(container_id).is_dir()

    def remove_after_run(self, container_id: str) -> None:
        """``run --rm`` in the foreground, once the container exited: it goes with its
        anonymous volumes, named ones stay (Docker's order: one party removes both).
        That party is its supervisor's exit hook; this waits for the supervisor to be
        done and does the hook's work only if the hook could not (the supervisor died
        first, or never started) — never beside it."""
        while True:
            status = _read_status(self.bundle(container_id))
            _wait_done((int(status.get("monitor_pid") or 0),
                        int(status.get("monitor_start") or 0)), self.bundle(container_id),
                       None)
            try:
                record = self.get(container_id)  # (a dead supervisor's work done here)
            except ContainerNotFound:
                return
            if record.state in ACTIVE_STATES or supervised(record):
                time.sleep(0.05)  # re-adopted or started again: wait for that supervisor
                continue
            with contextlib.suppress(ContainerNotFound, FileNotFoundError):
                self.on_exit(record.id)
            return

    def _after_exit(self, record: ContainerRecord) -> None:
        trace.mark("exit hook: locked")
        self._unmount_if_idle(record.id)
        removal = _removal_requested(self.bundle(record.id))
        if record.spec.auto_remove or removal is not None:
            # Docker: --rm takes anonymous volumes, ``rm -f`` only when asked (-v)
            if record.spec.auto_remove or removal == "volumes":
                self.remove_anonymous_volumes(record)
            self.cleanup(record.id)  # (networks left there)
            return
        self._leave_networks(record.id)

    def _leave_networks(self, container_id: str) -> None:
        from dockyard.engine.container_network import leave_networks

        if (self.bundle(container_id) / "network.json").exists():
            leave_networks(self, container_id)

    def _unmount_if_idle(self, container_id: str) -> None:
        from dockyard.snapshots.mount import unmount

        _unmount_quietly(self.bundle(container_id) / "rootfs", unmount)

    def kill(self, ref: str, sig: int = signal.SIGKILL) -> ContainerRecord:
        """Docker's kill: the signal to the container's init (the recorded, verified
        process: never a pid 0 or a process group).  SIGKILL, the stop signal, or any
        signal when none is configured, also cancels the restart policy; a container
        waiting to restart has no process, so that is all there is to do."""
        record = self.get(ref)
        if record.state not in ACTIVE_STATES:
            raise Conflict(f"Cannot kill container: {ref}: Container {record.id} is not "
                           "running")
        stop_signal = record.spec.stop_signal or self._image_stop_signal(record)
        cancels = sig == signal.SIGKILL or not stop_signal or \
            sig == _signal_number(stop_signal)
        if cancels:
            (self.bundle(record.id) / "stop-requested").touch()
        self._event("kill", record, signal=str(int(sig)))
        delivered = processes.send_signal(record.pid, record.pid_start, sig)
        if not delivered and cancels:
            self._wake_supervisor(record)
            return self.wait_exited(record.id)
        if sig == signal.SIGKILL:
            # as dockerd's kill: after SIGKILL the command returns once the exit is
            # recorded, so a ``ps`` or ``inspect`` right after it sees the container exited
            return self.wait_exited(record.id)
        return record

    def _wake_supervisor(self, record: ContainerRecord) -> None:
        """A supervisor waiting out a restart back-off looks at ``stop-requested`` now."""
        if record.supervisor_start:  # recorded only by supervisors that handle SIGUSR1
            processes.send_signal(record.supervisor_pid, record.supervisor_start,
                                  signal.SIGUSR1)

    def stop(self, ref: str, timeout: int | None = None) -> ContainerRecord:
        record = self.get(ref)
        if record.state not in ACTIVE_STATES:
            return record
        (self.bundle(record.id) / "stop-requested").touch()
        if record.state == "paused":  # a frozen process cannot act on the stop signal
            from dockyard.runtime import operations

            operations.resume(self.layout.runtime_root, record.id)
        sig = _signal_number(record.spec.stop_signal or self._image_stop_signal(record) or
                             "SIGTERM")
        wait = timeout if timeout is not None else (record.spec.stop_timeout or 10)
        if processes.send_signal(record.pid, record.pid_start, sig):
            if not processes.wait_exit(record.pid, record.pid_start, wait):
                self._kill_all(record)
        else:  # waiting to restart: nothing to signal, the restart is cancelled
            self._wake_supervisor(record)
        stopped = self.wait_exited(record.id)
        self._event("stop", record)
        return stopped

    def _image_stop_signal(self, record: ContainerRecord) -> str | None:
        with contextlib.suppress(Exception):
            signal_name = self.images.container_config(record.image_id).get("StopSignal")
            return str(signal_name) if signal_name else None
        return None

    def remove_many(self, refs: Sequence[str], *, force: bool = False,
                    volumes: bool = False) -> list[DockyardError | None]:
        """``rm`` of several, each one's error (None: removed) in order.  With ``force``
        the running ones are all handed to their supervisors and killed first, then
        waited for: their exit hooks remove them side by side, not one after another."""
        handed: dict[str, tuple[str, tuple[int, int]]] = {}
        if force and len(refs) > 1:
            seen: set[str] = set()
            for ref in refs:
                try:
                    record = self.get(ref)
                except DockyardError:
                    continue  # said when its turn comes
                if record.id not in seen and record.state == "running" and \
                        supervised(record):
                    handed[ref] = (record.id, self._hand_over(record, volumes))
                seen.add(record.id)
        results: list[DockyardError | None] = []
        for ref in refs:
            try:
                if ref in handed and self._gone(*handed[ref]):
                    results.append(None)
                    continue
                self.remove(ref, force=force, volumes=volumes)
                results.append(None)
            except DockyardError as exc:
                results.append(exc)
        return results

    def _hand_over(self, record: ContainerRecord, volumes: bool) -> tuple[int, int]:
        """``rm -f`` of a running, supervised container: its supervisor's exit hook is to
        remove it once the exit is recorded (as for ``--rm``: a fork of the zygote, the
        engine's code already loaded, where this command would import the snapshot,
        network and runtime code to do the same); its init is killed (its own PID
        namespace: the rest dies with it).  The supervisor (pid, start) to wait for."""
        from dockyard.store.atomic import atomic_write

        bundle = self.bundle(record.id)
        (bundle / "stop-requested").touch()
        atomic_write(bundle / REMOVE_MARKER, b"volumes" if volumes else b"", durable=False)
        status = _read_status(bundle)
        trace.hand_to(str(bundle))
        pidfd = processes.open_verified(record.pid, record.pid_start)
        if pidfd is not None:  # (None: it died meanwhile, and the hook is on its way)
            try:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            finally:
                os.close(pidfd)
        trace.mark("rm: killed")
        return int(status.get("monitor_pid") or 0), int(status.get("monitor_start") or 0)

    def _removed_by_hand_over(self, record: ContainerRecord, volumes: bool) -> bool:
        """``rm -f`` of a running, supervised container: killed, and removed as its
        exit hook would (``_hand_over``): here, once its supervisor let this process
        take the hook over (``take_exit``), else by the hook, waited for.  Whether it
        is gone (if not, the caller removes it itself)."""
        frames = self._exit_hook_taken(record)
        supervisor = self._hand_over(record, volumes)
        if frames is None:
            return self._gone(record.id, supervisor)
        if frames.until(EXIT_STREAM) is None:  # (no exit heard: the hook's, if any)
            frames.sock.close()
            return self._gone(record.id, supervisor)
        try:
            return self.take_exit(record.id, frames)
        except (DockyardError, OSError):  # (closed: the supervisor's hook does it)
            return self._gone(record.id, supervisor)

    def _exit_hook_taken(self, record: ContainerRecord) -> Frames | None:
        """The container's supervisor asked to let this process do its exit hook's
        work (``supervise.iohub``): the connection on which it said yes, or None."""
        try:
            sock = connect_attach(self.bundle(record.id), "exit hook")
        except OSError:
            return None
        sock.settimeout(REMOVAL_WAIT)
        frames = Frames(sock)
        if frames.until(HOOK_STREAM) != TAKEN:
            sock.close()
            return None
        return frames

    def _gone(self, container_id: str, supervisor: tuple[int, int]) -> bool:
        """Once the supervisor a removal was handed to ended: whether the container is
        gone.  False if not (the supervisor was killed, or its hook failed): the
        caller finishes the removal itself."""
        _wait_done(supervisor, self.bundle(container_id), REMOVAL_WAIT)
        trace.mark("rm: supervisor done")
        try:
            self.get(container_id)  # (a dead supervisor's recovery may remove it here)
            self.store.find(container_id)
        except ContainerNotFound:
            return True
        return False

    def _kill_all(self, record: ContainerRecord) -> None:
        """SIGKILL to every process of the container.  Each container has a PID
        namespace of its own: its init's death takes every other process in it with it
        (the kernel kills them before the init is gone), so a running container needs
        one signal, to the verified init, and no look at its cgroup.  A frozen
        (paused) one is thawed by the runtime's kill, and one waiting to restart has no
        init: its supervisor is woken to see the stop."""
        if record.state == "running":
            pidfd = processes.open_verified(record.pid, record.pid_start)
            if pidfd is not None:
                try:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    select.select([pidfd], [], [], 10)
                finally:
                    os.close(pidfd)
                self._wake_supervisor(record)
                return
        from dockyard.runtime import operations

        with contextlib.suppress(Exception):
            operations.kill(self.layout.runtime_root, record.id, signal.SIGKILL,
                            all_processes=True)
        if processes.send_signal(record.pid, record.pid_start, signal.SIGKILL):
            processes.wait_exit(record.pid, record.pid_start, 10)
        self._wake_supervisor(record)  # in case it waits to restart

    def wait_exited(self, ref: str, timeout: float = 30) -> ContainerRecord:
        """Until the supervisor has recorded the exit (or the record is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(ref)
            if record.state not in ACTIVE_STATES and not supervised(record):
                return record
            if time.monotonic() > deadline:
                raise InternalError(f"container {record.id[:12]} did not finish its exit "
                                    "bookkeeping in time")
            time.sleep(0.005)

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> str:
        record = self.get(ref)
        if record.state in ACTIVE_STATES:
            if not force:
                raise Conflict(f"You cannot remove a running container {record.id}. Stop the "
                               "container before attempting removal or force remove")
            if record.state == "running" and supervised(record) and \
                    self._removed_by_hand_over(record, volumes):
                return record.id
            try:
                (self.bundle(record.id) / "stop-requested").touch()
                record = self.get(record.id)
                if record.state in ACTIVE_STATES:
                    self._kill_all(record)
                self.wait_exited(record.id)
            except (FileNotFoundError, ContainerNotFound):
                # removed meanwhile: the recovery of a supervisor killed with a removal
                # handed to it finishes that removal (whoever noticed the death first)
                return record.id
        if volumes:
            self.remove_anonymous_volumes(record)
        with self._locked(record.id):  # `system check` leaves a removal in progress alone
            self.cleanup(record.id)
        return record.id

    def cleanup(self, container_id: str) -> None:
        """Everything a container leaves: runtime state, mount, snapshot, files, record."""
        from dockyard.network.ipam import Ipam

        with contextlib.suppress(ContainerNotFound):  # its exit told before it goes
            self._died(self.refresh(self.store.find(container_id)))
        self._leave_networks(container_id)
        trace.mark("cleanup: networks left")

        from dockyard.snapshots.mount import unmount

        # the runtime state is usually gone already (the supervisor's driver deletes it)
        if (self.layout.runtime_root / container_id).exists():
            from dockyard.runtime import operations

            with contextlib.suppress(Exception):
                operations.delete(self.layout.runtime_root, container_id, force=True)
        bundle = self.bundle(container_id)
        _unmount_quietly(bundle / "rootfs", unmount)
        trace.mark("cleanup: unmounted")
        snapshotter = self.images.snapshotter
        snapshotter.remove_files(container_id)
        trace.mark("cleanup: snapshot's files removed")
        # the folder is the lock (see _locked): emptied, then the record goes, then the
        # folder, so `system check` meets neither a record nor a folder left unlocked
        for entry in os.listdir(bundle) if bundle.is_dir() else []:
            path = bundle / entry
            if path.is_dir() and not path.is_symlink():
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        gone = None
        with contextlib.suppress(Exception):
            gone = self.store.find(container_id)
        # the rows in one commit (one fsync): the address lease, the snapshot's and
        # the record; once the record is gone, so is the rest
        ipam = Ipam(self.store.db)  # (its migrations are a transaction of their own)
        with self.store.db.transaction("removing a container") as tx:
            ipam.release(container_id, tx=tx)
            snapshotter.forget(container_id, tx)
            self.store.remove(container_id, tx=tx)
        if gone is not None:
            self._event("destroy", gone)
        # marked before the folder goes: its removal answers a waiting ``rm -f`` or
        # ``run --rm`` (``_wait_done``), whose timeline may be printed at once
        trace.mark("cleanup: record removed")
        with contextlib.suppress(OSError):
            bundle.rmdir()

    def list(self, *, all_containers: bool = False, recover: bool = True,
             labels: Mapping[str, str] | None = None) -> list[ContainerRecord]:
        """Refreshed records (``recover``: dead supervisors noticed, see ``recovered``);
        one removed while we list is left out, not an error.  ``labels``: only the
        containers that carry all of them."""
        records = []
        for record in self.store.all(labels):
            try:
                record = self.refresh(record)
                records.append(self.recovered(record) if recover else record)
            except ContainerNotFound:
                continue
        return records if all_containers else [r for r in records
                                               if r.state in ACTIVE_STATES]

    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None,
             since: str | None = None,
             stop: Callable[[], bool] | None = None) -> Iterator[dict[str, str]]:
        from dockyard.engine import container_logs

        return container_logs.read(self, ref, follow=follow, tail=tail, since=since, stop=stop)

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.inspect_record(self.get(ref))

    def inspect_record(self, record: ContainerRecord) -> dict[str, Any]:
        """``inspect`` of a record in hand (``ps`` lists them, then shows each)."""
        from dockyard.engine.inspect import container_json

        doc = container_json(record, self.bundle(record.id), self.images)
        if record.state == "restarting":  # Docker: running, restarting, no process
            doc["State"].update(Status="restarting", Running=True, Restarting=True, Pid=0)
        return doc


def subprocess_run(argv: list[str]) -> None:
    import subprocess

    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InternalError(f"{' '.join(argv[:2])}: {result.stderr.strip()}")


def _init_binary() -> str | None:
    """A static init for --init: Debian's tini-static (also what docker-init is)."""
    for candidate in ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/tini"):
        if os.path.exists(candidate):
            return candidate
    return None


def _unmount_quietly(rootfs: Path, unmount: Any) -> None:
    """The exit hook and ``rm`` may race to unmount; the loser's EINVAL is not news."""
    from dockyard.errors import KernelError

    if os.path.ismount(rootfs):
        with contextlib.suppress(KernelError):
            unmount(str(rootfs))


def _copy_up(rootfs: Path, target: str, data: Path) -> None:
    """Docker's copy-up: what the image has at ``target`` fills an empty volume, owners,
    modes and times kept.  ``target`` is resolved in the container's root in one step
    and both trees are walked and written by descriptor (the image is hostile input)."""
    from dockyard.fs.inroot import Root
    from dockyard.snapshots.unpack import copy_tree

    with Root(rootfs, what="container") as root:
        try:
            top = root.open(target, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return  # nothing there (or not a directory): the volume starts empty
        try:
            copy_tree(top, data, "volume copy-up")
        finally:
            os.close(top)


def _removal_requested(bundle: Path) -> str | None:
    """What ``rm -f`` asked of the exit hook: None (nothing), "" or "volumes"."""
    try:
        return (bundle / REMOVE_MARKER).read_text().strip()
    except OSError:
        return None


def _read_status(bundle: Path) -> dict[str, Any]:
    try:
        with open(os.path.join(bundle, "status.json"), "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_status(bundle: Path, changes: dict[str, Any]) -> None:
    """Only for a container whose supervisor (the status file's writer) is dead."""
    from dockyard.store.atomic import atomic_write

    status = _read_status(bundle)
    status.update(changes)
    with contextlib.suppress(OSError):
        atomic_write(bundle / "status.json", json.dumps(status).encode(), durable=False)


def _signal_number(name: str) -> int:
    from dockyard.runtime.operations import parse_signal

    return parse_signal(name)


def _start_error(message: str) -> Exception:
    from dockyard.errors import ExecutableNotFound, NotExecutable

    if "executable file not found" in message:
        error: Exception = ExecutableNotFound.__new__(ExecutableNotFound)
    elif "permission denied" in message:
        error = NotExecutable.__new__(NotExecutable)
    else:
        return InternalError(message)
    from dockyard.errors import DockyardError

    DockyardError.__init__(error, message)  # type: ignore[arg-type]
    return error


def _wait_done(supervisor: tuple[int, int], bundle: Path, timeout: float | None) -> None:
    """Until the supervisor ``(pid, start)`` has ended or the container's folder is
    removed, whichever comes first: removing the folder is the last thing its exit
    hook does (``cleanup``), and the supervisor's own end comes 2-4 ms later (the
    hook's process, then the supervisor, torn down).  The folder's parent is watched
    (the folder's own IN_DELETE_SELF waits for the last descriptor of it to close),
    with events of other folders passed over."""
    from dockyard.errors import KernelError
    from dockyard.runtime.linux import syscalls as sc

    pidfd = processes.open_verified(*supervisor)
    if pidfd is None:
        return
    watch = -1
    with contextlib.suppress(KernelError):  # (no watch: the supervisor's end alone)
        if getattr(_removals, "inotify", None) is None:
            _removals.inotify = _Inotify()
        sc.inotify_add_watch(_removals.inotify.fd, str(bundle.parent),
                             sc.IN_DELETE | sc.IN_ONLYDIR)
        watch = _removals.inotify.fd
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while watch < 0 or bundle.is_dir():  # (and gone before the watch: done)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([pidfd, *([watch] if watch >= 0 else [])], [], [],
                                        left)
            if pidfd in ready or not ready:
                return
            with contextlib.suppress(BlockingIOError):
                events = sc.inotify_events(os.read(watch, 64 * 1024))
                if any(name == bundle.name.encode() for _wd, _mask, name in events):
                    return
    finally:
        os.close(pidfd)


class _Inotify:
    """An inotify instance, closed only with its thread (or process): closing one
    waits for the kernel's SRCU grace period (4-16 ms measured here), which
    ``_wait_done`` would otherwise add to the command's time."""

    def __init__(self) -> None:
        from dockyard.runtime.linux import syscalls as sc

        self.fd = sc.inotify_init1(sc.IN_CLOEXEC | sc.IN_NONBLOCK)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


_removals = threading.local()  # each thread's _Inotify for ``_wait_done``
