"""Layer unpacking (hostile archives included) and overlay rootfs mounts, for real."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.errors import DigestMismatch, InvalidArgument
from dockyard.snapshots.mount import mount_all, unmount
from dockyard.snapshots.overlay import OverlaySnapshotter, chain_ids
from dockyard.snapshots.unpack import OPAQUE_XATTR, apply_layer
from dockyard.store.db import Database

pytestmark = pytest.mark.root

Entry = tuple[str, str, str | bytes]  # (kind, name, data or link target)


def make_tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                payload = data if isinstance(data, bytes) else data.encode()
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = str(data)
            if kind == "char":
                info.devmajor, info.devminor = 1, 3
            archive.addfile(info)
    return buffer.getvalue()


@pytest.fixture(params=["stream", "file"], autouse=True)
def layer_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """Every test here twice: a layer read as a stream (a registry download, a
    decompressor) and as a seekable file (a content-store blob, the fast path)."""
    global _AS_FILE
    _AS_FILE = (tmp_path / "layer.tar") if request.param == "file" else None
    yield
    _AS_FILE = None


_AS_FILE: Path | None = None


def apply_bytes(data: bytes, target: Path) -> str:
    if _AS_FILE is None:
        return apply_layer(io.BytesIO(data), str(target))
    _AS_FILE.write_bytes(data)
    with open(_AS_FILE, "rb") as handle:
        return apply_layer(handle, str(target))


def apply(entries: list[Entry], target: Path) -> str:
    target.mkdir(exist_ok=True)
    return apply_bytes(make_tar(entries), target)


def test_regular_layer_and_diff_id(tmp_path: Path) -> None:
    import hashlib

    data = make_tar([("dir", "etc", ""), ("file", "etc/hostname", "box\n"),
                     ("symlink", "etc/link", "hostname"), ("hardlink", "etc/hard", "etc/hostname")])
    target = tmp_path / "layer"
    target.mkdir()
    assert apply_bytes(data, target) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (target / "etc/hostname").read_text() == "box\n"
    assert os.readlink(target / "etc/link") == "hostname"
    assert (target / "etc/hard").stat().st_ino == (target / "etc/hostname").stat().st_ino


def test_dotdot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="'..' component"):
        apply([("file", "../escape", "x")], tmp_path / "layer")
    assert not (tmp_path / "escape").exists()


def test_absolute_names_stay_inside(tmp_path: Path) -> None:
    apply([("file", "/abs/file", "x")], tmp_path / "layer")
    assert (tmp_path / "layer/abs/file").read_text() == "x"


def test_writing_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(InvalidArgument, match="below the symlink"):
        apply([("symlink", "evil", str(outside)), ("file", "evil/pwned", "x")],
              tmp_path / "layer")
    assert list(outside.iterdir()) == []


def test_hardlink_outside_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host data")
    with pytest.raises(InvalidArgument, match="'..' component"):
        apply([("hardlink", "steal", "../secret")], tmp_path / "layer")
    with pytest.raises(InvalidArgument, match="not in this layer"):
        apply([("hardlink", "steal", "etc/passwd")], tmp_path / "layer2")


def test_device_nodes_are_kept_inside(tmp_path: Path) -> None:
    apply([("char", "dev/null", "")], tmp_path / "layer")
    st = os.lstat(tmp_path / "layer/dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1


def test_truncated_layer(tmp_path: Path) -> None:
    data = make_tar([("file", "big", "x" * 5000)])
    target = tmp_path / "layer"
    target.mkdir()
    with pytest.raises(InvalidArgument, match="truncated|not a valid tar"):
        apply_bytes(data[:1500], target)


def test_whiteouts_in_overlay_format(tmp_path: Path) -> None:
    apply([("dir", "d", ""), ("file", "d/.wh.gone", ""), ("dir", "o", ""),
           ("file", "o/.wh..wh..opq", "")], tmp_path / "layer")
    st = os.lstat(tmp_path / "layer/d/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(tmp_path / "layer/o", OPAQUE_XATTR) == b"y"


@pytest.fixture
def snapshotter(tmp_path: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter(tmp_path / "snapshots", Database(tmp_path / "meta.db"))


def _opener(data: bytes) -> Callable[[], io.BytesIO]:
    return lambda: io.BytesIO(data)


def test_overlay_rootfs_applies_whiteouts(snapshotter: OverlaySnapshotter,
                                          tmp_path: Path) -> None:
    import hashlib

    lower = make_tar([("dir", "d", ""), ("file", "d/keep", "1"), ("file", "d/gone", "2"),
                      ("dir", "o", ""), ("file", "o/old", "3")])
    upper = make_tar([("dir", "d", ""), ("file", "d/.wh.gone", ""), ("dir", "o", ""),
                      ("file", "o/.wh..wh..opq", ""), ("file", "o/new", "4")])
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in (lower, upper)]
    chains = chain_ids(diff_ids)
    snapshotter.unpack(chains[0], None, diff_ids[0], _opener(lower))
    snapshotter.unpack(chains[1], chains[0], diff_ids[1], _opener(upper))
    mounts = snapshotter.prepare("c1", chains[1])
    assert mounts[0].type == "overlay"
    target = tmp_path / "rootfs"
    target.mkdir()
    mount_all(mounts, str(target))
    try:
        assert sorted(os.listdir(target / "d")) == ["keep"]
        assert sorted(os.listdir(target / "o")) == ["new"]
        (target / "written").write_text("container data")
    finally:
        unmount(str(target))
    assert (snapshotter.upper_dir("c1") / "written").read_text() == "container data"
    snapshotter.remove("c1")


def test_diff_id_mismatch_leaves_nothing(snapshotter: OverlaySnapshotter) -> None:
    layer = make_tar([("file", "a", "1")])
    with pytest.raises(DigestMismatch):
        snapshotter.unpack("sha256:" + "c" * 64, None, "sha256:" + "c" * 64, _opener(layer))
    assert not snapshotter.has_layer("sha256:" + "c" * 64)
    assert list((snapshotter.root / "tmp").iterdir()) == []
    assert list((snapshotter.root / "layers").iterdir()) == []


def test_diff_of_an_upper_dir_round_trips(snapshotter: OverlaySnapshotter, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes made through a real overlay mount come back as a layer with whiteouts."""
    import hashlib
    import shutil

    from dockyard.snapshots.diff import write_diff

    base = make_tar([("dir", "d", ""), ("file", "d/keep", "1"), ("file", "d/gone", "2"),
                     ("dir", "o", ""), ("file", "o/old", "3")])
    diff_id = "sha256:" + hashlib.sha256(base).hexdigest()
    snapshotter.unpack(diff_id, None, diff_id, _opener(base))
    target = tmp_path / "rootfs"
    target.mkdir()
    mount_all(snapshotter.prepare("work", diff_id), str(target))
    try:
        (target / "d/gone").unlink()
        shutil.rmtree(target / "o")
        (target / "o").mkdir()
        (target / "o/fresh").write_text("5")
        (target / "added").write_text("6")
    finally:
        unmount(str(target))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    first, second = io.BytesIO(), io.BytesIO()
    layer_id = write_diff(str(snapshotter.upper_dir("work")), first)
    assert write_diff(str(snapshotter.upper_dir("work")), second) == layer_id  # reproducible
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as archive:
        names = archive.getnames()
    assert "d/.wh.gone" in names
    assert "o/.wh..wh..opq" in names
    assert {"o/fresh", "added"} <= set(names)
    # applying base + diff as two layers gives the changed tree
    chains = chain_ids([diff_id, layer_id])
    snapshotter.unpack(chains[1], diff_id, layer_id, _opener(first.getvalue()))
    view = tmp_path / "view"
    view.mkdir()
    mount_all(snapshotter.prepare("check", chains[1]), str(view))
    try:
        assert sorted(os.listdir(view / "d")) == ["keep"]
        assert sorted(os.listdir(view / "o")) == ["fresh"]
        assert (view / "added").read_text() == "6"
    finally:
        unmount(str(view))
    snapshotter.remove("work")
    snapshotter.remove("check")


def test_the_same_layer_unpacked_twice_at_once(snapshotter: OverlaySnapshotter,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two unpacks of one layer that both found it missing (threads of one `compose up`
    creating services side by side): the loser's copy is dropped, not an error."""
    import hashlib
    import threading

    data = make_tar([("dir", "d", ""), ("file", "d/f", "x" * 1000)])
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    chain = chain_ids([diff_id])[0]
    both_there = threading.Barrier(2, timeout=30)
    rename = os.rename

    def rename_together(source: object, target: object) -> None:
        if str(target) == str(snapshotter.layer_dir(chain)):
            both_there.wait()  # each is about to move its copy in: one must lose
        rename(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename_together)

    def opener() -> io.BytesIO:
        return io.BytesIO(data)

    errors: list[BaseException] = []

    def unpack() -> None:
        try:
            snapshotter.unpack(chain, None, diff_id, opener)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=unpack) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert snapshotter.has_layer(chain)
    assert (snapshotter.layer_dir(chain) / "d" / "f").read_text() == "x" * 1000
    assert list((snapshotter.root / "tmp").iterdir()) == []
