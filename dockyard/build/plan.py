"""The build plan: stages, global ARGs, which stages the target needs and in what
order.  Pure — no files, no processes — so it is unit-tested without root.

A stage depends on another when it starts ``FROM`` it, copies ``--from`` it, or
mounts ``from=`` it in a RUN.  Stages the target does not reach are skipped, as
BuildKit does; the rest form a DAG the executor walks in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from dockyard.build.instructions import Instruction, escape_character, parse
from dockyard.build.shellwords import expand_word
from dockyard.errors import InvalidArgument
from dockyard.images.imagefile import host_platform


class Stage(NamedTuple):
    number: int  # position in the Dockerfile, from 0
    name: str | None  # the ``AS`` name, lower case
    base: str  # the FROM argument as written
    platform: str | None
    line: int
    instructions: tuple[Instruction, ...]

    @property
    def label(self) -> str:
        return self.name or str(self.number)


class Plan(NamedTuple):
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    escape: str


def automatic_args() -> dict[str, str]:
    """BuildKit's platform ARGs, all for the host platform (no cross builds here)."""
    platform = host_platform()
    value = f"{platform['os']}/{platform['architecture']}"
    args = {}
    for prefix in ("TARGET", "BUILD"):
        args[f"{prefix}PLATFORM"] = value
        args[f"{prefix}OS"] = platform["os"]
        args[f"{prefix}ARCH"] = platform["architecture"]
        args[f"{prefix}VARIANT"] = ""
    return args


def parse_plan(text: str) -> Plan:
    escape = escape_character(text)
    instructions = parse(text)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    header: Instruction | None = None
    names: set[str] = set()

    def close() -> None:
        if header is None or current is None:
            return
        words = header.args
        name = None
        if len(words) == 3 and words[1].upper() == "AS":
            name = words[2].lower()
            if name in names:
                raise header.error(f"duplicate stage name {name!r}")
            if not _valid_stage_name(name):
                raise header.error(f"invalid name for build stage: {name!r}, name can't "
                                   "start with a number or contain symbols")
            names.add(name)
        elif len(words) != 1:
            raise header.error("FROM requires either one or three arguments")
        stages.append(Stage(len(stages), name, words[0], header.flag("platform"),
                            header.line, tuple(current)))

    for instruction in instructions:
        if instruction.cmd == "FROM":
            close()
            header, current = instruction, []
        elif current is None:
            if instruction.cmd != "ARG":
                raise instruction.error(f"{instruction.cmd} instruction before the first "
                                        "FROM (only ARG may come before FROM)")
            global_args.append(instruction)
        else:
            current.append(instruction)
    close()
    if not stages:
        raise InvalidArgument("the Dockerfile has no FROM instruction: nothing to build")
    return Plan(tuple(global_args), tuple(stages), escape)


def _valid_stage_name(name: str) -> bool:
    return bool(name) and name[0].isalpha() and all(c.isalnum() or c in "-_." for c in name)


def arg_pairs(instruction: Instruction, env: Mapping[str, str],
              escape: str) -> list[tuple[str, str | None]]:
    """``ARG A B=1`` → [("A", None), ("B", "1")] with defaults expanded."""
    pairs: list[tuple[str, str | None]] = []
    for word in instruction.args:
        name, sep, default = word.partition("=")
        if not name:
            raise instruction.error("ARG names can not be blank")
        pairs.append((name, expand_word(default, env, escape) if sep else None))
    return pairs


def global_scope(plan: Plan, build_args: Mapping[str, str]) -> dict[str, str]:
    """Values of the ARGs declared before the first FROM (usable in FROM lines)."""
    scope = automatic_args()
    for instruction in plan.global_args:
        for name, default in arg_pairs(instruction, scope, plan.escape):
            if name in build_args:
                scope[name] = build_args[name]
            elif default is not None:
                scope[name] = default
    return scope


def find_stage(plan: Plan, ref: str) -> Stage | None:
    lowered = ref.lower()
    for stage in plan.stages:
        if stage.name == lowered:
            return stage
    if ref.isdigit() and int(ref) < len(plan.stages):
        return plan.stages[int(ref)]
    return None


def target_stage(plan: Plan, target: str | None) -> Stage:
    if target is None:
        return plan.stages[-1]
    stage = find_stage(plan, target)
    if stage is None:
        raise InvalidArgument(f'target stage "{target}" could not be found')
    return stage


def stage_references(stage: Stage, scope: Mapping[str, str], escape: str) -> list[str]:
    """Names a stage may take from elsewhere: its base and every --from / from=."""
    refs = [expand_word(stage.base, scope, escape)]
    for instruction in stage.instructions:
        if instruction.cmd == "COPY" and instruction.flag("from"):
            refs.append(expand_word(instruction.flag("from") or "", scope, escape))
        if instruction.cmd == "RUN":
            for mount in instruction.flags.get("mount", []):
                for part in mount.split(","):
                    key, _, value = part.partition("=")
                    if key.strip() == "from" and value:
                        refs.append(expand_word(value, scope, escape))
    return refs


def dependencies(plan: Plan, target: Stage,
                 scope: Mapping[str, str]) -> dict[int, set[int]]:
    """The stages ``target`` needs (itself included), each with the stages it needs
    first.  A reference to a later stage, or a cycle, is an error."""
    needed: dict[int, set[int]] = {}
    pending = [target]
    while pending:
        stage = pending.pop()
        if stage.number in needed:
            continue
        deps: set[int] = set()
        for ref in stage_references(stage, scope, plan.escape):
            other = find_stage(plan, ref)
            if other is None:
                continue  # an image, resolved later
            if other.number >= stage.number:
                raise InvalidArgument(f"Dockerfile:{stage.line}: stage {stage.label!r} "
                                      f"refers to stage {other.label!r}, which is not "
                                      "defined before it")
            deps.add(other.number)
            pending.append(other)
        needed[stage.number] = deps
    return needed
