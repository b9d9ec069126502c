"""``snapshots.layer_stream.ForwardReader`` under the door's check: tarfile's seeking
mode over a layer read forward once, every byte hashed, headers bounded as Docker's."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.snapshots.layer_stream import ForwardReader, pieces
from dockyard.snapshots.unpack import check_layer


def _tar(files: dict[str, bytes], pax: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax:
                info.pax_headers = pax
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


FILES = {
    "big": os.urandom(3_500_000),  # spans pieces of 1 MiB
    "d/" + "long" * 40: b"x" * 700,  # a pax path header
    "empty": b"",
    "after": os.urandom(1_048_576 - 512),  # ends just short of a piece boundary
}


@pytest.mark.parametrize("compression", ["", "gzip"])
def test_the_diff_id_is_every_byte_of_the_tar(compression: str) -> None:
    data = _tar(FILES)
    blob = gzip.compress(data) if compression else data
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert check_layer(io.BytesIO(blob), compression) == expected
    # two gzip members read as one stream, as gzip reads them
    half = len(data) // 3
    members = gzip.compress(data[:half]) + gzip.compress(data[half:])
    assert check_layer(io.BytesIO(members), "gzip") == expected


@pytest.mark.parametrize("compression", ["", "gzip"])
def test_a_layer_cut_inside_a_file_is_truncated(compression: str) -> None:
    data = _tar(FILES)
    cut = data[:2_000_000]  # inside "big"
    blob = gzip.compress(cut) if compression else cut
    with pytest.raises(InvalidArgument, match="truncated"):
        check_layer(io.BytesIO(blob), compression)


def test_a_header_over_a_mebibyte_is_refused() -> None:
    data = _tar({"a": b"x"}, pax={"comment": "c" * (2 << 20)})
    with pytest.raises(InvalidArgument, match="tar header of .* bytes"):
        check_layer(io.BytesIO(gzip.compress(data)), "gzip")
    # within the bound it is read
    data = _tar({"a": b"x"}, pax={"comment": "c" * 100_000})
    assert check_layer(io.BytesIO(data), "") == "sha256:" + hashlib.sha256(data).hexdigest()


def test_reads_and_seeks_go_forward_only() -> None:
    reader = ForwardReader(iter([b"abc", b"defg", b"h"]))
    assert reader.read(2) == b"ab"
    assert reader.seek(5) == 5  # across a piece
    assert reader.read(10) == b"fgh"  # short at the end
    with pytest.raises(InvalidArgument, match="backwards"):
        reader.seek(1)
    with pytest.raises(EOFError):
        reader.seek(20)
    assert reader.finish() == "sha256:" + hashlib.sha256(b"abcdefgh").hexdigest()


def _negative_size_tar() -> bytes:
    """A member whose size is -512 in base-256: tarfile's seeking mode would read its
    header again and again (a pull of such an uncompressed layer never ended)."""
    good = tarfile.TarInfo("a")
    header = bytearray(good.tobuf(tarfile.GNU_FORMAT))
    bad = tarfile.TarInfo("b")
    second = bytearray(bad.tobuf(tarfile.GNU_FORMAT))
    second[124:136] = b"\xff" * 10 + b"\xfe\x00"  # size: -512
    second[148:156] = b"        "
    checksum = sum(second) & 0o777777
    second[148:156] = f"{checksum:06o}\0 ".encode()
    return bytes(header) + bytes(second) + bytes(1024)


@pytest.mark.parametrize("how", ["stream", "gzip", "file"])
def test_a_negative_size_is_refused_not_looped_on(how: str, tmp_path: Path) -> None:
    data = _negative_size_tar()
    if how == "file":  # a stored uncompressed layer: tarfile seeks in the file itself
        (tmp_path / "layer").write_bytes(data)
        with open(tmp_path / "layer", "rb") as stream, \
                pytest.raises(InvalidArgument, match="negative size|backwards|bad header"):
            check_layer(stream)
        return
    blob = gzip.compress(data) if how == "gzip" else data
    with pytest.raises(InvalidArgument, match="negative size|backwards|bad header"):
        check_layer(io.BytesIO(blob), "gzip" if how == "gzip" else "")


@pytest.mark.parametrize("damage", ["checksum", "cut"])
@pytest.mark.parametrize("how", ["stream", "gzip", "file"])
def test_a_damaged_header_past_the_first_is_refused_not_taken_for_the_end(
        how: str, damage: str, tmp_path: Path) -> None:
    """tarfile takes a bad header (or one cut short) past the first member for the end
    of the archive: such a layer read as a layer of its first files only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name in ("a", "b"):
            archive.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    data = bytearray(buffer.getvalue())
    if damage == "checksum":
        data[512] ^= 0x01  # the second header's name: its checksum no longer matches
    else:
        data = data[:512 + 100]  # the stream ends inside the second header
    blob = gzip.compress(bytes(data)) if how == "gzip" else bytes(data)
    if how == "file":
        (tmp_path / "layer").write_bytes(blob)
        with open(tmp_path / "layer", "rb") as stream, \
                pytest.raises(InvalidArgument, match="bad header|truncated"):
            check_layer(stream)
        return
    with pytest.raises(InvalidArgument, match="bad header|truncated"):
        check_layer(io.BytesIO(blob), "gzip" if how == "gzip" else "")


