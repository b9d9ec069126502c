"""The content-addressable blob store: ``blobs/sha256/<hex>`` under the images root.

The only way in is :meth:`LocalContentStore.ingest`: bytes go to a temp file in
``ingest/``, are hashed as they stream, checked against the expected digest and
size, fsynced, and renamed into place.  A blob is therefore never half-written,
whatever instant the process dies at; leftovers in ``ingest/`` are garbage that
``system check`` removes.  The kernel is asked to start writing a large blob out every
:data:`WRITEBACK_EVERY` bytes as it comes (``store.atomic.start_writeback``), so its
fsync has little left to do: in a pull of five 40 MB layers the fsyncs that all came
at the end cost ~60 ms of its ~500 ms download.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from dockyard.errors import DataLoss, DigestMismatch, NotFound
from dockyard.oci.digest import Digest
from dockyard.store.atomic import fsync_dir, start_writeback
from dockyard.store.oserror import translated, user_error

WRITEBACK_EVERY = 8 << 20


class ContentProvider(Protocol):
    def path(self, digest: str) -> Path: ...
    def read(self, digest: str) -> bytes: ...
    def exists(self, digest: str) -> bool: ...


class ContentStore(ContentProvider, Protocol):
    def ingest(self, expected: str | None = None, size: int | None = None) -> BlobWriter: ...
    def write(self, data: bytes, expected: str | None = None) -> str: ...
    def delete(self, digest: str) -> None: ...
    def walk(self) -> Iterator[tuple[str, int]]: ...


def _hold(handle: IO[bytes]) -> None:
    """A writer holds an exclusive lock on its ingest file while it is open, so
    ``system check`` can tell an abandoned file (lock free) from one in use."""
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def unlocked(path: Path) -> bool:
    """Whether nobody holds ``path``'s lock (its writer is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


class BlobWriter:
    """A blob being written; ``commit`` verifies and publishes it atomically.

    A full disk, a read-only root or a denied path fails as a one-line error naming
    the file (``store.oserror``), and the partial file is removed (a resumable one,
    kept for its retry, is reported by ``system check``)."""

    def __init__(self, store: LocalContentStore, expected: str | None, size: int | None) -> None:
        self._store = store
        self._expected = Digest.parse(expected) if expected else None
        self._size = size
        self._tmp = store.ingest_dir / f"{os.urandom(16).hex()}.part"
        with translated(self._tmp):
            self._file: IO[bytes] = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        _hold(self._file)
        self._hash = hashlib.sha256()
        self.written = 0
        self._unsynced = 0  # bytes written since the kernel was asked to write them out

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
            self._unsynced += len(chunk)
            if self._unsynced >= WRITEBACK_EVERY:
                self._file.flush()
                start_writeback(self._file.fileno())
                self._unsynced = 0
        except OSError as exc:
            error = user_error(exc, self._tmp)
            if error is None:
                raise
            raise error from exc
        self._hash.update(chunk)
        self.written += len(chunk)

    def _close(self) -> None:
        """Close the file, whatever its buffer's flush says (the write that failed,
        if any, has raised already)."""
        with contextlib.suppress(OSError):
            self._file.close()

    def commit(self) -> str:
        try:
            with translated(self._tmp):
                try:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                finally:
                    self._close()
        except BaseException:
            self._discard()
            raise
        digest = f"sha256:{self._hash.hexdigest()}"
        try:
            if self._size is not None and self.written != self._size:
                raise DataLoss(f"blob {self._expected or digest}: size mismatch: expected "
                               f"{self._size} bytes, got {self.written}")
            if self._expected is not None and digest != str(self._expected):
                raise DigestMismatch(f"blob: digest mismatch: expected {self._expected}, "
                                     f"got {digest}")
            target = self._store.path(digest)
            with translated(target):
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._tmp, target)
                fsync_dir(target.parent)
        except BaseException:
            self._discard()
            raise
        return digest

    def _discard(self) -> None:
        self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self._close()
        self._discard()

    def suspend(self) -> None:
        """Keep the partial file for a later ``resume`` (an interrupted download)."""
        self._close()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._file.closed:
            self.abort()


class ResumableWriter(BlobWriter):
    def __init__(self, store: LocalContentStore, expected: str, size: int | None) -> None:
        self._store = store
        self._expected = Digest.parse(expected)
        self._size = size
        self._tmp = store.ingest_dir / f"{self._expected.hex}.partial"
        self._hash = hashlib.sha256()
        self.written = 0
        self._unsynced = 0
        if self._tmp.exists():
            with open(self._tmp, "rb") as existing:
                for chunk in iter(lambda: existing.read(1 << 20), b""):
                    self._hash.update(chunk)
                    self.written += len(chunk)
        with translated(self._tmp):
            self._file = open(self._tmp, "ab")  # noqa: SIM115 - closed in commit/abort
        _hold(self._file)

    def restart(self) -> None:
        """The server ignored our Range request: start the blob over."""
        self._close()
        with translated(self._tmp):
            self._file = open(self._tmp, "wb")  # noqa: SIM115
        _hold(self._file)
        self._hash = hashlib.sha256()
        self.written = 0
        self._unsynced = 0

    def __exit__(self, *exc: object) -> None:
        if not self._file.closed:
            self.suspend()


class LocalContentStore:
    def __init__(self, root: Path, *, make: bool = True) -> None:
        """``make`` False: a reader's (the warm path's warm-up), which makes no folder
        in a root that may be being removed."""
        self.root = root
        self.blobs = root / "blobs"
        self.ingest_dir = root / "ingest"
        if make:
            self.ingest_dir.mkdir(parents=True, exist_ok=True)
            self.blobs.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        parsed = Digest.parse(digest)
        return self.blobs / parsed.algorithm / parsed.hex

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def ingest(self, expected: str | None = None, size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected, size)

    def resume(self, expected: str, size: int | None = None) -> ResumableWriter:
        """A writer for ``expected`` that continues a partial download, if one exists.

        The partial file is named by the digest, so a retried pull (even by another
        process) finds it; ``writer.written`` is where to resume from (HTTP Range).
        """
        return ResumableWriter(self, expected, size)

    def write(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data`` (verified against ``expected`` when given); returns its digest."""
        digest = expected or str(Digest.of(data))
        if self.exists(digest):
            return digest
        with self.ingest(expected, len(data)) as writer:
            writer.write(data)
            return writer.commit()

    def write_stream(self, stream: IO[bytes], expected: str | None = None,
                     size: int | None = None) -> str:
        if expected and self.exists(expected):
            return expected
        with self.ingest(expected, size) as writer:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                writer.write(chunk)
            return writer.commit()

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def walk(self) -> Iterator[tuple[str, int]]:
        for algorithm in sorted(self.blobs.iterdir()):
            for blob in sorted(algorithm.iterdir()):
                yield f"{algorithm.name}:{blob.name}", blob.stat().st_size

    def abandoned_ingests(self) -> list[Path]:
        """Ingest files no live writer holds: interrupted imports, loads and pulls
        (a pull's ``.partial`` would be resumed; removing it only costs a restart)."""
        return [p for p in sorted(self.ingest_dir.iterdir()) if unlocked(p)]

    def verify_all(self) -> list[str]:
        """Digests whose bytes no longer match their name (for ``system check``)."""
        bad = []
        for digest, _size in self.walk():
            hasher = hashlib.sha256()
            with open(self.path(digest), "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    hasher.update(chunk)
            if f"sha256:{hasher.hexdigest()}" != digest:
                bad.append(digest)
        return bad
