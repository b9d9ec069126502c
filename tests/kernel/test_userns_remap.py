"""A root with ``userns_remap`` (Docker's ``--userns-remap``): container root is an
unprivileged host uid, seen from the host; images, archives and builds still carry
the container's ids; volumes are writable by the mapped root, host files are not."""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard, free_port, unmount_under
from dockyard.testing.poll import until

pytestmark = pytest.mark.root

HOST_BASE = 300000  # the range given to container ids 0-65535
REMAP = f"0:{HOST_BASE}:65536"


def _status_ids(pid: int) -> tuple[int, int]:
    """Real uid and gid of a host process, as the host sees them."""
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def _members(data: bytes) -> dict[str, tuple[int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name.lstrip("./").rstrip("/"): (m.uid, m.gid) for m in archive}


def _saved_owners(cli: Dockyard, image: str) -> dict[str, tuple[int, int]]:
    """Owner of every entry of ``image``'s layers, as ``save`` writes them."""
    saved = subprocess.run([*cli.argv, "--root", str(cli.root), "save", image],
                           capture_output=True, env=cli.env, check=True).stdout
    owners: dict[str, tuple[int, int]] = {}
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer:
            if member.name.endswith("layer.tar"):
                layer = outer.extractfile(member)
                assert layer is not None
                owners.update(_members(layer.read()))
    return owners


@pytest.fixture
def work() -> Iterator[Path]:
    """A work dir the mapped root can walk into (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dy-userns-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def _remapped_root(work: Path, setting: str) -> Dockyard:
    root = work / "root"
    root.mkdir(mode=0o711)
    (root / "engine.json").write_text(json.dumps({"userns_remap": setting}))
    return Dockyard(root, work / "docker-config")


@pytest.fixture
def remapped(work: Path) -> Iterator[Dockyard]:
    from dockyard.testing.bundles import busybox_path, make_rootfs_tar

    if busybox_path() is None:
        pytest.skip("needs a static busybox (apt-get install busybox-static)")

    def seed(rootfs: Path) -> None:
        (rootfs / "seed").mkdir()
        (rootfs / "seed" / "owned").write_text("by 1000\n")
        os.chown(rootfs / "seed" / "owned", 1000, 1000)

    tar = make_rootfs_tar(work, seed)
    cli = _remapped_root(work, REMAP)
    cli("import", "-c", 'CMD ["sh"]', str(tar), "box:1")
    yield cli
    cli.remove_everything()


def test_container_root_is_an_unprivileged_host_uid(remapped: Dockyard) -> None:
    remapped("run", "-d", "--name", "sleeper", "--network", "none", "box:1", "sh", "-c",
             "echo written > /made-here; exec sleep 300")
    pid = int(remapped("inspect", "-f", "{{.State.Pid}}", "sleeper").stdout)
    assert _status_ids(pid) == (HOST_BASE, HOST_BASE)  # the host's view of its root
    inside = remapped("exec", "sleeper", "sh", "-c",
                      "id -u; cat /proc/self/uid_map; stat -c %u:%g /seed/owned").stdout
    assert inside.split() == ["0", "0", str(HOST_BASE), "65536", "1000:1000"]
    cid = remapped("inspect", "-f", "{{.Id}}", "sleeper").stdout.strip()
    upper = remapped.root / "snapshots" / "active" / cid / "upper"
    until("the container's write", lambda: (upper / "made-here").exists())
    written = (upper / "made-here").stat()
    assert (written.st_uid, written.st_gid) == (HOST_BASE, HOST_BASE)
    layer_file = next((remapped.root / "snapshots" / "layers").glob("*/seed/owned")).stat()
    assert (layer_file.st_uid, layer_file.st_gid) == (HOST_BASE + 1000, HOST_BASE + 1000)


def test_archives_carry_the_containers_ids(remapped: Dockyard, work: Path) -> None:
    """commit, export and cp out shift host ids back; cp in shifts them up."""
    remapped("run", "-d", "--name", "src", "--network", "none", "box:1", "sh", "-c",
             "mkdir /out && touch /out/root-file && chown 1000:1000 /seed/owned; "
             "exec sleep 300")
    until("the container's files", lambda: remapped(
        "exec", "src", "test", "-e", "/out/root-file", check=False).returncode == 0)
    host_file = work / "from-host"
    host_file.write_text("in\n")
    remapped("cp", str(host_file), "src:/out/")
    assert remapped("exec", "src", "stat", "-c", "%u:%g", "/out/from-host").stdout == "0:0\n"
    copied = subprocess.run([*remapped.argv, "--root", str(remapped.root), "cp", "src:/out",
                             "-"], capture_output=True, env=remapped.env, check=True).stdout
    assert set(_members(copied).values()) == {(0, 0)}
    exported = subprocess.run([*remapped.argv, "--root", str(remapped.root), "export", "src"],
                              capture_output=True, env=remapped.env, check=True).stdout
    members = _members(exported)
    assert members["out/root-file"] == (0, 0) and members["seed/owned"] == (1000, 1000)
    remapped("commit", "src", "snap:1")
    owners = _saved_owners(remapped, "snap:1")
    assert owners["out/from-host"] == (0, 0) and owners["out/root-file"] == (0, 0)
    assert all(uid < 65536 and gid < 65536 for uid, gid in owners.values()), owners


def test_builds_run_and_copy_in_the_mapping(remapped: Dockyard, work: Path) -> None:
    context = work / "context"
    context.mkdir()
    (context / "file").write_text("data\n")
    (context / "Dockerfile").write_text(
        "FROM box:1\n"
        "RUN id -u > /run-uid && cat /proc/self/uid_map > /run-map\n"
        "COPY --chown=1000:1000 file /copied\n"
        "COPY file /plain\n"
        "RUN --mount=type=cache,target=/cache,uid=1000 touch /cache/ok && touch /after\n")
    remapped("build", "-q", "-t", "built:1", str(context))
    out = remapped("run", "--rm", "--network", "none", "built:1", "sh", "-c",
                   "cat /run-uid /run-map; stat -c %u:%g /copied /plain /after").stdout
    assert out.split() == ["0", "0", str(HOST_BASE), "65536", "1000:1000", "0:0", "0:0"]
    owners = _saved_owners(remapped, "built:1")
    assert owners["copied"] == (1000, 1000) and owners["plain"] == (0, 0)
    assert owners["run-uid"] == (0, 0) and owners["after"] == (0, 0)


def test_volumes_are_the_mapped_roots_and_host_files_are_not(remapped: Dockyard,
                                                              work: Path) -> None:
    host_dir = work / "host-owned"
    host_dir.mkdir(mode=0o755)
    (host_dir / "file").write_text("host\n")
    out = remapped("run", "--rm", "--network", "none", "-v", "named:/data",
                   "-v", f"{host_dir}:/host", "-v", "/anon", "box:1", "sh", "-c",
                   "touch /data/new && touch /anon/new && echo volumes-ok; "
                   "cat /host/file; touch /host/new 2>/dev/null || echo host-refused; "
                   "echo reopened > /dev/stdout").stdout
    assert out == "volumes-ok\nhost\nhost-refused\nreopened\n"
    data = remapped.root / "volumes" / "named" / "_data"
    assert (data / "new").stat().st_uid == HOST_BASE and data.stat().st_uid == HOST_BASE
    assert not (host_dir / "new").exists()


def test_detached_output_and_published_ports(remapped: Dockyard) -> None:
    """A remapped container on the default bridge serves a published port; what it
    writes to a reopened /dev/stdout reaches its log (pipes its root owns)."""
    port = free_port()
    remapped("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "box:1", "sh",
             "-c", "echo page > /index.html; echo to-log > /dev/stdout; "
             "exec httpd -f -p 80 -h /")

    def fetch() -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                return conn.recv(4096)
        except OSError:
            return b""

    assert until("the published port to answer", lambda: b"page" in fetch())
    assert remapped("logs", "web").stdout == "to-log\n"


def test_refusals(remapped: Dockyard, work: Path) -> None:
    remapped("run", "--rm", "--network", "none", "box:1", "true")  # layers unpacked
    for flags, message in ((["--privileged"], "privileged mode is incompatible with user "
                                              "namespaces"),
                           (["--network", "host"], "cannot share the host's network "
                                                   "namespace when user namespaces")):
        result = remapped("run", "--rm", *flags, "box:1", "true", check=False)
        assert result.returncode == 125 and message in result.stderr, result.stderr
    (remapped.root / "engine.json").write_text("{}")
    result = remapped("run", "--rm", "--network", "none", "box:1", "true", check=False)
    assert result.returncode == 125 and "were unpacked for user namespace mapping" in \
        result.stderr, result.stderr
    (remapped.root / "engine.json").write_text(json.dumps({"userns_remap": REMAP}))


def test_a_root_out_of_the_mapped_roots_reach_is_refused(work: Path) -> None:
    hidden = work / "hidden"
    hidden.mkdir(mode=0o700)
    cli = _remapped_root(hidden, REMAP)
    result = cli("run", "--rm", "box:1", "true", check=False)
    assert result.returncode == 125 and "restricts access to the remapped root" in \
        result.stderr, result.stderr


def test_default_is_dockerds_dockremap(work: Path) -> None:
    """``default`` makes the user ``dockremap`` with subordinate ids when the host lacks
    it (as dockerd does); it is removed again if this test made it."""
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd (passwd)")
    try:
        pwd.getpwnam("dockremap")
        made = False
    except KeyError:
        made = True
    cli = _remapped_root(work, "default")
    try:
        cli("images")
        subuid = {line.split(":")[0]: line.split(":")[1:] for line in
                  Path("/etc/subuid").read_text().splitlines() if line.count(":") == 2}
        assert "dockremap" in subuid and int(subuid["dockremap"][1]) >= 65536
        marker = (cli.root / "snapshots" / "idmap").read_text()
        assert f"0:{subuid['dockremap'][0]}:" in marker
    finally:
        if made:
            subprocess.run(["userdel", "dockremap"], check=False)
