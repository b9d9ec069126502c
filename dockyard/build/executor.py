"""The build executor: walks the plan's stages (independent ones in parallel threads)
and turns each instruction into an image-config change or a layer.

A layer step (RUN, COPY, ADD, WORKDIR) prepares a snapshot on the stage's current
layers, mounts it, does its work, and commits the upper directory as the new
layer (its tar goes to the content store, the directory itself becomes the
snapshot, so nothing is extracted twice).  Before any of that, the step's cache
key is looked up: a hit starts no container and copies no file.  Whatever fails,
the snapshot, its mount and the step's bundle are removed on the way out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from dockyard.build import copier, dispatch
from dockyard.build.cache import BuildCache, CachedLayer, FileDigests, step_key
from dockyard.build.context import BuildContext
from dockyard.build.instructions import Instruction, parse
from dockyard.build.patterns import glob_match, has_magic
from dockyard.build.plan import (
    Plan,
    Stage,
    arg_pairs,
    dependencies,
    find_stage,
    global_scope,
    target_stage,
)
from dockyard.build.sandbox import StepProcess, run_step
from dockyard.build.shellwords import expand_heredoc, expand_word
from dockyard.errors import DockyardError, NotFound
from dockyard.images.imagefile import Layer, host_platform, now_iso, write_image
from dockyard.oci import mediatypes as mt
from dockyard.runtime.linux.paths import resolve_in_root
from dockyard.snapshots.overlay import chain_ids

if TYPE_CHECKING:
    from dockyard.images.content import LocalContentStore
    from dockyard.images.index import ImageIndex, ImageRecord
    from dockyard.oci.image import Manifest
    from dockyard.snapshots.overlay import OverlaySnapshotter
    from dockyard.store.db import Database
    from dockyard.store.layout import Layout

HISTORY_COMMENT = "dockyard.build.v0"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OUTPUT_TAIL = 10


class BuildError(DockyardError):
    """A step failed; the message names the Dockerfile line."""


class Reporter(Protocol):
    def step_started(self, step: int, title: str) -> None: ...
    def step_output(self, step: int, line: str) -> None: ...
    def step_finished(self, step: int, *, cached: bool, seconds: float) -> None: ...
    def step_failed(self, step: int, message: str) -> None: ...
    def warning(self, text: str) -> None: ...


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


class BuildOptions(NamedTuple):
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = {}  # noqa: RUF012 - never mutated
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = {}  # noqa: RUF012
    secrets: dict[str, str] = {}  # noqa: RUF012 - id → host file
    network: str = "default"


class _StageResult:
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


class Builder:
    def __init__(self, env: BuildEnvironment, context: BuildContext, plan: Plan,
                 options: BuildOptions, reporter: Reporter) -> None:
        self.env = env
        self.images = env.images
        self.context = context
        self.plan = plan
        self.options = options
        self.reporter = reporter
        self.cache = BuildCache(env.db)
        self.file_digests = FileDigests(env.db)
        context.digests = self.file_digests
        self.work_root = env.layout.run_dir / "build"
        self.runtime_root = env.layout.run_dir / "build-runtime"
        self.scope = global_scope(plan, options.build_args)
        self.consumed = {a for a in options.build_args if any(
            a == name for i in plan.global_args for name, _ in arg_pairs(i, {}, plan.escape))}
        self._lock = threading.Lock()
        self._steps = 0
        self._failed = threading.Event()
        self._results: dict[int, _StageResult] = {}

    # --- the whole build ------------------------------------------------------
    def build(self) -> str:
        """Build the target stage; returns the image ID (its config digest)."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        target = target_stage(self.plan, self.options.target)
        needed = dependencies(self.plan, target, self.scope)
        order = sorted(needed)
        for index in order:
            self._results[index] = _StageResult()
        threads = [threading.Thread(target=self._stage_after, name=f"build-stage-{index}",
                                    args=(self.plan.stages[index], sorted(needed[index])))
                   for index in order[:-1]]  # the target stage runs in this thread
        for thread in threads:
            thread.start()
        try:
            self._stage_after(self.plan.stages[order[-1]], sorted(needed[order[-1]]))
            state = self._results[target.number].result()
        finally:
            for thread in threads:
                thread.join()
        self.file_digests.save()
        unused = sorted(set(self.options.build_args) - self.consumed)
        if unused:
            self.reporter.warning(f"One or more build-args {unused} were not consumed")
        return self._write(state)

    def _stage_after(self, stage: Stage, needs: list[int]) -> None:
        try:
            for index in needs:
                self._results[index].result()
            state = self._build_stage(stage)
        except BaseException as exc:  # handed to whoever waits for this stage
            self._failed.set()
            self._results[stage.number].set(None, exc)
        else:
            self._results[stage.number].set(state, None)

    def _write(self, state: StageState) -> str:
        from dockyard.oci import reference

        image = state.image
        if self.options.labels:
            state.config["Labels"] = {**(state.config.get("Labels") or {}),
                                      **self.options.labels}
        image["created"] = state.created
        image["rootfs"] = {"type": "layers", "diff_ids": state.diff_ids}
        names = [str(reference.parse(tag)) for tag in self.options.tags]
        digest = write_image(self.images.content, self.images.index, state.layers, image, names)
        record = self.images.index.get(digest)
        assert record is not None
        return record.config_digest

    # --- one stage ------------------------------------------------------------
    def _next_step(self, title: str) -> int:
        with self._lock:
            self._steps += 1
            step = self._steps
        self.reporter.step_started(step, title)
        return step

    def _build_stage(self, stage: Stage) -> StageState:
        total = len(stage.instructions) + 1
        prefix = f"[{stage.name + ' ' if stage.name else ''}"
        base = expand_word(stage.base, self.scope, self.plan.escape)
        if stage.platform:
            wanted = expand_word(stage.platform, self.scope, self.plan.escape)
            host = self.scope["TARGETPLATFORM"]
            if wanted.lower() not in (host, host + "/"):
                raise BuildError(f"Dockerfile:{stage.line}: FROM --platform={wanted}: only "
                                 f"the host platform ({host}) can be built here")
        step = self._next_step(f"{prefix}1/{total}] FROM {base}")
        started = time.monotonic()
        state = self._base(base, stage)
        self.reporter.step_finished(step, cached=False, seconds=time.monotonic() - started)
        triggers = list(state.config.get("OnBuild") or [])
        state.config["OnBuild"] = None
        for trigger in triggers:
            for instruction in parse(trigger, line_offset=stage.line - 1):
                self._instruction(state, instruction, f"{prefix}ONBUILD] {trigger}")
        for number, instruction in enumerate(stage.instructions, start=2):
            if self._failed.is_set():
                raise BuildError("build cancelled: another stage failed")
            title = f"{prefix}{number}/{total}] {_first_line(instruction.original)}"
            self._instruction(state, instruction, title)
        return state

    def _base(self, base: str, stage: Stage) -> StageState:
        if base.lower() == "scratch":
            empty: dict[str, Any] = {**host_platform(), "created": now_iso(),
                                     "config": {"Env": [DEFAULT_PATH]}, "history": []}
            return StageState(empty, [], step_key("scratch"), cmd_from_base=False)
        other = find_stage(self.plan, base)
        if other is not None and other.number < stage.number:
            return self._results[other.number].result().clone()
        record = self._image(base)
        config = self.images.config(record)
        manifest = self.images.manifest(record)
        diff_ids = config["rootfs"]["diff_ids"]
        layers = [Layer(d.digest, d.media_type, d.size, diff_id)
                  for d, diff_id in zip(manifest.layers, diff_ids, strict=True)]
        image: dict[str, Any] = {key: value for key, value in config.items()
                                 if key not in ("rootfs", "container", "container_config",
                                                "docker_version", "id", "parent")}
        inner: dict[str, Any] = dict(config.get("config") or {})
        env = list(inner.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):  # Docker's builders add one
            inner["Env"] = [DEFAULT_PATH, *env]
        image["config"] = inner
        return StageState(image, layers, step_key("image", record.config_digest),
                          cmd_from_base=True)

    def _image(self, ref: str) -> ImageRecord:
        if not self.options.pull:
            with contextlib.suppress(NotFound):
                return self.images.get(ref)
        from dockyard.registry.transfer import pull

        with self._lock:  # one pull of a base at a time
            digest = pull(self.images.content, self.images.index, ref,
                          insecure=self.env.insecure_registries)
        record = self.images.index.get(digest)
        if record is None:
            raise NotFound(f"No such image: {ref}")
        return record

    def _env(self, state: StageState) -> dict[str, str]:
        """What ``$VAR`` means here: the stage's ARGs, overridden by its ENV."""
        values = {k: v for k, v in state.args.items() if v is not None}
        values.update(dispatch.env_map(state.config))
        return values

    def _instruction(self, state: StageState, instruction: Instruction, title: str) -> None:
        cmd = instruction.cmd
        if cmd in ("RUN", "COPY", "ADD", "WORKDIR"):
            handler = {"RUN": self._run, "COPY": self._copy, "ADD": self._copy,
                       "WORKDIR": self._workdir}[cmd]
            handler(state, instruction, title)
            return
        step = self._next_step(title)
        started = time.monotonic()
        try:
            if cmd == "ARG":
                created_by = self._arg(state, instruction)
            else:
                created_by = dispatch.apply_metadata(state.config, instruction, self._env(state),
                                                     self.plan.escape, state.cmd_from_base)
                if cmd == "CMD":
                    state.cmd_from_base = False
                if cmd == "MAINTAINER":
                    state.image["author"] = " ".join(instruction.args)
        except DockyardError as exc:
            self.reporter.step_failed(step, str(exc))
            raise
        state.key = step_key(state.key, "meta", created_by)
        if cmd != "ARG":
            state.history(created_by, empty=True)
        self.reporter.step_finished(step, cached=False, seconds=time.monotonic() - started)

    def _arg(self, state: StageState, instruction: Instruction) -> str:
        declared = []
        for name, default in arg_pairs(instruction, self._env(state), self.plan.escape):
            value: str | None
            if name in self.options.build_args:
                value = self.options.build_args[name]
                with self._lock:
                    self.consumed.add(name)
            elif default is not None:
                value = default
            else:
                value = self.scope.get(name)
            state.args[name] = value
            declared.append(f"{name}={value}" if value is not None else name)
        return "ARG " + " ".join(declared)

    # --- layer steps ----------------------------------------------------------
    def _layer_step(self, state: StageState, title: str, key: str,
                    work: Callable[[Path, int], None], created_by: str) -> None:
        step = self._next_step(title)
        started = time.monotonic()
        cached = None if self.options.no_cache else self.cache.get(key)
        if cached is not None and (cached.digest is None or
                                   self.images.content.exists(cached.digest)):
            self._apply(state, cached, key, created_by)
            self.reporter.step_finished(step, cached=True, seconds=time.monotonic() - started)
            return
        try:
            result = self._execute(state, lambda rootfs: work(rootfs, step))
        except DockyardError as exc:
            self.reporter.step_failed(step, str(exc))
            raise
        self.cache.put(key, result)
        self._apply(state, result, key, created_by)
        self.reporter.step_finished(step, cached=False, seconds=time.monotonic() - started)

    def _apply(self, state: StageState, result: CachedLayer, key: str, created_by: str) -> None:
        state.key = key
        if result.digest is not None and result.diff_id is not None:
            state.layers.append(Layer(result.digest, result.media_type or mt.OCI_LAYER,
                                      result.size, result.diff_id))
        state.history(created_by, empty=result.digest is None, created=result.created)

    def _unpacked(self, state: StageState) -> str | None:
        return self.images.unpack_layers([(layer.digest, layer.media_type)
                                          for layer in state.layers], state.diff_ids)

    @contextlib.contextmanager
    def _mounted(self, state: StageState, *,
                 keep: bool = False) -> Iterator[tuple[str, Path]]:
        """A fresh snapshot on the state's layers, mounted; yields (key, rootfs).  The
        snapshot is removed afterwards unless ``keep`` (a step about to commit it)."""
        import shutil

        from dockyard.snapshots.mount import mount_all, unmount

        snapshotter = self.images.snapshotter
        key = f"build-{os.urandom(10).hex()}"
        bundle = self.work_root / key
        rootfs = bundle / "rootfs"
        rootfs.mkdir(parents=True)
        mounted = False
        try:
            mounts = snapshotter.prepare(key, self._unpacked(state))
            try:
                mount_all(mounts, str(rootfs))
                mounted = True
                yield key, rootfs
            finally:
                if mounted:
                    unmount(str(rootfs))
        except BaseException:
            snapshotter.remove(key)
            raise
        else:
            if not keep:
                snapshotter.remove(key)
        finally:
            shutil.rmtree(bundle, ignore_errors=True)

    def _execute(self, state: StageState, work: Callable[[Path], None]) -> CachedLayer:
        import tempfile

        from dockyard.snapshots.diff import write_diff

        snapshotter = self.images.snapshotter
        content = self.images.content
        with self._mounted(state, keep=True) as (key, rootfs):
            work(rootfs)
        upper = snapshotter.upper_dir(key)
        try:
            if not os.listdir(upper):
                return CachedLayer(None, None, None, 0, now_iso())
            with tempfile.TemporaryFile(dir=content.ingest_dir) as tmp:
                diff_id = write_diff(str(upper), tmp)
                tmp.seek(0)
                digest = content.write_stream(tmp, None)
            snapshotter.commit(key, chain_ids([*state.diff_ids, diff_id])[-1], diff_id)
            return CachedLayer(digest, diff_id, mt.OCI_LAYER, content.size(digest), now_iso())
        finally:
            snapshotter.remove(key)

    def _workdir(self, state: StageState, instruction: Instruction, title: str) -> None:
        path = expand_word(instruction.args[0], self._env(state), self.plan.escape)
        path = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))
        state.config["WorkingDir"] = path
        user = state.config.get("User") or ""

        def work(rootfs: Path, step: int) -> None:
            # as BuildKit: a directory WORKDIR creates belongs to the current USER
            owner = _owner(rootfs, user, None) if user else copier.Ownership()
            copier.make_dirs(str(rootfs), path, owner, chown_new=bool(user))

        self._layer_step(state, title, step_key(state.key, "WORKDIR", path, user), work,
                         f"WORKDIR {path}")

    # --- RUN --------------------------------------------------------------------
    def _run(self, state: StageState, instruction: Instruction, title: str) -> None:
        env = self._env(state)
        shell = list(state.config.get("Shell") or dispatch.DEFAULT_SHELL)
        script_files: dict[str, str] = {}
        if instruction.json:
            args = list(instruction.args)
        elif (instruction.heredocs and len(instruction.args) == 1 and
              _heredoc_name(instruction.args[0]) == instruction.heredocs[0].name):
            body = instruction.heredocs[0].content
            if body.startswith("#!"):
                script_files["/dev/.dockyard-heredoc"] = body
                args = ["/dev/.dockyard-heredoc"]
            else:
                args = [*shell, body]
        elif instruction.heredocs:
            script = instruction.args[0] + "\n" + "".join(
                h.content + h.name + "\n" for h in instruction.heredocs)
            args = [*shell, script]
        else:
            args = [*shell, " ".join(instruction.args)]
        if not args:
            raise instruction.error("RUN requires at least one argument")
        network = instruction.flag("network") or self.options.network
        if network not in ("default", "none", "host"):
            raise instruction.error(f"unsupported RUN --network={network} "
                                    "(default, none or host)")
        if instruction.flag("security") not in (None, "sandbox"):
            raise instruction.error("RUN --security=insecure is not supported")
        mount_specs = [_parse_mount(instruction, text, env, self.plan.escape)
                       for text in instruction.flags.get("mount", [])]
        build_env = tuple(f"{k}={v}" for k, v in sorted(state.args.items())
                          if v is not None and k not in dispatch.env_map(state.config))
        user = state.config.get("User") or "0"
        cwd = state.config.get("WorkingDir") or "/"
        sources = [self._mount_source_key(spec) for spec in mount_specs]
        key = step_key(state.key, "RUN", args, build_env, network, sources, script_files)
        shown = " ".join(args)

        def work(rootfs: Path, step: int) -> None:
            with contextlib.ExitStack() as stack:
                bundle = rootfs.parent
                mounts = [self._oci_mount(spec, bundle, stack, instruction)
                          for spec in mount_specs]
                for n, (target, body) in enumerate(script_files.items()):
                    path = bundle / f"heredoc-{n}"
                    path.write_text(body)
                    path.chmod(0o755)
                    mounts.append({"destination": target, "type": "bind", "source": str(path),
                                   "options": ["rbind", "ro"]})
                tail: list[str] = []

                def output(line: str) -> None:
                    tail.append(line)
                    del tail[:-_OUTPUT_TAIL]
                    self.reporter.step_output(step, line)

                process = StepProcess(args, build_env, cwd, user, network, [
                    m for m in mounts if m is not None])
                config = self.env.step_config(state.image, process, rootfs, bundle.name)
                code = run_step(self.env.runtime_argv, self.runtime_root, bundle, rootfs,
                                config, process, output)
                if code != 0:
                    raise BuildError(
                        f"Dockerfile:{instruction.line}: process {shown!r} did not complete "
                        f"successfully: exit code: {code}" +
                        ("".join(f"\n  {line}" for line in tail) if tail else ""))

        self._layer_step(state, title, key, work, f"RUN {shown} # {HISTORY_COMMENT}")

    def _mount_source_key(self, spec: dict[str, str]) -> Any:
        """What a RUN mount contributes to the step's cache key."""
        if spec["type"] == "bind":
            ref = spec.get("from")
            if ref:
                return ["bind", spec["target"], ref, self._from_key(ref), spec.get("source", "")]
            return ["bind", spec["target"], self.context.checksum(
                _clean(spec.get("source", "")))]
        return [spec["type"], spec["target"], spec.get("id", "")]

    def _oci_mount(self, spec: dict[str, str], bundle: Path, stack: contextlib.ExitStack,
                   instruction: Instruction) -> dict[str, Any] | None:
        import shutil

        kind, target = spec["type"], spec["target"]
        if kind == "tmpfs":
            options = ["nosuid", "nodev"] + ([f"size={spec['size']}"] if "size" in spec else [])
            return {"destination": target, "type": "tmpfs", "source": "tmpfs",
                    "options": options}
        if kind == "cache":
            ident = spec.get("id") or target
            directory = (self.env.layout.root / "build-cache" /
                         hashlib.sha256(ident.encode()).hexdigest()[:32])
            if not directory.exists():
                directory.mkdir(parents=True, mode=int(spec.get("mode", "755"), 8))
                os.chown(directory, int(spec.get("uid", "0")), int(spec.get("gid", "0")))
            if spec.get("sharing") == "locked":
                import fcntl

                lock = os.open(directory.parent / (directory.name + ".lock"),
                               os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                stack.callback(os.close, lock)
                fcntl.flock(lock, fcntl.LOCK_EX)
            return {"destination": target, "type": "bind", "source": str(directory),
                    "options": ["rbind"] + (["ro"] if _readonly(spec, False) else [])}
        if kind == "secret":
            ident = spec.get("id") or posixpath.basename(target)
            source = self.options.secrets.get(ident)
            if source is None:
                if spec.get("required") in ("true", ""):
                    raise instruction.error(f"secret {ident} not found (pass --secret "
                                            f"id={ident},src=FILE)")
                return None
            copy = bundle / f"secret-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"
            shutil.copyfile(source, copy)
            copy.chmod(int(spec.get("mode", "400"), 8))
            os.chown(copy, int(spec.get("uid", "0")), int(spec.get("gid", "0")))
            return {"destination": target or f"/run/secrets/{ident}", "type": "bind",
                    "source": str(copy), "options": ["rbind", "ro"]}
        # bind: from the context, or from a stage or image
        ref = spec.get("from")
        if ref:
            _key, root = stack.enter_context(self._mounted(self._from_state(ref)))
            source = resolve_in_root(str(root), spec.get("source", "/"), what="mount source")
        else:
            source = self._context_view(spec.get("source", ""), bundle)
        if _readonly(spec, True):
            return {"destination": target, "type": "bind", "source": source,
                    "options": ["rbind", "ro"]}
        scratch = bundle / f"bind-{os.urandom(4).hex()}"  # rw: writes are thrown away
        if os.path.isdir(source):
            shutil.copytree(source, scratch, symlinks=True)
        else:
            shutil.copy2(source, scratch)
        return {"destination": target, "type": "bind", "source": str(scratch),
                "options": ["rbind"]}

    def _context_view(self, relative: str, bundle: Path) -> str:
        """A context path for a bind mount, without what .dockerignore excludes."""
        cleaned = _clean(relative)
        path = self.context.host_path(cleaned)
        if not self.context.ignore.patterns or not path.is_dir():
            if cleaned and not self.context.included(cleaned):
                raise NotFound(f"{relative}: excluded by .dockerignore")
            return str(path)
        view = bundle / f"context-{os.urandom(4).hex()}"
        view.mkdir()
        for source in [copier.Source(str(self.context.root), cleaned, str(path),
                                     self.context.included)]:
            copier.copy_source(source, str(view), "/", copier.Ownership(),
                               into_directory=True, parents=False)
        return str(view)

    # --- COPY / ADD ---------------------------------------------------------------
    def _from_state(self, ref: str) -> StageState:
        stage = find_stage(self.plan, ref)
        if stage is not None and stage.number in self._results:
            return self._results[stage.number].result()
        record = self._image(ref)
        config = self.images.config(record)
        manifest = self.images.manifest(record)
        layers = [Layer(d.digest, d.media_type, d.size, diff_id) for d, diff_id in
                  zip(manifest.layers, config["rootfs"]["diff_ids"], strict=True)]
        return StageState(config, layers, step_key("image", record.config_digest),
                          cmd_from_base=True)

    def _from_key(self, ref: str) -> str:
        return self._from_state(ref).key

    def _copy(self, state: StageState, instruction: Instruction, title: str) -> None:
        env = self._env(state)
        escape = self.plan.escape
        cmd = instruction.cmd
        words = list(instruction.args)
        if len(words) < 2:
            raise instruction.error(f"{cmd} requires at least two arguments, but only one "
                                    "was provided. Destination could not be determined")
        heredocs = {h.name: h for h in instruction.heredocs}
        dest = expand_word(words[-1], env, escape)
        raw_sources = words[:-1]
        dest = posixpath.join(state.config.get("WorkingDir") or "/", dest)
        into_directory = dest.endswith("/")
        dest = posixpath.normpath(dest) if dest != "/" else "/"
        chown = expand_word(instruction.flag("chown") or "", env, escape)
        chmod_text = expand_word(instruction.flag("chmod") or "", env, escape)
        try:
            chmod = int(chmod_text, 8) if chmod_text else None
        except ValueError:
            raise instruction.error(f"invalid --chmod={chmod_text}: not an octal mode") \
                from None
        if chmod is not None and not 0 <= chmod <= 0o7777:
            raise instruction.error(f"invalid --chmod={chmod_text}")
        parents = instruction.flag("parents") == "true"
        from_ref = expand_word(instruction.flag("from") or "", env, escape) or None
        if from_ref and cmd == "ADD":
            raise instruction.error("ADD does not take --from (use COPY)")
        excludes = [expand_word(e, env, escape) for e in instruction.flags.get("exclude", [])]

        files: list[tuple[str, str]] = []  # heredocs and URLs: (name, content digest)
        literal: list[tuple[str, bytes, int, float | None]] = []
        patterns: list[str] = []
        for word in raw_sources:
            heredoc_name = _heredoc_name(word)
            if heredoc_name in heredocs:
                doc = heredocs[heredoc_name]
                body = expand_heredoc(doc.content, env, escape) if doc.expand else doc.content
                literal.append((doc.name, body.encode(), 0o644, None))
                continue
            source = expand_word(word, env, escape)
            if cmd == "ADD" and source.startswith(("http://", "https://")):
                literal.append(self._download(source, instruction))
                continue
            patterns.append(source)
        files = [(name, hashlib.sha256(data).hexdigest()) for name, data, _m, _t in literal]
        sources_given = len(literal) + len(patterns)
        if sources_given > 1 and not into_directory:
            raise instruction.error(f"When using {cmd} with more than one source file, "
                                    "the destination must be a directory and end with a /")
        from_state = None
        if from_ref:
            try:
                from_state = self._from_state(from_ref)
            except DockyardError as exc:
                raise instruction.error(f"{cmd} --from={from_ref}: no stage of that name, and "
                                        f"no image either: {exc}") from exc
        hits_all: list[str] = []
        if from_state is None:
            for pattern in patterns:
                hits = self.context.match(pattern)
                if not hits:
                    raise instruction.error(
                        f"{cmd} failed: file not found in build context or excluded by "
                        f".dockerignore: stat {pattern}: file does not exist")
                hits_all += [h for h in hits if not any(glob_match(e, h) for e in excludes)]
            material: Any = [[h, self.context.checksum(h)] for h in hits_all]
        else:
            material = [from_ref, from_state.key, patterns, excludes]
        many = sources_given > 1 or len(hits_all) > 1 or any(has_magic(p) for p in patterns)
        key = step_key(state.key, cmd, dest, into_directory, chown, chmod_text, parents,
                       material, files)

        def work(rootfs: Path, step: int) -> None:
            owner = _owner(rootfs, chown, chmod) if chown else copier.Ownership(mode=chmod)
            root = str(rootfs)
            target_is_dir = into_directory or many or _is_dir(root, dest)
            for name, data, mode, mtime in literal:
                inner = posixpath.join(dest, name) if target_is_dir else dest
                copier.write_file(root, inner, data, owner, mode, mtime)
            if from_state is None:
                for relative in hits_all:
                    path = str(self.context.host_path(relative))
                    if cmd == "ADD" and copier.is_archive(path):
                        copier.extract_archive(path, root, dest, owner)
                        continue
                    source = copier.Source(str(self.context.root), relative, path,
                                           self._included(excludes),
                                           self.context.ignore.may_reinclude_under)
                    copier.copy_source(source, root, dest, owner,
                                       into_directory=target_is_dir, parents=parents)
                return
            with self._mounted(from_state) as (_key, other):
                for relative in _match_in_root(str(other), patterns, instruction, cmd):
                    if any(glob_match(e, relative) for e in excludes):
                        continue
                    path = resolve_in_root(str(other), "/" + relative, what=f"{cmd} source")
                    source = copier.Source(str(other), relative, path, lambda _r: True)
                    copier.copy_source(source, root, dest, owner,
                                       into_directory=target_is_dir, parents=parents)

        self._layer_step(state, title, key, work, f"{_first_line(instruction.original)} "
                                                  f"# {HISTORY_COMMENT}")

    def _included(self, excludes: list[str]) -> Callable[[str], bool]:
        def include(relative: str) -> bool:
            return self.context.included(relative) and not any(
                glob_match(e, relative) for e in excludes)
        return include

    def _download(self, url: str,
                  instruction: Instruction) -> tuple[str, bytes, int, float | None]:
        import email.utils

        import httpx

        try:
            response = httpx.get(url, follow_redirects=True, timeout=60)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise instruction.error(f"ADD failed to download {url}: {exc}") from exc
        data = response.content
        expected = instruction.flag("checksum")
        if expected and expected != "sha256:" + hashlib.sha256(data).hexdigest():
            raise instruction.error(f"ADD {url}: content does not match --checksum={expected}")
        name = posixpath.basename(httpx.URL(url).path) or "index.html"
        modified = response.headers.get("last-modified")
        mtime = None
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                mtime = email.utils.parsedate_to_datetime(modified).timestamp()
        return name, data, 0o600, mtime


def _owner(rootfs: Path, chown: str, chmod: int | None) -> copier.Ownership:
    """``--chown=user[:group]`` through the image's passwd and group files; a user
    without a group gets the user's id as group id (Docker's rule)."""
    from dockyard.images.users import resolve_user

    _user, _, group = chown.partition(":")
    ids = resolve_user(chown, _read(rootfs / "etc/passwd"), _read(rootfs / "etc/group"))
    return copier.Ownership(ids.uid, ids.gid if group else ids.uid, chmod)


def _heredoc_name(word: str) -> str | None:
    """``<<EOT``, ``<<-EOT``, ``<<"EOT"`` → ``EOT``."""
    import re

    match = re.fullmatch(r"<<-?([\"']?)(\w+)\1", word)
    return match.group(2) if match else None


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def _clean(path: str) -> str:
    return posixpath.normpath("/" + path).lstrip("/")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _is_dir(root: str, inner: str) -> bool:
    try:
        return os.path.isdir(resolve_in_root(root, inner))
    except DockyardError:
        return False


def _readonly(spec: Mapping[str, str], default: bool) -> bool:
    if "rw" in spec or "readwrite" in spec:
        return False
    if "ro" in spec or "readonly" in spec:
        return True
    return default


def _match_in_root(root: str, patterns: list[str], instruction: Instruction,
                   cmd: str) -> list[str]:
    """COPY --from sources: paths (or globs) inside another stage's rootfs."""
    found: list[str] = []
    for pattern in patterns:
        cleaned = _clean(pattern)
        if not has_magic(cleaned):
            host = resolve_in_root(root, "/" + cleaned, what=f"{cmd} source")
            if not os.path.lexists(host):
                raise instruction.error(f"{cmd} --from failed: {pattern} not found")
            found.append(cleaned)
            continue
        magic_at = min(i for i, c in enumerate(cleaned) if c in "*?[")
        base = cleaned[:magic_at].rsplit("/", 1)[0] if "/" in cleaned[:magic_at] else ""
        start = resolve_in_root(root, "/" + base, what=f"{cmd} source")
        hits = []
        for directory, dirs, names in os.walk(start):
            rel = os.path.relpath(directory, start)
            for name in dirs + names:
                relative = posixpath.normpath(posixpath.join(base, rel, name))
                if glob_match(cleaned, relative):
                    hits.append(relative)
        if not hits:
            raise instruction.error(f"{cmd} --from failed: no source files were specified "
                                    f"(nothing matches {pattern})")
        found += sorted(hits)
    return found


def _parse_mount(instruction: Instruction, text: str, env: Mapping[str, str],
                 escape: str) -> dict[str, str]:
    """``type=cache,target=/x,id=y,ro`` → a dict (bare words map to "")."""
    spec: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if key in ("dst", "destination"):
            key = "target"
        if key == "src":
            key = "source"
        spec[key] = expand_word(value, env, escape) if sep else ""
    spec.setdefault("type", "bind")
    if spec["type"] not in ("bind", "cache", "tmpfs", "secret"):
        raise instruction.error(f"unsupported RUN --mount type={spec['type']} "
                                "(bind, cache, tmpfs or secret)")
    if spec["type"] == "secret":
        ident = spec.get("id") or posixpath.basename(spec.get("target", ""))
        if not ident:
            raise instruction.error("RUN --mount=type=secret needs id= or target=")
        spec.setdefault("target", f"/run/secrets/{ident}")
        spec["id"] = ident
    if not spec.get("target"):
        raise instruction.error(f"RUN --mount={text}: target is required")
    if not spec["target"].startswith("/"):
        spec["target"] = posixpath.join("/", spec["target"])
    return spec
