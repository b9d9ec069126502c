"""Resource limits as cgroup file writes: pure functions, unit-tested without root.

The managers in ``v1``/``v2`` apply these plans to a real hierarchy; keeping the
translation here means the arithmetic (shares -> weight, quota/period -> cpu.max)
is checked without touching the kernel.
"""

from __future__ import annotations

from dockyard.errors import InvalidSpec
from dockyard.stdlite import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # (the spec's types: ~1.7 ms that delete does without; collections ~1.7)
    from collections.abc import Callable, Sequence

    from dockyard.oci.runtime_spec import BlockIO, Device, DeviceRule, Resources, ThrottleDevice

    # Whether a cgroup file exists: (controller, file) -> bool.  The managers answer it
    # from the container's own cgroup directory; which weight file a kernel offers
    # (CFQ's blkio.weight, BFQ's blkio.bfq.weight) is the only thing the plans ask.
    Present = Callable[[str, str], bool]


def _every_file(_controller: str, _file: str) -> bool:
    return True


class CgroupWrite(NamedTuple):
    controller: str  # v1 hierarchy name ("memory", "cpu", …); "" on v2
    file: str
    value: str
    field: str = ""  # the linux.resources field it applies ("blockIO.weight"), for errors


def _device_line(rule: DeviceRule) -> str:
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    if rule.type == "a":
        return "a"
    return f"{rule.type} {major}:{minor} {rule.access}"


def spec_device_lines(devices: Sequence[Device]) -> tuple[str, ...]:
    """Allow lines for the spec's ``linux.devices``: the devices cgroup knows only
    block and character devices ("u", unbuffered, is a character one); a FIFO is
    made in /dev like the others but is no cgroup rule (the kernel refuses "p")."""
    kinds = {"b": "b", "c": "c", "u": "c"}
    return tuple(f"{kinds[d.type]} {d.major}:{d.minor} rwm" for d in devices
                 if d.type in kinds)


# Devices every container may use whatever its rules say (runc's AllowedDevices):
# mknod of any char/block node, the standard nodes, ptys, console, ptmx and tun.
DEFAULT_ALLOWED_DEVICES: tuple[str, ...] = (
    "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
)


def plan_v1(res: Resources, extra_devices: tuple[str, ...] = (),
            present: Present = _every_file) -> list[CgroupWrite]:
    """Writes for ``res``; ``extra_devices`` are allow lines for the spec's linux.devices.

    In runc's order (its subsystem list: …, pids, blkio, hugetlb, net_cls, net_prio),
    so the first limit a host cannot apply is the one reported, as under runc.
    """
    writes: list[CgroupWrite] = []

    def add(controller: str, file: str, value: object, field: str = "") -> None:
        writes.append(CgroupWrite(controller, file, str(value), field))

    if res.memory_limit is not None:
        add("memory", "memory.limit_in_bytes", res.memory_limit)
    if res.memory_swap is not None:
        add("memory", "memory.memsw.limit_in_bytes", res.memory_swap)
    if res.memory_reservation is not None:
        add("memory", "memory.soft_limit_in_bytes", res.memory_reservation)
    if res.memory_swappiness is not None and 0 <= res.memory_swappiness <= 100:
        add("memory", "memory.swappiness", res.memory_swappiness)
    if res.disable_oom_killer:
        add("memory", "memory.oom_control", 1)
    if res.cpu_shares:  # 0 means "unset" in the specs Docker writes
        add("cpu", "cpu.shares", res.cpu_shares)
    if res.cpu_period:
        add("cpu", "cpu.cfs_period_us", res.cpu_period)
    if res.cpu_quota:
        add("cpu", "cpu.cfs_quota_us", res.cpu_quota)
    if res.cpuset_cpus:
        add("cpuset", "cpuset.cpus", res.cpuset_cpus)
    if res.cpuset_mems:
        add("cpuset", "cpuset.mems", res.cpuset_mems)
    if res.pids_limit is not None:
        add("pids", "pids.max", "max" if res.pids_limit <= 0 else res.pids_limit)
    for rule in res.devices:
        add("devices", "devices.allow" if rule.allow else "devices.deny", _device_line(rule))
    if res.devices:
        for line in (*DEFAULT_ALLOWED_DEVICES, *extra_devices):
            add("devices", "devices.allow", line)
    writes += _blkio_v1(res.block_io, present)
    for limit in res.hugepage_limits:
        add("hugetlb", f"hugetlb.{limit.page_size}.limit_in_bytes", limit.limit,
            "hugepageLimits")
    if res.net_class_id:  # 0 means "unset", as for runc
        add("net_cls", "net_cls.classid", res.net_class_id, "network.classID")
    for prio in res.net_priorities:
        add("net_prio", "net_prio.ifpriomap", f"{prio.name} {prio.priority}",
            "network.priorities")
    return writes


_THROTTLES = (("throttle_read_bps", "throttleReadBpsDevice", "read_bps_device", "rbps"),
              ("throttle_write_bps", "throttleWriteBpsDevice", "write_bps_device", "wbps"),
              ("throttle_read_iops", "throttleReadIOPSDevice", "read_iops_device", "riops"),
              ("throttle_write_iops", "throttleWriteIOPSDevice", "write_iops_device", "wiops"))


