"""blockIO, hugepageLimits and network: parsed into typed values, planned as cgroup writes.

The plans are pure: which weight file a kernel has (``blkio.weight`` under CFQ,
``blkio.bfq.weight`` under BFQ; ``io.bfq.weight`` or ``io.weight`` on v2) is asked
of a ``present`` predicate the managers answer from the real directory.
"""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.errors import InvalidSpec
from dockyard.oci.runtime_spec import (
    BlockIO,
    HugepageLimit,
    InterfacePriority,
    Resources,
    ThrottleDevice,
    WeightDevice,
    parse_spec,
)
from dockyard.runtime.linux.cgroups import blkio_to_io_weight, plan_v1, plan_v2
from dockyard.runtime.spec import default_spec


def resources(**fields: Any) -> Resources:
    config = default_spec(("true",))
    config["linux"]["resources"].update(fields)
    return parse_spec(config).linux.resources


def bfq(_controller: str, file: str) -> bool:
    """A kernel with BFQ and no CFQ: no blkio.weight, io.bfq.weight present."""
    return "bfq" in file or not file.endswith(("weight", "weight_device"))


def cfq(_controller: str, file: str) -> bool:
    return "bfq" not in file


def triples(writes: list[Any]) -> list[tuple[str, str, str]]:
    return [(w.controller, w.file, w.value) for w in writes]


def test_block_io_hugepages_and_network_are_parsed() -> None:
    res = resources(
        blockIO={"weight": 500, "leafWeight": 300,
                 "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}],
                 "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                 "throttleWriteBpsDevice": [{"major": 8, "minor": 16, "rate": 2097152}],
                 "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                 "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]},
        hugepageLimits=[{"pageSize": "2MB", "limit": 4194304}],
        network={"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]})
    assert res.block_io == BlockIO(
        weight=500, leaf_weight=300,
        weight_devices=(WeightDevice(8, 0, 600, 200),),
        throttle_read_bps=(ThrottleDevice(8, 0, 1048576),),
        throttle_write_bps=(ThrottleDevice(8, 16, 2097152),),
        throttle_read_iops=(ThrottleDevice(8, 0, 100),),
        throttle_write_iops=(ThrottleDevice(8, 0, 50),))
    assert res.hugepage_limits == (HugepageLimit("2MB", 4194304),)
    assert res.net_class_id == 1048577
    assert res.net_priorities == (InterfacePriority("eth0", 5),)


def test_absent_sections_leave_nothing_set() -> None:
    res = resources()
    assert res.block_io == BlockIO()
    assert res.hugepage_limits == () and res.net_priorities == ()
    assert res.net_class_id is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"blockIO": {"weight": -1}}, "linux.resources.blockIO.weight: must be an integer "
                                      "from 0 to 65535"),
        ({"blockIO": {"weight": 70000}}, "blockIO.weight: must be an integer from 0 to 65535"),
        ({"blockIO": {"weightDevice": [{"minor": 0, "weight": 10}]}},
         "linux.resources.blockIO.weightDevice[0].major: must be an integer"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -5}]}},
         "blockIO.throttleReadBpsDevice[0].rate: must be a non-negative integer"),
        ({"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0}]}},
         "blockIO.throttleWriteIOPSDevice[0].rate: must be a non-negative integer"),
        # the page size names a file: nothing that could walk out of the cgroup
        ({"hugepageLimits": [{"pageSize": "../../memory/x", "limit": 1}]},
         "linux.resources.hugepageLimits[0].pageSize: want a size like 2MB or 1GB, "
         "got '../../memory/x'"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "want a size like 2MB"),
        ({"hugepageLimits": [{"pageSize": "2MB"}]},
         "hugepageLimits[0].limit: must be a non-negative integer"),
        ({"network": {"classID": -1}}, "network.classID: must be an integer from 0 to "
                                       "4294967295"),
        # a name is one token of a "NAME PRIORITY" line: no spaces, newlines or slashes
        ({"network": {"priorities": [{"name": "eth0 7\nlo", "priority": 1}]}},
         "linux.resources.network.priorities[0].name: not a network interface name"),
        ({"network": {"priorities": [{"name": "", "priority": 1}]}},
         "not a network interface name"),
        ({"network": {"priorities": [{"name": "lo", "priority": -2}]}},
         "network.priorities[0].priority: must be an integer from 0 to 4294967295"),
    ],
)
def test_bad_values_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message.replace("[", r"\[").replace("]", r"\]")):
        resources(**fields)


def test_v1_weight_file_follows_the_kernel() -> None:
    """runc's detectWeightFilenames: blkio.weight where CFQ made it, else BFQ's."""
    res = Resources(block_io=BlockIO(weight=500, weight_devices=(WeightDevice(8, 0, 600),)))
    assert triples(plan_v1(res, present=cfq)) == [
        ("blkio", "blkio.weight", "500"), ("blkio", "blkio.weight_device", "8:0 600")]
    assert triples(plan_v1(res, present=bfq)) == [
        ("blkio", "blkio.bfq.weight", "500"), ("blkio", "blkio.bfq.weight_device", "8:0 600")]


