"""snapshots.tar_header reads a plain tar header exactly as tarfile's ``frombuf`` does
(every attribute of the TarInfo equal), and leaves every other block to tarfile: over
the headers of real archives in each format, and over ~20,000 headers damaged or odd
in the ways a hostile layer can make them."""

from __future__ import annotations

import io
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.snapshots.tar_header import plain_header

ENCODINGS = (("utf-8", "surrogateescape"), ("ascii", "strict"))
NUMBERS = ((100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (329, 8), (337, 8))
TEXTS = ((0, 100), (157, 100), (265, 32), (297, 32), (345, 155))


def _tarfiles_reading(buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo | Exception:
    try:
        return tarfile.TarInfo.frombuf(buf, encoding, errors)
    except Exception as exc:  # noqa: BLE001 - whatever tarfile raises is the answer
        return exc


def _agrees(buf: bytes, encoding: str = "utf-8", errors: str = "surrogateescape") -> bool:
    """Whether plain_header read ``buf`` (True) or left it to tarfile (False); fails
    the test if it read it otherwise than tarfile does."""
    theirs = _tarfiles_reading(buf, encoding, errors)
    ours = plain_header(tarfile.TarInfo, buf, encoding, errors)
    if ours is None:
        return False
    assert not isinstance(theirs, Exception), (buf, theirs)
    assert _fields(ours) == _fields(theirs), buf
    return True


def _fields(info: tarfile.TarInfo) -> dict[str, object]:
    """Every attribute (TarInfo has slots, no __dict__); an unset one as such."""
    return {slot: getattr(info, slot, "(unset)") for slot in tarfile.TarInfo.__slots__}


def _headers(archive: bytes) -> list[bytes]:
    """Every header block of ``archive`` (a pax or GNU long name's own included), found
    by tarfile's reading of it."""
    blocks = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        for member in opened:
            start = member.offset
            while start < member.offset_data:
                blocks.append(archive[start:start + 512])
                start += 512
    return blocks


def _archive(fmt: int, tree: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        archive.add(str(tree), arcname="top")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files, a deep directory (a ustar prefix), a long name, links, a device, a fifo,
    owners, a name that is not UTF-8."""
    top = tmp_path_factory.mktemp("tree")
    deep = top / ("d" * 60) / ("e" * 60) / ("f" * 40)
    deep.mkdir(parents=True)
    (deep / "file.txt").write_bytes(b"x" * 700)
    (top / ("long-" * 30)).write_bytes(b"")
    (top / "link").symlink_to("d" * 60)
    os.link(deep / "file.txt", top / "hard")
    os.mkfifo(top / "fifo")
    (top / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name")
    if os.geteuid() == 0:
        os.mknod(top / "null", 0o20666, os.makedev(1, 3))
        os.chown(top / "link", 1234, 5678, follow_symlinks=False)
    for i in range(50):
        (top / f"small-{i}").write_bytes(os.urandom(i))
    return top


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                 tarfile.PAX_FORMAT])
def test_real_archives_headers_are_read_alike(tree: Path, fmt: int) -> None:
    # (ustar cannot hold the long name)
    archive = _archive(fmt, tree / ("d" * 60) if fmt == tarfile.USTAR_FORMAT else tree)
    _all_plain_ones_read(_headers(archive))


def _all_plain_ones_read(blocks: list[bytes]) -> None:
    """Each block read alike; and every one that tarfile takes for a header (not a long
    name's or a pax header's data) read by plain_header: the fast path is the usual
    one.  With the ascii codec, a name that is not ascii is left to tarfile."""
    headers = [b for b in blocks if isinstance(_tarfiles_reading(b, "utf-8", "strict"),
                                               tarfile.TarInfo)]
    assert len(headers) >= len(blocks) // 2
    assert all(_agrees(block) for block in headers)
    for block in blocks:
        for encoding in ENCODINGS:
            _agrees(block, *encoding)


def test_gnu_tars_own_archives_are_read_alike(tree: Path, tmp_path: Path) -> None:
    """GNU tar writes its own format ('ustar  ' magic, ././@LongLink names)."""
    path = tmp_path / "gnu.tar"
    subprocess.run(["tar", "-C", str(tree), "-cf", str(path), "."], check=True)
    _all_plain_ones_read(_headers(path.read_bytes()))


CHECKSUM_SPELLINGS = (b"%06o\0 ", b"%07o\0", b"%08o", b" %06o\0", b"\0%07o", b"%06o \0",
                      b"%06o\x001", b"+%06o\0", b"\t%06o\0", b"%06o\0\x80")


def _with_checksum(block: bytearray, how: str, spelling: bytes = b"%06o\0 ") -> bytes:
    block[148:156] = b" " * 8
    if how == "unsigned":
        value = sum(block)
    elif how == "signed":
        value = sum(b - 256 if b > 127 else b for b in block)
    else:
        value = sum(block) + 1
    written = spelling % (value & 0o777777)
    block[148:156] = written[:8].ljust(8, b"\0")
    return bytes(block)


def _base(kind: bytes, name: str, prefix: str = "") -> bytearray:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = 1234 if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    info.linkname = "target" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    info.devmajor, info.devminor = (1, 3) if kind == tarfile.CHRTYPE else (0, 0)
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
    if prefix:
        block[345:345 + len(prefix)] = prefix.encode()
    return block


ODD_NUMBER_BYTES = b"0123456789 \0+-_xob\x1c\x80\xff\t"


def test_damaged_and_odd_headers_are_read_alike_or_left_to_tarfile() -> None:
    rng = random.Random(1304)
    bases = [_base(tarfile.REGTYPE, "a/b.txt"), _base(tarfile.AREGTYPE, "old/dir/"),
             _base(tarfile.DIRTYPE, "dir///"), _base(tarfile.SYMTYPE, "l"),
             _base(tarfile.LNKTYPE, "h"), _base(tarfile.CHRTYPE, "dev/null"),
             _base(tarfile.FIFOTYPE, "p"), _base(tarfile.REGTYPE, "name", prefix="pre/fix"),
             _base(tarfile.GNUTYPE_LONGNAME, "././@LongLink"),
             _base(tarfile.XHDTYPE, "pax"), _base(tarfile.GNUTYPE_SPARSE, "sparse"),
             _base(tarfile.AREGTYPE, "plain")]
    read = 0
    for _ in range(20_000):
        block = bytearray(rng.choice(bases))
        for _ in range(rng.randint(0, 3)):
            what = rng.random()
            if what < 0.5:  # a number field's byte
                start, length = rng.choice(NUMBERS)
                block[start + rng.randrange(length)] = rng.choice(ODD_NUMBER_BYTES)
            elif what < 0.8:  # a text field's byte
                start, length = rng.choice(TEXTS)
                block[start + rng.randrange(length)] = rng.choice(b"a/.\0\xe9\xff \x80")
            elif what < 0.85:  # the type
                block[156] = rng.choice(b"0123456\0LKxgSDV7MNXA")
            elif what < 0.9:  # the magic and version, or the padding after the prefix
                where = rng.choice([range(257, 265), range(500, 512)])
                block[rng.choice(where)] = rng.choice(b"\0 u\x01\xff")
            else:  # a whole number field emptied, or made of spaces
                start, length = rng.choice(NUMBERS)
                block[start:start + length] = rng.choice([b"\0", b" "]) * length
        how = rng.choice(["unsigned", "unsigned", "unsigned", "signed", "wrong"])
        buf = _with_checksum(block, how, rng.choice(CHECKSUM_SPELLINGS))
        if rng.random() < 0.1:  # a byte changed after the checksum: now a wrong one
            after = bytearray(buf)
            after[rng.choice([*range(257, 265), *range(500, 512)])] ^= 1
            buf = bytes(after)
        for encoding in ENCODINGS:
            read += _agrees(buf, *encoding)
    assert read > 5_000  # (the fast path did take many of them)


def test_blocks_tarfile_refuses_are_left_to_it() -> None:
    assert plain_header(tarfile.TarInfo, b"", "utf-8", "strict") is None
    assert plain_header(tarfile.TarInfo, b"\0" * 511, "utf-8", "strict") is None
    assert plain_header(tarfile.TarInfo, b"\0" * 512, "utf-8", "strict") is None
    good = _with_checksum(_base(tarfile.REGTYPE, "x"), "unsigned")
    assert plain_header(tarfile.TarInfo, good, "utf-8", "strict") is not None
    bad = _with_checksum(_base(tarfile.REGTYPE, "x"), "wrong")
    assert plain_header(tarfile.TarInfo, bad, "utf-8", "strict") is None
    base256 = bytearray(_base(tarfile.REGTYPE, "x"))
    base256[124:136] = b"\x80" + (1 << 40).to_bytes(11, "big")
    assert plain_header(tarfile.TarInfo, _with_checksum(base256, "unsigned"), "utf-8",
                        "strict") is None
