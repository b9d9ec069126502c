"""Apply one layer tar to a directory, in overlayfs's on-disk format.

Each layer is extracted once, into its own directory (shared by every image and
container whose chain includes it).  OCI whiteouts become what overlayfs reads:
``.wh.NAME`` → a 0/0 character device ``NAME``; ``.wh..wh..opq`` → the
``trusted.overlay.opaque`` xattr on the directory.

Hostile archives are refused with an error naming the entry: ``..`` components,
entries below a symlink (writing through it would leave the directory), and hard
links to anything outside the layer.  Absolute names are taken relative to the
layer root, as Docker does.  Nothing is ever written outside ``target``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import stat
import tarfile
from typing import IO

from dockyard.errors import InvalidArgument, NotImplementedFeature

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them (the layer's diff_id)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        readinto = getattr(self.raw, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: no extra copy
            n = readinto(view) or 0
        else:
            data = self.raw.read(len(view))
            n = len(data)
            view[:n] = data
        self.hash.update(view[:n])
        self.count += n
        return n

    def drain(self) -> None:
        """Read to the end: tar's end-of-archive padding is part of the diff_id."""
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def decompressed(stream: IO[bytes], compression: str) -> IO[bytes]:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard  # deferred: only zstd layers need it

        return zstandard.ZstdDecompressor().stream_reader(stream)
    if compression == "":
        return stream
    raise NotImplementedFeature(f"layer compression {compression!r} is not supported")


def _clean_name(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"layer entry {name!r} has a '..' component")
    return "/".join(parts)


def _check_parents(target: str, relative: str, name: str) -> None:
    current = target
    for part in relative.split("/")[:-1]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise InvalidArgument(f"layer entry {name!r} is below the symlink "
                                  f"{os.path.relpath(current, target)!r}")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def apply_layer(stream: IO[bytes], target: str) -> str:
    """Extract the (uncompressed) tar ``stream`` into ``target``; returns its diff_id."""
    if _regular_file(stream):
        return _apply_file(stream, target)
    reader = HashingReader(stream)
    buffered = io.BufferedReader(reader, 1 << 20)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        # stream mode reads in `bufsize` pieces: tarfile's 10 KiB default means ten times
        # the Python calls per megabyte
        with tarfile.open(fileobj=buffered, mode="r|", bufsize=1 << 20) as archive:
            for member in archive:
                _apply_member(archive, member, target, dirs)
    except tarfile.TarError as exc:
        raise InvalidArgument(f"layer is not a valid tar archive: {exc}") from exc
    except EOFError as exc:
        raise InvalidArgument("layer is truncated") from exc
    buffered.read()
    reader.drain()
    for path, member in reversed(dirs):  # directory times and modes last
        _set_attributes(path, member)
    return reader.digest


def _regular_file(stream: IO[bytes]) -> bool:
    """A plain open file (not a decompressor, which also answers fileno() — with the
    compressed file's descriptor)."""
    if not isinstance(stream, io.BufferedReader | io.FileIO):
        return False
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode) and stream.tell() == 0
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False


def _apply_file(stream: IO[bytes], target: str) -> str:
    """An uncompressed layer that is a file (a content-store blob): the diff_id is hashed
    by a thread reading its own descriptor (hashlib releases the GIL) while the tar is
    walked with seeks and file contents are copied by the kernel (copy_file_range), so
    no byte passes through Python twice."""
    import threading

    fd = stream.fileno()
    digest: dict[str, str] = {}

    def hash_all() -> None:
        with open(f"/proc/self/fd/{fd}", "rb") as own:  # an offset of its own
            digest["value"] = "sha256:" + hashlib.file_digest(own, "sha256").hexdigest()

    hasher = threading.Thread(target=hash_all, name="layer-digest")
    hasher.start()
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r:") as archive:
            for member in archive:
                _apply_member(archive, member, target, dirs, source_fd=fd)
    except tarfile.TarError as exc:
        raise InvalidArgument(f"layer is not a valid tar archive: {exc}") from exc
    except EOFError as exc:
        raise InvalidArgument("layer is truncated") from exc
    finally:
        hasher.join()
    for path, member in reversed(dirs):
        _set_attributes(path, member)
    return digest["value"]


def _copy_range(source_fd: int, path: str, offset: int, size: int) -> None:
    with open(path, "wb") as out:
        done = 0
        while done < size:
            moved = os.copy_file_range(source_fd, out.fileno(), size - done,
                                       offset_src=offset + done)
            if moved == 0:
                raise InvalidArgument("layer is truncated")
            done += moved


def _apply_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: str,
                  dirs: list[tuple[str, tarfile.TarInfo]], source_fd: int = -1) -> None:
    relative = _clean_name(member.name)
    if not relative:
        return
    _check_parents(target, relative, member.name)
    base = os.path.basename(relative)
    parent = os.path.join(target, os.path.dirname(relative))
    if base == OPAQUE_MARKER:
        os.makedirs(parent, exist_ok=True)
        os.setxattr(parent, OPAQUE_XATTR, b"y")
        return
    if base.startswith(WHITEOUT_PREFIX):
        os.makedirs(parent, exist_ok=True)
        whiteout = os.path.join(parent, base[len(WHITEOUT_PREFIX):])
        _remove(whiteout)
        os.mknod(whiteout, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    path = os.path.join(target, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if member.isdir():
        if os.path.lexists(path) and not os.path.isdir(path):
            _remove(path)
        os.makedirs(path, exist_ok=True)
        dirs.append((path, member))
        return
    _remove(path)
    if member.isreg() and source_fd >= 0 and not member.sparse:
        _copy_range(source_fd, path, member.offset_data, member.size)
    elif member.isreg():
        source = archive.extractfile(member)
        assert source is not None
        with open(path, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    elif member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        link = _clean_name(member.linkname)
        _check_parents(target, link, member.linkname)
        source_path = os.path.join(target, link)
        if not link or not os.path.lexists(source_path):
            raise InvalidArgument(f"layer entry {member.name!r} is a hard link to "
                                  f"{member.linkname!r}, which is not in this layer")
        os.link(source_path, path, follow_symlinks=False)
        return
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(path, kind | (member.mode & 0o7777),
                 os.makedev(member.devmajor, member.devminor))
    elif member.isfifo():
        os.mkfifo(path, member.mode & 0o7777)
    else:
        raise InvalidArgument(f"layer entry {member.name!r} has an unsupported type")
    _set_attributes(path, member)


def _set_attributes(path: str, member: tarfile.TarInfo) -> None:
    os.lchown(path, member.uid, member.gid)
    if not member.issym():
        os.chmod(path, member.mode & 0o7777)
    for key, value in (member.pax_headers or {}).items():
        if key.startswith("SCHILY.xattr."):
            with contextlib.suppress(OSError):
                os.setxattr(path, key[len("SCHILY.xattr."):], value.encode("utf-8",
                            "surrogateescape"), follow_symlinks=False)
    with contextlib.suppress(OSError):
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
