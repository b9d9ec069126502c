"""BuildService: a build request (context, Dockerfile, options, outputs) → an image,
and where asked, that image exported (``-o type=docker|oci|tar|local``).

Front ends (the CLI now, the Docker API's ``/build`` later) build a
``BuildRequest`` and render the reporter's events; everything else is here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from dockyard.build.context import BuildContext
from dockyard.build.executor import BuildEnvironment, Builder, BuildOptions, Reporter
from dockyard.build.model import OWNER_FILE, owner_text
from dockyard.build.plan import parse_plan
from dockyard.build.sandbox import HOSTNAME, StepProcess
from dockyard.errors import InvalidArgument, NotFound, NotImplementedFeature

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.store.idmap import IdMap

OUTPUT_TYPES = ("image", "docker", "oci", "tar", "local")


class Output(NamedTuple):
    type: str
    dest: str


def named_contexts(given: Mapping[str, str], base: str = ".") -> dict[str, str]:
    """``--build-context``/``additional_contexts`` values as the builder takes them: a
    directory made absolute (against ``base``) and checked, ``docker-image://REF``
    kept; any other kind refused by name."""
    out = {}
    for name, value in given.items():
        if value.startswith("docker-image://"):
            out[name] = value
        elif "://" in value or value.startswith(("git@", "service:")):
            raise NotImplementedFeature(f"build context {name}={value}: only a directory or "
                                        "docker-image://REF is supported")
        else:
            path = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
            if not os.path.isdir(path):
                raise NotFound(f"build context {name}: {path} is not a directory")
            out[name] = path
    return out


class BuildRequest(NamedTuple):
    context: str  # a directory, or "-" for stdin (a tar, or a Dockerfile)
    dockerfile: str | None = None  # path (relative to the cwd) or "-"; None: CONTEXT/Dockerfile
    options: BuildOptions = BuildOptions()
    outputs: tuple[Output, ...] = ()


def parse_output(text: str) -> Output:
    """``type=oci,dest=out.tar`` (or the short form: a path means type=local)."""
    if "=" not in text:
        return Output("local", text)
    fields = dict(part.partition("=")[::2] for part in text.split(","))
    kind = fields.get("type", "")
    if kind not in OUTPUT_TYPES:
        raise InvalidArgument(f"--output: unknown type {kind!r} (want one of "
                              f"{', '.join(OUTPUT_TYPES)})")
    dest = fields.get("dest", "")
    if kind != "image" and not dest:
        raise InvalidArgument(f"--output type={kind} needs dest=PATH")
    return Output(kind, dest)


def parse_secret(text: str) -> tuple[str, str]:
    """``id=mysecret,src=/path`` or ``id=mysecret,env=VAR`` → (id, host file).  An env
    secret is written to a private file in memory (/dev/shm, mode 0600) that is removed
    when this process exits."""
    fields = dict(part.partition("=")[::2] for part in text.split(","))
    ident = fields.get("id", "")
    source = fields.get("src") or fields.get("source") or ""
    if not ident:
        raise InvalidArgument(f"--secret {text!r}: id= is required")
    variable = fields.get("env")
    if variable and not source:
        if variable not in os.environ:
            raise InvalidArgument(f"--secret {ident}: environment variable {variable} is not "
                                  "set")
        return ident, _memory_file(os.environ[variable].encode())
    if not source or not os.path.isfile(source):
        raise InvalidArgument(f"--secret {ident}: source file {source!r} not found")
    return ident, os.path.abspath(source)


def _memory_file(data: bytes) -> str:
    import atexit
    import tempfile

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="dockyard-secret-", dir=shm)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    def remove() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    atexit.register(remove)
    return path


def dockerfile_path(request: BuildRequest, context_root: Path) -> Path:
    """Where the Dockerfile of ``request`` is read from (``-f`` relative to the working
    directory first, then to the context; else the context's Dockerfile/Containerfile)."""
    if request.dockerfile:
        path = Path(request.dockerfile)
        if not path.is_absolute() and not path.exists() and request.context != "-":
            path = context_root / request.dockerfile
        return path
    path = context_root / "Dockerfile"
    if not path.exists() and (context_root / "Containerfile").exists():
        path = context_root / "Containerfile"
    return path


class BuildService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def build(self, request: BuildRequest, reporter: Reporter,
              stdin: IO[bytes] | None = None) -> str:
        scratch = self.engine.layout.run_dir / "build"
        scratch.mkdir(parents=True, exist_ok=True)
        dockerfile_text: str | None = None
        if request.context == "-":
            data = (stdin or sys.stdin.buffer).read()
            if _looks_like_tar(data):
                import io

                context = BuildContext.from_tar(io.BytesIO(data), scratch)
            else:
                context = BuildContext.empty(scratch)
                dockerfile_text = data.decode()
        else:
            context = BuildContext.from_directory(Path(request.context))
        try:
            if dockerfile_text is None:
                dockerfile_text = self._dockerfile(request, context, stdin)
            image_id = self._run(context, dockerfile_text, request.options, reporter)
        finally:
            context.close()
        for output in request.outputs:
            self.export(image_id, output)
        return image_id

    def build_tar(self, stream: IO[bytes], dockerfile: str, options: BuildOptions,
                  reporter: Reporter) -> str:
        """A context sent as a tar (the Docker API's ``/build``) with its Dockerfile inside
        at ``dockerfile``, read in the context's own tree (a link cannot lead out)."""
        scratch = self.engine.layout.run_dir / "build"
        scratch.mkdir(parents=True, exist_ok=True)
        context = BuildContext.from_tar(stream, scratch)
        try:
            text = context.read_file(dockerfile or "Dockerfile", what="dockerfile")
            context.use_ignore_file_of(context.root / (dockerfile or "Dockerfile"))
            return self._run(context, text, options, reporter)
        finally:
            context.close()

    def _run(self, context: BuildContext, dockerfile_text: str, options: BuildOptions,
             reporter: Reporter) -> str:
        plan = parse_plan(dockerfile_text)
        return Builder(self._environment(), context, plan, options, reporter).build()

    def _environment(self) -> BuildEnvironment:
        from dockyard.engine.runtime_command import runtime_argv

        engine = self.engine
        layout, idmap = engine.layout, engine.idmap
        return BuildEnvironment(engine.images, engine.db, layout, engine.insecure_registries,
                                runtime_argv(),
                                lambda image, step, rootfs, step_id: step_config(
                                    image, step, rootfs, layout.cgroup_path(f"build-{step_id}"),
                                    idmap=idmap), lambda: engine.admit)

    def _dockerfile(self, request: BuildRequest, context: BuildContext,
                    stdin: IO[bytes] | None) -> str:
        if request.dockerfile == "-":
            return (stdin or sys.stdin.buffer).read().decode()
        path = dockerfile_path(request, context.root)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NotFound(f"failed to read dockerfile: open {path}: no such file or "
                           "directory") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"failed to read dockerfile {path}: {exc}") from exc
        context.use_ignore_file_of(path)
        return text

    # --- exports ------------------------------------------------------------------
    def export(self, image_id: str, output: Output) -> None:
        if output.type == "image":
            return
        images = self.engine.images
        if output.type in ("docker", "oci"):
            with _destination(output.dest) as out:
                images.save([image_id], out, fmt=output.type)
            return
        with self.image_rootfs(image_id) as rootfs:
            if output.type == "tar":
                from dockyard.fs.inroot import Root
                from dockyard.fs.tartree import write_tree_tar

                idmap = self.engine.idmap
                with _destination(output.dest) as out, Root(rootfs, what="image") as root:
                    write_tree_tar(root.fd, out, arcname=".", normalise=(
                        idmap.header_to_container if idmap else None))
                return
            _copy_tree_with_owners(rootfs, Path(output.dest))

    @contextlib.contextmanager
    def image_rootfs(self, image_id: str) -> Iterator[Path]:
        """The image's files mounted read-write on a throw-away snapshot (removed on
        exit); what `-o type=tar|local`, `sbom` and `scan` read."""
        from dockyard.fs.tree import remove_tree
        from dockyard.snapshots.mount import mount_all, unmount

        images = self.engine.images
        record = images.get(image_id)
        key = f"export-{os.urandom(8).hex()}"
        bundle = self.engine.layout.run_dir / "build" / key
        target = bundle / "rootfs"
        target.mkdir(parents=True)
        (bundle / OWNER_FILE).write_text(owner_text())
        try:
            mounts = images.snapshotter.prepare(key, images.unpack(record))
            try:
                mount_all(mounts, str(target))
                try:
                    yield target
                finally:
                    unmount(str(target))
            finally:
                images.snapshotter.remove(key)
        finally:
            remove_tree(bundle, ignore_errors=True)

    def check(self, *, repair: bool = False) -> list[str]:
        """Leftovers of builds that died (killed, host crash): step snapshots, their work
        dirs and mounts whose owning process is gone.  ``repair`` removes them."""
        from dockyard.fs.tree import remove_tree
        from dockyard.snapshots.mount import unmount

        work_root = self.engine.layout.run_dir / "build"
        snapshotter = self.engine.images.snapshotter
        keys = {row[0] for row in snapshotter.db.query(
            "SELECT key FROM active WHERE key LIKE 'build-%' OR key LIKE 'export-%'")}
        if work_root.is_dir():
            keys |= {p.name for p in work_root.iterdir()
                     if p.name.startswith(("build-", "export-"))}
        problems = []
        for key in sorted(keys):
            bundle = work_root / key
            if _owner_alive(bundle):
                continue
            problems.append(f"build step {key}: left behind by a build that is gone")
            if repair:
                if os.path.ismount(bundle / "rootfs"):
                    unmount(str(bundle / "rootfs"))
                snapshotter.remove(key)
                remove_tree(bundle, ignore_errors=True)
        return problems


