"""Hostile trees and archives against the host-side code that touches them.

Each test plants a sentinel directory on the host, lets hostile input aim at it
(symlinks to it at every component, swaps, deep trees) and proves the sentinel's
tree, modes, owners and contents are unchanged afterwards.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.fs import tartree, tree
from dockyard.fs.inroot import Root, read_regular_file
from dockyard.snapshots.unpack import LAYER, TarRules, apply_layer, check_layer, extract_tar
from dockyard.testing.cli import Dockyard
from dockyard.testing.trees import tree as snapshot_tree

pytestmark = pytest.mark.root

Member = tuple[str, str, str]  # (kind, name, data or link target)


def make_tar(members: list[Member], mode: int = 0o777) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "file":
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = data if kind in ("symlink", "hardlink") else ""
            archive.addfile(info)
    return buffer.getvalue()


class Sentinel:
    """A host directory hostile input aims at; ``unchanged()`` compares every entry's
    kind, mode, owner and content (and the directory's own) with the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        (path / "secret").write_text("host data")
        (path / "sub").mkdir(mode=0o700)
        os.chmod(path, 0o700)
        self.before = self._fingerprint()

    def _fingerprint(self) -> tuple[object, ...]:
        st = os.lstat(self.path)
        return (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, snapshot_tree(self.path))

    def unchanged(self) -> bool:
        return self._fingerprint() == self.before


@pytest.fixture
def sentinel(tmp_path: Path) -> Sentinel:
    return Sentinel(tmp_path / "host-sentinel")


def _layer(tmp_path: Path, data: bytes) -> str:
    target = tmp_path / "layer"
    target.mkdir(exist_ok=True)
    return apply_layer(io.BytesIO(data), str(target))


HOSTILE_LAYERS: dict[str, Callable[[str], list[Member]]] = {
    # a directory entry over a symlink to the host, and a symlink over a directory
    # entry whose mode is applied last: either order must leave the host alone
    "symlink-then-dir": lambda s: [("symlink", "a", s), ("dir", "a", "")],
    "dir-then-symlink": lambda s: [("dir", "a", ""), ("symlink", "a", s)],
    "dir-symlink-dir": lambda s: [("dir", "a", ""), ("symlink", "a", s), ("dir", "a/", "")],
    "file-below-symlink": lambda s: [("symlink", "a", s), ("file", "a/secret", "pwned")],
    "dir-below-symlink": lambda s: [("symlink", "a", s), ("dir", "a/sub", "")],
    "hardlink-to-host": lambda s: [("hardlink", "h", s + "/secret")],
    "whiteout-through-symlink": lambda s: [("symlink", "a", s), ("file", "a/.wh.secret", "")],
    "opaque-through-symlink": lambda s: [("symlink", "a", s), ("file", "a/.wh..wh..opq", "")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LAYERS))
def test_hostile_layers_leave_the_host_alone(case: str, tmp_path: Path,
                                            sentinel: Sentinel) -> None:
    data = make_tar(HOSTILE_LAYERS[case](str(sentinel.path)))
    with contextlib.suppress(InvalidArgument):
        _layer(tmp_path, data)
    assert sentinel.unchanged()
    # a directory entry over a symlink turns it into a real directory in the layer
    if case == "symlink-then-dir":
        assert stat.S_ISDIR(os.lstat(tmp_path / "layer/a").st_mode)


@pytest.mark.parametrize("case", sorted(HOSTILE_LAYERS))
def test_the_door_refuses_what_unpacking_refuses(case: str, tmp_path: Path,
                                                 sentinel: Sentinel) -> None:
    """check_layer (import/load/pull/build; a gzip blob as pulled) and apply_layer (run)
    agree on every case, with the same message."""
    data = make_tar(HOSTILE_LAYERS[case](str(sentinel.path)))
    outcomes = []
    steps: list[Callable[[], str]] = [
        lambda: check_layer(io.BytesIO(data)),
        lambda: check_layer(io.BytesIO(gzip.compress(data)), "gzip"),
        lambda: _layer(tmp_path, data)]
    for step in steps:
        try:
            outcomes.append(("ok", step()))
        except InvalidArgument as exc:
            outcomes.append(("refused", str(exc)))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_deep_layers_unpack_measure_and_remove(tmp_path: Path) -> None:
    """1,500 levels: deeper than Python's recursion limit, within PATH_MAX."""
    depth = 1500
    members: list[Member] = [("dir", "d/" * (i + 1), "") for i in range(depth)]
    members.append(("file", "d/" * depth + "leaf", "x"))
    data = make_tar(members, mode=0o755)
    assert check_layer(io.BytesIO(data)) == _layer(tmp_path, data)
    assert tree.tree_size(tmp_path / "layer") == 1
    tree.remove_tree(tmp_path / "layer")
    assert not (tmp_path / "layer").exists()


def test_names_longer_than_path_max_are_refused(tmp_path: Path) -> None:
    data = make_tar([("file", "a/" * 2100 + "x", "x")])
    with pytest.raises(InvalidArgument, match="PATH_MAX"):
        check_layer(io.BytesIO(data))
    with pytest.raises(InvalidArgument, match="PATH_MAX"):
        _layer(tmp_path, data)


def test_a_deep_tree_made_at_run_time_is_walked_archived_and_removed(tmp_path: Path) -> None:
    """What a container can make with mkdir+chdir: 2,000 levels, longer than PATH_MAX."""
    top = tmp_path / "upper"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    opened = [fd]
    for _ in range(2000):
        os.mkdir("dd", dir_fd=opened[-1])
        opened.append(os.open("dd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=opened[-1]))
    for held in reversed(opened):
        os.close(held)
    out = io.BytesIO()
    with Root(top) as root:
        tartree.write_tree_tar(root.fd, out, arcname=".")
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        assert len(archive.getmembers()) == 2000
    tree.remove_tree(top)
    assert not top.exists()


def test_cp_rules_follow_symlinks_inside_the_root_only(tmp_path: Path,
                                                       sentinel: Sentinel) -> None:
    """``cp``/``ADD``: parents are followed as in the container (an absolute link
    restarts at the container's root), never to the host."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "real").mkdir(parents=True)
    os.symlink(str(sentinel.path), rootfs / "escape")  # absolute: the host's path
    os.symlink("../../..", rootfs / "real/up")
    rules = TarRules(whiteouts=False, follow=True, overwrite=False, what="cp")
    with Root(rootfs, what="container") as root:
        # dangling inside the container (its target exists only on the host): refused
        with pytest.raises(InvalidArgument, match="dangling"):
            extract_tar(io.BytesIO(make_tar([("file", "escape/secret", "pwned")])), root,
                        "/", rules)
        inside = rootfs / str(sentinel.path).lstrip("/")
        inside.mkdir(parents=True)
        data = make_tar([("file", "escape/secret", "pwned"), ("file", "real/up/x", "y")])
        extract_tar(io.BytesIO(data), root, "/", rules)
    assert sentinel.unchanged()
    assert (inside / "secret").read_text() == "pwned"  # where the container sees the link
    assert (rootfs / "x").read_text() == "y"  # ../../.. stopped at the root


def test_cp_refuses_replacing_a_symlink_with_a_directory(tmp_path: Path,
                                                         sentinel: Sentinel) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "dst").mkdir(parents=True)
    os.symlink(str(sentinel.path), rootfs / "dst/DIR")
    data = make_tar([("dir", "DIR", ""), ("file", "DIR/secret", "pwned")])
    with Root(rootfs, what="container") as root, \
            pytest.raises(InvalidArgument, match="cannot overwrite non-directory"):
        extract_tar(io.BytesIO(data), root, "/dst", TarRules(whiteouts=False, follow=True,
                                                             overwrite=False, what="cp"))
    assert sentinel.unchanged()


def test_whiteout_names_are_literal_outside_layers(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "X").write_text("keep")
    with Root(rootfs) as root:
        extract_tar(io.BytesIO(make_tar([("file", ".wh.X", "literal")])), root, "/",
                    TarRules(whiteouts=False, follow=True, what="cp"))
    assert (rootfs / "X").read_text() == "keep"
    assert (rootfs / ".wh.X").read_text() == "literal"
    assert LAYER.whiteouts


@pytest.mark.parametrize("kind", ["host-symlink", "dev-zero", "fifo", "huge", "dir"])
def test_account_files_are_read_safely(kind: str, tmp_path: Path, sentinel: Sentinel) -> None:
    """/etc/passwd of a hostile image: resolved in the root, regular files only,
    size-capped — never the host's file, never a hang, never memory exhaustion."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    passwd = rootfs / "etc/passwd"
    if kind == "host-symlink":
        os.symlink(str(sentinel.path / "secret"), passwd)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", passwd)
        (rootfs / "dev").mkdir()
        os.mknod(rootfs / "dev/zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    elif kind == "fifo":
        os.mkfifo(passwd)
    elif kind == "huge":
        passwd.write_bytes(b"x" * (2 << 20))
    else:
        passwd.mkdir()
    with Root(rootfs) as root:
        if kind == "huge":
            with pytest.raises(InvalidArgument, match="larger than"):
                read_regular_file(root, "/etc/passwd", 1 << 20)
        else:
            assert read_regular_file(root, "/etc/passwd", 1 << 20) is None
    assert sentinel.unchanged()


# --- through the CLI, against a running container ------------------------------------
def test_cp_into_a_directory_the_container_made_a_host_symlink(box: Dockyard, tmp_path: Path,
                                                              sentinel: Sentinel) -> None:
    box("run", "-d", "--name", "evil", "box:1", "sh", "-c",
        f"mkdir -p /dst && ln -s {sentinel.path} /dst/DIR && sleep 300")
    source = tmp_path / "DIR"
    source.mkdir()
    (source / "secret").write_text("pwned")
    os.chmod(source, 0o777)
    result = box("cp", str(source), "evil:/dst/", check=False)
    assert result.returncode != 0 and "cannot overwrite non-directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert sentinel.unchanged()


def test_cp_against_a_container_swapping_a_directory_for_a_symlink(
        box: Dockyard, tmp_path: Path, sentinel: Sentinel) -> None:
    """The container flips /r/d between a directory and a symlink to the host's
    sentinel path in a loop while cp copies in and out: never a host write, never a
    host read (the same path inside the container holds a decoy)."""
    decoy = f"{sentinel.path}"
    box("run", "-d", "--name", "racer", "box:1", "sh", "-c",
        f"mkdir -p {decoy} /r && echo decoy > {decoy}/secret && "
        "while true; do mkdir /r/d 2>/dev/null; echo inside > /r/d/secret; "
        f"rm -rf /r/d; ln -s {decoy} /r/d; rm -f /r/d; done")
    payload = tmp_path / "payload"
    payload.write_text("pwned")
    out = tmp_path / "out"
    out.mkdir()
    for attempt in range(40):
        box("cp", str(payload), "racer:/r/d/", check=False)
        target = out / f"copy{attempt}"
        result = box("cp", "racer:/r/d/secret", str(target), check=False)
        assert "Traceback" not in result.stderr
        if target.exists():
            assert any(legit.startswith(target.read_text()) for legit in (
                "inside\n", "decoy\n", "pwned"))  # or a prefix: copied while written
    assert sentinel.unchanged()


def test_cp_of_a_whiteout_named_file_is_literal(box: Dockyard, tmp_path: Path) -> None:
    box("run", "-d", "--name", "wh", "box:1", "sh", "-c", "echo keep > /tmp/X; sleep 300")
    named = tmp_path / ".wh.X"
    named.write_text("literal\n")
    box("cp", str(named), "wh:/tmp/")
    assert box("exec", "wh", "cat", "/tmp/X", "/tmp/.wh.X").stdout == "keep\nliteral\n"


def test_a_deep_tree_made_by_a_container(box: Dockyard, tmp_path: Path) -> None:
    """1,100 levels made inside: diff, commit, export, cp out and rm -f all work."""
    box("run", "--name", "deep", "box:1", "sh", "-c",
        "i=0; while [ $i -lt 1100 ]; do mkdir d && cd d; i=$((i+1)); done; echo x > leaf")
    changes = box("diff", "deep").stdout.splitlines()
    assert len([c for c in changes if c.startswith("A /d")]) == 1101
    box("commit", "deep", "deep:1")
    export = box("export", "-o", str(tmp_path / "deep.tar"), "deep", check=False)
    assert export.returncode == 0, export.stderr
    box("cp", "deep:/d", str(tmp_path / "copied"))
    assert (tmp_path / "copied").is_dir()
    tree.remove_tree(tmp_path / "copied")  # pytest's own cleanup of old runs recurses
    box("rm", "-f", "deep")
    leaf = box("run", "--rm", "deep:1", "sh", "-c", "cd " + "/d" * 1100 + " 2>/dev/null; "
               "find / -name leaf | wc -l")
    assert leaf.stdout.strip() == "1"
    box("rmi", "deep:1")


@pytest.mark.parametrize("kind", ["host-symlink", "fifo", "dev-zero"])
def test_user_lookup_in_a_hostile_image(kind: str, box: Dockyard, tmp_path: Path,
                                        sentinel: Sentinel) -> None:
    """An image whose /etc/passwd points at a host file, a FIFO or /dev/zero: ``run -u``
    answers with the image's own view (no such user) at once, and nothing is left
    mounted or running."""
    (sentinel.path / "passwd").write_text("hostonly:x:4242:4242::/:/bin/sh\n")
    setup = {"host-symlink": f"ln -sf {sentinel.path}/passwd /etc/passwd",
             "fifo": "rm /etc/passwd; mkfifo /etc/passwd",
             "dev-zero": "ln -sf /dev/zero /etc/passwd"}[kind]
    box("run", "--name", "mk", "box:1", "sh", "-c", setup)
    box("commit", "mk", "hostile:1")
    result = box("run", "--rm", "-u", "hostonly", "hostile:1", "id", "-u", check=False)
    assert result.returncode != 0
    assert "unable to find user hostonly" in result.stderr
    assert "Traceback" not in result.stderr


# --- the builder: ADD archives, contexts on stdin, .dockerignore and symlinks --------
def _context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (context / name).write_text(text)
    return context


def test_add_of_a_crafted_archive_stays_in_the_image(box: Dockyard, tmp_path: Path,
                                                     sentinel: Sentinel) -> None:
    """A symlink to the host's sentinel and a file through it; an absolute symlink
    chain; a directory entry over the link: all land inside the image or fail."""
    context = _context(tmp_path, "FROM box:1\nADD crafted.tar /x/\n"
                       "RUN find /x | sort > /found\n")
    (context / "crafted.tar").write_bytes(make_tar([
        ("symlink", "a", str(sentinel.path)), ("dir", "a", ""),
        ("symlink", "b", "/"), ("file", "b" + str(sentinel.path) + "/secret", "pwned"),
        ("symlink", "c", "../../../../../../.." + str(sentinel.path)),
        ("file", "c/new", "pwned")]))
    result = box("build", "-q", "-t", "crafted:1", str(context), check=False)
    assert "Traceback" not in result.stderr
    assert sentinel.unchanged()
    if result.returncode == 0:
        found = box("run", "--rm", "crafted:1", "cat", "/found").stdout
        assert "/x/a" in found


def test_a_context_tar_on_stdin_cannot_write_outside(box: Dockyard, tmp_path: Path,
                                                     sentinel: Sentinel) -> None:
    for members in ([("file", "Dockerfile", "FROM box:1\n"), ("file", "../../escape", "x")],
                    [("file", "Dockerfile", "FROM box:1\n"),
                     ("symlink", "l", str(sentinel.path)), ("file", "l/secret", "pwned")]):
        result = box("build", "-q", "-", input=make_tar(members), check=False)
        assert "Traceback" not in result.stderr
        assert sentinel.unchanged()
        assert not (tmp_path.parent / "escape").exists()
    assert "'..' component" in box("build", "-q", "-", input=make_tar(
        [("file", "Dockerfile", "FROM box:1\n"), ("file", "../x", "x")]), check=False).stderr


def test_dockerignored_files_never_reach_the_image_through_symlinks(box: Dockyard,
                                                                     tmp_path: Path) -> None:
    """A symlink inside a copied directory is copied as a symlink; a source named
    directly or by a glob is followed, and refused when it leads to an excluded file
    (BuildKit never has the file: its context omits it)."""
    context = _context(tmp_path, "FROM box:1\nCOPY . /dst/\n",
                       {"secret.key": "top secret\n", "ok.txt": "fine\n",
                        ".dockerignore": "secret.key\n"})
    os.symlink("secret.key", context / "alias")
    box("build", "-q", "-t", "ign:1", str(context))
    listing = box("run", "--rm", "ign:1", "sh", "-c",
                  "ls /dst; cat /dst/* 2>/dev/null; true").stdout
    assert "top secret" not in listing and "fine" in listing
    for line in ("COPY alias /copied", "COPY ./* /dst/"):
        (context / "Dockerfile").write_text(f"FROM box:1\n{line}\n")
        named = box("build", "-q", str(context), check=False)
        assert named.returncode != 0 and "dockerignore" in named.stderr
        assert "Traceback" not in named.stderr


# --- the door: import, load (docker-archive, OCI) refuse what run would refuse ------
def _blobs(root: Path) -> set[str]:
    return {p.name for p in (root / "content/blobs/sha256").glob("*")} \
        if (root / "content/blobs/sha256").is_dir() else set()


def _docker_archive(layer: bytes, manifest: object | None = None) -> bytes:
    import hashlib
    import json

    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    entries = manifest if manifest is not None else [
        {"Config": "config.json", "RepoTags": ["hostile:1"], "Layers": ["layer.tar"]}]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("config.json", config), ("layer.tar", layer),
                           ("manifest.json", json.dumps(entries).encode()
                            if not isinstance(entries, bytes) else entries)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _oci_archive(index: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                           ("index.json", index)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


HOSTILE_LAYER = [("symlink", "etc", "/"), ("file", "etc/evil", "x")]


def test_the_door_refuses_hostile_layers_on_import_and_load(box: Dockyard,
                                                          tmp_path: Path) -> None:
    before = _blobs(box.root)
    layer = make_tar(HOSTILE_LAYER)
    (tmp_path / "rootfs.tar").write_bytes(layer)
    imported = box("import", str(tmp_path / "rootfs.tar"), "hostile:0", check=False)
    assert imported.returncode != 0 and "below the symlink" in imported.stderr
    loaded = box("load", input=_docker_archive(layer), check=False)
    assert loaded.returncode != 0 and "below the symlink" in loaded.stderr
    for result in (imported, loaded):
        assert "Traceback" not in result.stderr
    assert "hostile" not in box("images").stdout
    assert _blobs(box.root) == before  # nothing of a refused image stays
    assert box("system", "check").returncode == 0


@pytest.mark.parametrize("archive", ["nesting-bomb", "manifest-string", "digest-no-algorithm",
                                     "layers-not-strings", "long-repository"])
def test_malformed_archives_are_one_line_errors(archive: str, box: Dockyard) -> None:
    layer = make_tar([("file", "ok", "x")])
    data = {
        "nesting-bomb": lambda: _docker_archive(layer, b"[" * 100_000 + b"]" * 100_000),
        "manifest-string": lambda: _oci_archive(b'{"manifests": ["x"]}'),
        "digest-no-algorithm": lambda: _oci_archive(
            b'{"manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",'
            b' "digest": "' + b"a" * 64 + b'", "size": 1}]}'),
        "layers-not-strings": lambda: _docker_archive(
            layer, [{"Config": "config.json", "Layers": [1]}]),
        "long-repository": lambda: _docker_archive(
            layer, [{"Config": "config.json", "RepoTags": ["a" * 300 + ":1"],
                     "Layers": ["layer.tar"]}]),
    }[archive]()
    result = box("load", input=data, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and maybe a hint


def _many_layer_archive(base: bytes, count: int, tag: str) -> bytes:
    import hashlib
    import json

    layers = [base] + [make_tar([("file", f"f{i}", str(i))], mode=0o644)
                       for i in range(1, count)]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                            "Layers": [f"{i}/layer.tar" for i in range(count)]}]).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        files = [("config.json", config), ("manifest.json", manifest)]
        files += [(f"{i}/layer.tar", layer) for i, layer in enumerate(layers)]
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_125_layers_run_and_126_are_refused_at_the_door(box: Dockyard,
                                                       rootfs_tar: Path) -> None:
    """Docker's limit: 125 lower layers run (their paths no longer overflow mount's
    one page of options); one more is refused when the image enters the store."""
    base = rootfs_tar.read_bytes()
    box("load", input=_many_layer_archive(base, 125, "tall:125"))
    out = box("run", "--rm", "tall:125", "cat", "/f1", "/f124").stdout
    assert out == "1124"
    refused = box("load", input=_many_layer_archive(base, 126, "tall:126"), check=False)
    assert refused.returncode != 0 and "at most 125" in refused.stderr
    assert "tall:126" not in box("images").stdout


def test_system_check_finds_and_repairs_interrupted_writes_and_unpacks(box: Dockyard) -> None:
    """Leftovers nobody holds are reported and removed; one a live process holds (an
    import or unpack in progress) is neither."""
    import fcntl

    ingest = box.root / "content/ingest"
    work = box.root / "snapshots/tmp"
    (ingest / ("ab" * 32 + ".partial")).write_bytes(b"half a blob")
    (work / "dead-unpack" / "d" / "d").mkdir(parents=True)
    busy = ingest / "busy.part"
    busy.write_bytes(b"being written")
    with open(busy, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        found = box("system", "check", check=False)
        assert found.returncode != 0
        assert "1 interrupted write(s)" in found.stdout + found.stderr
        assert "1 interrupted layer unpack(s)" in found.stdout + found.stderr
        box("system", "check", "--repair", check=False)
        assert busy.exists() and not (work / "dead-unpack").exists()
        assert not (ingest / ("ab" * 32 + ".partial")).exists()
    busy.unlink()
    assert box("system", "check").returncode == 0


def test_cp_follows_dockers_destination_rules(box: Dockyard, tmp_path: Path) -> None:
    """Into an existing directory; otherwise the destination names the copy (its
    parent must exist); a file may not go to a missing ``DIR/``."""
    box("run", "-d", "--name", "dst", "box:1", "sleep", "300")
    tree_dir = tmp_path / "tree"
    (tree_dir / "sub").mkdir(parents=True)
    (tree_dir / "sub/f").write_text("f\n")
    box("cp", str(tree_dir), "dst:/tmp/renamed")
    box("cp", str(tree_dir / "sub/f"), "dst:/tmp/g")
    box("cp", str(tree_dir / "sub/f"), "dst:/tmp/")
    assert box("exec", "dst", "cat", "/tmp/renamed/sub/f", "/tmp/g", "/tmp/f").stdout == \
        "f\nf\nf\n"
    missing = box("cp", str(tree_dir / "sub/f"), "dst:/nope/", check=False)
    assert missing.returncode != 0 and "Could not find the directory" in missing.stderr


def test_volume_copy_up_from_a_hostile_image(box: Dockyard, sentinel: Sentinel) -> None:
    """The image's /data holds a symlink to the host's sentinel and /link is one:
    copy-up copies the link as a link and resolves /link inside the container."""
    box("run", "--name", "mk", "box:1", "sh", "-c",
        f"mkdir -p /data/sub && echo seed > /data/sub/f && ln -s {sentinel.path} /data/out "
        f"&& ln -s {sentinel.path} /link")
    box("commit", "mk", "seeded:1")
    out = box("run", "--rm", "-v", "vol1:/data", "-v", "vol2:/link", "seeded:1", "sh", "-c",
              "cat /data/sub/f; readlink /data/out; ls -A /link | wc -l").stdout.split()
    assert out == ["seed", str(sentinel.path), "0"]
    assert sentinel.unchanged()
