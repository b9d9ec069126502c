"""COPY and ADD: sources from the context (with .dockerignore), another stage or an
image, heredocs and URLs; the cache key from their checksums; the copy itself."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.build import copier
from dockyard.build.cache import step_key
from dockyard.build.context import BuildContext, clean_path
from dockyard.build.instructions import Instruction, heredoc_name
from dockyard.build.model import HISTORY_COMMENT, StageState, first_line
from dockyard.build.patterns import glob_match, has_magic
from dockyard.build.shellwords import expand_heredoc, expand_word
from dockyard.errors import DockyardError
from dockyard.fs.inroot import Root
from dockyard.fs.tree import walk

if TYPE_CHECKING:
    from dockyard.build.executor import Builder


def copy(builder: Builder, state: StageState, instruction: Instruction, title: str) -> None:
    """One COPY or ADD: resolve the sources and their checksums (the cache key) now, and
    copy them in the step's mounted snapshot only on a cache miss."""
    env = builder.env_of(state)
    escape = builder.plan.escape
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

    literal: list[tuple[str, bytes, int, float | None]] = []
    patterns: list[str] = []
    for word in raw_sources:
        doc_name = heredoc_name(word)
        if doc_name in heredocs:
            doc = heredocs[doc_name]
            body = expand_heredoc(doc.content, env, escape) if doc.expand else doc.content
            literal.append((doc.name, body.encode(), 0o644, None))
            continue
        source = expand_word(word, env, escape)
        if cmd == "ADD" and source.startswith(("http://", "https://")):
            literal.append(_download(source, instruction))
            continue
        patterns.append(source)
    # heredocs and URLs in the cache key: (name, content digest)
    files = [(name, hashlib.sha256(data).hexdigest()) for name, data, _m, _t in literal]
    sources_given = len(literal) + len(patterns)
    if sources_given > 1 and not into_directory:
        raise instruction.error(f"When using {cmd} with more than one source file, "
                                "the destination must be a directory and end with a /")
    from_state = None
    context = builder.named_context(from_ref) if from_ref else None
    if context is not None:  # a named directory: copied as the build context is
        from_ref = None
    context = context or builder.context
    if from_ref:
        try:
            from_state = builder.from_state(from_ref)
        except DockyardError as exc:
            raise instruction.error(f"{cmd} --from={from_ref}: no stage of that name, and "
                                    f"no image either: {exc}") from exc
    hits_all: list[str] = []
    if from_state is None:
        for pattern in patterns:
            hits = context.match(pattern)
            if not hits:
                raise instruction.error(
                    f"{cmd} failed: file not found in build context or excluded by "
                    f".dockerignore: stat {pattern}: file does not exist")
            hits_all += [h for h in hits if not any(glob_match(e, h) for e in excludes)]
        material: Any = [[h, context.checksum(h)] for h in hits_all]
    else:
        material = [from_ref, from_state.key, patterns, excludes]
    many = sources_given > 1 or len(hits_all) > 1 or any(has_magic(p) for p in patterns)
    key = step_key(state.key, cmd, dest, into_directory, chown, chmod_text, parents,
                   material, files)

    def work(rootfs: Path, step: int) -> None:
        owner = copier.ownership(rootfs, chown, chmod, builder.images.snapshotter.idmap)
        root = str(rootfs)
        target_is_dir = into_directory or many or _is_dir(root, dest)
        for name, data, mode, mtime in literal:
            inner = posixpath.join(dest, name) if target_is_dir else dest
            copier.write_file(root, inner, data, owner, mode, mtime)
        if from_state is None:
            for relative in hits_all:
                path = str(context.host_path(relative))
                if cmd == "ADD" and copier.is_archive(path):
                    copier.extract_archive(path, root, dest, owner)
                    continue
                source = copier.Source(str(context.root), relative, path,
                                       _included(context, excludes),
                                       context.ignore.may_reinclude_under)
                copier.copy_source(source, root, dest, owner,
                                   into_directory=target_is_dir, parents=parents)
            return
        with builder.mounted(from_state) as (_key, other):
            for relative in _match_in_root(str(other), patterns, instruction, cmd):
                if any(glob_match(e, relative) for e in excludes):
                    continue
                source = copier.Source(str(other), relative, "/" + relative, lambda _r: True)
                copier.copy_source(source, root, dest, owner,
                                   into_directory=target_is_dir, parents=parents)

    builder.layer_step(state, title, key, work, f"{first_line(instruction.original)} "
                                              f"# {HISTORY_COMMENT}")


def _included(context: BuildContext, excludes: list[str]) -> Callable[[str], bool]:
    def include(relative: str) -> bool:
        return context.included(relative) and not any(
            glob_match(e, relative) for e in excludes)
    return include


def _download(url: str,
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



def _is_dir(root: str, inner: str) -> bool:
    return copier.is_dir(root, inner)


def _match_in_root(root: str, patterns: list[str], instruction: Instruction,
                   cmd: str) -> list[str]:
    """COPY --from sources: paths (or globs) inside another stage's rootfs, looked up
    in that root by descriptor (its symlinks followed inside it, never out)."""
    found: list[str] = []
    with Root(root, what=f"{cmd} --from") as other:
        for pattern in patterns:
            cleaned = clean_path(pattern)
            if not has_magic(cleaned):
                if other.lstat(cleaned) is None:
                    raise instruction.error(f"{cmd} --from failed: {pattern} not found")
                found.append(cleaned)
                continue
            magic_at = min(i for i, c in enumerate(cleaned) if c in "*?[")
            base = cleaned[:magic_at].rsplit("/", 1)[0] if "/" in cleaned[:magic_at] else ""
            try:
                start = other.open(base, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                start = -1
            hits = []
            if start >= 0:
                try:
                    for entry in walk(start):
                        relative = posixpath.join(base, entry.relative)
                        if glob_match(cleaned, relative):
                            hits.append(relative)
                finally:
                    os.close(start)
            if not hits:
                raise instruction.error(f"{cmd} --from failed: no source files were "
                                        f"specified (nothing matches {pattern})")
            found += sorted(hits)
    return found
