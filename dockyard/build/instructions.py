"""Dockerfile text → checked instructions, using the ``dockerfile`` package (bindings
to Docker's own parser) for the grammar: line continuations, JSON forms, heredocs.

What the parser leaves to us is checked here, before anything runs: unknown
instructions, flags an instruction does not take, missing arguments.  Every error
names the Dockerfile line, as Docker's do ("Dockerfile:7: unknown instruction: FOO").
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dockyard.errors import InvalidArgument

# flag name → whether it may repeat
_FLAGS: dict[str, dict[str, bool]] = {
    "FROM": {"platform": False},
    "RUN": {"mount": True, "network": False, "security": False},
    "COPY": {"from": False, "chown": False, "chmod": False, "link": False, "parents": False,
             "exclude": True},
    "ADD": {"chown": False, "chmod": False, "link": False, "keep-git-dir": False,
            "checksum": False, "exclude": True},
    "HEALTHCHECK": {"interval": False, "timeout": False, "start-period": False,
                    "start-interval": False, "retries": False},
}
_NO_FLAGS = ("ARG", "ENV", "LABEL", "EXPOSE", "VOLUME", "WORKDIR", "USER", "ENTRYPOINT",
             "CMD", "SHELL", "STOPSIGNAL", "MAINTAINER", "ONBUILD")
KNOWN = frozenset([*_FLAGS, *_NO_FLAGS])
_BOOLEAN_FLAGS = frozenset({"link", "parents", "keep-git-dir"})
_ESCAPE_DIRECTIVE = re.compile(r"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)


class Heredoc(NamedTuple):
    name: str
    content: str
    expand: bool  # False when the delimiter was quoted (<<"EOF")


class Instruction(NamedTuple):
    cmd: str  # upper case
    line: int
    original: str
    flags: dict[str, list[str]]
    args: tuple[str, ...]
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()

    def flag(self, name: str, default: str | None = None) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else default

    def error(self, message: str) -> InvalidArgument:
        return InvalidArgument(f"Dockerfile:{self.line}: {message}")


def escape_character(text: str) -> str:
    """The ``# escape=`` parser directive (only before the first instruction)."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        match = _ESCAPE_DIRECTIVE.match(stripped)
        if match:
            if match.group(1) not in ("\\", "`"):
                raise InvalidArgument(f"invalid escape token {match.group(1)!r} does not "
                                      "match ` or \\")
            return match.group(1)
    return "\\"


def parse(text: str, *, line_offset: int = 0) -> list[Instruction]:
    import dockerfile

    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        raise InvalidArgument(f"Dockerfile parse error: {exc}") from exc
    instructions = []
    for command in commands:
        instruction = _convert(command, line_offset)
        if instruction.cmd == "ONBUILD":
            _check_trigger(instruction)
        instructions.append(instruction)
    return instructions


def _convert(command: object, line_offset: int) -> Instruction:
    cmd = str(getattr(command, "cmd", "")).upper()
    line = int(getattr(command, "start_line", 0)) + line_offset
    original = str(getattr(command, "original", ""))
    args = tuple(getattr(command, "value", ()))
    where = f"Dockerfile:{line}"
    if cmd not in KNOWN:
        raise InvalidArgument(f"{where}: unknown instruction: {cmd}")
    allowed = _FLAGS.get(cmd, {})
    flags: dict[str, list[str]] = {}
    for raw in getattr(command, "flags", ()):
        name, sep, value = str(raw).removeprefix("--").partition("=")
        if name not in allowed:
            raise InvalidArgument(f"{where}: unknown flag: --{name}")
        if not sep:
            if name not in _BOOLEAN_FLAGS:
                raise InvalidArgument(f"{where}: missing a value on flag: --{name}")
            value = "true"
        if flags.get(name) and not allowed[name]:
            raise InvalidArgument(f"{where}: flag --{name} given more than once")
        flags.setdefault(name, []).append(value)
    heredocs = tuple(Heredoc(h.name, h.content, not _quoted_delimiter(original, h.name))
                     for h in getattr(command, "heredocs", ()))
    if cmd != "ONBUILD" and (not args or args == ("",)) and cmd not in ("CMD", "ENTRYPOINT",
                                                                       "RUN"):
        raise InvalidArgument(f"{where}: {cmd} requires at least one argument")
    if cmd == "SHELL" and not getattr(command, "json", False):
        raise InvalidArgument(f"{where}: SHELL requires the arguments to be in JSON form")
    return Instruction(cmd, line, original, flags, args, bool(getattr(command, "json", False)),
                       heredocs)


def _quoted_delimiter(original: str, name: str) -> bool:
    return bool(re.search(r"<<-?\s*([\"'])" + re.escape(name) + r"\1", original))


def _check_trigger(instruction: Instruction) -> None:
    trigger = trigger_text(instruction)
    word = trigger.split(None, 1)[0].upper() if trigger else ""
    if word in ("ONBUILD", "FROM", "MAINTAINER"):
        raise instruction.error(f"{word} isn't allowed as an ONBUILD trigger")
    if word not in KNOWN:
        raise instruction.error(f"unknown instruction in ONBUILD: {word or '(none)'}")


def trigger_text(instruction: Instruction) -> str:
    """``ONBUILD RUN x`` → ``RUN x`` (what the image config's OnBuild stores)."""
    return re.sub(r"^\s*onbuild\s+", "", instruction.original, flags=re.IGNORECASE).strip()


def heredoc_name(word: str) -> str | None:
    """``<<EOT``, ``<<-EOT``, ``<<"EOT"`` → ``EOT``."""
    match = re.fullmatch(r"<<-?([\"']?)(\w+)\1", word)
    return match.group(2) if match else None
