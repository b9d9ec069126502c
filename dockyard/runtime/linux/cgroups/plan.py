"""Resource limits as cgroup file writes: pure functions, unit-tested without root.

The managers in ``v1``/``v2`` apply these plans to a real hierarchy; keeping the
translation here means the arithmetic (shares -> weight, quota/period -> cpu.max)
is checked without touching the kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from dockyard.oci.runtime_spec import Device, DeviceRule, Resources


class CgroupWrite(NamedTuple):
    controller: str  # v1 hierarchy name ("memory", "cpu", …); "" on v2
    file: str
    value: str


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


def plan_v1(res: Resources, extra_devices: tuple[str, ...] = ()) -> list[CgroupWrite]:
    """Writes for ``res``; ``extra_devices`` are allow lines for the spec's linux.devices."""
    writes: list[CgroupWrite] = []

    def add(controller: str, file: str, value: object) -> None:
        writes.append(CgroupWrite(controller, file, str(value)))

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
    return writes


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (runc's formula)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def plan_v2(res: Resources) -> list[CgroupWrite]:
    writes: list[CgroupWrite] = []

    def add(file: str, value: object) -> None:
        writes.append(CgroupWrite("", file, str(value)))

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
    for key, value in res.unified:
        add(key, value)
    return writes
