"""Docker's json-file log driver: one JSON object per line, with size-based rotation.

``max_size`` bytes per file and ``max_file`` files in all, as ``--log-opt
max-size=10m --log-opt max-file=3`` ask: ``container.log`` is the newest, then
``container.log.1``, and so on.  Readers go oldest first (``read_all``).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JsonLog:
    def __init__(self, path: Path, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(max_file, 1)
        self.file = open(path, "ab")  # noqa: SIM115 - lives as long as the supervisor
        self.size = self.file.tell()

    def write(self, stream: str, data: bytes) -> None:
        entry = json.dumps({"log": data.decode(errors="replace"), "stream": stream,
                            "time": now_iso()}).encode() + b"\n"
        if self.max_size and self.size + len(entry) > self.max_size and self.size:
            self._rotate()
        self.file.write(entry)
        self.file.flush()
        self.size += len(entry)

    def _rotate(self) -> None:
        self.file.close()
        for index in range(self.max_file - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            newer = self.path.with_name(f"{self.path.name}.{index - 1}") if index > 1 \
                else self.path
            if newer.exists() and index < self.max_file:
                os.replace(newer, older)
        if self.max_file == 1:
            self.path.unlink(missing_ok=True)
        self.file = open(self.path, "ab")  # noqa: SIM115
        self.size = 0


def log_files(path: Path) -> list[Path]:
    """Oldest first."""
    rotated = sorted(path.parent.glob(f"{path.name}.*"),
                     key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    return [p for p in rotated if p.suffix[1:].isdigit()] + ([path] if path.exists() else [])


def read_all(path: Path) -> Iterator[dict[str, str]]:
    for file in log_files(path):
        with open(file, "rb") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