def _owner_alive(bundle: Path) -> bool:
    from dockyard.supervise.process import is_alive

    try:
        pid, _, start = (bundle / OWNER_FILE).read_text().strip().partition(" ")
        return is_alive(int(pid), int(start or 0))
    except (OSError, ValueError):
        return False


def step_config(image: dict[str, Any], step: StepProcess, rootfs: Path,
                cgroup_path: str, *, idmap: IdMap | None = None) -> dict[str, Any]:
    """The OCI config of a RUN step: the same rules as a container's (Docker's default
    capabilities and seccomp profile), the image's user names, the host's network
    unless the step asked for none, the root's user namespace mapping."""
    from dockyard.engine import ocispec
    from dockyard.engine.spec import ContainerSpec
    from dockyard.images.users import resolve_user_in

    user = resolve_user_in(rootfs, step.user or "0")
    spec = ContainerSpec(image="", command=tuple(step.args), entrypoint=(), env=step.env,
                         working_dir=step.cwd,
                         network_mode="none" if step.network == "none" else "host")
    return ocispec.build(image, spec, rootfs=str(rootfs), hostname=HOSTNAME,
                         cgroup_path=cgroup_path, user=user, idmap=idmap)


def _copy_tree_with_owners(source: Path, dest: Path) -> None:
    """``type=local``: the image's files with their modes, times and owners (symlinks
    are copied as links, never followed; the image's tree is read by descriptor and
    written below ``dest`` only)."""
    from dockyard.fs.inroot import Root
    from dockyard.snapshots.unpack import copy_tree

    dest.mkdir(parents=True, exist_ok=True)
    with Root(source, what="image") as image:
        copy_tree(image.fd, dest, "output")


@contextlib.contextmanager
def _destination(dest: str) -> Iterator[IO[bytes]]:
    if dest == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    from dockyard.store.atomic import atomic_writer

    with atomic_writer(Path(dest)) as out:
        yield out


def _looks_like_tar(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        return True
    return len(data) > 262 and data[257:262] == b"ustar"
