"""User namespaces: each test runs under dockyard-runtime *and* runc.

Container root is host uid/gid 100000 (65536 ids mapped).  The rootfs of each
bundle is a copy of the busybox one owned by that range, and every bundle lives
in a directory the mapped root can traverse: the runtime sets up the rootfs and
its mounts as the mapped root (runc's order), so a bundle under pytest's private
0700 temp dir would be out of its reach under both runtimes.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.fs.tree import remove_tree
from dockyard.runtime.linux.capabilities import CAPABILITY_NAMES, mask
from dockyard.testing.bundles import BundleFactory, Runtime, base_config, run_and_get_output

pytestmark = pytest.mark.root

HOST_ID = 100000
SIZE = 65536
MAPPING = [{"containerID": 0, "hostID": HOST_ID, "size": SIZE}]
MAP_LINE = ["0", str(HOST_ID), str(SIZE)]


@pytest.fixture(scope="module")
def userns_dir() -> Iterator[Path]:
    """A work dir every uid may traverse (0711), removed with everything in it."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-userns-", dir="/tmp"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        remove_tree(path)


@pytest.fixture(scope="module")
def mapped_factory(userns_dir: Path, factory: BundleFactory) -> BundleFactory:
    """Bundles whose rootfs belongs to the mapped range (see ``factory`` for the skips)."""
    return BundleFactory(userns_dir, owner=(HOST_ID, HOST_ID))


def all_capabilities() -> list[str]:
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return list(CAPABILITY_NAMES[:last + 1])


def userns_config(script: str, **overrides: Any) -> dict[str, Any]:
    """base_config with a new user namespace, the mappings, and every capability."""
    config = base_config(["/bin/sh", "-c", script], **overrides)
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [dict(m) for m in MAPPING]
    config["linux"]["gidMappings"] = [dict(m) for m in MAPPING]
    caps = all_capabilities()
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps,
                                         "permitted": caps}
    return config


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(f"{name}:"):
            return line.split()[1]
    raise AssertionError(f"{name} not in /proc/self/status")


def test_features_list_user_namespaces(runtime: Runtime) -> None:
    result = runtime.call("features")
    assert result.returncode == 0, result.stderr
    assert "user" in json.loads(result.stdout)["linux"]["namespaces"]


def test_mapped_root(runtime: Runtime, mapped_factory: BundleFactory) -> None:
    """uid 0 inside, 100000 outside; /proc, /sys, /dev, the cgroup mount, hostname,
    masked and read-only paths all set up for the mapped root; it may mount."""
    script = ("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; hostname; "
              "grep -E '^Cap(Eff|Bnd):' /proc/self/status; touch /made-inside; "
              "mkdir /mnt && mount -t tmpfs probe /mnt && touch /mnt/x && echo tmpfs-ok; "
              "echo x > /dev/null && stat -c '%t:%T' /dev/null /dev/zero; "
              "head -c 5 /dev/zero | wc -c; ls /sys/class/net; "
              "test -d /sys/fs/cgroup/memory -o -f /sys/fs/cgroup/cgroup.procs && echo cgroup; "
              "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname || echo sys-ro")
    bundle = mapped_factory.make(userns_config(script))
    result = runtime.run_bundle(bundle)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["0", "0"], result.stderr
    assert lines[2].split() == MAP_LINE and lines[3].split() == MAP_LINE
    assert lines[4] == "dockyard"
    full = mask(tuple(all_capabilities()))
    assert int(lines[5].split()[1], 16) == full and int(lines[6].split()[1], 16) == full
    assert lines[7:] == ["tmpfs-ok", "1:3", "1:5", "5", "lo", "cgroup", "0", "sys-ro"], \
        result.stderr
    made = bundle / "rootfs" / "made-inside"
    assert (made.stat().st_uid, made.stat().st_gid) == (HOST_ID, HOST_ID)


