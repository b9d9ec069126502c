"""Linux capabilities: names, masks, and applying the spec's five sets.

Order matters and follows runc: drop from the bounding set while still root, keep
capabilities across the uid switch, then set effective/permitted/inheritable with
capset(2) and raise the ambient set last (ambient needs permitted and inheritable).
"""

from __future__ import annotations

from dockyard.errors import InvalidSpec
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.oci.runtime_spec import Capabilities

CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAPABILITY_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(CAPABILITY_NAMES)}

# Docker's default set for unprivileged containers (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


def cap_number(name: str) -> int:
    normalized = name.upper()
    if not normalized.startswith("CAP_"):
        normalized = "CAP_" + normalized
    try:
        return CAPABILITY_NUMBERS[normalized]
    except KeyError:
        raise InvalidSpec(f"unknown capability {name!r}") from None


def mask(names: tuple[str, ...]) -> int:
    """Bit mask of the named capabilities, as /proc/self/status prints it."""
    bits = 0
    for name in names:
        bits |= 1 << cap_number(name)
    return bits


def validate(caps: Capabilities) -> None:
    """Fail before any process exists if a capability name is unknown."""
    for names in (caps.bounding, caps.effective, caps.inheritable, caps.permitted, caps.ambient):
        mask(names)


def drop_bounding(caps: Capabilities) -> None:
    # syscalls (ctypes) only where capabilities are applied: the engine, which only
    # needs the names, does not load them
    from dockyard.runtime.linux import syscalls

    keep = mask(caps.bounding)
    for number in range(len(CAPABILITY_NAMES)):
        if not keep & (1 << number) and syscalls.cap_supported(number):
            syscalls.capbset_drop(number)


def apply_sets(caps: Capabilities) -> None:
    """Set effective, permitted, inheritable, then raise ambient."""
    from dockyard.runtime.linux import syscalls

    supported = _supported_mask()
    syscalls.capset(
        mask(caps.effective) & supported,
        mask(caps.permitted) & supported,
        mask(caps.inheritable) & supported,
    )
    allowed = mask(caps.permitted) & mask(caps.inheritable)
    for name in caps.ambient:
        number = cap_number(name)
        # the kernel refuses an ambient cap missing from permitted or inheritable;
        # runc only warns about it, and so do we (by skipping it)
        if supported & allowed & (1 << number):
            syscalls.ambient_raise(number)


def _supported_mask() -> int:
    from dockyard.runtime.linux import syscalls

    bits = 0
    for number in range(len(CAPABILITY_NAMES)):
        if syscalls.cap_supported(number):
            bits |= 1 << number
    return bits
