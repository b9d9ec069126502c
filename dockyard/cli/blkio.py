"""Block I/O flags of ``run``/``create``: ``--blkio-weight``, ``--blkio-weight-device``,
``--device-read-bps``, ``--device-write-bps``, ``--device-read-iops``,
``--device-write-iops``, in the docker CLI's formats and words.

Pure parsing (the docker CLI's opts.ValidateWeightDevice, ValidateThrottleBpsDevice
and ValidateThrottleIOpsDevice; a bad value reported as pflag reports it).  Device
paths stay paths here: the engine resolves them to the host's major:minor when it
builds the runtime config, as the daemon does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from dockyard.cli.flagtable import Opt, opt
from dockyard.cli.flagtable import click_options as click_options_of
from dockyard.engine.spec import BlkioThrottleDevice, BlkioWeightDevice
from dockyard.errors import InvalidArgument

_BPS_HELP = ("The correct format is <device-path>:<number>[<unit>]. Number must be a positive "
             "integer. Unit is optional and can be kb, mb, or gb")
_IOPS_HELP = "The correct format is <device-path>:<number>. Number must be a positive integer"
# go-units RAMInBytes: a decimal number, an optional space, then b or a binary
# prefix with an optional b or ib (case-insensitive): 1mb, 1.5m, 4KiB, 100b
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+) ?(?:(b)|([kmgtp])(?:i?b)?)?", re.IGNORECASE)
_PREFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _refuse(flag: str, text: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: {reason}')


def _split(text: str, flag: str) -> tuple[str, str]:
    path, sep, value = text.partition(":")
    if not sep or not path:
        raise _refuse(flag, text, f"bad format: {text}")
    if not path.startswith("/dev/"):
        raise _refuse(flag, text, f"bad format for device path: {text}")
    return path, value


def parse_weight_device(text: str, flag: str = "--blkio-weight-device") -> BlkioWeightDevice:
    """``/dev/sda:500``: a weight from 10 to 1000, or 0 (leave the device alone)."""
    path, value = _split(text, flag)
    if not value.isascii() or not value.isdigit() or (
            int(value) != 0 and not 10 <= int(value) <= 1000):
        raise _refuse(flag, text, f"invalid weight for device: {text}")
    return BlkioWeightDevice(path, int(value))


def ram_in_bytes(text: str) -> int | None:
    """go-units' RAMInBytes: "1mb" is 1048576; None when it is no size."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    number, _bytes, prefix = match.groups()
    return int(float(number) * (_PREFIX[prefix.lower()] if prefix else 1))


def parse_throttle_bps(text: str, flag: str = "--device-read-bps") -> BlkioThrottleDevice:
    """``/dev/sda:1mb``: bytes per second, with an optional kb/mb/gb unit."""
    path, value = _split(text, flag)
    rate = ram_in_bytes(value)
    if rate is None:
        raise _refuse(flag, text, f"invalid rate for device: {text}. {_BPS_HELP}")
    return BlkioThrottleDevice(path, rate)


def parse_throttle_iops(text: str, flag: str = "--device-read-iops") -> BlkioThrottleDevice:
    """``/dev/sda:100``: I/O operations per second, a plain number."""
    path, value = _split(text, flag)
    if not value.isascii() or not value.isdigit():
        raise _refuse(flag, text, f"invalid rate for device: {text}. {_IOPS_HELP}")
    return BlkioThrottleDevice(path, int(value))


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "blkio_weight_device": parse_weight_device,
    "device_read_bps": parse_throttle_bps,
    "device_write_bps": parse_throttle_bps,
    "device_read_iops": parse_throttle_iops,
    "device_write_iops": parse_throttle_iops,
}


def spec_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """``ContainerSpec`` keyword arguments from the click options of
    :data:`OPTIONS` (absent or empty ones are left out)."""
    fields: dict[str, Any] = {}
    if options.get("blkio_weight") is not None:
        fields["blkio_weight"] = int(options["blkio_weight"])
    for key, parse in _PARSERS.items():
        values = options.get(key) or ()
        if values:
            flag = "--" + key.replace("_", "-")
            fields[key] = tuple(parse(value, flag) for value in values)
    return fields


OPTIONS: tuple[Opt, ...] = (
    opt("--blkio-weight", type=int,
        help="Block IO (relative weight), between 10 and 1000, or 0 to disable"),
    opt("--blkio-weight-device", kind="multi",
        help="Block IO weight (relative device weight), e.g. /dev/sda:500"),
    opt("--device-read-bps", kind="multi",
        help="Limit read rate (bytes per second) from a device, e.g. /dev/sda:1mb"),
    opt("--device-write-bps", kind="multi",
        help="Limit write rate (bytes per second) to a device, e.g. /dev/sda:1mb"),
    opt("--device-read-iops", kind="multi",
        help="Limit read rate (IO per second) from a device, e.g. /dev/sda:100"),
    opt("--device-write-iops", kind="multi",
        help="Limit write rate (IO per second) to a device, e.g. /dev/sda:100"),
)


def click_options() -> list[Callable[[Any], Any]]:
    """The six flags as click options, with Docker's help texts."""
    return [click_options_of((row,)) for row in OPTIONS]