def test_host_owned_bind_mount_is_not_writable(runtime: Runtime,
                                               mapped_factory: BundleFactory) -> None:
    """A host root file bound read-write stays root's: the mapped root may read it but
    not write it; a file of the mapped range bound the same way is writable."""
    host = mapped_factory.workdir / f"host-{uuid.uuid4().hex[:8]}"
    (host / "root-dir").mkdir(parents=True)
    (host / "root-file").write_text("host\n")
    (host / "mapped-file").write_text("mapped\n")
    os.chown(host / "mapped-file", HOST_ID, HOST_ID)
    script = ("cat /mnt/root-file; stat -c %u /mnt/root-file; "
              "echo x >> /mnt/root-file || echo file-refused; "
              "touch /mnt/root-dir/new || echo dir-refused; "
              "echo y >> /mnt/mapped-file && echo mapped-ok")
    config = userns_config(script)
    for name in ("root-file", "root-dir", "mapped-file"):
        config["mounts"].append({"destination": f"/mnt/{name}", "type": "bind",
                                 "source": str(host / name), "options": ["rbind", "rw"]})
    result = run_and_get_output(runtime, mapped_factory, config)
    assert result.stdout.split() == ["host", "65534", "file-refused", "dir-refused",
                                     "mapped-ok"], result.stderr
    assert result.stderr.count("Permission denied") == 2, result.stderr
    assert (host / "root-file").read_text() == "host\n"
    assert list((host / "root-dir").iterdir()) == []
    assert (host / "mapped-file").read_text() == "mapped\ny\n"


