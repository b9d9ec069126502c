"""Bad bundles and ids: a clear error, a non-zero exit, and nothing left behind.

The autouse leak check (conftest) fails any of these that leaves a mount,
process or test cgroup; each test also checks the state root holds no record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.bundles import BundleFactory, Runtime, base_config

pytestmark = pytest.mark.root


def create_fails(dockyard: Runtime, bundle: Path) -> str:
    result = dockyard.call("create", "--bundle", str(bundle), "bad")
    if result.returncode == 0:  # a runtime that accepts it must not leave it behind
        dockyard.call("delete", "--force", "bad")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert dockyard.call("state", "bad").returncode != 0
    assert not dockyard.root.exists() or list(dockyard.root.iterdir()) == []
    return result.stderr


def bundle_with(factory: BundleFactory, config: dict[str, Any]) -> Path:
    return factory.make(config)


def test_malformed_json(dockyard: Runtime, factory: BundleFactory) -> None:
    bundle = bundle_with(factory, base_config(["true"]))
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "root": ')
    assert "malformed JSON at line 1" in create_fails(dockyard, bundle)


def test_missing_config(dockyard: Runtime, tmp_path: Path) -> None:
    assert "config.json not found" in create_fails(dockyard, tmp_path)


def test_incomplete_config(dockyard: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["process"]["args"] = []
    stderr = create_fails(dockyard, bundle_with(factory, config))
    assert "process.args: must be a non-empty list of strings" in stderr
    config = base_config(["true"])
    del config["root"]
    assert "root: missing" in create_fails(dockyard, bundle_with(factory, config))


def test_wrong_types_name_the_field(dockyard: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["process"]["user"]["uid"] = "zero"
    assert "process.user.uid: must be an integer" in create_fails(
        dockyard, bundle_with(factory, config))


def test_missing_rootfs(dockyard: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["root"]["path"] = "no-such-rootfs"
    assert "no-such-rootfs does not exist" in create_fails(dockyard, bundle_with(factory, config))


def test_unknown_namespace_type(dockyard: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["linux"]["namespaces"].append({"type": "bogus"})
    assert "unknown namespace type 'bogus'" in create_fails(dockyard, bundle_with(factory, config))


def test_namespace_path_that_does_not_exist(dockyard: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["linux"]["namespaces"] = [
        {"type": "network", "path": "/run/netns/none-such"} if n["type"] == "network" else n
        for n in config["linux"]["namespaces"]]
    assert "does not exist" in create_fails(dockyard, bundle_with(factory, config))


@pytest.mark.parametrize("link_target", ["../../../../../../tmp", "/../../../../tmp/x/../.."])
def test_mount_destination_symlink_outside_rootfs(dockyard: Runtime, factory: BundleFactory,
                                                  tmp_path: Path, link_target: str) -> None:
    config = base_config(["true"])
    config["mounts"].append({"destination": "/escape/inner", "type": "tmpfs",
                             "source": "tmpfs", "options": []})
    bundle = bundle_with(factory, config)
    (bundle / "rootfs" / "escape").symlink_to(link_target)
    before = set(os.listdir("/tmp"))
    stderr = create_fails(dockyard, bundle)
    assert "resolves outside the rootfs" in stderr
    assert set(os.listdir("/tmp")) - before <= {"inner"} and not Path("/tmp/inner").exists()


def test_unknown_container_id(dockyard: Runtime) -> None:
    for command in (["state"], ["start"], ["kill"], ["delete"], ["pause"], ["exec"]):
        args = [*command, "no-such-container"] + (["true"] if command == ["exec"] else [])
        result = dockyard.call(*args)
        assert result.returncode != 0
        assert "container does not exist: no-such-container" in result.stderr


def test_invalid_id(dockyard: Runtime, factory: BundleFactory) -> None:
    bundle = bundle_with(factory, base_config(["true"]))
    result = dockyard.call("create", "--bundle", str(bundle), "../evil")
    assert result.returncode != 0
    assert "invalid container id format" in result.stderr


def test_duplicate_id(dockyard: Runtime, factory: BundleFactory) -> None:
    bundle = bundle_with(factory, base_config(["sleep", "30"]))
    assert dockyard.call("create", "--bundle", str(bundle), "dup").returncode == 0
    try:
        result = dockyard.call("create", "--bundle", str(bundle), "dup")
        assert result.returncode != 0
        assert "container with id exists: dup" in result.stderr
    finally:
        dockyard.call("delete", "--force", "dup")


def test_executable_not_found(dockyard: Runtime, factory: BundleFactory) -> None:
    stderr = create_fails(dockyard, bundle_with(factory, base_config(["no-such-binary"])))
    assert 'exec: "no-such-binary": executable file not found in $PATH' in stderr


def test_raising_hard_rlimit_gives_clear_error(dockyard: Runtime,
                                               factory: BundleFactory) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    config = base_config(["true"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 64,
                                     "hard": hard * 2}]
    stderr = create_fails(dockyard, bundle_with(factory, config))
    assert f"RLIMIT_NOFILE: cannot raise the hard limit from {hard} to {hard * 2}" in stderr
    assert "CAP_SYS_RESOURCE" in stderr


def test_unknown_capability(dockyard: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["process"]["capabilities"]["bounding"].append("CAP_FLY")
    assert "unknown capability 'CAP_FLY'" in create_fails(dockyard, bundle_with(factory, config))


def test_bad_seccomp_action(dockyard: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_EXPLODE", "syscalls": []}
    assert "unknown seccomp action 'SCMP_ACT_EXPLODE'" in create_fails(
        dockyard, bundle_with(factory, config))


def test_log_file_gets_json_error(dockyard: Runtime, factory: BundleFactory,
                                  tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    bundle = bundle_with(factory, base_config(["no-such-binary"]))
    result = dockyard.call("--log", str(log), "--log-format", "json", "create", "--bundle",
                           str(bundle), "logged")
    assert result.returncode != 0
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "no-such-binary" in entry["msg"]


def _without_mount_namespace(config: dict[str, Any]) -> dict[str, Any]:
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "mount"]
    return config


def test_masked_paths_without_a_mount_namespace(dockyard: Runtime,
                                                factory: BundleFactory) -> None:
    config = _without_mount_namespace(base_config(["true"]))
    config["linux"]["readonlyPaths"] = []
    assert "unable to restrict sys entries without a private MNT namespace" in create_fails(
        dockyard, bundle_with(factory, config))


def test_rootfs_propagation_without_a_mount_namespace(dockyard: Runtime,
                                                      factory: BundleFactory) -> None:
    """runc would apply it to the host's own mounts; refused instead."""
    config = _without_mount_namespace(base_config(["true"]))
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    config["linux"]["rootfsPropagation"] = "shared"
    assert "linux.rootfsPropagation: needs a mount namespace" in create_fails(
        dockyard, bundle_with(factory, config))