def _throttles(block_io: BlockIO) -> list[tuple[str, str, str, ThrottleDevice]]:
    """(spec field, v1 file suffix, v2 io.max key, device) for every throttle, in order."""
    found = []
    for attr, field, v1_suffix, v2_key in _THROTTLES:
        devices: tuple[ThrottleDevice, ...] = getattr(block_io, attr)
        found += [(f"blockIO.{field}", v1_suffix, v2_key, device) for device in devices]
    return found


def _blkio_v1(block_io: BlockIO, present: Present) -> list[CgroupWrite]:
    """runc's BlkioGroup.Set: CFQ's blkio.weight where the kernel has it, else BFQ's
    blkio.bfq.weight (and the matching weight_device); leaf weights only exist under
    CFQ; a weight of 0 is "unset", a throttle rate of 0 removes the device's rule."""
    if present("blkio", "blkio.weight"):
        weight_file, device_file = "blkio.weight", "blkio.weight_device"
    else:
        weight_file, device_file = "blkio.bfq.weight", "blkio.bfq.weight_device"
    writes = []
    if block_io.weight:
        writes.append(CgroupWrite("blkio", weight_file, str(block_io.weight), "blockIO.weight"))
    if block_io.leaf_weight:
        writes.append(CgroupWrite("blkio", "blkio.leaf_weight", str(block_io.leaf_weight),
                                  "blockIO.leafWeight"))
    for wdev in block_io.weight_devices:
        if wdev.weight:
            writes.append(CgroupWrite("blkio", device_file,
                                      f"{wdev.major}:{wdev.minor} {wdev.weight}",
                                      "blockIO.weightDevice"))
        if wdev.leaf_weight:
            writes.append(CgroupWrite("blkio", "blkio.leaf_weight_device",
                                      f"{wdev.major}:{wdev.minor} {wdev.leaf_weight}",
                                      "blockIO.weightDevice"))
    for field, suffix, _key, tdev in _throttles(block_io):
        writes.append(CgroupWrite("blkio", f"blkio.throttle.{suffix}",
                                  f"{tdev.major}:{tdev.minor} {tdev.rate}", field))
    return writes


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (runc's formula)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """v1 blkio.weight [10, 1000] -> v2 io.weight [1, 10000] (runc's
    ConvertBlkIOToIOWeightValue); 0 stays "unset"."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def _refuse_v2(res: Resources) -> None:
    """What cgroup v2 has no file for is refused, not dropped."""
    where = "linux.resources"
    if res.block_io.leaf_weight:
        raise InvalidSpec(f"{where}.blockIO.leafWeight: cgroup v2 has no leaf weights")
    for index, dev in enumerate(res.block_io.weight_devices):
        if dev.leaf_weight:
            raise InvalidSpec(f"{where}.blockIO.weightDevice[{index}].leafWeight: cgroup v2 "
                              "has no leaf weights")
    if res.net_class_id:
        raise InvalidSpec(f"{where}.network.classID: cgroup v2 has no net_cls controller "
                          "(match the cgroup path in a firewall rule instead)")
    if res.net_priorities:
        raise InvalidSpec(f"{where}.network.priorities: cgroup v2 has no net_prio controller")


def plan_v2(res: Resources, present: Present = _every_file) -> list[CgroupWrite]:
    _refuse_v2(res)
    writes: list[CgroupWrite] = []

    def add(file: str, value: object, field: str = "") -> None:
        writes.append(CgroupWrite("", file, str(value), field))

    if res.memory_limit is not None:
        add("memory.max", "max" if res.memory_limit < 0 else res.memory_limit)
    if res.memory_swap is not None:
        if res.memory_swap < 0:
            add("memory.swap.max", "max")
        elif res.memory_limit is not None and res.memory_limit >= 0:
            add("memory.swap.max", max(res.memory_swap - res.memory_limit, 0))
    if res.memory_reservation is not None:
        add("memory.low", res.memory_reservation)
    if res.cpu_shares:
        add("cpu.weight", shares_to_weight(res.cpu_shares))
    if res.cpu_quota is not None or res.cpu_period is not None:
        quota = "max" if res.cpu_quota is None or res.cpu_quota < 0 else str(res.cpu_quota)
        add("cpu.max", f"{quota} {res.cpu_period or 100000}")
    if res.cpuset_cpus:
        add("cpuset.cpus", res.cpuset_cpus)
    if res.cpuset_mems:
        add("cpuset.mems", res.cpuset_mems)
    if res.pids_limit is not None:
        add("pids.max", "max" if res.pids_limit <= 0 else res.pids_limit)
    # runc's setIo: BFQ's io.bfq.weight where the kernel has it, else io.weight with
    # the weight converted; per-device weights only BFQ takes (a write to the missing
    # file then fails clearly rather than dropping them); io.max for throttles.
    bfq = present("", "io.bfq.weight")
    if res.block_io.weight:
        if bfq:
            add("io.bfq.weight", res.block_io.weight, "blockIO.weight")
        else:
            add("io.weight", blkio_to_io_weight(res.block_io.weight), "blockIO.weight")
    for wdev in res.block_io.weight_devices:
        if wdev.weight:
            add("io.bfq.weight", f"{wdev.major}:{wdev.minor} {wdev.weight}",
                "blockIO.weightDevice")
    for field, _suffix, key, tdev in _throttles(res.block_io):
        add("io.max", f"{tdev.major}:{tdev.minor} {key}={tdev.rate or 'max'}", field)
    for limit in res.hugepage_limits:
        add(f"hugetlb.{limit.page_size}.max", limit.limit, "hugepageLimits")
    for key, value in res.unified:
        add(key, value)
    return writes
