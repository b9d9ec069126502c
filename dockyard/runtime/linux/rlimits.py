"""POSIX rlimits from the spec, applied with a clear error when raising is refused.

Without CAP_SYS_RESOURCE (absent on some hosts, e.g. this project's CI machines) a
hard limit can be lowered but never raised; the kernel says only EPERM, so the
message here says which limit, from what, to what, and why.
"""

from __future__ import annotations

import resource

from dockyard.errors import InvalidSpec, PermissionDenied
from dockyard.oci.runtime_spec import Rlimit

_RLIMITS: dict[str, int] = {
    "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_CORE": resource.RLIMIT_CORE,
    "RLIMIT_CPU": resource.RLIMIT_CPU,
    "RLIMIT_DATA": resource.RLIMIT_DATA,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_LOCKS": 10,  # Linux number; the resource module does not export it
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK,
    "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE,
    "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_RSS": resource.RLIMIT_RSS,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO,
    "RLIMIT_RTTIME": resource.RLIMIT_RTTIME,
    "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
    "RLIMIT_STACK": resource.RLIMIT_STACK,
}

_UNLIMITED = 2**64 - 1


def resource_number(name: str) -> int:
    try:
        return _RLIMITS[name]
    except KeyError:
        raise InvalidSpec(f"process.rlimits: unknown rlimit type {name!r}") from None


def _kernel_value(value: int) -> int:
    return resource.RLIM_INFINITY if value >= _UNLIMITED else value


def apply(limits: tuple[Rlimit, ...]) -> None:
    for limit in limits:
        number = resource_number(limit.type)
        soft, hard = _kernel_value(limit.soft), _kernel_value(limit.hard)
        if limit.soft > limit.hard:
            raise InvalidSpec(f"{limit.type}: soft limit {limit.soft} exceeds hard limit "
                              f"{limit.hard}")
        try:
            resource.setrlimit(number, (soft, hard))
        except (ValueError, OSError) as exc:  # CPython reports EPERM as ValueError
            current = resource.getrlimit(number)[1]
            raise PermissionDenied(
                f"{limit.type}: cannot raise the hard limit from {current} to {limit.hard}",
                hint="raising a hard rlimit needs CAP_SYS_RESOURCE, which this host lacks; "
                     "lower the limit in config.json",
            ) from exc
