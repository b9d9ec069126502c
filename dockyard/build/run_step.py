"""RUN: the command (shell or exec form, heredocs, SHELL), its mounts (cache, bind,
tmpfs, secret), its network, and the step that runs it in a mounted snapshot."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.build import copier, dispatch
from dockyard.build.cache import step_key
from dockyard.build.context import clean_path
from dockyard.build.instructions import Instruction, heredoc_name
from dockyard.build.model import HISTORY_COMMENT, BuildError, StageState
from dockyard.build.sandbox import StepProcess, run_step
from dockyard.build.shellwords import expand_word
from dockyard.errors import NotFound
from dockyard.runtime.linux.paths import resolve_in_root

if TYPE_CHECKING:
    from dockyard.build.executor import Builder

OUTPUT_TAIL = 10  # lines of a failed step's output repeated in the error


def run(builder: Builder, state: StageState, instruction: Instruction, title: str) -> None:
    """One RUN: its command line, mounts, network, user and environment decide the cache
    key; on a miss the command runs in the step's snapshot and its output streams to the
    reporter (and, if it fails, its last lines into the error)."""
    env = builder.env_of(state)
    shell = list(state.config.get("Shell") or dispatch.DEFAULT_SHELL)
    script_files: dict[str, str] = {}
    if instruction.json:
        args = list(instruction.args)
    elif (instruction.heredocs and len(instruction.args) == 1 and
          heredoc_name(instruction.args[0]) == instruction.heredocs[0].name):
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
    network = instruction.flag("network") or builder.options.network
    if network not in ("default", "none", "host"):
        raise instruction.error(f"unsupported RUN --network={network} "
                                "(default, none or host)")
    if instruction.flag("security") not in (None, "sandbox"):
        raise instruction.error("RUN --security=insecure is not supported")
    mount_specs = [parse_mount(instruction, text, env, builder.plan.escape)
                   for text in instruction.flags.get("mount", [])]
    build_env = tuple(f"{k}={v}" for k, v in sorted(state.args.items())
                      if v is not None and k not in dispatch.env_map(state.config))
    user = state.config.get("User") or "0"
    cwd = state.config.get("WorkingDir") or "/"
    sources = [mount_source_key(builder, spec) for spec in mount_specs]
    key = step_key(state.key, "RUN", args, build_env, network, sources, script_files)
    shown = " ".join(args)

    def work(rootfs: Path, step: int) -> None:
        with contextlib.ExitStack() as stack:
            bundle = rootfs.parent
            mounts = [oci_mount(builder, spec, bundle, stack, instruction)
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
                del tail[:-OUTPUT_TAIL]
                builder.reporter.step_output(step, line)

            process = StepProcess(args, build_env, cwd, user, network, [
                m for m in mounts if m is not None])
            config = builder.env.step_config(state.image, process, rootfs, bundle.name)
            code = run_step(builder.env.runtime_argv, builder.runtime_root, bundle, rootfs,
                            config, process, output)
            if code != 0:
                raise BuildError(
                    f"Dockerfile:{instruction.line}: process {shown!r} did not complete "
                    f"successfully: exit code: {code}" +
                    ("".join(f"\n  {line}" for line in tail) if tail else ""))

    builder.layer_step(state, title, key, work, f"RUN {shown} # {HISTORY_COMMENT}")


def mount_source_key(builder: Builder, spec: dict[str, str]) -> Any:
    """What a RUN mount contributes to the step's cache key."""
    if spec["type"] == "bind":
        ref = spec.get("from")
        if ref:
            return ["bind", spec["target"], ref, builder.from_key(ref), spec.get("source", "")]
        return ["bind", spec["target"], builder.context.checksum(
            clean_path(spec.get("source", "")))]
    return [spec["type"], spec["target"], spec.get("id", "")]


