"""``compose watch``: the services' ``develop.watch`` rules applied as files change.

Each rule watches a host path (a directory, or one file) by polling its tree (mtime,
size and kind of every entry, every ``interval``; no inotify watch per directory to
run out of) and, on a change, applies its action to the service's running
containers: ``sync`` copies what was added or changed into ``target`` and removes
there what was removed here; ``sync+restart`` and ``sync+exec`` then restart the
container or run a command in it; ``restart`` only restarts; ``rebuild`` builds the
image again and lets converge recreate the service.  ``ignore`` and ``include``
patterns are matched (fnmatch, ``**`` allowed) against the path relative to the
rule's path and against every parent of it.
"""

from __future__ import annotations

import fnmatch
import io
import os
import stat
import tarfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dockyard.compose.plan import Hook, WatchRule
from dockyard.errors import DockyardError, InvalidArgument

if TYPE_CHECKING:
    from dockyard.compose.converge import Project
    from dockyard.engine.records import ContainerRecord

State = dict[str, tuple[int, int, int]]  # relative path -> (kind, size, mtime_ns)


def _matches(relative: str, patterns: tuple[str, ...]) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    for pattern in patterns:
        pattern = pattern.strip("/")
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or \
                    fnmatch.fnmatchcase(candidate, pattern.replace("**/", "")):
                return True
    return False


def _wanted(rule: WatchRule, relative: str) -> bool:
    if not relative:
        return True
    if rule.ignore and _matches(relative, rule.ignore):
        return False
    return not rule.include or _matches(relative, rule.include) or \
        not os.path.isfile(os.path.join(rule.path, relative))


def snapshot(rule: WatchRule) -> State:
    """Every entry below the rule's path that its patterns keep."""
    out: State = {}
    try:
        info = os.lstat(rule.path)
    except FileNotFoundError:
        return out
    if not stat.S_ISDIR(info.st_mode):
        return {"": (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)}
    stack = [""]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(rule.path, folder)))
        except OSError:
            continue
        for entry in entries:
            relative = f"{folder}/{entry.name}" if folder else entry.name
            if not _wanted(rule, relative):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            out[relative] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)
            if entry.is_dir(follow_symlinks=False):
                stack.append(relative)
    return out


def changes(before: State, after: State) -> tuple[list[str], list[str]]:
    """(added or changed, removed) relative paths; directories whose contents changed
    are not listed for themselves."""
    changed = sorted(p for p, v in after.items() if before.get(p) != v and
                     (v[0] != stat.S_IFDIR or p not in before))
    removed = sorted(p for p in before if p not in after)
    return changed, removed


class Watcher:
    def __init__(self, project: Project, rules: list[WatchRule],
                 report: Callable[[str], None]) -> None:
        self.project = project
        self.rules = rules
        self.report = report

    def run(self, stop: Callable[[], bool], interval: float = 0.25) -> None:
        states = {index: snapshot(rule) for index, rule in enumerate(self.rules)}
        for index, rule in enumerate(self.rules):
            if rule.initial_sync and rule.action.startswith("sync"):
                self._apply(rule, sorted(states[index]), [])
        self.report("Watch enabled")
        while not stop():
            time.sleep(interval)
            for index, rule in enumerate(self.rules):
                now = snapshot(rule)
                changed, removed = changes(states[index], now)
                states[index] = now
                if changed or removed:
                    try:
                        self._apply(rule, changed, removed)
                    except DockyardError as exc:  # reported; the watch goes on
                        self.report(f"Service {rule.service}  watch {rule.action} failed: "
                                    f"{exc}")

    def _apply(self, rule: WatchRule, changed: list[str], removed: list[str]) -> None:
        from dockyard.compose.converge import UpOptions

        project = self.project
        if rule.action == "rebuild":
            self.report(f"Service {rule.service}  Rebuilding ({len(changed) + len(removed)} "
                        "changed)")
            project.build(rule.service)
            project.up(UpOptions((rule.service,), no_deps=True, build="never"))
            return
        records = [r for r in project.containers((rule.service,)) if r.state == "running"]
        for record in records:
            if rule.action.startswith("sync"):
                self._sync(rule, record, changed, removed)
            if rule.action in ("restart", "sync+restart"):
                self.report(f"Container {record.name}  Restarting")
                project.engine.containers.stop(record.id)
                project.engine.containers.start(record.id)
            if rule.action == "sync+exec" and rule.exec is not None:
                project.run_hook(record, rule.exec)

    def _sync(self, rule: WatchRule, record: ContainerRecord, changed: list[str],
              removed: list[str]) -> None:
        if rule.target is None:
            raise InvalidArgument(f"service {rule.service!r}: a {rule.action} rule needs a "
                                  "target")
        target = rule.target.rstrip("/") or "/"
        files = changed
        if files:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
                parts = target.strip("/").split("/") if target != "/" else []
                for depth in range(1, len(parts)):
                    info = tarfile.TarInfo("/".join(parts[:depth]))
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                for relative in files:
                    host = os.path.join(rule.path, relative) if relative else rule.path
                    inside = "/".join([*parts, relative]) if relative else "/".join(parts)
                    if not inside:
                        continue
                    try:
                        tar.add(host, arcname=inside, recursive=False)
                    except FileNotFoundError:  # gone again since the snapshot
                        continue
            buffer.seek(0)
            self.project.engine.container_ops.copy_in(record.id, buffer, "/")
        if removed:
            paths = [f"{target}/{p}" if p else target for p in removed]
            self.project.run_hook(record, Hook(("rm", "-rf", "--", *paths), None, None, ()))
        self.report(f"Container {record.name}  Synced {len(files)} changed, {len(removed)} "
                    f"removed ({rule.path} -> {target})")


def rules_of(project: Project, services: tuple[str, ...]) -> list[WatchRule]:
    rules = [rule for name, service in project.plan.services.items()
             if not services or name in services for rule in service.watch]
    if not rules:
        raise InvalidArgument("none of the selected services has develop.watch rules: "
                              "nothing to watch")
    return rules

