"""Container operations beyond the lifecycle: pause, rename, top, exec, update, stats,
filesystem changes (diff, commit, export, cp) and prune.

Filesystem work on a stopped container mounts its rootfs for the duration
(``mounted``), so the same code serves running and stopped containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dockyard.engine.containers import ContainerService
from dockyard.engine.names import valid
from dockyard.engine.records import ContainerRecord
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.runtime import operations

if TYPE_CHECKING:
    import tarfile


class ContainerOps:
    def __init__(self, service: ContainerService) -> None:
        self.service = service

    def _running(self, ref: str) -> ContainerRecord:
        record = self.service.get(ref)
        if record.state not in ("running", "paused"):
            raise Conflict(f"Container {record.id} is not running")
        return record

    # --- process-level -----------------------------------------------------------
    def pause(self, ref: str) -> None:
        record = self._running(ref)
        operations.pause(self.service.layout.runtime_root, record.id)

    def unpause(self, ref: str) -> None:
        record = self._running(ref)
        operations.resume(self.service.layout.runtime_root, record.id)

    def is_paused(self, record: ContainerRecord) -> bool:
        with contextlib.suppress(Exception):
            state = operations.get_state(self.service.layout.runtime_root, record.id)
            return state["status"] == "paused"
        return False

    def rename(self, ref: str, new_name: str) -> None:
        record = self.service.get(ref)
        new_name = new_name.lstrip("/")
        if not valid(new_name):
            raise InvalidArgument(f"Invalid container name ({new_name})")
        if self.service.store.db.query("SELECT 1 FROM containers WHERE name=?", (new_name,)):
            raise Conflict(f'Error when allocating new name: The container name "/{new_name}" '
                           "is already in use")
        self.service.store.update(record.id, name=new_name)

    def top(self, ref: str, ps_args: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
        record = self._running(ref)
        pids = operations.pids(self.service.layout.runtime_root, record.id)
        out = subprocess.run(["ps", *(ps_args or ("-ef",))], capture_output=True, text=True,
                             check=False).stdout.splitlines()
        if not out:
            return [], []
        titles = out[0].split()
        column = titles.index("PID")
        rows = []
        for line in out[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
                rows.append(fields)
        return titles, rows

    def exec_argv(self, ref: str, command: tuple[str, ...], *, env: tuple[str, ...] = (),
                  user: str | None = None, workdir: str | None = None, tty: bool = False,
                  detach: bool = False, log: str | None = None,
                  console_socket: str | None = None,
                  console_size: tuple[int, int] | None = None,
                  process_file: str | None = None) -> list[str]:
        """The runtime command that runs ``command`` in the container (the CLI runs it
        with this terminal's stdin/stdout/stderr); its errors also go, as JSON lines,
        to ``log``, for ``exec_failure``.  With ``tty`` and ``console_socket`` the
        terminal's master end is sent to that socket (the API server's exec).

        ``console_size`` (rows, columns): the terminal has that size before the command
        runs, as ``docker exec -it`` asks in its start request.  A resize sent after
        the start races the command (a quick ``stty size`` read 0 0); the runtime sets
        it only from a whole process (runc's ``--process``, as containerd drives runc),
        written to ``process_file``."""
        record = self._exec_target(ref)
        if not command:
            raise InvalidArgument("exec: no command given")
        argv = [*self.service.runtime_argv(), "--root", str(self.service.layout.runtime_root),
                *(["--log", log, "--log-format", "json"] if log else []), "exec"]
        if tty and console_size and process_file:
            self._write_process(record, process_file, command, env=env, user=user,
                                workdir=workdir, console_size=console_size)
            argv += ["--process", process_file]
            if console_socket:
                argv += ["--console-socket", console_socket]
            return [*argv, *(["--detach"] if detach else []), record.id]
        for item in env:
            argv += ["--env", item]
        if workdir:
            argv += ["--cwd", workdir]
        if user:
            argv += ["--user", self._numeric_user(record, user)]
        if tty:
            argv.append("--tty")
        if tty and console_socket:
            argv += ["--console-socket", console_socket]
        if detach:
            argv.append("--detach")
        return [*argv, record.id, *command]

    def _write_process(self, record: ContainerRecord, path: str, command: tuple[str, ...], *,
                       env: tuple[str, ...], user: str | None, workdir: str | None,
                       console_size: tuple[int, int]) -> None:
        """The container's own process with what the exec flags would change (runc's
        rule: the arguments replaced, the environment appended to), a terminal of
        ``console_size``."""
        config = json.loads((self.service.bundle(record.id) / "config.json").read_text())
        process = dict(config["process"])
        process.update(args=list(command), env=[*process.get("env", []), *env],
                       terminal=True,
                       consoleSize={"height": console_size[0], "width": console_size[1]})
        if workdir:
            process["cwd"] = workdir
        if user:
            uid, _, gid = self._numeric_user(record, user).partition(":")
            process["user"] = {"uid": int(uid), "gid": int(gid)}
        with open(path, "w") as handle:
            json.dump(process, handle)

    def _exec_target(self, ref: str) -> ContainerRecord:
        """A container exec can join: running, not frozen (an exec would hang in the
        frozen cgroup), not between two runs (no process to join); Docker's wording."""
        record = self.service.get(ref)
        if record.state == "restarting":
            raise Conflict(f"Container {record.id} is restarting, wait until the container "
                           "is running")
        if record.state not in ("running", "paused"):
            raise Conflict(f"Container {record.id} is not running")
        if self.is_paused(record):
            raise Conflict(f"Container {record.id} is paused, unpause the container before "
                           "exec")
        return record

    @staticmethod
    def exec_failure(log: str) -> int | None:
        """Docker's exit code for an exec the runtime could not start, from its log: 127
        when the command is not found, 126 when it cannot be run; None otherwise."""
        import re

        try:
            with open(log) as handle:
                lines = handle.read().splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = str(entry.get("msg", "")) if isinstance(entry, dict) else ""
            if re.match(r'exec: ".*": executable file not found', message):
                return 127
            if re.match(r'exec: ".*": permission denied', message):
                return 126
        return None

    def _numeric_user(self, record: ContainerRecord, user: str) -> str:
        from dockyard.images.users import resolve_user_in

        rootfs = self.service.bundle(record.id) / "rootfs"
        ids = resolve_user_in(rootfs, user)
        return f"{ids.uid}:{ids.gid}"

    def update(self, ref: str, *, memory: int | None = None, pids_limit: int | None = None,
               nano_cpus: int | None = None, cpu_shares: int | None = None,
               memory_reservation: int | None = None) -> None:
        from dockyard.engine.containers import check_spec_ranges
        from dockyard.engine.spec import ContainerSpec

        record = self.service.get(ref)
        old = record.spec
        memory_reservation = memory_reservation or None  # 0: unchanged, as Docker's
        spec = old._replace(
            memory=memory if memory is not None else old.memory,
            pids_limit=pids_limit if pids_limit is not None else old.pids_limit,
            nano_cpus=nano_cpus if nano_cpus is not None else old.nano_cpus,
            cpu_shares=cpu_shares if cpu_shares is not None else old.cpu_shares,
            memory_reservation=memory_reservation if memory_reservation is not None
            else old.memory_reservation)
        # what this update changes, as dockerd checks it (the new limit against the kept
        # reservation too); an old record's other fields are not judged again
        touched = memory is not None or memory_reservation is not None
        check_spec_ranges(ContainerSpec(
            image=old.image, nano_cpus=nano_cpus, memory=spec.memory if touched else None,
            memory_reservation=spec.memory_reservation if touched else None))
        if record.state == "running":
            from dockyard.engine.ocispec import CPU_PERIOD

            argv = [*self.service.runtime_argv(), "--root",
                    str(self.service.layout.runtime_root), "update"]
            if memory is not None:
                argv += ["--memory", str(memory), "--memory-swap", str(memory * 2)]
            if memory_reservation is not None:
                argv += ["--memory-reservation", str(memory_reservation)]
            if pids_limit is not None:
                argv += ["--pids-limit", str(pids_limit)]
            if nano_cpus is not None:
                argv += ["--cpu-period", str(CPU_PERIOD), "--cpu-quota",
                         str(nano_cpus * CPU_PERIOD // 1_000_000_000)]
            if cpu_shares is not None:
                argv += ["--cpu-shares", str(cpu_shares)]
            result = subprocess.run([*argv, record.id], capture_output=True, text=True,
                                    check=False)
            if result.returncode != 0:
                raise InvalidArgument(f"update: {result.stderr.strip()}")
        from dockyard.engine.records import spec_to_json

        self.service.store.update(record.id, spec=spec_to_json(spec))

    def stats(self, ref: str) -> dict[str, Any]:
        record = self._running(ref)
        config = json.loads((self.service.bundle(record.id) / "config.json").read_text())
        cgroup = config["linux"]["cgroupsPath"].lstrip("/")
        base = Path("/sys/fs/cgroup")
        usage = _int(base / "memory" / cgroup / "memory.usage_in_bytes")
        limit = min(_int(base / "memory" / cgroup / "memory.limit_in_bytes"), _host_memory())
        cpu_ns = _int(base / "cpuacct" / cgroup / "cpuacct.usage")
        pids = _int(base / "pids" / cgroup / "pids.current")
        return {"id": record.id, "name": record.name, "memory_usage": usage,
                "memory_limit": limit, "cpu_ns": cpu_ns, "pids": pids}

    # --- filesystem -----------------------------------------------------------------
    @contextlib.contextmanager
    def mounted(self, record: ContainerRecord) -> Iterator[Path]:
        from dockyard.snapshots.mount import mount_all, unmount

        rootfs = self.service.bundle(record.id) / "rootfs"
        if os.path.ismount(rootfs):
            yield rootfs
            return
        mount_all(self.service.images.snapshotter.mounts(
            record.id, volatile=record.spec.auto_remove), str(rootfs))
        try:
            yield rootfs
        finally:
            unmount(str(rootfs))

    def diff(self, ref: str) -> list[tuple[str, str]]:
        """Docker's ``diff``: (kind, path) with kind A(dded), C(hanged), D(eleted).
        The upper directory is walked by descriptor (a container made it)."""
        from dockyard.fs.inroot import Root
        from dockyard.fs.tree import walk
        from dockyard.snapshots.diff import opaque_at

        record = self.service.get(ref)
        upper = self.service.images.snapshotter.upper_dir(record.id)
        parent = self._parent(record)
        lowers = self.service.images.snapshotter.lower_dirs(parent) if parent else []
        changes: list[tuple[str, str]] = []
        with Root(upper, what="upper directory") as root:
            for entry in walk(root.fd):
                inner = "/" + entry.relative
                st = entry.stat
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    changes.append(("D", inner))
                elif entry.is_dir and opaque_at(entry.dir_fd, entry.name):
                    changes.append(("A", inner))
                else:
                    changes.append(("C" if _in_lowers(lowers, entry.relative) else "A",
                                    inner))
        return sorted(changes, key=lambda c: c[1])

    def _parent(self, record: ContainerRecord) -> str | None:
        rows = self.service.images.snapshotter.db.query(
            "SELECT parent FROM active WHERE key=?", (record.id,))
        return rows[0][0] if rows else None

    def commit(self, ref: str, target: str | None, *, message: str = "",
               author: str = "", changes: dict[str, Any] | None = None) -> str:
        """A new image: the container's image plus its upper dir as one more layer."""
        import tempfile

        from dockyard.images.imagefile import Layer, now_iso, write_image
        from dockyard.oci import mediatypes as mt
        from dockyard.oci import reference
        from dockyard.snapshots.diff import write_diff
        from dockyard.snapshots.unpack import check_layer

        record = self.service.get(ref)
        images = self.service.images
        image = images.index.get(record.manifest_digest)
        if image is None:
            raise NotFound(f"No such image: {record.image}")
        config = images.config(image)
        manifest = images.manifest(image)
        with tempfile.TemporaryFile(dir=images.content.ingest_dir) as tmp:
            diff_id = write_diff(str(images.snapshotter.upper_dir(record.id)), tmp,
                                 images.snapshotter.idmap)
            tmp.seek(0)
            check_layer(tmp)  # the door: refuse now what run would refuse later
            tmp.seek(0)
            digest = images.content.write_stream(tmp, diff_id)
        layers = [Layer(d.digest, d.media_type, d.size, i) for d, i in
                  zip(manifest.layers, config["rootfs"]["diff_ids"], strict=True)]
        layers.append(Layer(digest, mt.OCI_LAYER, images.content.size(digest), diff_id))
        created = now_iso()
        new_config = dict(config)
        new_config["created"] = created
        new_config["config"] = {**(config.get("config") or {}), **(changes or {})}
        if author:
            new_config["author"] = author
        new_config["rootfs"] = {"type": "layers",
                                "diff_ids": [*config["rootfs"]["diff_ids"], diff_id]}
        new_config["history"] = [*(config.get("history") or []),
                                 {"created": created, "created_by": "dockyard commit",
                                  "comment": message}]
        names = [str(reference.parse(target))] if target else []
        manifest_digest = write_image(images.content, images.index, layers, new_config, names)
        new = images.index.get(manifest_digest)
        assert new is not None
        return new.config_digest

    def export(self, ref: str, out: IO[bytes]) -> None:
        """``docker export``: the container's files, read by descriptor, with Docker's
        init layer merged in (``engine.initlayer``: ``/.dockerenv``, ``/dev/console``,
        ``/dev/pts``, ``/dev/shm``, ``/etc/mtab``, empty etc files of mode 0755, as
        headers), in the order of a sorted depth-first walk, as Docker's."""
        import datetime
        import tarfile

        from dockyard.engine import initlayer
        from dockyard.fs.inroot import Root
        from dockyard.fs.tartree import TarWriter
        from dockyard.fs.tree import walk

        record = self.service.get(ref)
        try:
            mtime = int(datetime.datetime.fromisoformat(record.created).timestamp())
        except ValueError:
            mtime = 0
        pending = initlayer.entries(mtime)
        with self.mounted(record) as rootfs, Root(rootfs, what="container") as root, \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            writer = TarWriter(archive, self._to_container_ids())
            for entry in walk(root.fd):
                key = initlayer.key_of(entry.relative)
                while pending and pending[0].key < key:
                    archive.addfile(pending.pop(0).info)
                if pending and pending[0].key == key:
                    init = pending.pop(0)
                    if not entry.is_dir:  # moby unlinks what is there; a directory stays
                        archive.addfile(init.info)
                        continue
                writer.add(entry.dir_fd, entry.name, entry.relative, entry.stat)
            for init in pending:
                archive.addfile(init.info)

    def _to_container_ids(self) -> Callable[[tarfile.TarInfo], None] | None:
        """A remapped root's archives carry the container's ids, not the host's."""
        idmap = self.service.idmap
        return idmap.header_to_container if idmap is not None else None

    def copy_out(self, ref: str, path: str, out: IO[bytes], *,
                 arcname: str | None = None) -> None:
        """``cp CONTAINER:PATH -``: a tar of PATH from inside the container, its top
        entry named ``arcname`` (PATH's base name by default).

        PATH is resolved inside the container's root in one step and then read by
        descriptor, so a running container swapping a directory for a symlink can
        not make it read a host file."""
        from dockyard.fs.inroot import Root
        from dockyard.fs.tartree import write_entry_tar

        record = self.service.get(ref)
        base = posixpath.basename(posixpath.normpath("/" + path)) or "."
        missing = NotFound(f"Could not find the file {path} in container {ref}")
        with self.mounted(record) as rootfs, Root(rootfs, what="container") as root:
            try:
                parent_fd, last = root.parent(path) if base != "." else (os.dup(root.fd), ".")
            except (FileNotFoundError, NotADirectoryError, InvalidArgument):
                raise missing from None
            try:
                write_entry_tar(parent_fd, last, out, arcname=arcname or base,
                                normalise=self._to_container_ids())
            except (FileNotFoundError, NotADirectoryError):
                raise missing from None
            finally:
                os.close(parent_fd)

    def stat_path(self, ref: str, path: str) -> os.stat_result | None:
        """What ``path`` is inside the container (symlinks followed in its root), or
        None when it does not exist (Docker's HEAD /containers/ID/archive)."""
        from dockyard.fs.inroot import Root

        record = self.service.get(ref)
        with self.mounted(record) as rootfs, Root(rootfs, what="container") as root:
            try:
                fd = root.open(path, os.O_PATH)
            except (FileNotFoundError, NotADirectoryError):
                return None
            try:
                return os.fstat(fd)
            finally:
                os.close(fd)

    def copy_in(self, ref: str, stream: IO[bytes], dest: str, *,
                owner: tuple[int, int] | None = (0, 0)) -> None:
        """``cp - CONTAINER:DIR``: extract a tar into DIR inside the container.

        Every member is placed through a descriptor resolved inside the container's
        root (symlinks followed as the container sees them, never out of it); names
        are literal (``.wh.X`` is a file, not a deletion); a directory and a
        non-directory never replace each other (Docker's rule for ``cp``).  Files
        are owned by the container's root unless ``owner`` is None (``cp -a``)."""
        from dockyard.fs.inroot import Root
        from dockyard.snapshots.unpack import TarRules, extract_tar

        record = self.service.get(ref)
        with self.mounted(record) as rootfs, Root(rootfs, what="container") as root:
            try:
                target = root.open(dest, os.O_PATH | os.O_DIRECTORY)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"Could not find the directory {dest} in container "
                               f"{ref}") from None
            os.close(target)
            extract_tar(stream, root, dest, TarRules(whiteouts=False, follow=True,
                                                     overwrite=False, owner=owner,
                                                     what="cp", idmap=self.service.idmap))

    def prune(self) -> list[str]:
        removed = []
        for record in self.service.list(all_containers=True):
            if record.state in ("exited", "created", "dead"):
                self.service.cleanup(record.id)
                removed.append(record.id)
        return removed


def _int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _host_memory() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _in_lowers(lowers: list[str], relative: str) -> bool:
    from dockyard.fs.inroot import lexists_beneath

    return any(lexists_beneath(lower, relative) for lower in lowers)
