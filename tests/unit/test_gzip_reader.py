"""``snapshots.layer_stream.decompressed``: gzip layers decompressed in 1 MiB bites,
read as gzip reads them (several members, zero padding) and refused as gzip refuses
them."""

from __future__ import annotations

import gzip
import io
import os

import pytest

from dockyard.snapshots.layer_stream import decompressed


class CountingFile(io.BytesIO):
    """Counts the reads made of the compressed source."""

    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def inflate(data: bytes) -> bytes:
    return decompressed(io.BytesIO(data), "gzip").read()


def test_reads_what_gzip_reads() -> None:
    data = os.urandom(3_000_000) + b"a" * 5_000_000
    assert inflate(gzip.compress(data)) == data
    assert inflate(gzip.compress(b"")) == b""
    assert inflate(gzip.compress(b"x" * 10) + gzip.compress(b"y" * 5)) == b"x" * 10 + b"y" * 5
    assert inflate(gzip.compress(b"abc") + bytes(5000)) == b"abc"  # zero padding
    assert inflate(gzip.compress(b"abc") + bytes(3) + gzip.compress(b"d")) == b"abcd"


def test_reads_the_source_in_large_bites() -> None:
    source = CountingFile(gzip.compress(os.urandom(8_000_000), 1))
    assert len(decompressed(source, "gzip").read()) == 8_000_000
    assert source.reads < 20  # gzip.GzipFile: ~1,000 reads of 8 KiB


@pytest.mark.parametrize("mangle", [
    lambda c: c[:-6] + bytes([c[-6] ^ 1]) + c[-5:],  # CRC-32
    lambda c: c[:-1] + bytes([c[-1] ^ 1]),  # length
    lambda c: c[:-3],  # truncated
    lambda c: c + b"junk",  # not a member after a member
    lambda c: b"notgzip",
], ids=["crc", "length", "truncated", "trailing-junk", "not-gzip"])
def test_refuses_what_gzip_refuses(mangle: object) -> None:
    assert callable(mangle)
    bad = mangle(gzip.compress(os.urandom(100_000)))
    with pytest.raises((OSError, EOFError)):
        gzip.decompress(bad)
    with pytest.raises((OSError, EOFError)):
        inflate(bad)
