"""A layer blob as its uncompressed bytes: for the unpacker, the door and the archives.

gzip is decompressed from 1 MiB reads of the compressed file (``gzip.GzipFile``
reads 8 KiB at a time: a 200 MB layer cost ~26,000 read(2) calls, ~0.3 s of system
time, in a pull's door check and again in its unpack), in pieces of at most 1 MiB,
so a bomb is never whole in memory.  The inflater (ISA-L's, see :func:`inflated`)
checks each member's CRC-32 and length (``wbits`` 16+15); members may follow one
another and zero padding may end the stream (RFC 1952, as ``gzip`` reads them);
anything else after a member is an error.

:class:`ForwardReader` serves tarfile's seeking mode from those pieces, so the
door reads a member's contents only to hash them: in tarfile's stream mode every
byte was copied three more times (~60 ms of a 40 MB layer's ~120 ms check).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from typing import IO

from dockyard.errors import InvalidArgument, NotImplementedFeature

PIECE = 1 << 20


class BadStream(OSError):
    """Compressed bytes that do not decompress (gzip's or zstd's word on them): the
    layer's fault, told as such (an OSError still, as ``gzip`` raises one), never a
    disk's."""


@contextlib.contextmanager
def told_as_bad(what: str) -> Iterator[None]:
    """Compressed bytes that do not decompress, or that end inside a member or frame,
    as ``what``'s error (InvalidArgument: exit 125, HTTP 400), not an internal one."""
    try:
        yield
    except BadStream as exc:
        raise InvalidArgument(f"{what} is not valid: {exc}") from exc
    except EOFError as exc:
        raise InvalidArgument(f"{what} is truncated") from exc
# a pax or GNU long-name header's data is read whole: at most this much, as Docker's
# Go archive/tar reads them (its maxSpecialFileSize)
MAX_SPECIAL_HEADER = 1 << 20


def inflated(raw: IO[bytes]) -> Iterator[bytes]:
    """The gzip stream ``raw`` decompressed, in pieces of at most :data:`PIECE` bytes.

    The inflater is ISA-L's (``isal.isal_zlib``, zlib's interface: the same CRC-32
    and length checks, members and tails; reserved header flag bits, which zlib
    refused, pass, naming no field that is read): twice zlib's speed on real layers
    (a 160 MB tar of /usr: 394 -> 198 ms), and every layer a pull brings is inflated
    twice (the door's check, then the unpack)."""
    from isal import isal_zlib

    inflate = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
    data = b""
    while True:
        if inflate.eof:  # another member, zero padding, or the end
            rest = inflate.unused_data.lstrip(b"\0")
            while not rest:
                rest = raw.read(PIECE)
                if not rest:
                    return
                rest = rest.lstrip(b"\0")
            inflate = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
            data = rest
        if not data:
            data = raw.read(PIECE)
            if not data:
                raise EOFError("compressed file ended before the end-of-stream marker "
                               "was reached")
        try:
            out = inflate.decompress(data, PIECE)
        # (isal's stub types ``error`` as an instance, not the class it is)
        except isal_zlib.error as exc:  # type: ignore[misc]
            raise BadStream(f"not a valid gzip stream: {exc}") from exc
        data = inflate.unconsumed_tail
        if out:
            yield out


def pieces(raw: IO[bytes], compression: str) -> Iterator[bytes]:
    """The uncompressed bytes of the blob ``raw`` (``compression`` as
    ``mediatypes.layer_compression`` names it), in pieces of at most 1 MiB."""
    if compression == "gzip":
        return inflated(raw)
    if compression == "zstd":
        return _unzstd(raw)
    if compression == "":
        return iter(lambda: raw.read(PIECE), b"")
    raise NotImplementedFeature(f"layer compression {compression!r} is not supported")


# compressed bytes given to zstd at a time: its decompressobj has no output bound, and
# 4 bytes (an RLE block) make up to 128 KiB, so 1 KiB makes at most 32 MiB
_ZSTD_BITE = 1 << 10


