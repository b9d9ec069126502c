"""What is installed in an image: read from its mounted root, which is hostile input.

Every file is read through :mod:`dockyard.fs.inroot` (resolved inside the root in one
step, so a symlink to a host file reads the image's own path; regular files only, so a
FIFO or device is never opened for reading; a size cap per kind of file).  The tree
is walked by descriptor (:func:`dockyard.fs.tree.walk`), never following a symlink.
What cannot be read is skipped with a note, never guessed.

Sources: dpkg (``/var/lib/dpkg/status`` and distroless ``status.d/``), apk
(``/lib/apk/db/installed``), rpm (the sqlite rpmdb; a Berkeley DB is noted, not read),
Python ``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO``, npm ``package.json`` under
``node_modules``, the modules recorded in Go binaries (``gobuild.py``).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import struct
from collections.abc import Iterator
from typing import NamedTuple

from dockyard.errors import InvalidArgument
from dockyard.fs.inroot import Root, read_regular_file
from dockyard.fs.tree import Entry, walk

DB_LIMIT = 64 << 20  # a package database (dpkg status, apk installed, rpmdb) past this
SMALL_LIMIT = 1 << 20  # a METADATA, package.json, os-release
GO_MIN_SIZE = 4096  # smaller executables are scripts, not Go binaries
WALK_SKIP = {"proc", "sys", "dev"}  # pseudo-filesystems' mount points: nothing installed
_RPM_TAGS = {1000: "name", 1001: "version", 1002: "release", 1003: "epoch", 1014: "license",
             1022: "arch", 1044: "sourcerpm"}


class Package(NamedTuple):
    name: str
    version: str
    type: str  # purl type: deb, apk, rpm, pypi, npm
    location: str  # the file that said so
    purl: str = ""
    arch: str = ""
    license: str = ""
    source: str = ""  # the source package (deb Source, apk origin)

    @property
    def ecosystem(self) -> str:
        """OSV's name for the ecosystem ("" when OSV has none we match)."""
        return {"deb": "Debian", "apk": "Alpine", "pypi": "PyPI", "npm": "npm",
                "golang": "Go", "rpm": ""}.get(self.type, "")


class Distro(NamedTuple):
    id: str = ""
    version_id: str = ""
    pretty: str = ""


class Catalog(NamedTuple):
    distro: Distro
    packages: list[Package]
    notes: list[str]  # what was skipped, and why


def collect(rootfs: str | os.PathLike[str]) -> Catalog:
    """Every package the image at ``rootfs`` (a mounted root) records as installed."""
    notes: list[str] = []
    with Root(rootfs, what="image") as root:
        distro = _os_release(root, notes)
        found = [*_dpkg(root, notes), *_apk(root, notes), *_rpm(root, notes),
                 *_walked(root, notes)]
    packages = [p._replace(purl=purl_of(p, distro)) for p in found]
    unique = {(p.type, p.name, p.version, p.location): p for p in packages}
    return Catalog(distro, sorted(unique.values(), key=lambda p: (p.type, p.name, p.version,
                                                                  p.location)), notes)


# --- reading ------------------------------------------------------------------------
def _read(root: Root, inner: str, limit: int, notes: list[str]) -> str | None:
    """A file's text, or None (missing, not a regular file, too large: noted)."""
    try:
        data = read_regular_file(root, inner, limit)
    except InvalidArgument:
        notes.append(f"{inner}: larger than {limit} bytes, skipped")
        return None
    except OSError as exc:
        notes.append(f"{inner}: {exc.strerror}, skipped")
        return None
    if data is None:
        st = root.lstat(inner)
        if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            notes.append(f"{inner}: not a regular file, skipped")
        return None
    return data.decode("utf-8", "replace")


