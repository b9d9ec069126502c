"""The small things users notice (issue 11): supplementary groups, local digests, push
output and compression, export's entries, exit codes and error wording, each as Docker
has them."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until

pytestmark = pytest.mark.root


def _accounts(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                           "app:x:1000:1000::/home/app:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nwheel:x:10:root\napp:x:1000:\n"
                                          "staff:x:50:app,other\n")


@pytest.mark.parametrize(("user", "expected"), [
    # Docker's additionalGids: the primary gid, then the groups that list the user
    (None, "uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
    # (the kernel keeps the groups sorted)
    ("app", "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"),
    # an explicit group: that group alone (runc's GetExecUser: no Sgids then)
    ("app:staff", "uid=1000(app) gid=50(staff) groups=50(staff)"),
    ("1000:10", "uid=1000(app) gid=10(wheel) groups=10(wheel)"),
    # a uid without a passwd entry: gid 0, which is also its one group
    ("4242", "uid=4242 gid=0(root) groups=0(root)"),
])
def test_id_lists_the_primary_group(box: Dockyard, tmp_path: Path, user: str | None,
                                    expected: str) -> None:
    tar = make_rootfs_tar(tmp_path / "accounts", _accounts)
    box("import", "-c", 'CMD ["sh"]', str(tar), "accounts:1")
    flags = ["--user", user] if user else []
    assert box("run", "--rm", *flags, "accounts:1", "id").stdout.strip() == expected


def _export(box: Dockyard, name: str) -> dict[str, tuple[bytes, int, str, int, int, int]]:
    """name → (type, permission bits, link target, uid, gid, size) of each entry."""
    raw = subprocess.run([*box.argv, "--root", str(box.root), "export", name], env=box.env,
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return {m.name: (m.type, stat.S_IMODE(m.mode), m.linkname, m.uid, m.gid, m.size)
                for m in archive.getmembers()}


def test_export_has_dockers_init_entries(box: Dockyard, tmp_path: Path) -> None:
    def image_files(rootfs: Path) -> None:  # the image's own, which the init layer hides
        (rootfs / "etc" / "hosts").write_text("10.0.0.1 from-the-image\n")
        (rootfs / "etc" / "mtab").write_text("not a link\n")
        (rootfs / ".dockerenv").mkdir()  # a directory stays, as under moby's Setup

    tar = make_rootfs_tar(tmp_path / "own", image_files)
    box("import", str(tar), "own:1")
    empty_file, directory = (tarfile.REGTYPE, 0o755, "", 0, 0, 0), \
        (tarfile.DIRTYPE, 0o755, "", 0, 0, 0)
    box("create", "--name", "created", "--network", "none", "box:1", "true")
    box("run", "--name", "ran", "--network", "none", "box:1", "true")
    for name in ("created", "ran"):
        entries = _export(box, name)
        names = list(entries)
        assert names == sorted(names, key=lambda n: n.split("/"))  # a sorted walk's order
        for path in (".dockerenv", "dev/console", "etc/hostname", "etc/hosts",
                     "etc/resolv.conf"):
            assert entries[path] == empty_file, (name, path)
        for path in ("dev/pts", "dev/shm", "proc", "sys"):
            assert entries[path] == directory, (name, path)
        assert entries["etc/mtab"] == (tarfile.SYMTYPE, 0o777, "/proc/mounts", 0, 0, 0)
        assert entries["etc/passwd"][:2] == (tarfile.REGTYPE, 0o644)  # the image's, as is
    box("create", "--name", "own", "--network", "none", "own:1", "true")
    entries = _export(box, "own")
    assert entries["etc/hosts"] == empty_file
    assert entries["etc/mtab"][2] == "/proc/mounts"
    assert entries[".dockerenv"][0] == tarfile.DIRTYPE


def test_create_refuses_cpus_out_of_range_as_docker_create_does(box: Dockyard) -> None:
    """docker create (CLI 28) exits 1 here, with the daemon's wording; run exits 125
    (test_containers)."""
    count = len(os.sched_getaffinity(0))
    for value in ("-1", "999", str(count + 1)):
        refused = box("create", "--cpus", value, "box:1", check=False)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.strip() == (f"Error: Range of CPUs is from 0.01 to {count}.00, "
                                          f"as there are only {count} CPUs available")
    assert box("ps", "-a", "-q").stdout == ""
    box("create", "--cpus", str(count), "--network", "none", "box:1", "true")


def test_an_empty_command_is_not_found(box: Dockyard) -> None:
    """docker run IMAGE '' exits 127 (exec: "": not found); docker create takes it."""
    empty = box("run", "--rm", "--network", "none", "box:1", "", check=False)
    assert empty.returncode == 127, empty.stderr
    assert 'exec: "": executable file not found in $PATH' in empty.stderr
    box("create", "--name", "empty", "--network", "none", "box:1", "")


def test_exec_into_a_restarting_or_paused_container_gets_dockers_error(box: Dockyard) -> None:
    cid = box("run", "-d", "--name", "flaky", "--network", "none", "--restart", "always",
              "box:1", "sh", "-c", "exit 3").stdout.strip()
    # the back-off doubles (100 ms, 200 ms, …): past a few restarts each wait is long
    # enough to be caught; an exec caught between two runs is refused, never started
    wording = f"Container {cid} is restarting, wait until the container is running"

    def refused_while_restarting() -> bool:
        state = box("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "flaky").stdout
        status, count = state.split()
        if status != "restarting" or int(count) < 4:
            return False
        result = box("exec", "flaky", "true", check=False)
        return result.returncode == 1 and result.stderr.strip() == f"Error: {wording}"

    until("an exec refused while the container waits to restart", refused_while_restarting)
    box("rm", "-f", "flaky")
    cid = box("run", "-d", "--name", "frozen", "--network", "none", "box:1",
              "sleep", "300").stdout.strip()
    box("pause", "frozen")
    paused = box("exec", "frozen", "true", check=False)
    assert paused.returncode == 1
    assert paused.stderr.strip() == (f"Error: Container {cid} is paused, unpause the "
                                     "container before exec")
    box("unpause", "frozen")
    assert box("exec", "frozen", "true").returncode == 0