def _unzstd(raw: IO[bytes]) -> Iterator[bytes]:
    """A zstd stream decompressed, frame after frame, in pieces of about :data:`PIECE`;
    a stream that ends inside a frame is truncated (zstandard's stream reader ends
    quietly there: a cut ``.tar.zst`` imported half a rootfs)."""
    import zstandard  # deferred: only zstd layers need it

    decompressor = zstandard.ZstdDecompressor()
    inflate = decompressor.decompressobj()
    fed = False
    gathered: list[bytes] = []
    size = 0
    try:
        while data := raw.read(PIECE):
            for start in range(0, len(data), _ZSTD_BITE):
                bite = data[start:start + _ZSTD_BITE]
                while bite:
                    if inflate.eof:  # the next frame
                        inflate = decompressor.decompressobj()
                    out = inflate.decompress(bite)
                    fed = True
                    bite = inflate.unused_data if inflate.eof else b""
                    if out:
                        gathered.append(out)
                        size += len(out)
                if size >= PIECE:
                    yield b"".join(gathered)
                    gathered, size = [], 0
    except zstandard.ZstdError as exc:
        raise BadStream(f"not a valid zstd stream: {exc}") from exc
    if not fed or not inflate.eof:
        raise EOFError("compressed file ended before the end of its zstd frame")
    if gathered:
        yield b"".join(gathered)


class PieceReader(io.RawIOBase):
    """Pieces as a raw stream (``decompressed``'s gzip): each piece copied once, into
    the reader's buffer."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source
        self._piece = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._piece:
            self._piece = memoryview(next(self._source, b""))
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._piece))
        view[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n


def decompressed(stream: IO[bytes], compression: str) -> IO[bytes]:
    """The uncompressed layer as a file to read (the unpacker's stream mode, archives):
    :func:`pieces` behind a buffer, or the stream itself when it is not compressed."""
    if compression == "":
        return stream
    return io.BufferedReader(PieceReader(pieces(stream, compression)), PIECE)


class ForwardReader(io.RawIOBase):
    """A layer's uncompressed pieces as the file tarfile's seeking mode (``r:``) reads:
    headers by ``read``, a member's contents passed over by ``seek``, forward only.
    Every piece is hashed as it arrives (the diff_id) and otherwise never copied.
    A seek past the end raises EOFError: the layer is truncated."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source
        self._piece = b""
        self._at = 0  # in the piece
        self._position = 0  # in the stream
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def _next_piece(self) -> bool:
        piece = next(self._source, b"")
        if not piece:
            return False
        self._hash.update(piece)
        self._piece, self._at = piece, 0
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_SPECIAL_HEADER:
            raise InvalidArgument(f"layer has a tar header of {size} bytes; at most "
                                  f"{MAX_SPECIAL_HEADER} are read, as Docker reads them")
        parts: list[bytes] = []
        while size:
            left = len(self._piece) - self._at
            if not left:
                if not self._next_piece():
                    break
                continue
            step = min(size, left)
            parts.append(self._piece[self._at:self._at + step])
            self._at += step
            self._position += step
            size -= step
        return b"".join(parts)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR):
            raise io.UnsupportedOperation("a layer stream is read forward only")
        if target < self._position:  # (tarfile's stream mode refused it as well)
            raise InvalidArgument("layer is not a valid tar archive: an entry points "
                                  "backwards")
        skip = target - self._position
        while skip:
            left = len(self._piece) - self._at
            if not left:
                if not self._next_piece():
                    raise EOFError("layer is truncated")
                continue
            step = min(skip, left)
            self._at += step
            self._position += step
            skip -= step
        return self._position

    def finish(self) -> str:
        """Hash the rest (tar's end-of-archive padding is part of the diff_id); the
        diff_id."""
        while self._next_piece():
            pass
        return f"sha256:{self._hash.hexdigest()}"
