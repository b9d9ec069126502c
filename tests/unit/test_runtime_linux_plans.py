"""Pure planning code of the runtime: mount options, cgroup writes, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument, InvalidSpec, NotImplementedFeature
from dockyard.oci.runtime_spec import DeviceRule, Resources
from dockyard.runtime.linux import mountopts, paths
from dockyard.runtime.linux import syscalls as sc
from dockyard.runtime.linux.capabilities import mask
from dockyard.runtime.linux.cgroups import plan_v1, plan_v2, shares_to_weight
from dockyard.runtime.operations import parse_signal
from dockyard.runtime.state import validate_id


def test_mount_options_split_into_flags_propagation_and_data() -> None:
    opts = mountopts.parse(("rbind", "ro", "nosuid", "rprivate", "mode=755", "size=64k"))
    assert opts.flags == sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY | sc.MS_NOSUID
    assert opts.propagation == (sc.MS_PRIVATE | sc.MS_REC,)
    assert opts.data == "mode=755,size=64k"
    assert opts.is_bind


def test_clearing_options_undo_earlier_ones() -> None:
    assert mountopts.parse(("ro", "rw", "nosuid", "suid")).flags == 0


def test_recursive_attributes_are_refused_clearly() -> None:
    with pytest.raises(NotImplementedFeature, match="'rro'"):
        mountopts.parse(("rro",))


def test_statvfs_flags_are_kept_on_remount() -> None:
    assert mountopts.flags_from_statvfs(2 | 4 | 8) == sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def test_resolve_follows_symlinks_inside_root(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "abs").symlink_to("/real")
    (tmp_path / "rel").symlink_to("real/../real")
    assert paths.resolve_in_root(str(tmp_path), "/abs/x") == str(tmp_path / "real" / "x")
    assert paths.resolve_in_root(str(tmp_path), "/rel/y") == str(tmp_path / "real" / "y")
    assert paths.resolve_in_root(str(tmp_path), "/new/dir") == str(tmp_path / "new" / "dir")


@pytest.mark.parametrize("target", ["../..", "../../etc", "/../../etc", "a/../../.."])
def test_resolve_refuses_escapes(tmp_path: Path, target: str) -> None:
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(InvalidSpec, match="resolves outside the rootfs"):
        paths.resolve_in_root(str(tmp_path), "/link/x")


def test_resolve_refuses_dotdot_above_root(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="outside the rootfs"):
        paths.resolve_in_root(str(tmp_path), "/../etc")


def test_resolve_stops_symlink_loops(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(InvalidSpec, match="Too many levels of symbolic links"):
        paths.resolve_in_root(str(tmp_path), "/a")


def test_cgroup_v1_plan() -> None:
    res = Resources(memory_limit=1 << 26, cpu_shares=512, cpu_quota=50000, cpu_period=100000,
                    pids_limit=10, devices=(DeviceRule(allow=False),))
    writes = [(w.controller, w.file, w.value) for w in plan_v1(res, ("c 1:3 rwm",))]
    assert ("memory", "memory.limit_in_bytes", str(1 << 26)) in writes
    assert ("pids", "pids.max", "10") in writes
    period = writes.index(("cpu", "cpu.cfs_period_us", "100000"))
    assert writes.index(("cpu", "cpu.cfs_quota_us", "50000")) > period
    assert writes.index(("devices", "devices.deny", "a")) < writes.index(
        ("devices", "devices.allow", "c 1:3 rwm"))


def test_cgroup_v1_plan_skips_unset_docker_zeroes() -> None:
    assert plan_v1(Resources(cpu_shares=0, cpu_quota=0, cpu_period=0)) == []


def test_cgroup_v2_plan() -> None:
    res = Resources(memory_limit=100, memory_swap=300, cpu_shares=1024, cpu_quota=20000,
                    cpu_period=100000, pids_limit=0)
    writes = {w.file: w.value for w in plan_v2(res)}
    assert writes == {"memory.max": "100", "memory.swap.max": "200", "cpu.weight": "39",
                      "cpu.max": "20000 100000", "pids.max": "max"}


def test_shares_to_weight_bounds() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000


def test_capability_masks() -> None:
    assert mask(("CAP_CHOWN", "CAP_KILL", "net_bind_service")) == 0x421
    with pytest.raises(InvalidSpec, match="unknown capability"):
        mask(("CAP_NOPE",))


@pytest.mark.parametrize(("text", "number"), [("9", 9), ("KILL", 9), ("SIGTERM", 15),
                                              ("sigusr1", 10)])
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


def test_parse_signal_rejects_unknown() -> None:
    with pytest.raises(InvalidArgument, match="invalid signal"):
        parse_signal("SIGFOO")


@pytest.mark.parametrize("bad", ["", "..", "a/b", "x y"])
def test_container_ids(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_id(bad)
    validate_id("good_id-1.2+3")
