"""The hostile cases of tests/kernel/test_containment.py, through Docker and dockyard
side by side.

Each case aims the same bytes (the same archive, context or container script) at a
host sentinel directory, first through a private dockerd (vfs, one for the module),
then through dockyard, and asserts that each leaves the sentinel unchanged or
refuses.  Docker is the reference that the input is well aimed: a form a real
engine takes in (or refuses) by itself.  Benign controls of the same shape load,
run and build on both, so a refusal below is never a malformed archive.

What Docker did with each case (dockerd 20.10.24 as Debian bookworm ships it,
runc 1.1.5, the docker 28 CLI, the classic builder); none changed the sentinel:

  a layer on a busybox base: ``docker load``, then ``docker run --rm IMG true``; and the
  layer alone through ``docker import``.  Docker applies a layer in a chroot of the
  layer's directory, so what it refuses it refuses at load (and at import alike),
  never at run; what it takes stays inside the image:
    symlink-then-dir          refused at load: "duplicates of file paths not supported"
    dir-then-symlink          refused at load: "chtimes /a: no such file or directory"
    dir-symlink-dir           refused at load: "chtimes /a: no such file or directory"
    file-below-symlink        refused at load: "open /a/secret: no such file or directory"
    dir-below-symlink         refused at load: "mkdir /a/sub: no such file or directory"
    hardlink-to-host          refused at load: "link <sentinel>/secret /h: no such file ..."
    whiteout-through-symlink  contained (the whiteout is resolved in the chroot: nothing)
    opaque-through-symlink    contained (likewise)
    etc-to-host               contained: the run (which places /etc/hosts & co. in the
                              image's /etc, a symlink to the sentinel's path) succeeds
    the door's etc -> / with etc/evil (its single-layer archive, and import): contained,
                              /evil is a file of the image
  (dockyard refuses at load and import every layer with an entry below a symlink or a
  hard link out of the layer, and takes the symlink/directory reorderings, leaving a
  real directory or a symlink in the layer; etc-to-host runs.)
  the image's /etc/passwd, ``docker run -u hostonly`` (only the host's file has it):
    host-symlink, dev-zero    refused at run: "unable to find user hostonly: no matching
                              entries in passwd file" (resolved in the rootfs)
    dev-zero-node (beyond the kernel test: the image also ships a /dev/zero device node)
                              refused at run: "...: bufio.Scanner: token too long";
                              dockerd reads the device from the host side, up to its
                              64 KiB line limit.  dockyard: regular files only.
    fifo                      dockerd blocks opening the FIFO (the run, and a later rmi of
                              the image, hang) until something opens it for writing;
                              then "no matching entries".  The test opens it after GRACE
                              seconds; dockyard answers at once.
  cp, a running busybox container:
    into /dst/ where the container made /dst/DIR a symlink to the sentinel: refused
                              ("cannot overwrite non-directory "/dst/DIR" with directory")
    in and out while the container swaps /r/d between a directory and a symlink to the
                              sentinel's path (a decoy inside): contained, each round
  build (the classic builder, DOCKER_BUILDKIT=0):
    ADD of a crafted archive  contained; Docker untars chrooted at the destination /x, so
                              the archive's b -> / is /x (dockyard: the container's /)
    context tar on stdin: '..' entries (also 40 of them aimed at the sentinel):
                              contained, Docker untars the context chrooted (dockyard
                              refuses '..'); l -> <sentinel> with l/secret: refused
                              ("open /l/secret: no such file or directory")
    .dockerignore'd file behind a symlink: ``COPY .`` keeps the dangling link; COPY of
                              the link by name or by glob refused ("file not found in
                              build context or excluded by .dockerignore"), as dockyard
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from dockyard.testing import dockerd
from dockyard.testing.bundles import busybox_path, make_rootfs_tar
from dockyard.testing.cli import Dockyard, run_captured
from tests.kernel.test_containment import (
    HOSTILE_LAYER,
    HOSTILE_LAYERS,
    Member,
    Sentinel,
    _docker_archive,
    make_tar,
)

pytestmark = pytest.mark.root

CLASSIC = {"DOCKER_BUILDKIT": "0"}  # Debian's docker.io has no buildx
# how long a docker command may take before the test calls it hung (a normal run or
# load of these images takes about a second)
GRACE = 10.0
# the layer cases of the kernel test, and one acting at run time: the image's /etc is
# a symlink to the host's sentinel, and run mounts /etc/hosts & co. through it
LAYER_CASES: dict[str, Callable[[str], list[Member]]] = {
    **HOSTILE_LAYERS, "etc-to-host": lambda s: [("symlink", "etc", s)]}


class Outcome(NamedTuple):
    """Where an engine stopped a case ("load", "import", "run", "cp", "build"), or ""
    when it took the input (and what it did stayed inside)."""

    refused_at: str
    message: str
    hung: bool = False

    def __str__(self) -> str:
        if not self.refused_at:
            return "contained"
        hung = " after hanging" if self.hung else ""
        # the error on one line, without the CLI's hint and the classic builder's
        # deprecation notice
        words = " ".join(line for line in self.message.splitlines()
                         if not line.startswith(("Run '", "DEPRECATED", "            ")))
        return f"refused at {self.refused_at}{hung}: {' '.join(words.split())[:240]}"


def _outcome(stage: str, result: subprocess.CompletedProcess[str]) -> Outcome:
    return Outcome(stage, result.stderr) if result.returncode != 0 else Outcome("", "")


@pytest.fixture(scope="module")
def daemon() -> Iterator[dockerd.Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root: a private dockerd")
    if not dockerd.available():
        pytest.skip("dockerd is not installed (Debian package docker.io)")
    if busybox_path() is None:
        pytest.skip("needs a static busybox (apt-get install busybox-static)")
    with dockerd.running_dockerd("--storage-driver=vfs") as running:
        yield running


@pytest.fixture(scope="module")
def base_layer(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The busybox rootfs tar, the lower layer of every hostile image."""
    if busybox_path() is None:
        pytest.skip("needs a static busybox (apt-get install busybox-static)")
    return make_rootfs_tar(tmp_path_factory.mktemp("base")).read_bytes()


