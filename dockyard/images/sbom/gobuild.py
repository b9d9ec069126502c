"""The modules a Go binary records about its own build (what ``go version -m`` prints).

Cheap by design: the ELF header and section table are read with ``pread`` to find
``.go.buildinfo``; only that section is read (capped).  Since Go 1.18 it holds a
16-byte header (``\\xff Go buildinf:``, pointer size, flags) and, with flag 2, two
inline strings — the Go version and the module info — each prefixed by a uvarint
length.  The module info is framed by 16-byte sentinels and holds lines
``path``/``mod``/``dep``/``=>`` (a replacement of the dep before it), tab-separated.
Older binaries (pointers instead of inline strings) and anything malformed read as
no modules.
"""

from __future__ import annotations

import os
import struct

MAGIC = b"\xff Go buildinf:"
SECTION_LIMIT = 4 << 20  # a .go.buildinfo larger than this is not believed
_MAX_SECTIONS = 4096


def _section(fd: int, name: bytes) -> bytes | None:
    head = os.pread(fd, 64, 0)
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
    if wide:
        shoff, = struct.unpack_from(order + "Q", head, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", head, 0x3A)
        entry = order + "IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from(order + "I", head, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", head, 0x2E)
        entry = order + "IIIIIIIIII"
    if not 0 < shnum <= _MAX_SECTIONS or shstrndx >= shnum or \
            shentsize < struct.calcsize(entry):
        return None
    table = os.pread(fd, shentsize * shnum, shoff)
    if len(table) < shentsize * shnum:
        return None
    headers = [struct.unpack_from(entry, table, i * shentsize) for i in range(shnum)]
    names_offset, names_size = headers[shstrndx][4], headers[shstrndx][5]
    names = os.pread(fd, min(names_size, 1 << 20), names_offset)
    for header in headers:
        start = header[0]
        if names[start:start + len(name) + 1] == name + b"\0":
            offset, size = header[4], header[5]
            return os.pread(fd, min(size, SECTION_LIMIT), offset) if size else b""
    return None


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    raise ValueError("truncated uvarint")


def _inline_strings(section: bytes) -> tuple[str, str] | None:
    if not section.startswith(MAGIC) or len(section) < 32 or not section[15] & 2:
        return None
    try:
        length, at = _uvarint(section, 32)
        version = section[at:at + length]
        length, at = _uvarint(section, at + length)
        info = section[at:at + length]
    except ValueError:
        return None
    return version.decode("utf-8", "replace"), info.decode("utf-8", "replace")


def parse_modinfo(info: str) -> list[tuple[str, str]]:
    """(module path, version) of the main module (unless ``(devel)``) and every dep,
    replacements applied."""
    if len(info) >= 33 and info[-17] == "\n":
        info = info[16:-16]
    found: list[tuple[str, str]] = []
    for line in info.splitlines():
        fields = line.split("\t")
        if fields[0] in ("mod", "dep") and len(fields) >= 3:
            if fields[2] != "(devel)":
                found.append((fields[1], fields[2]))
        elif fields[0] == "=>" and len(fields) >= 3 and found:
            found[-1] = (fields[1], fields[2])
    return found


def modules(fd: int) -> list[tuple[str, str]]:
    """The modules of the Go binary open at ``fd``; [] for anything else."""
    try:
        section = _section(fd, b".go.buildinfo")
    except (OSError, struct.error, IndexError):
        return []
    strings = _inline_strings(section) if section else None
    return parse_modinfo(strings[1]) if strings else []