def test_failed_create_without_a_mount_namespace_unmounts(dockyard: Runtime,
                                                          factory: BundleFactory) -> None:
    """The init mounts in the runtime's namespace; a later failure takes them away
    (the leak check would see any left)."""
    config = _without_mount_namespace(base_config(["no-such-binary"]))
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    assert "executable file not found" in create_fails(dockyard, bundle_with(factory, config))


MAPPING = {"containerID": 0, "hostID": 100000, "size": 65536}


def _with_user_namespace(config: dict[str, Any], path: str = "") -> dict[str, Any]:
    config["linux"]["namespaces"].append({"type": "user", "path": path} if path
                                         else {"type": "user"})
    config["linux"]["uidMappings"] = [dict(MAPPING)]
    config["linux"]["gidMappings"] = [dict(MAPPING)]
    return config


def test_mappings_without_a_user_namespace(dockyard: Runtime, factory: BundleFactory) -> None:
    """runc 1.1 silently ignores them; refused instead."""
    config = _with_user_namespace(base_config(["true"]))
    config["linux"]["namespaces"].pop()
    assert "linux.uidMappings: given without a user namespace" in create_fails(
        dockyard, bundle_with(factory, config))


def test_user_namespace_without_gid_mappings(dockyard: Runtime,
                                             factory: BundleFactory) -> None:
    config = _with_user_namespace(base_config(["true"]))
    config["linux"]["gidMappings"] = []
    assert "user namespaces enabled, but no gid mappings found" in create_fails(
        dockyard, bundle_with(factory, config))
    config["linux"]["gidMappings"] = [dict(MAPPING)]
    config["linux"]["uidMappings"] = []
    assert "user namespaces enabled, but no uid mappings found" in create_fails(
        dockyard, bundle_with(factory, config))


@pytest.mark.parametrize(("second", "side"), [
    ({"containerID": 50, "hostID": 200000, "size": 100}, "container IDs 50-149"),
    ({"containerID": 500, "hostID": 100050, "size": 100}, "host IDs 100050-100149"),
])
def test_overlapping_mappings(dockyard: Runtime, factory: BundleFactory,
                              second: dict[str, int], side: str) -> None:
    config = _with_user_namespace(base_config(["true"]))
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 100},
                                      second]
    stderr = create_fails(dockyard, bundle_with(factory, config))
    assert f"linux.uidMappings[1]: {side} overlap those of linux.uidMappings[0]" in stderr


