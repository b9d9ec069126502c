"""File trees as comparable data: what a build produced, checked against an expectation
or against what ``docker build`` produced from the same Dockerfile."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple


class Entry(NamedTuple):
    kind: str  # "file", "dir", "link"
    mode: int  # permission bits
    uid: int
    gid: int
    content: str  # file text (or a size note for binaries), link target, "" for dirs


def tree(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, Entry]:
    """Every path under ``root`` (relative, slash-separated) → its Entry."""
    result: dict[str, Entry] = {}
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        for name in dirs + files:
            relative = name if rel_dir == "." else f"{rel_dir}/{name}"
            if any(relative == s or relative.startswith(s + "/") for s in skip):
                continue
            path = Path(directory) / name
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                kind, content = "link", os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                kind, content = "dir", ""
            else:
                kind = "file"
                data = path.read_bytes() if info.st_size < 65536 else b""
                try:
                    content = data.decode()
                except UnicodeDecodeError:
                    content = f"<{info.st_size} bytes>"
                if info.st_size >= 65536:
                    content = f"<{info.st_size} bytes>"
            result[relative] = Entry(kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                     content)
    return result
