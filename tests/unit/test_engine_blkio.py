"""--blkio-weight, --blkio-weight-device and --device-{read,write}-{bps,iops}: from
ContainerSpec to the OCI config's linux.resources.blockIO (device paths resolved to
major:minor on the host, as moby does), and through the records' spec JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine import ocispec
from dockyard.engine.records import spec_from_json, spec_to_json
from dockyard.engine.spec import BlkioThrottleDevice, BlkioWeightDevice, ContainerSpec
from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import BlockIO, ThrottleDevice, WeightDevice, parse_spec

DEVICES = {"/dev/sda": (8, 0), "/dev/sdb": (8, 16)}


def numbers(path: str) -> tuple[int, int]:
    return DEVICES[path]


def build(spec: ContainerSpec) -> dict[str, Any]:
    return ocispec.build({"config": {"Cmd": ["sh"]}}, spec, rootfs="rootfs", hostname="h",
                         cgroup_path="/dy/x", user=ocispec.UserIds(0, 0),
                         device_numbers=numbers)


SPEC = ContainerSpec(
    "i", blkio_weight=300,
    blkio_weight_device=(BlkioWeightDevice("/dev/sda", 500),),
    device_read_bps=(BlkioThrottleDevice("/dev/sda", 1048576),),
    device_write_bps=(BlkioThrottleDevice("/dev/sdb", 2097152),),
    device_read_iops=(BlkioThrottleDevice("/dev/sda", 100),),
    device_write_iops=(BlkioThrottleDevice("/dev/sdb", 50),))


def test_block_io_lowered_with_device_numbers() -> None:
    assert build(SPEC)["linux"]["resources"]["blockIO"] == {
        "weight": 300,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 16, "rate": 2097152}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 50}],
    }


def test_the_runtime_reads_what_the_engine_writes() -> None:
    assert parse_spec(build(SPEC)).linux.resources.block_io == BlockIO(
        weight=300, weight_devices=(WeightDevice(8, 0, 500),),
        throttle_read_bps=(ThrottleDevice(8, 0, 1048576),),
        throttle_write_bps=(ThrottleDevice(8, 16, 2097152),),
        throttle_read_iops=(ThrottleDevice(8, 0, 100),),
        throttle_write_iops=(ThrottleDevice(8, 16, 50),))


def test_no_block_io_without_the_flags() -> None:
    assert "blockIO" not in build(ContainerSpec("i"))["linux"]["resources"]
    # --blkio-weight 0 is Docker's "disabled"
    assert "blockIO" not in build(ContainerSpec("i", blkio_weight=0))["linux"]["resources"]


@pytest.mark.parametrize("weight", [5, 1001])
def test_blkio_weight_range(weight: int) -> None:
    """The daemon's check (moby's verifyPlatformContainerResources), in its words."""
    with pytest.raises(InvalidArgument, match="Range of blkio weight is from 10 to 1000"):
        ocispec.check_blkio(ContainerSpec("i", blkio_weight=weight))
    with pytest.raises(InvalidArgument, match="Range of blkio weight is from 10 to 1000"):
        build(ContainerSpec("i", blkio_weight=weight))


def test_host_device_numbers(tmp_path: Path) -> None:
    disk = next((f"/dev/{d}" for d in sorted(os.listdir("/sys/block"))
                 if os.path.exists(f"/dev/{d}")), None)
    if disk is not None:
        rdev = os.stat(disk).st_rdev
        assert ocispec.host_block_device(disk) == (os.major(rdev), os.minor(rdev))
    with pytest.raises(InvalidArgument, match="stat /dev/no-such-disk: no such file or "
                                              "directory"):
        ocispec.host_block_device("/dev/no-such-disk")
    with pytest.raises(InvalidArgument, match="/dev/null is not a block device"):
        ocispec.host_block_device("/dev/null")
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgument, match="is not a block device"):
        ocispec.host_block_device(str(tmp_path / "file"))


def test_blkio_fields_survive_the_records_json() -> None:
    assert spec_from_json(spec_to_json(SPEC)) == SPEC


def test_records_written_before_the_fields_read_back() -> None:
    old = spec_to_json(ContainerSpec("i", memory=1 << 20)).replace(
        ', "blkio_weight": null', "")
    for key in ("blkio_weight_device", "device_read_bps", "device_write_bps",
                "device_read_iops", "device_write_iops"):
        old = old.replace(f', "{key}": []', "")
    assert "blkio" not in old and "device_read" not in old
    assert spec_from_json(old) == ContainerSpec("i", memory=1 << 20)