def test_non_root_user_in_user_namespace(runtime: Runtime,
                                         mapped_factory: BundleFactory) -> None:
    config = userns_config("id; grep -E '^(Uid|Gid|CapEff):' /proc/self/status")
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    result = run_and_get_output(runtime, mapped_factory, config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "uid=1000 gid=1000 groups=10", result.stderr
    assert lines[1].split()[1:] == ["1000"] * 4 and lines[2].split()[1:] == ["1000"] * 4
    assert int(status_field(result.stdout, "CapEff"), 16) == 0


def _holder_with_mappings() -> subprocess.Popen[bytes]:
    """A process in a new user namespace that this test maps 0 -> 100000."""
    holder = subprocess.Popen(["unshare", "--user", "sleep", "300"])
    ns_path = f"/proc/{holder.pid}/ns/user"
    deadline = time.monotonic() + 5
    while os.readlink(ns_path) == os.readlink("/proc/self/ns/user"):
        assert time.monotonic() < deadline, "unshare never made its namespace"
        time.sleep(0.01)
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{holder.pid}/{name}", "w") as handle:
            handle.write(f"0 {HOST_ID} {SIZE}\n")
    return holder


def test_join_user_namespace_by_path(runtime: Runtime, mapped_factory: BundleFactory) -> None:
    """The user namespace is joined first; the new namespaces are then owned by it.
    (runc 1.1 wants the mappings repeated in the config even when joining.)"""
    holder = _holder_with_mappings()
    try:
        ns_path = f"/proc/{holder.pid}/ns/user"
        config = userns_config("id -u; readlink /proc/self/ns/user; cat /proc/self/uid_map; "
                               "touch /joined; mkdir /mnt && mount -t tmpfs j /mnt && echo ok")
        config["linux"]["namespaces"] = [
            ns if ns["type"] != "user" else {"type": "user", "path": ns_path}
            for ns in config["linux"]["namespaces"]]
        bundle = mapped_factory.make(config)
        result = runtime.run_bundle(bundle)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "0"
        assert lines[1] == os.readlink(ns_path)
        assert lines[2].split() == MAP_LINE
        assert lines[3] == "ok"
        assert (bundle / "rootfs" / "joined").stat().st_uid == HOST_ID
    finally:
        holder.kill()
        holder.wait()


def test_exec_joins_the_user_namespace(runtime: Runtime, mapped_factory: BundleFactory) -> None:
    bundle = mapped_factory.make(userns_config("sleep 300"))
    cid = f"userns-{uuid.uuid4().hex[:8]}"
    result = runtime.call("run", "-d", "--bundle", str(bundle), cid, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    try:
        pid = json.loads(runtime.call("state", cid).stdout)["pid"]
        result = runtime.call("exec", cid, "sh", "-c",
                              "id -u; readlink /proc/self/ns/user; touch /by-exec",
                              stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["0", os.readlink(f"/proc/{pid}/ns/user")]
        assert (bundle / "rootfs" / "by-exec").stat().st_uid == HOST_ID
        assert os.stat(f"/proc/{pid}").st_uid == HOST_ID
    finally:
        runtime.call("delete", "--force", cid)


def test_foreground_stdio_is_reopenable(runtime: Runtime, mapped_factory: BundleFactory,
                                        userns_dir: Path) -> None:
    """A foreground run or exec gives the container pipes its root owns (runc's
    InitializeIO): /dev/stdout and /dev/stderr reopen even though the caller's
    files are the host root's; stdin is copied in."""
    script = "echo out > /dev/stdout; echo err > /dev/stderr; cat; stat -L -c %u /dev/stdout"
    bundle = mapped_factory.make(userns_config(script))
    feed = userns_dir / f"stdin-{uuid.uuid4().hex[:8]}"
    feed.write_text("fed\n")
    with feed.open("rb") as stdin:
        result = runtime.call("run", "--bundle", str(bundle), f"fg-{uuid.uuid4().hex[:8]}",
                              stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["out", "fed", "0"] and result.stderr == "err\n"
    bundle = mapped_factory.make(userns_config("sleep 300"))
    cid = f"fg-{uuid.uuid4().hex[:8]}"
    assert runtime.call("run", "-d", "--bundle", str(bundle), cid,
                        stdin=subprocess.DEVNULL).returncode == 0
    try:
        with feed.open("rb") as stdin:
            result = runtime.call("exec", cid, "sh", "-c", script, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["out", "fed", "0"] and result.stderr == "err\n"
    finally:
        runtime.call("delete", "--force", cid)


def test_sysfs_without_a_network_namespace(dockyard: Runtime,
                                           mapped_factory: BundleFactory) -> None:
    """dockyard-runtime only: sysfs cannot be mounted from a user namespace that does
    not own the network namespace, so /sys is the host's, bound recursively and
    read-only (runc 1.2's fallback; Debian's runc 1.1.5 fails with EPERM)."""
    config = userns_config("awk '$5 == \"/sys\" {print $6}' /proc/self/mountinfo; "
                           "ls /sys/class/net; touch /sys/x || echo ro")
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] != "network"]
    result = run_and_get_output(dockyard, mapped_factory, config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ro" in lines[0].split(","), result.stdout
    # the host's interfaces (other tests add and remove theirs meanwhile)
    assert "lo" in lines[1:-1] and set(lines[1:-1]) & (set(os.listdir("/sys/class/net")) - {"lo"})
    assert lines[-1] == "ro"


def test_same_view_as_runc_in_a_user_namespace(dockyard: Runtime, runc: Runtime,
                                               mapped_factory: BundleFactory) -> None:
    script = ("id; hostname; grep -E '^(Cap|NoNewPrivs|Uid|Gid|Groups)' /proc/self/status; "
              "ls -ln /dev | awk '{print $1, $3, $4, $NF}'; umask; cat /proc/self/mountinfo")
    config = userns_config(script)
    ours = run_and_get_output(dockyard, mapped_factory, config)
    theirs = run_and_get_output(runc, mapped_factory, config)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    ours_lines, ours_mounts = _split_mountinfo(ours.stdout)
    theirs_lines, theirs_mounts = _split_mountinfo(theirs.stdout)
    assert ours_lines == theirs_lines
    assert ours_mounts == theirs_mounts


def _split_mountinfo(text: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    lines, mounts = [], []
    for line in text.splitlines():
        if " - " in line and line.split()[0].isdigit():
            left, right = line.split(" - ", 1)
            mounts.append((left.split()[4], right.split()[0], left.split()[5]))
        else:
            lines.append(line)
    return lines, sorted(mounts)