def _paragraphs(text: str) -> Iterator[dict[str, str]]:
    """RFC 822-style stanzas (dpkg status): ``Key: value``, continuation lines, blank
    lines between stanzas."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    if fields:
        yield fields


def _os_release(root: Root, notes: list[str]) -> Distro:
    for inner in ("/etc/os-release", "/usr/lib/os-release"):
        text = _read(root, inner, SMALL_LIMIT, notes)
        if text is None:
            continue
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip("\"'")
        return Distro(values.get("ID", ""), values.get("VERSION_ID", ""),
                      values.get("PRETTY_NAME", ""))
    return Distro()


def _dpkg(root: Root, notes: list[str]) -> Iterator[Package]:
    sources = ["/var/lib/dpkg/status"]
    st = root.lstat("/var/lib/dpkg/status.d")
    if st is not None and stat.S_ISDIR(st.st_mode):
        fd = root.open("/var/lib/dpkg/status.d", os.O_RDONLY | os.O_DIRECTORY)
        try:
            names = sorted(os.listdir(fd))
        finally:
            os.close(fd)
        sources += [f"/var/lib/dpkg/status.d/{n}" for n in names if not n.endswith(".md5sums")]
    for inner in sources:  # a status.d entry describes one package: small
        text = _read(root, inner, DB_LIMIT if inner == sources[0] else SMALL_LIMIT, notes)
        for fields in _paragraphs(text or ""):
            status = fields.get("Status", "install ok installed").split()
            if "installed" not in status[-1:] or not fields.get("Package") or \
                    not fields.get("Version"):
                continue
            source = fields.get("Source", "").split(" ")[0]
            yield Package(fields["Package"], fields["Version"], "deb", inner,
                          arch=fields.get("Architecture", ""), source=source)


def _apk(root: Root, notes: list[str]) -> Iterator[Package]:
    inner = "/lib/apk/db/installed"
    text = _read(root, inner, DB_LIMIT, notes)
    for block in (text or "").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:])
        if fields.get("P") and fields.get("V"):
            yield Package(fields["P"], fields["V"], "apk", inner, arch=fields.get("A", ""),
                          license=fields.get("L", ""), source=fields.get("o", ""))


def _rpm(root: Root, notes: list[str]) -> Iterator[Package]:
    for bdb in ("/var/lib/rpm/Packages",):
        if root.lstat(bdb) is not None:
            notes.append(f"{bdb}: a Berkeley DB rpm database is not read")
    for inner in ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"):
        rows = _rpm_rows(root, inner, notes)
        for blob in rows:
            header = rpm_header(blob)
            if header.get("name") and header.get("version"):
                version = header["version"] + (f"-{header['release']}"
                                               if header.get("release") else "")
                if header.get("epoch"):
                    version = f"{header['epoch']}:{version}"
                yield Package(header["name"], version, "rpm", inner,
                              arch=header.get("arch", ""), license=header.get("license", ""))


def _rpm_rows(root: Root, inner: str, notes: list[str]) -> list[bytes]:
    try:
        fd = root.open(inner, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            notes.append(f"{inner}: not a regular file, skipped")
            return []
        if st.st_size > DB_LIMIT:
            notes.append(f"{inner}: larger than {DB_LIMIT} bytes, skipped")
            return []
        # the descriptor's own inode, read-only and immutable (no journal, no locks)
        try:
            conn = sqlite3.connect(f"file:/proc/self/fd/{fd}?mode=ro&immutable=1", uri=True)
            try:
                return [bytes(r[0]) for r in conn.execute("SELECT blob FROM Packages")]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            notes.append(f"{inner}: not a readable rpm sqlite database ({exc}), skipped")
            return []
    finally:
        os.close(fd)


def rpm_header(blob: bytes) -> dict[str, str]:
    """The string tags of an rpm header blob (as rpmdb.sqlite stores it: index count,
    data length, 16-byte index entries, data); anything malformed reads as empty."""
    if len(blob) < 8:
        return {}
    count, length = struct.unpack(">II", blob[:8])
    data_start = 8 + 16 * count
    if count > 100_000 or data_start + length > len(blob):
        return {}
    data = blob[data_start:data_start + length]
    found: dict[str, str] = {}
    for i in range(count):
        tag, kind, offset, _n = struct.unpack(">iiii", blob[8 + 16 * i:24 + 16 * i])
        name = _RPM_TAGS.get(tag)
        if name is None or not 0 <= offset < len(data):
            continue
        if kind in (6, 8, 9):  # STRING, STRING_ARRAY, I18NSTRING: the first string
            end = data.find(b"\0", offset)
            found[name] = data[offset:end if end >= 0 else None].decode("utf-8", "replace")
        elif kind == 4 and offset + 4 <= len(data):  # INT32 (epoch)
            found[name] = str(struct.unpack(">I", data[offset:offset + 4])[0])
    return found


def _walked(root: Root, notes: list[str]) -> Iterator[Package]:
    """Python and npm packages, wherever they are installed (one descriptor walk)."""
    def descend(entry: Entry) -> bool:
        return not (entry.relative in WALK_SKIP or entry.name.endswith((".dist-info",
                                                                        ".egg-info")))
    for entry in walk(root.fd, descend=descend):
        path = "/" + entry.relative
        if entry.is_dir and entry.name.endswith(".dist-info"):
            yield from _python(root, f"{path}/METADATA", notes)
        elif entry.name.endswith(".egg-info"):
            yield from _python(root, f"{path}/PKG-INFO" if entry.is_dir else path, notes)
        elif entry.name == "package.json" and stat.S_ISREG(entry.stat.st_mode) and \
                _is_node_module(entry.relative):
            yield from _npm(root, path, notes)
        elif stat.S_ISREG(entry.stat.st_mode) and entry.stat.st_mode & 0o111 and \
                entry.stat.st_size >= GO_MIN_SIZE:
            yield from _go_binary(entry, path)


def _is_node_module(relative: str) -> bool:
    parts = relative.split("/")
    return len(parts) >= 3 and (parts[-3] == "node_modules" or (
        len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")))


def _python(root: Root, inner: str, notes: list[str]) -> Iterator[Package]:
    text = _read(root, inner, SMALL_LIMIT, notes)
    if text is None:
        return
    header = text.split("\n\n", 1)[0]
    fields = next(_paragraphs(header), {})
    if fields.get("Name") and fields.get("Version"):
        yield Package(fields["Name"], fields["Version"], "pypi", inner,
                      license=fields.get("License-Expression", fields.get("License", ""))
                      .split("\n")[0][:200])


def _npm(root: Root, inner: str, notes: list[str]) -> Iterator[Package]:
    text = _read(root, inner, SMALL_LIMIT, notes)
    try:
        doc = json.loads(text) if text else None
    except (ValueError, RecursionError):
        notes.append(f"{inner}: not valid JSON, skipped")
        return
    if not isinstance(doc, dict):
        return
    name, version, licence = doc.get("name"), doc.get("version"), doc.get("license")
    if isinstance(name, str) and isinstance(version, str) and name and version:
        yield Package(name, version, "npm", inner,
                      license=licence if isinstance(licence, str) else "")


def _go_binary(entry: Entry, path: str) -> Iterator[Package]:
    """The modules a Go binary was built from (its ``.go.buildinfo``), opened by name
    below the walk's directory descriptor, never through a symlink, never blocking."""
    from dockyard.images.sbom.gobuild import modules

    try:
        fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY,
                     dir_fd=entry.dir_fd)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        for module_path, version in modules(fd):
            yield Package(module_path, version, "golang", path)
    finally:
        os.close(fd)