def test_many_big_headers_are_not_all_held() -> None:
    """tarfile keeps every member it read, pax headers and all: 60 members with ~1 MiB
    headers each (a ~0.1 MB gzip blob) must not hold ~60 MiB while checked."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for number in range(60):
            info = tarfile.TarInfo(f"f{number}")
            info.pax_headers = {"comment": "c" * ((1 << 20) - 200)}
            archive.addfile(info, io.BytesIO(b""))
    blob = gzip.compress(buffer.getvalue(), 1)
    tracemalloc.start()
    try:
        check_layer(io.BytesIO(blob), "gzip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def _sparse_tar(block: bytes) -> bytes:
    """A GNU sparse 1.0 member whose map is not numbers: tarfile raises ValueError."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("s")
        info.size = 512
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
        archive.addfile(info, io.BytesIO(block.ljust(512, b"\0")))
    return buffer.getvalue()


@pytest.mark.parametrize("case", ["gzip-junk", "gzip-crc", "zstd-junk", "sparse-map"])
def test_bad_bytes_are_the_layers_error_not_an_internal_one(case: str) -> None:
    """What a hostile blob makes the decompressor or tarfile raise is told as the layer's
    fault (InvalidArgument: a clear message, exit 125 / HTTP 400), not a crash."""
    data = _tar({"a": os.urandom(2000)})
    compression, blob = {
        "gzip-junk": ("gzip", b"\x1f\x8b\x08\x00" + os.urandom(3000)),
        "gzip-crc": ("gzip", (lambda c: c[:-8] + bytes([c[-8] ^ 1]) + c[-7:])(
            gzip.compress(data))),
        "zstd-junk": ("zstd", b"\x28\xb5\x2f\xfd" + os.urandom(3000)),
        "sparse-map": ("", _sparse_tar(b"x\n")),
    }[case]
    with pytest.raises(InvalidArgument):
        check_layer(io.BytesIO(blob), compression)


def test_zstd_frames_and_a_cut_frame() -> None:
    """zstd's stream reader ends quietly inside a frame: a cut ``.tar.zst`` must be
    truncated, not half a layer; several frames read as one stream."""
    import zstandard

    data = _tar(FILES)
    blob = zstandard.ZstdCompressor().compress(data)
    assert check_layer(io.BytesIO(blob), "zstd") == "sha256:" + hashlib.sha256(data).hexdigest()
    half = len(data) // 2
    frames = zstandard.ZstdCompressor().compress(data[:half]) + \
        zstandard.ZstdCompressor().compress(data[half:])
    assert b"".join(pieces(io.BytesIO(frames), "zstd")) == data
    with pytest.raises(InvalidArgument, match="truncated"):
        check_layer(io.BytesIO(blob[:len(blob) * 2 // 3]), "zstd")


@pytest.mark.parametrize("case", ["gzip-junk", "gzip-cut", "zstd-cut"])
def test_import_of_a_bad_blob_is_the_layers_error(case: str, tmp_path: Path) -> None:
    """``import``/``load`` decompress before the door: the same words there."""
    import zstandard

    from dockyard.images.archive import store_layer_stream
    from dockyard.images.content import LocalContentStore

    data = _tar({"a": os.urandom(200_000)})
    blob = {"gzip-junk": b"\x1f\x8b\x08\x00" + os.urandom(3000),
            "gzip-cut": gzip.compress(data)[:100_000],
            "zstd-cut": zstandard.ZstdCompressor().compress(data)[:100_000]}[case]
    store = LocalContentStore(tmp_path / "content")
    brought: set[str] = set()
    with pytest.raises(InvalidArgument, match="layer is (not valid|truncated)"):
        store_layer_stream(store, io.BytesIO(blob), brought)
    assert brought == set() and not list((tmp_path / "content" / "ingest").iterdir())


def test_gzip_layers_are_inflated_by_isal_member_after_member(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ISA-L inflates (twice zlib's speed on real layers), one inflater per member,
    with zlib's checks: a member whose CRC-32 is wrong is the layer's error."""
    from isal import isal_zlib

    made: list[int] = []
    real = isal_zlib.decompressobj

    def counted(wbits: int) -> object:
        made.append(wbits)
        return real(wbits)

    monkeypatch.setattr(isal_zlib, "decompressobj", counted)
    first, second = os.urandom(300_000), b"y" * 2_000_000
    blob = gzip.compress(first, mtime=0) + gzip.compress(second, mtime=0) + b"\0" * 20
    assert b"".join(pieces(io.BytesIO(blob), "gzip")) == first + second
    assert made == [31, 31]
    member = gzip.compress(second, mtime=0)
    broken = member[:-8] + bytes([member[-8] ^ 1]) + member[-7:]
    with pytest.raises(OSError, match="not a valid gzip stream"):
        b"".join(pieces(io.BytesIO(broken), "gzip"))