def oci_mount(builder: Builder, spec: dict[str, str], bundle: Path, stack: contextlib.ExitStack,
               instruction: Instruction) -> dict[str, Any] | None:
    import shutil

    kind, target = spec["type"], spec["target"]
    idmap = builder.images.snapshotter.idmap

    def owner_ids() -> tuple[int, int]:
        """The mount's uid/gid options, as the host stores them."""
        ids = int(spec.get("uid", "0")), int(spec.get("gid", "0"))
        return idmap.to_host(*ids) if idmap else ids

    if kind == "tmpfs":
        options = ["nosuid", "nodev"] + ([f"size={spec['size']}"] if "size" in spec else [])
        return {"destination": target, "type": "tmpfs", "source": "tmpfs",
                "options": options}
    if kind == "cache":
        ident = spec.get("id") or target
        directory = (builder.env.layout.root / "build-cache" /
                     hashlib.sha256(ident.encode()).hexdigest()[:32])
        if not directory.exists():
            directory.mkdir(parents=True, mode=int(spec.get("mode", "755"), 8))
            os.chown(directory, *owner_ids())
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
        source = builder.options.secrets.get(ident)
        if source is None:
            if spec.get("required") in ("true", ""):
                raise instruction.error(f"secret {ident} not found (pass --secret "
                                        f"id={ident},src=FILE)")
            return None
        copy = bundle / f"secret-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"
        shutil.copyfile(source, copy)
        copy.chmod(int(spec.get("mode", "400"), 8))
        os.chown(copy, *owner_ids())
        return {"destination": target or f"/run/secrets/{ident}", "type": "bind",
                "source": str(copy), "options": ["rbind", "ro"]}
    # bind: from the context, or from a stage or image
    ref = spec.get("from")
    if ref:
        _key, root = stack.enter_context(builder.mounted(builder.from_state(ref)))
        source = resolve_in_root(str(root), spec.get("source", "/"), what="mount source")
    else:
        source = context_view(builder, spec.get("source", ""), bundle)
    if _readonly(spec, True):
        return {"destination": target, "type": "bind", "source": source,
                "options": ["rbind", "ro"]}
    scratch = bundle / f"bind-{os.urandom(4).hex()}"  # rw: writes are thrown away
    if os.path.isdir(source):
        _copy_scratch(source, scratch)
    else:
        shutil.copy2(source, scratch)
    return {"destination": target, "type": "bind", "source": str(scratch),
            "options": ["rbind"]}


def context_view(builder: Builder, relative: str, bundle: Path) -> str:
    """A context path for a bind mount, without what .dockerignore excludes."""
    cleaned = clean_path(relative)
    path = builder.context.host_path(cleaned)
    if not builder.context.ignore.patterns or not path.is_dir():
        if cleaned and not builder.context.included(cleaned):
            raise NotFound(f"{relative}: excluded by .dockerignore")
        return str(path)
    view = bundle / f"context-{os.urandom(4).hex()}"
    view.mkdir()
    for source in [copier.Source(str(builder.context.root), cleaned, str(path),
                                 builder.context.included)]:
        copier.copy_source(source, str(view), "/",
                           copier.Ownership(idmap=builder.images.snapshotter.idmap),
                           into_directory=True, parents=False)
    return str(view)

# --- COPY / ADD ---------------------------------------------------------------

def _readonly(spec: Mapping[str, str], default: bool) -> bool:
    if "rw" in spec or "readwrite" in spec:
        return False
    if "ro" in spec or "readonly" in spec:
        return True
    return default


def parse_mount(instruction: Instruction, text: str, env: Mapping[str, str],
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


def _copy_scratch(source: str, scratch: Path) -> None:
    """A throw-away copy of a directory (another stage's or the context's), read and
    written by descriptor, without recursion."""
    from dockyard.fs.inroot import Root
    from dockyard.snapshots.unpack import copy_tree

    scratch.mkdir()
    with Root(source, what="mount source") as src:
        copy_tree(src.fd, scratch, "mount")
