"""Path patterns: ``.dockerignore`` (Docker's patternmatcher rules) and COPY globs.

``.dockerignore``: one pattern per line, ``#`` comments, leading ``!`` re-includes;
patterns are cleaned (``./a/../b`` → ``b``, leading ``/`` dropped); ``*`` and ``?``
never cross ``/``, ``**`` spans any number of directories; a pattern that matches
a directory excludes everything under it; the last matching pattern wins.
"""

from __future__ import annotations

import posixpath
import re
from functools import lru_cache
from typing import NamedTuple


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/": zero or more directories
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body)
                           .replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    """Go's ``filepath.Match`` plus ``**``, on slash-separated relative paths."""
    return _compile(pattern).match(path) is not None


def has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


class IgnorePattern(NamedTuple):
    pattern: str
    exclusion: bool


def parse_dockerignore(text: str) -> list[IgnorePattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = posixpath.normpath(line)
        if len(line) > 1 and line.startswith("/"):
            line = line.lstrip("/") or "/"
        if line == ".":
            continue
        patterns.append(IgnorePattern(line, exclusion))
    return patterns


class IgnoreMatcher:
    """Decides whether a context path (relative, slash-separated) is excluded."""

    def __init__(self, patterns: list[IgnorePattern]) -> None:
        self.patterns = patterns

    @classmethod
    def from_text(cls, text: str) -> IgnoreMatcher:
        return cls(parse_dockerignore(text))

    def excluded(self, path: str) -> bool:
        if not self.patterns:
            return False
        parts = path.split("/")
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = glob_match(pattern.pattern, path) or any(
                glob_match(pattern.pattern, parent) for parent in parents)
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_reinclude_under(self, directory: str) -> bool:
        """Whether an exclusion could bring back something below an excluded directory
        (if not, the walk skips the directory entirely)."""
        return any(p.exclusion and (p.pattern.startswith(directory + "/") or
                                    has_magic(p.pattern)) for p in self.patterns)