def test_mapping_ranges_checked(dockyard: Runtime, factory: BundleFactory) -> None:
    config = _with_user_namespace(base_config(["true"]))
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 0}]
    assert "linux.gidMappings[0].size: must be at least 1" in create_fails(
        dockyard, bundle_with(factory, config))
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 4294967295, "size": 2}]
    assert "linux.gidMappings[0]: host IDs 4294967295-4294967296 go past 4294967294" in \
        create_fails(dockyard, bundle_with(factory, config))


def test_no_mapping_for_root(dockyard: Runtime, factory: BundleFactory) -> None:
    config = _with_user_namespace(base_config(["true"]))
    config["linux"]["uidMappings"] = [{"containerID": 1, "hostID": 100000, "size": 100}]
    assert "linux.uidMappings: no mapping for uid 0" in create_fails(
        dockyard, bundle_with(factory, config))


def test_unmapped_process_user(dockyard: Runtime, factory: BundleFactory) -> None:
    config = _with_user_namespace(base_config(["true"]))
    config["process"]["user"] = {"uid": 70000, "gid": 0}
    assert "process.user.uid: cannot set uid to unmapped user in user namespace" in \
        create_fails(dockyard, bundle_with(factory, config))
    config["process"]["user"] = {"uid": 0, "gid": 0, "additionalGids": [70000]}
    assert "process.user.additionalGids: gid 70000 is not mapped" in create_fails(
        dockyard, bundle_with(factory, config))


def test_user_namespace_without_a_mount_namespace(dockyard: Runtime,
                                                  factory: BundleFactory) -> None:
    config = _with_user_namespace(_without_mount_namespace(base_config(["true"])))
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    assert "a user namespace needs a mount namespace" in create_fails(
        dockyard, bundle_with(factory, config))


def test_joined_user_namespace_with_other_mappings(dockyard: Runtime,
                                                   factory: BundleFactory) -> None:
    """Mappings given with a namespace path must be that namespace's own; the half
    made container (a forked stage in the joined namespace) leaves nothing behind."""
    import subprocess
    import time

    holder = subprocess.Popen(["unshare", "--user", "sleep", "300"])
    try:
        ns_path = f"/proc/{holder.pid}/ns/user"
        deadline = time.monotonic() + 5
        while os.readlink(ns_path) == os.readlink("/proc/self/ns/user"):
            assert time.monotonic() < deadline, "unshare never made its namespace"
            time.sleep(0.01)
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{holder.pid}/{name}", "w") as handle:
                handle.write("0 200000 65536\n")
        config = _with_user_namespace(base_config(["true"]), path=ns_path)
        stderr = create_fails(dockyard, bundle_with(factory, config))
        assert f"linux.uidMappings: do not match the user namespace joined at {ns_path}" \
            in stderr
    finally:
        holder.kill()
        holder.wait()


def test_rootfs_out_of_reach_of_the_mapped_root(dockyard: Runtime,
                                                factory: BundleFactory) -> None:
    """The rootfs is set up by the mapped root (runc's order): under pytest's private
    0700 temp dir it cannot reach it.  The failure comes from the init, after the
    two-stage fork: both stages are gone and nothing is left mounted or running."""
    stderr = create_fails(dockyard, bundle_with(factory, _with_user_namespace(
        base_config(["true"]))))
    assert "is out of reach of the user namespace's root" in stderr


# cgroup limits this host cannot apply: create fails naming the field, as runc fails
# (tests/conformance/test_runtime_cgroup_limits.py checks runc fails on the same input)

def _limits(resources: dict[str, Any]) -> dict[str, Any]:
    config = base_config(["true"])
    config["linux"]["resources"].update(resources)
    return config


def _needs_blkio_v1() -> None:
    from tests.conformance.test_runtime_cgroup_limits import V2_ONLY, has_controller

    if V2_ONLY or not has_controller("blkio"):
        pytest.skip("needs a cgroup v1 blkio hierarchy")


def test_blkio_weight_out_of_range(dockyard: Runtime, factory: BundleFactory) -> None:
    from tests.conformance.test_runtime_cgroup_limits import has_blkio_weight

    _needs_blkio_v1()
    if not has_blkio_weight():
        pytest.skip("no blkio weight on this host (neither CFQ nor BFQ)")
    stderr = create_fails(dockyard, bundle_with(factory, _limits(
        {"blockIO": {"weight": 5000}})))
    assert "linux.resources.blockIO.weight: cannot write '5000' to /sys/fs/cgroup/blkio/" \
        in stderr
    assert "Numerical result out of range" in stderr


