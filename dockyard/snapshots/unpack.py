"""dockyard's one tar reader: layers, ``cp``, ``ADD`` of local archives, build contexts.

Each layer is extracted once, into its own directory (shared by every image and
container whose chain includes it).  OCI whiteouts become what overlayfs reads:
``.wh.NAME`` → a 0/0 character device ``NAME``; ``.wh..wh..opq`` → the
``trusted.overlay.opaque`` xattr on the directory.

Hostile archives are refused with an error naming the entry: ``..`` components,
names longer than PATH_MAX, entries below a symlink (writing through it would
leave the directory), hard links to anything outside the layer.  Absolute names are
taken relative to the layer root, as Docker does.  ``tarfile`` only parses
headers here; every member is placed by descriptor through
:class:`dockyard.fs.inroot.Root` (never ``tarfile.extract*``), so nothing is ever
written outside the target, and directories are removed iteratively.

:func:`check_layer` runs the same rules as a streaming pass without writing
anything: ``import``, ``load``, ``pull`` and ``build`` refuse at the door what
``run`` would refuse.  The other archives (``cp``, ``ADD``, contexts) go through
:func:`extract_tar`, where names are literal (no whiteouts) and parent
directories are resolved inside the destination's root the way a process
chrooted there would see them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, NamedTuple, Self, cast

from dockyard.errors import InvalidArgument
from dockyard.fs import tartree, tree
from dockyard.fs.inroot import PATH_MAX, Root, proc_path
from dockyard.snapshots.layer_stream import ForwardReader, pieces, told_as_bad
from dockyard.snapshots.tar_header import plain_header

if TYPE_CHECKING:
    from dockyard.store.idmap import IdMap

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


class TarRules(NamedTuple):
    """How an archive's members land: a layer's rules by default."""

    whiteouts: bool = True  # ``.wh.X`` deletes X (layers); otherwise a literal name
    follow: bool = False  # parents resolved in the root following symlinks (cp, ADD)
    overwrite: bool = True  # False: Docker's cp refuses a directory ↔ non-directory swap
    owner: tuple[int, int] | None = None  # every entry owned by this (cp without -a)
    mode_mask: int = 0o7777  # 0o1777 on the host side: no set-id bits from a container
    mode: int | None = None  # every entry's mode (COPY --chmod)
    what: str = "layer"
    idmap: IdMap | None = None  # a remapped root: container ids stored as host ids


LAYER = TarRules()


def clean_name(name: str, what: str = "layer") -> str:
    """A member name as a path below the target; ``..`` and over-long names refused."""
    if len(name.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise InvalidArgument(f"{what} entry {name[:64]!r}... is longer than PATH_MAX "
                              f"({PATH_MAX} bytes)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"{what} entry {name!r} has a '..' component")
    return "/".join(parts)


def _check_type(member: tarfile.TarInfo, what: str) -> None:
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()
            or member.ischr() or member.isblk() or member.isfifo()):
        raise InvalidArgument(f"{what} entry {member.name!r} has an unsupported type")
    if member.size < 0:  # (base-256 allows it; tarfile would read the same header again)
        raise InvalidArgument(f"{what} entry {member.name!r} has a negative size")


# (not in typeshed: tarfile's own, raised by TarInfo.fromtarfile)
_DAMAGED: tuple[type[Exception], ...] = (vars(tarfile)["InvalidHeaderError"],
                                          vars(tarfile)["TruncatedHeaderError"])


class _HeaderChecked(tarfile.TarInfo):
    """A member's header as tarfile reads it, but one that is damaged (a bad checksum,
    a bad number) or cut short is an error: tarfile takes either, past the first
    member, for the end of the archive, so a layer whose second header was damaged
    read as a layer of one file (Go's archive/tar, and so docker, refuses it).  A
    block of zeros (the end marker) or the stream's end at a block's edge still ends
    the archive.

    A plain header is read by :func:`~dockyard.snapshots.tar_header.plain_header`
    (the same TarInfo, ~2.9x faster); any other block by tarfile's ``frombuf``.  The
    three steps after it are tarfile's own (``fromtarfile``'s, ``_fromtarfile``'s in
    later 3.11 releases), and ``_proc_member`` is tarfile's documented hook for the
    member's type (a GNU long name's or a pax header's next header is read by
    tarfile itself)."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
            info = plain_header(cls, buf, tarfile_.encoding, tarfile_.errors)
            if info is None:
                info = cls.frombuf(buf, tarfile_.encoding, tarfile_.errors)
            info.offset = tarfile_.fileobj.tell() - tarfile.BLOCKSIZE
            return info._proc_member(tarfile_)  # type: ignore[attr-defined,no-any-return]
        except _DAMAGED as exc:
            raise tarfile.ReadError(f"bad header at offset {tarfile_.offset}: {exc}") \
                from exc