def test_v1_block_io_writes_in_runc_order() -> None:
    res = Resources(block_io=BlockIO(
        weight=500, leaf_weight=300, weight_devices=(WeightDevice(8, 0, None, 200),
                                                     WeightDevice(8, 16, 0, 0)),
        throttle_read_bps=(ThrottleDevice(8, 0, 1048576),),
        throttle_write_bps=(ThrottleDevice(8, 16, 0),),
        throttle_read_iops=(ThrottleDevice(8, 0, 100),),
        throttle_write_iops=(ThrottleDevice(8, 0, 50),)))
    assert triples(plan_v1(res, present=cfq)) == [
        ("blkio", "blkio.weight", "500"),
        ("blkio", "blkio.leaf_weight", "300"),
        ("blkio", "blkio.leaf_weight_device", "8:0 200"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio", "blkio.throttle.write_bps_device", "8:16 0"),  # 0 removes a rule
        ("blkio", "blkio.throttle.read_iops_device", "8:0 100"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 50"),
    ]


def test_v1_writes_name_their_spec_field() -> None:
    res = Resources(block_io=BlockIO(weight=5, throttle_write_iops=(ThrottleDevice(8, 0, 1),)),
                    hugepage_limits=(HugepageLimit("1GB", 0),), net_class_id=7,
                    net_priorities=(InterfacePriority("lo", 2),))
    assert [w.field for w in plan_v1(res, present=cfq)] == [
        "blockIO.weight", "blockIO.throttleWriteIOPSDevice", "hugepageLimits",
        "network.classID", "network.priorities"]


def test_v1_hugetlb_and_network() -> None:
    res = Resources(hugepage_limits=(HugepageLimit("2MB", 4194304), HugepageLimit("1GB", 0)),
                    net_class_id=0x100001,
                    net_priorities=(InterfacePriority("lo", 5), InterfacePriority("eth0", 1)))
    assert triples(plan_v1(res)) == [
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
        ("hugetlb", "hugetlb.1GB.limit_in_bytes", "0"),
        ("net_cls", "net_cls.classid", "1048577"),
        ("net_prio", "net_prio.ifpriomap", "lo 5"),
        ("net_prio", "net_prio.ifpriomap", "eth0 1"),
    ]


def test_unset_zeroes_write_nothing() -> None:
    """Weights and a class id of 0 mean "unset" (runc skips them)."""
    res = Resources(block_io=BlockIO(weight=0, leaf_weight=0), net_class_id=0)
    assert plan_v1(res) == []
    assert plan_v2(res) == []


def test_blkio_weight_to_io_weight() -> None:
    """runc's ConvertBlkIOToIOWeightValue: [10, 1000] onto [1, 10000]."""
    assert blkio_to_io_weight(10) == 1
    assert blkio_to_io_weight(500) == 4950
    assert blkio_to_io_weight(1000) == 10000


def test_v2_weight_prefers_bfq_and_falls_back_to_io_weight() -> None:
    res = Resources(block_io=BlockIO(weight=500))
    assert triples(plan_v2(res, present=bfq)) == [("", "io.bfq.weight", "500")]
    assert triples(plan_v2(res, present=lambda _c, f: f != "io.bfq.weight")) == [
        ("", "io.weight", "4950")]


def test_v2_device_weights_need_bfq() -> None:
    """Per-device weights go to io.bfq.weight; without it the write names that file,
    so applying it fails clearly instead of dropping the weights (runc's silence)."""
    res = Resources(block_io=BlockIO(weight_devices=(WeightDevice(8, 0, 600),)))
    assert triples(plan_v2(res, present=bfq)) == [("", "io.bfq.weight", "8:0 600")]
    assert triples(plan_v2(res, present=lambda _c, _f: False)) == [
        ("", "io.bfq.weight", "8:0 600")]


def test_v2_throttles_and_hugetlb() -> None:
    res = Resources(
        block_io=BlockIO(throttle_read_bps=(ThrottleDevice(8, 0, 1048576),),
                         throttle_write_bps=(ThrottleDevice(8, 0, 0),),
                         throttle_read_iops=(ThrottleDevice(8, 16, 100),),
                         throttle_write_iops=(ThrottleDevice(8, 16, 50),)),
        hugepage_limits=(HugepageLimit("2MB", 4194304),))
    assert triples(plan_v2(res)) == [
        ("", "io.max", "8:0 rbps=1048576"),
        ("", "io.max", "8:0 wbps=max"),  # 0: no limit, as a v1 write of 0 removes the rule
        ("", "io.max", "8:16 riops=100"),
        ("", "io.max", "8:16 wiops=50"),
        ("", "hugetlb.2MB.max", "4194304"),
    ]


@pytest.mark.parametrize(
    ("res", "message"),
    [
        (Resources(block_io=BlockIO(leaf_weight=300)),
         "blockIO.leafWeight: cgroup v2 has no leaf weights"),
        (Resources(block_io=BlockIO(weight_devices=(WeightDevice(8, 0, None, 200),))),
         r"blockIO.weightDevice\[0\].leafWeight: cgroup v2 has no leaf weights"),
        (Resources(net_class_id=7), "network.classID: cgroup v2 has no net_cls controller"),
        (Resources(net_priorities=(InterfacePriority("lo", 1),)),
         "network.priorities: cgroup v2 has no net_prio controller"),
    ],
)
def test_v2_refuses_what_it_cannot_express(res: Resources, message: str) -> None:
    with pytest.raises(InvalidSpec, match=f"linux.resources.{message}"):
        plan_v2(res)
