"""Throw-away OCI bundles with a busybox-static rootfs, and a runner for any runtime.

The Python form of crun's ``tests_utils.py``: ``base_config()`` gives a minimal
config, ``run_and_get_output()`` builds a fresh bundle, runs it under the given
runtime binary (dockyard-runtime or runc) with its own state root, and returns the
exit code and output.  Busybox plays the in-container probe.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def busybox_path() -> str | None:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            out = subprocess.run([path], capture_output=True, check=False).stdout
            if b"BusyBox" in out and _is_static(path):
                return path
    return None


def _is_static(path: str) -> bool:
    """True when the ELF file has no PT_INTERP program header (no dynamic loader)."""
    import struct

    with open(path, "rb") as handle:
        head = handle.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def make_rootfs(target: Path) -> Path:
    """A minimal root filesystem: static busybox and its applet links."""
    busybox = busybox_path()
    if busybox is None:
        raise RuntimeError("a static busybox is needed (apt-get install busybox-static)")
    for sub in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, target / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = target / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                           "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (target / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return target


def make_rootfs_tar(workdir: Path, prepare: Callable[[Path], None] | None = None) -> Path:
    """A busybox rootfs (``prepare`` may add files) packed as ``workdir/rootfs.tar``,
    ready for ``dockyard import``."""
    rootfs = make_rootfs(workdir / "rootfs")
    if prepare is not None:
        prepare(rootfs)
    target = workdir / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(target), "."], check=True)
    return target


def base_config(args: list[str], **overrides: Any) -> dict[str, Any]:
    """A minimal config with Docker-like defaults, no seccomp, no terminal."""
    from dockyard.runtime.spec import default_spec

    config = default_spec(tuple(args), terminal=False, seccomp=False)
    config["root"]["readonly"] = False
    config["linux"]["cgroupsPath"] = f"/dockyard-test-{uuid.uuid4().hex[:12]}"
    for key, value in overrides.items():
        config[key] = value
    return config


class RunResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


class BundleFactory:
    """Makes bundles under one temp dir, copying a template rootfs built once.

    With ``owner`` (host uid, gid) every rootfs copy belongs to that owner, as an
    image for a user namespace mapping container root there must (the template
    stays root's).
    """

    def __init__(self, workdir: Path, owner: tuple[int, int] | None = None) -> None:
        self.workdir = workdir
        self.owner = owner
        self.template = workdir / "template-rootfs"
        if not self.template.exists():
            make_rootfs(self.template)

    def make(self, config: dict[str, Any]) -> Path:
        bundle = self.workdir / f"bundle-{uuid.uuid4().hex[:10]}"
        bundle.mkdir()
        shutil.copytree(self.template, bundle / "rootfs", symlinks=True)
        if self.owner is not None:
            chown_tree(bundle / "rootfs", *self.owner)
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """``chown -R -h uid:gid top`` by descriptor: each entry named relative to its
    directory's descriptor, symlinks changed themselves and never followed."""
    from dockyard.fs.tree import walk

    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.chown(fd, uid, gid)
        for entry in walk(fd):
            os.chown(entry.name, uid, gid, dir_fd=entry.dir_fd, follow_symlinks=False)
    finally:
        os.close(fd)


class Runtime(NamedTuple):
    """A runc-compatible runtime binary with its own state root."""

    name: str
    argv: tuple[str, ...]
    root: Path

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, "--root", str(self.root), *args]

    def call(self, *args: str, timeout: float = 30, **kwargs: Any) -> RunResult:
        """Run a runtime command; output goes through files, not pipes.

        A created or detached container inherits the runtime's stdio, so a pipe
        would stay open (and ``subprocess.run`` blocked) for the container's life.
        """
        import tempfile

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(self.cmd(*args), stdout=out, stderr=err, timeout=timeout,
                                  check=False, **kwargs)
            out.seek(0)
            err.seek(0)
            return RunResult(proc.returncode, out.read().decode(errors="replace"),
                             err.read().decode(errors="replace"))

    def run_bundle(self, bundle: Path, container_id: str | None = None) -> RunResult:
        cid = container_id or f"t-{uuid.uuid4().hex[:10]}"
        return self.call("run", "--bundle", str(bundle), cid, stdin=subprocess.DEVNULL)


def run_and_get_output(runtime: Runtime, factory: BundleFactory,
                       config: dict[str, Any]) -> RunResult:
    return runtime.run_bundle(factory.make(copy.deepcopy(config)))