@pytest.fixture(scope="module")
def docker_box(daemon: dockerd.Daemon, base_layer: bytes) -> str:
    """``box:1`` in the private dockerd, as the ``box`` fixture makes it for dockyard."""
    daemon.docker("import", "-c", 'CMD ["sh"]', "-", "box:1", stdin=base_layer)
    return "box:1"


class LinkCountingSentinel(Sentinel):
    """The kernel test's sentinel, also counting each entry's hard links: a layer's hard
    link to a host file changes none of the file's bytes, modes or owners."""

    def _fingerprint(self) -> tuple[object, ...]:
        links = sorted((str(path), os.lstat(path).st_nlink) for path in self.path.rglob("*")
                       if not path.is_dir())
        return (*super()._fingerprint(), tuple(links))


@pytest.fixture
def sentinel(tmp_path: Path) -> Sentinel:
    return LinkCountingSentinel(tmp_path / "host-sentinel")


def _image_archive(layers: list[bytes], tag: str) -> bytes:
    """A docker-archive of ``layers`` (lowest first), tagged ``tag``."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                            "Layers": [f"{i}/layer.tar" for i in range(len(layers))]}])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        files = [("config.json", config), ("manifest.json", manifest.encode())]
        files += [(f"{i}/layer.tar", layer) for i, layer in enumerate(layers)]
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _char_device(name: str, major: int, minor: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.CHRTYPE, 0o666
        info.devmajor, info.devminor = major, minor
        archive.addfile(info)
    return buffer.getvalue()


# --- the two engines, each reduced to where it stopped a case ------------------------
def _release_fifos(daemon: dockerd.Daemon) -> None:
    """Open, for writing, every FIFO at etc/passwd of the daemon's vfs trees: a dockerd
    blocked opening one for reading gets its open back and reads an empty file."""
    for candidate in (daemon.base / "data/vfs/dir").glob("*/etc/passwd"):
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(os.lstat(candidate).st_mode):
                os.close(os.open(candidate, os.O_WRONLY | os.O_NONBLOCK))


def _docker_run(daemon: dockerd.Daemon, *args: str) -> Outcome:
    """``docker run --rm ARGS``; a run still going after GRACE is a hung dockerd, which
    is released (see _release_fifos) and then reported with what it said."""
    assert dockerd.DOCKER is not None
    process = subprocess.Popen([dockerd.DOCKER, "run", "--rm", "--network", "none", *args],
                               env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    hung = False
    try:
        _, err = process.communicate(timeout=GRACE)
    except subprocess.TimeoutExpired:
        hung = True
        _release_fifos(daemon)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    if process.returncode != 0:
        return Outcome("run", err.decode(errors="replace"), hung)
    return Outcome("", "", hung)


def _docker_load_and_run(daemon: dockerd.Daemon, archive: bytes, tag: str,
                         *run: str) -> Outcome:
    """``docker load``, then ``docker run --rm [RUN options] IMG [command]`` (``true``
    unless RUN names an entrypoint)."""
    loaded = daemon.docker("load", stdin=archive, check=False, timeout=120)
    if loaded.returncode != 0:
        return Outcome("load", loaded.stderr)
    try:
        return _docker_run(daemon, *run, tag, *(() if "--entrypoint" in run else ("true",)))
    finally:
        daemon.docker("rmi", "-f", tag, check=False, timeout=60)


def _dockyard(cli: Dockyard, *args: str, input: bytes | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI with a deadline (a hang fails the test) and never a traceback."""
    result = run_captured([*cli.argv, "--root", str(cli.root), *args], env=cli.env,
                          input=input, timeout=timeout, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _dockyard_load_and_run(cli: Dockyard, archive: bytes, tag: str, *run: str) -> Outcome:
    loaded = _dockyard(cli, "load", input=archive)
    if loaded.returncode != 0:
        return Outcome("load", loaded.stderr)
    return _outcome("run", _dockyard(cli, "run", "--rm", "--network", "none", *run, tag,
                                     *(() if "--entrypoint" in run else ("true",))))


def _docker_import(daemon: dockerd.Daemon, layer: bytes, tag: str) -> Outcome:
    imported = daemon.docker("import", "-", tag, stdin=layer, check=False, timeout=120)
    daemon.docker("rmi", "-f", tag, check=False, timeout=60)
    return _outcome("import", imported)


def _dockyard_import(cli: Dockyard, layer: bytes, tag: str) -> Outcome:
    return _outcome("import", _dockyard(cli, "import", "-", tag, input=layer))


def _report(case: str, docker: Outcome, ours: Outcome) -> None:
    """What each engine did, shown with ``-s`` (and kept for the table above)."""
    print(f"\n{case}: docker {docker}; dockyard {ours}")


# --- layers --------------------------------------------------------------------------
def test_the_archives_are_well_formed(daemon: dockerd.Daemon, base_layer: bytes,
                                      dy: Dockyard) -> None:
    """The controls: every archive shape used below, with benign content, loads and runs
    (or imports) on both engines; and a user the image's own passwd names is found, so
    "unable to find user" below means the hostile passwd was not read."""
    benign = make_tar([("dir", "a", ""), ("file", "a/ok", "x")], mode=0o755)
    image = _image_archive([base_layer, benign], "benign:1")
    assert str(_docker_load_and_run(daemon, image, "benign:1")) == "contained"
    assert str(_dockyard_load_and_run(dy, image, "benign:1")) == "contained"
    assert str(_docker_import(daemon, benign, "benign:0")) == "contained"
    assert str(_dockyard_import(dy, benign, "benign:0")) == "contained"
    single = _docker_archive(benign)  # the door's shape (tagged hostile:1)
    assert daemon.docker("load", stdin=single, check=False).returncode == 0
    daemon.docker("rmi", "-f", "hostile:1")
    assert _dockyard(dy, "load", input=single).returncode == 0
    passwd = make_tar([("file", "etc/passwd", "hostonly:x:4242:4242::/:/bin/sh\n")], mode=0o644)
    image = _image_archive([base_layer, passwd], "passwd:1")
    run = ("-u", "hostonly", "--entrypoint", "id")
    assert str(_docker_load_and_run(daemon, image, "passwd:1", *run)) == "contained"
    assert str(_dockyard_load_and_run(dy, image, "passwd:1", *run)) == "contained"


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_hostile_layer_loaded_and_run(case: str, daemon: dockerd.Daemon, base_layer: bytes,
                                      dy: Dockyard, sentinel: Sentinel) -> None:
    tag = f"hostile-{case}:1"
    layer = make_tar(LAYER_CASES[case](str(sentinel.path)))
    archive = _image_archive([base_layer, layer], tag)
    docker = _docker_load_and_run(daemon, archive, tag)
    assert sentinel.unchanged(), f"docker changed the sentinel ({docker})"
    ours = _dockyard_load_and_run(dy, archive, tag)
    assert sentinel.unchanged(), f"dockyard changed the sentinel ({ours})"
    _report(case, docker, ours)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_hostile_layer_imported(case: str, daemon: dockerd.Daemon, dy: Dockyard,
                                sentinel: Sentinel) -> None:
    layer = make_tar(LAYER_CASES[case](str(sentinel.path)))
    docker = _docker_import(daemon, layer, f"imported-{case}:1")
    assert sentinel.unchanged(), f"docker changed the sentinel ({docker})"
    ours = _dockyard_import(dy, layer, f"imported-{case}:1")
    assert sentinel.unchanged(), f"dockyard changed the sentinel ({ours})"
    _report(case, docker, ours)


def test_the_doors_hostile_layer(daemon: dockerd.Daemon, dy: Dockyard) -> None:
    """The kernel test's door case as it is, ``etc -> /`` and ``etc/evil``: aimed at the
    host's root, it must not create /evil there through load or import."""
    evil = Path("/evil")
    if os.path.lexists(evil):
        pytest.skip("/evil exists on this host: the case cannot tell")
    layer = make_tar(HOSTILE_LAYER)
    archive = _docker_archive(layer)
    docker = [_outcome("load", daemon.docker("load", stdin=archive, check=False)),
              _docker_import(daemon, layer, "hostile:0")]
    daemon.docker("rmi", "-f", "hostile:1", check=False)
    assert not os.path.lexists(evil), f"docker made /evil ({docker})"
    ours = [_outcome("load", _dockyard(dy, "load", input=archive)),
            _dockyard_import(dy, layer, "hostile:0")]
    assert not os.path.lexists(evil), f"dockyard made /evil ({ours})"
    for way, theirs, mine in zip(("load", "import"), docker, ours, strict=True):
        _report(f"door {way}", theirs, mine)


# --- /etc/passwd of a hostile image --------------------------------------------------
PASSWD_CASES: dict[str, Callable[[str], list[bytes]]] = {
    "host-symlink": lambda s: [make_tar([("symlink", "etc/passwd", s + "/passwd")])],
    "fifo": lambda s: [make_tar([("fifo", "etc/passwd", "")])],
    "dev-zero": lambda s: [make_tar([("symlink", "etc/passwd", "/dev/zero")])],
    # beyond the kernel test: the image ships the device node the link names
    "dev-zero-node": lambda s: [_char_device("dev/zero", 1, 5),
                                make_tar([("symlink", "etc/passwd", "/dev/zero")])],
}


@pytest.mark.parametrize("kind", sorted(PASSWD_CASES))
def test_user_lookup_in_a_hostile_image(kind: str, daemon: dockerd.Daemon, base_layer: bytes,
                                        dy: Dockyard, sentinel: Sentinel) -> None:
    """``run -u hostonly`` where only the host's file names hostonly: both answer "no
    such user" (the image's own view), and dockyard at once."""
    (sentinel.path / "passwd").write_text("hostonly:x:4242:4242::/:/bin/sh\n")
    sentinel.before = sentinel._fingerprint()
    tag = f"passwd-{kind}:1"
    archive = _image_archive([base_layer, *PASSWD_CASES[kind](str(sentinel.path))], tag)
    run = ("-u", "hostonly", "--entrypoint", "id")
    docker = _docker_load_and_run(daemon, archive, tag, *run)
    ours = _dockyard_load_and_run(dy, archive, tag, *run)
    _report(kind, docker, ours)
    for engine, outcome in (("docker", docker), ("dockyard", ours)):
        assert outcome.refused_at == "run", (engine, str(outcome))
        assert "unable to find user hostonly" in outcome.message, (engine, str(outcome))
    assert not ours.hung
    assert sentinel.unchanged()


# --- cp against a hostile container --------------------------------------------------
@contextlib.contextmanager
def _docker_container(daemon: dockerd.Daemon, image: str, script: str) -> Iterator[str]:
    name = daemon.docker("run", "-d", "--network", "none", image, "sh", "-c",
                         script).stdout.strip()
    try:
        yield name
    finally:
        daemon.docker("rm", "-f", name, check=False)


def test_cp_into_a_directory_the_container_made_a_host_symlink(
        daemon: dockerd.Daemon, docker_box: str, box: Dockyard, tmp_path: Path,
        sentinel: Sentinel) -> None:
    script = f"mkdir -p /dst && ln -s {sentinel.path} /dst/DIR && sleep 300"
    source = tmp_path / "DIR"
    source.mkdir()
    (source / "secret").write_text("pwned")
    os.chmod(source, 0o777)
    with _docker_container(daemon, docker_box, script) as container:
        docker = _outcome("cp", daemon.docker("cp", str(source), f"{container}:/dst/",
                                              check=False))
    assert sentinel.unchanged(), f"docker changed the sentinel ({docker})"
    box("run", "-d", "--name", "evil", "box:1", "sh", "-c", script)
    ours = _outcome("cp", _dockyard(box, "cp", str(source), "evil:/dst/"))
    assert sentinel.unchanged(), f"dockyard changed the sentinel ({ours})"
    _report("cp-into-host-symlink", docker, ours)
    for engine, outcome in (("docker", docker), ("dockyard", ours)):
        assert "cannot overwrite non-directory" in outcome.message, (engine, str(outcome))


RACE_ROUNDS = 40


def test_cp_against_a_container_swapping_a_directory_for_a_symlink(
        daemon: dockerd.Daemon, docker_box: str, box: Dockyard, tmp_path: Path,
        sentinel: Sentinel) -> None:
    """The container flips /r/d between a directory and a symlink to the sentinel's path
    (a decoy inside the container) while cp copies in and out."""
    decoy = str(sentinel.path)
    script = (f"mkdir -p {decoy} /r && echo decoy > {decoy}/secret && "
              "while true; do mkdir /r/d 2>/dev/null; echo inside > /r/d/secret; "
              f"rm -rf /r/d; ln -s {decoy} /r/d; rm -f /r/d; done")
    payload = tmp_path / "payload"
    payload.write_text("pwned")

    def race(cp: Callable[..., subprocess.CompletedProcess[str]], container: str,
             out: Path) -> None:
        out.mkdir()
        for attempt in range(RACE_ROUNDS):
            cp("cp", str(payload), f"{container}:/r/d/")
            target = out / f"copy{attempt}"
            cp("cp", f"{container}:/r/d/secret", str(target))
            if target.exists():
                assert any(legit.startswith(target.read_text()) for legit in (
                    "inside\n", "decoy\n", "pwned"))  # or a prefix: copied while written
            assert sentinel.unchanged()

    with _docker_container(daemon, docker_box, script) as container:
        race(lambda *a: daemon.docker(*a, check=False), container, tmp_path / "docker-out")
    box("run", "-d", "--name", "racer", "box:1", "sh", "-c", script)
    race(lambda *a: _dockyard(box, *a), "racer", tmp_path / "dockyard-out")


# --- the builder ---------------------------------------------------------------------
def _context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (context / name).write_text(text)
    return context


def _docker_build(daemon: dockerd.Daemon, *args: str,
                  stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return daemon.docker("build", "-q", "--force-rm", "--network", "none", *args,
                         stdin=stdin, env=CLASSIC, check=False, timeout=120)


def test_add_of_a_crafted_archive_stays_in_the_image(
        daemon: dockerd.Daemon, docker_box: str, box: Dockyard, tmp_path: Path,
        sentinel: Sentinel) -> None:
    context = _context(tmp_path, "FROM box:1\nADD crafted.tar /x/\n"
                       "RUN find /x | sort > /found\n")
    (context / "crafted.tar").write_bytes(make_tar([
        ("symlink", "a", str(sentinel.path)), ("dir", "a", ""),
        ("symlink", "b", "/"), ("file", "b" + str(sentinel.path) + "/secret", "pwned"),
        ("symlink", "c", "../../../../../../.." + str(sentinel.path)),
        ("file", "c/new", "pwned")]))
    docker = _outcome("build", _docker_build(daemon, "-t", "crafted:1", str(context)))
    assert sentinel.unchanged(), f"docker changed the sentinel ({docker})"
    ours = _outcome("build", _dockyard(box, "build", "-q", "-t", "crafted:1", str(context),
                                       timeout=120))
    assert sentinel.unchanged(), f"dockyard changed the sentinel ({ours})"
    _report("add-crafted-archive", docker, ours)
    # both take the archive; the directory entry over the link is a directory of the
    # image (Docker untars chrooted at /x, so its b -> / is /x: the file through b
    # lands at /x/tmp/.../secret; dockyard's b -> / is the container's root)
    if not docker.refused_at:
        found = daemon.docker("run", "--rm", "--network", "none", "crafted:1",
                              "cat", "/found").stdout
        daemon.docker("rmi", "-f", "crafted:1", check=False)
        assert "/x/a\n" in found, found
    if not ours.refused_at:
        assert "/x/a\n" in box("run", "--rm", "crafted:1", "cat", "/found").stdout


def test_a_context_tar_on_stdin_cannot_write_outside(
        daemon: dockerd.Daemon, docker_box: str, box: Dockyard, tmp_path: Path,
        sentinel: Sentinel) -> None:
    aimed = "../" * 40 + str(sentinel.path).lstrip("/") + "/escape"
    for name, members in (
            ("dotdot", [("file", "Dockerfile", "FROM box:1\n"), ("file", "../../escape", "x")]),
            ("dotdot-aimed", [("file", "Dockerfile", "FROM box:1\n"), ("file", aimed, "x")]),
            ("symlinked-entry", [("file", "Dockerfile", "FROM box:1\n"),
                                 ("symlink", "l", str(sentinel.path)),
                                 ("file", "l/secret", "pwned")])):
        context = make_tar(members)
        docker = _outcome("build", _docker_build(daemon, "-", stdin=context))
        assert sentinel.unchanged(), f"docker changed the sentinel ({docker})"
        ours = _outcome("build", _dockyard(box, "build", "-q", "-", input=context,
                                           timeout=120))
        assert sentinel.unchanged(), f"dockyard changed the sentinel ({ours})"
        assert not (tmp_path.parent / "escape").exists()
        _report(f"context-{name}", docker, ours)


def test_dockerignored_files_never_reach_the_image_through_symlinks(
        daemon: dockerd.Daemon, docker_box: str, box: Dockyard, tmp_path: Path) -> None:
    """``COPY .`` copies the link as a (dangling) link; naming it, or a glob matching
    it, is refused by both (Docker's context lacks the file; dockyard refuses the link
    to an excluded file)."""
    context = _context(tmp_path, "FROM box:1\nCOPY . /dst/\n",
                       {"secret.key": "top secret\n", "ok.txt": "fine\n",
                        ".dockerignore": "secret.key\n"})
    os.symlink("secret.key", context / "alias")
    show = ("sh", "-c", "ls -la /dst /copied 2>&1; cat /dst/* /copied 2>/dev/null; true")
    for line in ("COPY . /dst/", "COPY alias /copied", "COPY ./* /dst/"):
        (context / "Dockerfile").write_text(f"FROM box:1\n{line}\n")
        docker = _outcome("build", _docker_build(daemon, "-t", "ign:1", str(context)))
        ours = _outcome("build", _dockyard(box, "build", "-q", "-t", "ign:1", str(context),
                                           timeout=120))
        _report(line, docker, ours)
        if not docker.refused_at:
            listing = daemon.docker("run", "--rm", "--network", "none", "ign:1", *show).stdout
            daemon.docker("rmi", "-f", "ign:1", check=False)
            assert "top secret" not in listing and "fine" in listing, (line, listing)
        if not ours.refused_at:
            listing = box("run", "--rm", "ign:1", *show).stdout
            assert "top secret" not in listing and "fine" in listing, (line, listing)
        expected = "" if line == "COPY . /dst/" else "build"
        assert (docker.refused_at, ours.refused_at) == (expected, expected), line
