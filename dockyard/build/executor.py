"""The build executor: walks the plan's stages (independent ones in parallel threads)
and turns each instruction into an image-config change or a layer.

A layer step (RUN, COPY, ADD, WORKDIR) prepares a snapshot on the stage's current
layers, mounts it, does its work, and commits the upper directory as the new
layer (its tar goes to the content store, the directory itself becomes the
snapshot, so nothing is extracted twice).  Before any of that, the step's cache
key is looked up: a hit starts no container and copies no file.  Whatever fails,
the snapshot, its mount and the step's bundle are removed on the way out.
RUN and COPY/ADD have modules of their own (``run_step``, ``copy_step``).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.build import copier, copy_step, dispatch, run_step
from dockyard.build.cache import BuildCache, CachedLayer, FileDigests, step_key
from dockyard.build.context import BuildContext
from dockyard.build.instructions import Instruction, parse
from dockyard.build.model import (
    DEFAULT_PATH,
    INLINE_CACHE,
    OWNER_FILE,
    BuildEnvironment,
    BuildError,
    BuildOptions,
    Reporter,
    StageResult,
    StageState,
    first_line,
    owner_text,
)
from dockyard.build.plan import (
    Plan,
    Stage,
    arg_pairs,
    dependencies,
    find_stage,
    global_scope,
    target_stage,
)
from dockyard.build.shellwords import expand_word
from dockyard.errors import DockyardError, NotFound
from dockyard.images.imagefile import Layer, host_platform, now_iso, write_image
from dockyard.oci import mediatypes as mt
from dockyard.snapshots.overlay import chain_ids

if TYPE_CHECKING:
    from dockyard.images.index import ImageRecord

__all__ = ["BuildEnvironment", "BuildError", "BuildOptions", "Builder", "Reporter"]


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
        self._results: dict[int, StageResult] = {}
        self._named: dict[str, BuildContext] = {}
        self.imported: dict[str, CachedLayer] = {}  # from cache_from images

    # --- the whole build ------------------------------------------------------
    def build(self) -> str:
        """Build the target stage; returns the image ID (its config digest)."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        for ref in self.options.cache_from:
            self._import_cache(ref)
        target = target_stage(self.plan, self.options.target)
        needed = dependencies(self.plan, target, self.scope)
        order = sorted(needed)
        for index in order:
            self._results[index] = StageResult()
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
        if self.options.inline_cache:
            image[INLINE_CACHE] = state.steps
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
            title = f"{prefix}{number}/{total}] {first_line(instruction.original)}"
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
        if self.named_context(base) is not None:
            raise BuildError(f"Dockerfile:{stage.line}: FROM {base}: the named context "
                             f"{base} is a directory; only an image (docker-image://) can "
                             "be a base")
        record = self._image(self._image_context(base))
        config = self.images.config(record)
        manifest = self.images.manifest(record)
        diff_ids = config["rootfs"]["diff_ids"]
        layers = [Layer(d.digest, d.media_type, d.size, diff_id)
                  for d, diff_id in zip(manifest.layers, diff_ids, strict=True)]
        image: dict[str, Any] = {key: value for key, value in config.items()
                                 if key not in ("rootfs", "container", "container_config",
                                                "docker_version", "id", "parent",
                                                INLINE_CACHE)}
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
        from dockyard.oci import reference
        from dockyard.registry.transfer import pull

        with self._lock:  # one pull of a base at a time
            digest = pull(self.images.content, self.images.index, ref,
                          insecure=self.env.insecure_registries, admit=self.env.admit(),
                          credentials=self.options.logins.get(reference.parse(ref).registry))
        record = self.images.index.get(digest)
        if record is None:
            raise NotFound(f"No such image: {ref}")
        return record

    def env_of(self, state: StageState) -> dict[str, str]:
        """What ``$VAR`` means here: the stage's ARGs, overridden by its ENV."""
        values = {k: v for k, v in state.args.items() if v is not None}
        values.update(dispatch.env_map(state.config))
        return values

    def _instruction(self, state: StageState, instruction: Instruction, title: str) -> None:
        cmd = instruction.cmd
        if cmd in ("RUN", "COPY", "ADD", "WORKDIR"):
            if cmd == "RUN":
                run_step.run(self, state, instruction, title)
            elif cmd == "WORKDIR":
                self._workdir(state, instruction, title)
            else:
                copy_step.copy(self, state, instruction, title)
            return
        step = self._next_step(title)
        started = time.monotonic()
        try:
            if cmd == "ARG":
                created_by = self._arg(state, instruction)
            else:
                created_by = dispatch.apply_metadata(state.config, instruction, self.env_of(state),
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
        for name, default in arg_pairs(instruction, self.env_of(state), self.plan.escape):
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
    def layer_step(self, state: StageState, title: str, key: str,
                    work: Callable[[Path, int], None], created_by: str) -> None:
        step = self._next_step(title)
        started = time.monotonic()
        cached = None if self.options.no_cache else \
            self.cache.get(key) or self.imported.get(key)
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
        index = -1
        if result.digest is not None and result.diff_id is not None:
            index = len(state.layers)
            state.layers.append(Layer(result.digest, result.media_type or mt.OCI_LAYER,
                                      result.size, result.diff_id))
        state.steps.append([key, index, result.created])
        state.history(created_by, empty=result.digest is None, created=result.created)

    def _unpacked(self, state: StageState) -> str | None:
        return self.images.unpack_layers([(layer.digest, layer.media_type)
                                          for layer in state.layers], state.diff_ids)

    @contextlib.contextmanager
    def mounted(self, state: StageState, *,
                 keep: bool = False) -> Iterator[tuple[str, Path]]:
        """A fresh snapshot on the state's layers, mounted; yields (key, rootfs).  The
        snapshot is removed afterwards unless ``keep`` (a step about to commit it)."""
        from dockyard.fs.tree import remove_tree
        from dockyard.snapshots.mount import mount_all, unmount

        snapshotter = self.images.snapshotter
        key = f"build-{os.urandom(10).hex()}"
        bundle = self.work_root / key
        rootfs = bundle / "rootfs"
        rootfs.mkdir(parents=True)
        # whose step this is: `system check` tells a crashed build's leftovers by it
        (bundle / OWNER_FILE).write_text(owner_text())
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
            remove_tree(bundle, ignore_errors=True)

    def _execute(self, state: StageState, work: Callable[[Path], None]) -> CachedLayer:
        import tempfile

        from dockyard.snapshots.diff import write_diff
        from dockyard.snapshots.unpack import check_layer

        snapshotter = self.images.snapshotter
        content = self.images.content
        with self.mounted(state, keep=True) as (key, rootfs):
            work(rootfs)
        upper = snapshotter.upper_dir(key)
        try:
            if not os.listdir(upper):
                return CachedLayer(None, None, None, 0, now_iso())
            with tempfile.TemporaryFile(dir=content.ingest_dir) as tmp:
                diff_id = write_diff(str(upper), tmp, snapshotter.idmap)
                tmp.seek(0)
                check_layer(tmp)  # the door: what RUN made must be runnable (PATH_MAX…)
                tmp.seek(0)
                digest = content.write_stream(tmp, None)
            snapshotter.commit(key, chain_ids([*state.diff_ids, diff_id])[-1], diff_id)
            return CachedLayer(digest, diff_id, mt.OCI_LAYER, content.size(digest), now_iso())
        finally:
            snapshotter.remove(key)

    def _workdir(self, state: StageState, instruction: Instruction, title: str) -> None:
        path = expand_word(instruction.args[0], self.env_of(state), self.plan.escape)
        path = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))
        state.config["WorkingDir"] = path
        user = state.config.get("User") or ""

        def work(rootfs: Path, step: int) -> None:
            # as BuildKit: a directory WORKDIR creates belongs to the current USER
            owner = copier.ownership(rootfs, user, None, self.images.snapshotter.idmap)
            copier.make_dirs(str(rootfs), path, owner, chown_new=bool(user))

        self.layer_step(state, title, step_key(state.key, "WORKDIR", path, user), work,
                         f"WORKDIR {path}")

    # --- RUN --------------------------------------------------------------------
    def _import_cache(self, ref: str) -> None:
        """The steps ``ref``'s image says made its layers (its ``INLINE_CACHE``), as
        cache entries of this build: a step with the same key is not run again, its
        layer is the image's.  An image that is not there (after a pull) or has no
        inline cache is said and passed over."""
        try:
            record = self._image(ref)
        except DockyardError as exc:
            self.reporter.warning(f"cache_from {ref}: not used: {exc}")
            return
        config = self.images.config(record)
        steps = config.get(INLINE_CACHE)
        if not isinstance(steps, list):
            self.reporter.warning(f"cache_from {ref}: not used: the image has no inline "
                                  "cache (build it with cache_to type=inline)")
            return
        manifest = self.images.manifest(record)
        diff_ids = config["rootfs"]["diff_ids"]
        for entry in steps:
            if not (isinstance(entry, list) and len(entry) == 3 and
                    isinstance(entry[0], str) and isinstance(entry[1], int)):
                continue
            key, index, created = entry
            if index < 0:
                self.imported[key] = CachedLayer(None, None, None, 0, str(created))
            elif index < len(manifest.layers):
                layer = manifest.layers[index]
                self.imported[key] = CachedLayer(layer.digest, diff_ids[index],
                                                 layer.media_type, layer.size, str(created))

    def named_context(self, name: str) -> BuildContext | None:
        """The directory given as the named context ``name`` (when no stage has that
        name), as a build context of its own; None for anything else."""
        value = self.options.contexts.get(name)
        if value is None or "://" in value or find_stage(self.plan, name) is not None:
            return None
        with self._lock:
            if name not in self._named:
                context = BuildContext.from_directory(Path(value))
                context.digests = self.file_digests
                self._named[name] = context
            return self._named[name]

    def _image_context(self, ref: str) -> str:
        """The image a named context ``docker-image://REF`` gives for ``ref``."""
        value = self.options.contexts.get(ref)
        if value is None or find_stage(self.plan, ref) is not None:
            return ref
        if not value.startswith("docker-image://"):
            raise BuildError(f"named context {ref}: {value!r} is not supported (a "
                             "directory, or docker-image://REF)")
        return value.removeprefix("docker-image://")

    def from_state(self, ref: str) -> StageState:
        stage = find_stage(self.plan, ref)
        if stage is not None and stage.number in self._results:
            return self._results[stage.number].result()
        if self.named_context(ref) is not None:
            raise BuildError(f"--from={ref}: the named context {ref} is a directory: COPY "
                             "--from takes it; a RUN mount needs a stage or an image")
        record = self._image(self._image_context(ref))
        config = self.images.config(record)
        manifest = self.images.manifest(record)
        layers = [Layer(d.digest, d.media_type, d.size, diff_id) for d, diff_id in
                  zip(manifest.layers, config["rootfs"]["diff_ids"], strict=True)]
        return StageState(config, layers, step_key("image", record.config_digest),
                          cmd_from_base=True)

    def from_key(self, ref: str) -> str:
        return self.from_state(ref).key