def test_blkio_throttle_for_a_device_that_does_not_exist(dockyard: Runtime,
                                                          factory: BundleFactory) -> None:
    _needs_blkio_v1()
    stderr = create_fails(dockyard, bundle_with(factory, _limits({"blockIO": {
        "throttleReadBpsDevice": [{"major": 254, "minor": 1048575, "rate": 1048576}]}})))
    assert "linux.resources.blockIO.throttleReadBpsDevice: cannot write '254:1048575 " \
        "1048576'" in stderr
    assert "No such device" in stderr


def test_blkio_leaf_weight_without_cfq(dockyard: Runtime, factory: BundleFactory) -> None:
    """Leaf weights were CFQ's (gone since Linux 5.0): BFQ has no blkio.leaf_weight."""
    _needs_blkio_v1()
    if any("cfq" in p.read_text() for p in Path("/sys/block").glob("*/queue/scheduler")):
        pytest.skip("this kernel has CFQ")
    stderr = create_fails(dockyard, bundle_with(factory, _limits(
        {"blockIO": {"leafWeight": 300}})))
    assert "linux.resources.blockIO.leafWeight: blkio.leaf_weight is not supported by this " \
        "kernel" in stderr


def test_blkio_weight_device_without_bfq(dockyard: Runtime, factory: BundleFactory) -> None:
    from tests.conformance.test_runtime_cgroup_limits import scheduler, whole_disk

    _needs_blkio_v1()
    major, minor, disk = whole_disk()
    if scheduler(disk) in ("bfq", "cfq"):
        pytest.skip(f"the root disk {disk} runs {scheduler(disk)}")
    stderr = create_fails(dockyard, bundle_with(factory, _limits({"blockIO": {
        "weightDevice": [{"major": major, "minor": minor, "weight": 300}]}})))
    assert f"linux.resources.blockIO.weightDevice: cannot write '{major}:{minor} 300'" in stderr
    assert "Operation not supported (a per-device weight needs the BFQ scheduler on that " \
        "disk)" in stderr


def test_hugetlb_without_the_controller(dockyard: Runtime, factory: BundleFactory) -> None:
    from tests.conformance.test_runtime_cgroup_limits import V2_ONLY, has_controller

    if V2_ONLY or has_controller("hugetlb"):
        pytest.skip("the hugetlb controller is mounted here (or the host is v2-only)")
    stderr = create_fails(dockyard, bundle_with(factory, _limits(
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 30}]})))
    assert "linux.resources.hugepageLimits: the hugetlb cgroup controller is not mounted on " \
        "this host" in stderr


def test_hugetlb_page_size_the_kernel_lacks(dockyard: Runtime, factory: BundleFactory) -> None:
    from tests.conformance.test_runtime_cgroup_limits import has_controller

    if not has_controller("hugetlb"):
        pytest.skip("no hugetlb controller for containers on this host")
    stderr = create_fails(dockyard, bundle_with(factory, _limits(
        {"hugepageLimits": [{"pageSize": "3MB", "limit": 1 << 30}]})))
    assert "linux.resources.hugepageLimits: hugetlb.3MB." in stderr
    assert "is not supported by this kernel" in stderr


def test_hugetlb_page_size_that_is_no_size(dockyard: Runtime, factory: BundleFactory) -> None:
    """The page size becomes a file name: one that could lead elsewhere is refused."""
    stderr = create_fails(dockyard, bundle_with(factory, _limits(
        {"hugepageLimits": [{"pageSize": "../memory/x", "limit": 1}]})))
    assert "linux.resources.hugepageLimits[0].pageSize: want a size like 2MB or 1GB, got " \
        "'../memory/x'" in stderr


@pytest.mark.parametrize(("network", "field", "controller"), [
    ({"classID": 0x100001}, "network.classID", "net_cls"),
    ({"priorities": [{"name": "lo", "priority": 5}]}, "network.priorities", "net_prio")])
def test_network_limits_without_the_controller(dockyard: Runtime, factory: BundleFactory,
                                               network: dict[str, Any], field: str,
                                               controller: str) -> None:
    from tests.conformance.test_runtime_cgroup_limits import V2_ONLY, has_controller

    if V2_ONLY or has_controller(controller):
        pytest.skip(f"{controller} is mounted here (or the host is v2-only)")
    stderr = create_fails(dockyard, bundle_with(factory, _limits({"network": network})))
    assert f"linux.resources.{field}: the {controller} cgroup controller is not mounted on " \
        "this host" in stderr


def test_network_priority_for_a_name_that_is_no_interface(dockyard: Runtime,
                                                          factory: BundleFactory) -> None:
    stderr = create_fails(dockyard, bundle_with(factory, _limits(
        {"network": {"priorities": [{"name": "lo 1\neth0", "priority": 5}]}})))
    assert "linux.resources.network.priorities[0].name: not a network interface name" in stderr