# --- package URLs ---------------------------------------------------------------------
_PEP503 = re.compile(r"[-_.]+")
_FAMILIES = {
    "deb": ({"debian", "ubuntu", "raspbian", "devuan", "kali", "linuxmint", "pureos"}, "debian"),
    "apk": ({"alpine", "wolfi", "chainguard", "postmarketos", "adelie"}, "alpine"),
    "rpm": ({"fedora", "rhel", "centos", "rocky", "almalinux", "ol", "amzn", "mariner",
             "azurelinux", "photon", "opensuse-leap", "opensuse-tumbleweed", "sles"}, "redhat"),
}


def purl_of(package: Package, distro: Distro) -> str:
    """The package URL (purl spec) of ``package``."""
    from packageurl import PackageURL

    qualifiers: dict[str, str] = {}
    namespace: str | None = None
    name = package.name
    if package.type in ("deb", "apk", "rpm"):
        # the distribution's own name when it is of the package's family (an apk db in
        # a Debian image is still Alpine's)
        family, default = _FAMILIES[package.type]
        namespace = distro.id if distro.id in family else default
        if package.arch:
            qualifiers["arch"] = package.arch
        if distro.id == namespace and distro.version_id:
            qualifiers["distro"] = f"{distro.id}-{distro.version_id}"
        if package.source and package.source != package.name:
            qualifiers["upstream" if package.type == "deb" else "origin"] = package.source
    elif package.type == "pypi":
        name = _PEP503.sub("-", name).lower()
    elif package.type == "npm" and name.startswith("@") and "/" in name:
        namespace, name = name.split("/", 1)
    elif package.type == "golang" and "/" in name:
        namespace, name = name.rsplit("/", 1)
    return str(PackageURL(type=package.type, namespace=namespace or None, name=name,
                          version=package.version, qualifiers=qualifiers or None))