def members_of(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's members, each forgotten once handled: tarfile keeps every one it
    has read (its pax headers with it), so a small compressed layer of many members
    with big headers would otherwise grow without bound in memory.  A header tarfile
    trips on with a ValueError (a GNU sparse map's numbers) is a bad archive, and so
    is a damaged or truncated one past the first (``_HeaderChecked``)."""
    archive.tarinfo = _HeaderChecked  # (the first member was read by open: its errors
    members = iter(archive)  # are tarfile's own ReadError)
    while True:
        try:
            member = next(members)
        except StopIteration:
            return
        except ValueError as exc:
            raise tarfile.ReadError(f"bad header: {exc}") from exc
        yield member
        archive.members.clear()  # type: ignore[attr-defined]  # (typeshed lacks it)



def _place_all(archive: tarfile.TarFile, placer: Placer) -> None:
    """Every member placed; the archive's parse and read errors as clear ones."""
    what = placer.rules.what
    try:
        for member in members_of(archive):
            placer.place(archive, member)
    except tarfile.TarError as exc:
        raise InvalidArgument(f"{what} is not a valid tar archive: {exc}") from exc
    except EOFError as exc:
        raise InvalidArgument(f"{what} is truncated") from exc


def apply_layer(stream: IO[bytes], target: str, idmap: IdMap | None = None) -> str:
    """Extract the (uncompressed) layer tar ``stream`` into the directory ``target``
    (a fresh one of ours); returns its diff_id.  With ``idmap`` (a remapped root)
    owners are stored shifted into the mapping's host range."""
    rules = LAYER._replace(idmap=idmap)
    with Root(target, what="layer") as root, told_as_bad("layer"):
        if _regular_file(stream):
            return _apply_file(stream, root, rules)
        reader = HashingReader(stream)
        buffered = io.BufferedReader(reader, 1 << 20)
        placer = Placer(root, "", rules)
        try:
            # stream mode reads in `bufsize` pieces: tarfile's 10 KiB default means ten
            # times the Python calls per megabyte
            with _open_tar(buffered, "r|", bufsize=1 << 20) as archive:
                _place_all(archive, placer)
            buffered.read()
            reader.drain()
            placer.finish()
        finally:
            placer.close()
        return reader.digest


@contextlib.contextmanager
def _open_tar(stream: IO[bytes], mode: str, bufsize: int = tarfile.RECORDSIZE
              ) -> Iterator[tarfile.TarFile]:
    try:
        archive = tarfile.open(fileobj=stream, mode=mode,  # noqa: SIM115 - closed below
                               bufsize=bufsize)  # type: ignore[call-overload]
    except (tarfile.TarError, ValueError) as exc:  # (ValueError: a first header's numbers)
        raise InvalidArgument(f"not a valid tar archive: {exc}") from exc
    except EOFError as exc:
        raise InvalidArgument("archive is truncated") from exc
    with archive:
        yield archive


def extract_tar(stream: IO[bytes], root: Root, base: str, rules: TarRules) -> None:
    """Extract an archive (any compression tar reads) below ``base`` inside ``root``:
    ``cp`` into a container, ``ADD`` of a local archive, a build context."""
    placer = Placer(root, base, rules)
    try:
        with _open_tar(stream, "r|*", bufsize=1 << 20) as archive:
            _place_all(archive, placer)
        placer.finish()
    finally:
        placer.close()


def _regular_file(stream: IO[bytes]) -> bool:
    """A plain open file (not a decompressor, which also answers fileno() — with the
    compressed file's descriptor)."""
    if not isinstance(stream, io.BufferedReader | io.FileIO):
        return False
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode) and stream.tell() == 0
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False


def _apply_file(stream: IO[bytes], root: Root, rules: TarRules) -> str:
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
    placer = Placer(root, "", rules, source_fd=fd)
    try:
        with _open_tar(stream, "r:") as archive:
            _place_all(archive, placer)
        placer.finish()
    finally:
        placer.close()
        hasher.join()
    return digest["value"]


class Placer:
    """Places members one by one, each through a descriptor of its parent directory."""

    def __init__(self, root: Root, base: str, rules: TarRules, source_fd: int = -1) -> None:
        self.root = root
        self.base = base.strip("/")
        self.rules = rules
        self.source_fd = source_fd
        self.parents: dict[str, int] = {}  # parent path → O_PATH descriptor (a cache)
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []

    def close(self) -> None:
        self._forget()

    def _forget(self, keep: int = -1) -> None:
        """Drop cached parents (but ``keep``, in use): an entry was removed or replaced,
        and a cached descriptor might now name a directory no longer in the tree."""
        kept = {path: fd for path, fd in self.parents.items() if fd == keep}
        for fd in self.parents.values():
            if fd != keep:
                os.close(fd)
        self.parents = kept

    def _inner(self, relative: str) -> str:
        return f"{self.base}/{relative}" if self.base else relative

    def _parent(self, relative: str) -> tuple[int, str]:
        parent, _, name = self._inner(relative).rpartition("/")
        fd = self.parents.get(parent)
        if fd is None:
            if len(self.parents) >= 64:
                self._forget()
            fd = self.root.make_dirs([p for p in parent.split("/") if p],
                                     follow=self.rules.follow, created=self._own_new_dir)
            self.parents[parent] = fd
        return fd, name

    def place(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """One member of ``archive``; its contents read from the archive."""
        def fill(out_fd: int) -> None:
            if self.source_fd >= 0 and not member.sparse:
                _copy_range(self.source_fd, out_fd, member.offset_data, member.size)
                return
            source = archive.extractfile(member)
            assert source is not None
            with os.fdopen(os.dup(out_fd), "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)

        self.place_member(member, fill if member.isreg() else None)

    def place_member(self, member: tarfile.TarInfo,
                     fill: Callable[[int], None] | None = None) -> None:
        """One entry described by a tar header; ``fill`` writes a regular file's
        contents into the descriptor it is given (COPY passes entries this way)."""
        what = self.rules.what
        relative = clean_name(member.name, what)
        if not relative:
            if member.isdir() and not self.base:
                return
            raise InvalidArgument(f"{what} entry {member.name!r} names the root")
        _check_type(member, what)
        try:
            self._place(member, relative, fill)
        except FileNotFoundError as exc:  # cp into a running container that removed the
            # directory meanwhile: creating in a deleted directory is ENOENT
            raise InvalidArgument(f"{what} entry {member.name!r}: its directory was removed "
                                  f"while it was being written ({exc.strerror})") from None
        except InvalidArgument as exc:
            if exc.message.startswith(f"{what}:"):  # from the resolver: name the entry
                raise InvalidArgument(f"{what} entry {member.name!r}: "
                                      f"{exc.message[len(what) + 2:]}") from None
            raise

    def _place(self, member: tarfile.TarInfo, relative: str,
               fill: Callable[[int], None] | None) -> None:
        parent_fd, name = self._parent(relative)
        if self.rules.whiteouts and name == OPAQUE_MARKER:
            os.setxattr(proc_path(parent_fd), OPAQUE_XATTR, b"y")
            return
        if self.rules.whiteouts and name.startswith(WHITEOUT_PREFIX):
            hidden = name[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):
                raise InvalidArgument(f"layer entry {member.name!r} is not a valid whiteout")
            self._replace(parent_fd, hidden, member, whiteout=True)
            os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
            return
        if member.isdir():
            if self._replace(parent_fd, name, member):
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            self.dirs.append((relative, member))
            return
        self._replace(parent_fd, name, member)
        if member.isreg():
            self._write_file(member, parent_fd, name, fill)
            return
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=parent_fd)
        elif member.islnk():
            self._hard_link(member, parent_fd, name)
            return
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                     dir_fd=parent_fd)
        else:
            os.mkfifo(name, 0o600, dir_fd=parent_fd)
        self._set_attributes(parent_fd, name, member)

    def _replace(self, parent_fd: int, name: str, member: tarfile.TarInfo, *,
                 whiteout: bool = False) -> bool:
        """Clear the way for ``member`` at ``name``; False when an existing directory
        is kept (a directory entry over a directory merges)."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        is_dir = stat.S_ISDIR(st.st_mode)
        if member.isdir() and is_dir and not whiteout:
            return False
        if not self.rules.overwrite and not whiteout and is_dir != member.isdir():
            kinds = ("non-directory", "directory") if member.isdir() else \
                ("directory", "non-directory")
            raise InvalidArgument(f"cannot overwrite {kinds[0]} {member.name!r} with "
                                  f"{kinds[1]}")
        if is_dir:
            self._forget(keep=parent_fd)
        tree.remove_at(parent_fd, name)
        return True

    def _write_file(self, member: tarfile.TarInfo, parent_fd: int, name: str,
                    fill: Callable[[int], None] | None) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=parent_fd)
        try:
            if fill is not None:
                try:
                    fill(fd)
                except OSError as exc:  # ENOSPC and friends: name the file being written
                    if exc.filename is not None:
                        raise
                    where = os.path.join(self.root.path, self._inner(member.name).lstrip("/"))
                    raise OSError(exc.errno, exc.strerror, where) from None
            self._own_and_mode(fd, member)
            _set_xattrs(fd, member)
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def _hard_link(self, member: tarfile.TarInfo, parent_fd: int, name: str) -> None:
        link = clean_name(member.linkname, self.rules.what)
        if not link:
            raise InvalidArgument(f"{self.rules.what} entry {member.name!r} is a hard link "
                                  "to the root")
        source_fd, source_name = self._parent(link)
        try:
            st = os.stat(source_name, dir_fd=source_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None or stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"{self.rules.what} entry {member.name!r} is a hard link to "
                                  f"{member.linkname!r}, which is not in this {self.rules.what}")
        os.link(source_name, name, src_dir_fd=source_fd, dst_dir_fd=parent_fd,
                follow_symlinks=False)

    def _owner(self, member: tarfile.TarInfo | None) -> tuple[int, int]:
        """The host owner of an entry (of a parent made on the way for None)."""
        uid, gid = self.rules.owner or ((member.uid, member.gid) if member else (0, 0))
        return self.rules.idmap.to_host(uid, gid) if self.rules.idmap else (uid, gid)

    def _own_and_mode(self, fd: int | str, member: tarfile.TarInfo) -> None:
        os.chown(fd, *self._owner(member))  # before chmod: chown clears set-id bits
        mode = self.rules.mode if self.rules.mode is not None else member.mode
        os.chmod(fd, mode & self.rules.mode_mask)

    def _own_new_dir(self, fd: int) -> None:
        """A parent directory this extraction had to make belongs to ``owner``."""
        if self.rules.owner is not None or self.rules.idmap is not None:
            os.chown(proc_path(fd), *self._owner(None))

    def _set_attributes(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        """Owner, mode, xattrs and times of a non-regular entry, by descriptor."""
        if member.issym():
            os.chown(name, *self._owner(member), dir_fd=parent_fd, follow_symlinks=False)
            with contextlib.suppress(OSError):
                os.utime(name, (member.mtime, member.mtime), dir_fd=parent_fd,
                         follow_symlinks=False)
            return
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                return  # swapped for a symlink by a running container: leave it
            path = proc_path(fd)  # names exactly this inode, never a redirected path
            self._own_and_mode(path, member)
            _set_xattrs(path, member)
            with contextlib.suppress(OSError):
                os.utime(path, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Directory owners, modes and times, last (their contents changed them)."""
        self._forget()
        for relative, member in reversed(self.dirs):
            try:
                parent_fd, name = self._parent(relative)
            except (InvalidArgument, FileNotFoundError):
                continue  # removed or replaced by a later entry
            with contextlib.suppress(FileNotFoundError):
                self._set_attributes(parent_fd, name, member)
        self._forget()


def place_tree(placer: Placer, top_fd: int, *, include: Callable[[str], bool] | None = None,
               descend: Callable[[str], bool] | None = None, special: bool = True) -> None:
    """Copy everything below the directory ``top_fd`` through ``placer`` (a tree to a
    tree, both by descriptor: volume copy-up, COPY of a directory, ``-o type=local``).
    ``include`` filters paths (relative to the top); ``descend`` may still enter an
    excluded directory; ``special`` False skips devices, FIFOs and sockets."""
    def enter(entry: tree.Entry) -> bool:
        return include is None or include(entry.relative) or bool(
            descend and descend(entry.relative))

    readable = tree.open_dir(top_fd, ".")
    try:
        for entry in tree.walk(readable, descend=enter):
            if include is not None and not include(entry.relative):
                continue
            mode = entry.stat.st_mode
            if stat.S_ISSOCK(mode):
                continue
            if not special and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)
                                    or stat.S_ISLNK(mode)):
                continue
            link = os.readlink(entry.name, dir_fd=entry.dir_fd) if stat.S_ISLNK(mode) else ""
            header = tartree.tar_info(entry.relative, entry.stat, link)
            placer.place_member(header, copy_from(entry.dir_fd, entry.name)
                                if stat.S_ISREG(mode) else None)
        placer.finish()
    finally:
        os.close(readable)


