"""A large blob's pages are sent to disk as it is written (``store.atomic.start_writeback``
every ``content.WRITEBACK_EVERY`` bytes), so its fsync at commit has little left: the
kernel is really asked, the bytes asked about are in the file by then, and the blob
still commits whole and verified."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
from pathlib import Path

import pytest

from dockyard.images import content as content_module
from dockyard.images.content import WRITEBACK_EVERY, LocalContentStore
from dockyard.store import atomic


def test_start_writeback_reaches_the_kernel(tmp_path: Path) -> None:
    """On a regular file the call succeeds; on a pipe the kernel answers ESPIPE, which
    only the syscall itself can have said (the call is best effort: it raises neither)."""
    path = tmp_path / "blob"
    with open(path, "wb") as file:
        file.write(os.urandom(1 << 20))
        file.flush()
        ctypes.set_errno(0)
        atomic.start_writeback(file.fileno())
        assert ctypes.get_errno() == 0
    read_end, write_end = os.pipe()
    try:
        atomic.start_writeback(write_end)
        assert ctypes.get_errno() == errno.ESPIPE
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_large_blob_is_sent_to_disk_as_it_is_written(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces smaller than the file's buffer (1000 bytes: a write of them stays in it
    until flushed), so every byte written must be in the file when the kernel is asked
    to write it out."""
    store = LocalContentStore(tmp_path / "content")
    asked: list[int] = []  # the file's size at each call
    piece = os.urandom(1000)
    count = 2 * WRITEBACK_EVERY // len(piece) + 3
    expected = hashlib.sha256(piece * count).hexdigest()
    writer = store.ingest(f"sha256:{expected}")

    def recorded(fd: int) -> None:
        asked.append(os.fstat(fd).st_size)

    monkeypatch.setattr(content_module, "start_writeback", recorded)
    with writer:
        for _ in range(count):
            writer.write(piece)
        digest = writer.commit()
    assert digest == f"sha256:{expected}"
    # asked once past each WRITEBACK_EVERY bytes, with all of them (whole pieces) in the file
    assert asked == [-(-k * WRITEBACK_EVERY // len(piece)) * len(piece) for k in (1, 2)]
    assert store.read(digest) == piece * count