def copy_tree(top_fd: int, dest: str | os.PathLike[str], what: str) -> None:
    """Everything below the directory ``top_fd`` into the directory ``dest`` (owners,
    modes and times kept; links copied as links), both sides by descriptor: volume
    copy-up, ``-o type=local``, a RUN step's rw bind copy."""
    with Root(dest, what=what) as out:
        placer = Placer(out, "/", TarRules(whiteouts=False, follow=False, what=what))
        try:
            place_tree(placer, top_fd)
        finally:
            placer.close()


def copy_from(dir_fd: int, name: str) -> Callable[[int], None]:
    """Contents of the regular file ``name`` below ``dir_fd``, never through a symlink
    (an empty ``name``: the file ``dir_fd`` holds itself)."""
    def fill(out_fd: int) -> None:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        source = os.open(proc_path(dir_fd), flags) if not name else \
            os.open(name, flags | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            tree.copy_data(source, out_fd)
        finally:
            os.close(source)
    return fill



def _set_xattrs(target: int | str, member: tarfile.TarInfo) -> None:
    for key, value in (member.pax_headers or {}).items():
        if not key.startswith("SCHILY.xattr."):
            continue
        attr = key[len("SCHILY.xattr."):]
        if attr.startswith("trusted.overlay."):
            continue  # overlayfs's own bookkeeping: a layer must not forge it
        with contextlib.suppress(OSError):
            os.setxattr(target, attr, value.encode("utf-8", "surrogateescape"))


def _copy_range(source_fd: int, out_fd: int, offset: int, size: int) -> None:
    if tree.copy_data(source_fd, out_fd, offset=offset, size=size) != size:
        raise InvalidArgument("layer is truncated")


# --- the door: a layer's rules checked without writing anything -------------------------
class _Node:
    __slots__ = ("children", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "d" directory, "l" symlink, "f" anything else
        self.children: dict[str, _Node] = {}


def check_layer(stream: IO[bytes], compression: str = "") -> str:
    """The unpacker's rules over a layer blob (``compression`` as
    ``mediatypes.layer_compression`` names it), nothing written: raises what
    :func:`apply_layer` would raise; returns the diff_id."""
    if not compression and _regular_file(stream):
        return _check_file(stream)
    reader = ForwardReader(pieces(stream, compression))
    with told_as_bad("layer"):
        _check_all(cast("IO[bytes]", reader), "r:")  # (a RawIOBase: typeshed's IO is narrower)
        return reader.finish()


def _check_all(stream: IO[bytes], mode: str) -> None:
    top = _Node("d")
    with _open_tar(stream, mode, bufsize=1 << 20) as archive:
        try:
            for member in members_of(archive):
                _check_member(top, member)
        except tarfile.TarError as exc:
            raise InvalidArgument(f"layer is not a valid tar archive: {exc}") from exc
        except EOFError as exc:
            raise InvalidArgument("layer is truncated") from exc


def _check_file(stream: IO[bytes]) -> str:
    """A stored uncompressed layer: headers read with seeks over the file contents while
    a thread hashes the whole file on its own descriptor (as :func:`_apply_file`)."""
    import threading

    fd = stream.fileno()
    digest: dict[str, str] = {}

    def hash_all() -> None:
        with open(f"/proc/self/fd/{fd}", "rb") as own:
            digest["value"] = "sha256:" + hashlib.file_digest(own, "sha256").hexdigest()

    hasher = threading.Thread(target=hash_all, name="layer-digest")
    hasher.start()
    try:
        _check_all(stream, "r:")
        size = os.fstat(fd).st_size
        if stream.tell() > size:
            raise InvalidArgument("layer is truncated")
    finally:
        hasher.join()
    return digest["value"]


def _walk_parents(top: _Node, parts: list[str], name: str) -> _Node:
    node = top
    for depth, part in enumerate(parts):
        child = node.children.get(part)
        if child is None:
            child = node.children[part] = _Node("d")
        elif child.kind == "l":
            raise InvalidArgument(f"layer entry {name!r}: {'/' + '/'.join(parts[:depth + 1])!r}"
                                  f" is below the symlink {part!r}")
        elif child.kind != "d":
            raise InvalidArgument(f"layer entry {name!r}: {'/' + '/'.join(parts[:depth + 1])!r}"
                                  f": {part!r} is not a directory")
        node = child
    return node


def _check_member(top: _Node, member: tarfile.TarInfo) -> None:
    relative = clean_name(member.name)
    if not relative:
        if member.isdir():
            return
        raise InvalidArgument(f"layer entry {member.name!r} names the root")
    _check_type(member, "layer")
    *parents, base = relative.split("/")
    parent = _walk_parents(top, parents, member.name)
    if base == OPAQUE_MARKER:
        return
    if base.startswith(WHITEOUT_PREFIX):
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise InvalidArgument(f"layer entry {member.name!r} is not a valid whiteout")
        parent.children[hidden] = _Node("f")
        return
    existing = parent.children.get(base)
    if member.isdir():
        if existing is None or existing.kind != "d":
            parent.children[base] = _Node("d")
        return
    if member.islnk():
        link = clean_name(member.linkname)
        *link_parents, link_base = link.split("/") if link else ("",)
        holder = _walk_parents(top, list(link_parents), member.linkname) if link else None
        target = holder.children.get(link_base) if holder is not None else None
        if target is None or target.kind == "d":
            raise InvalidArgument(f"layer entry {member.name!r} is a hard link to "
                                  f"{member.linkname!r}, which is not in this layer")
    parent.children[base] = _Node("l" if member.issym() else "f")
