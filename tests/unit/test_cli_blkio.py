"""The block I/O flags of ``run``/``create`` in the docker CLI's formats and words
(its opts.ValidateWeightDevice / ValidateThrottleBpsDevice / ValidateThrottleIOpsDevice,
wrapped as pflag reports a bad value)."""

from __future__ import annotations

import pytest

from dockyard.cli import blkio
from dockyard.engine.spec import BlkioThrottleDevice, BlkioWeightDevice, ContainerSpec
from dockyard.errors import InvalidArgument


def test_weight_device() -> None:
    assert blkio.parse_weight_device("/dev/sda:500") == BlkioWeightDevice("/dev/sda", 500)
    assert blkio.parse_weight_device("/dev/sda:0") == BlkioWeightDevice("/dev/sda", 0)
    assert blkio.parse_weight_device("/dev/disk/by-id/x:10") == \
        BlkioWeightDevice("/dev/disk/by-id/x", 10)


@pytest.mark.parametrize(("text", "reason"), [
    ("/dev/sda", "bad format: /dev/sda"),
    (":500", "bad format: :500"),
    ("sda:500", "bad format for device path: sda:500"),
    ("/dev/sda:5", "invalid weight for device: /dev/sda:5"),
    ("/dev/sda:1001", "invalid weight for device: /dev/sda:1001"),
    ("/dev/sda:70000", "invalid weight for device: /dev/sda:70000"),
    ("/dev/sda:-10", "invalid weight for device: /dev/sda:-10"),
    ("/dev/sda:lots", "invalid weight for device: /dev/sda:lots"),
])
def test_bad_weight_device(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        blkio.parse_weight_device(text)
    assert str(caught.value) == \
        f'invalid argument "{text}" for "--blkio-weight-device" flag: {reason}'


@pytest.mark.parametrize(("text", "rate"), [
    ("/dev/sda:1mb", 1 << 20), ("/dev/sda:1MB", 1 << 20), ("/dev/sda:10", 10),
    ("/dev/sda:2k", 2048), ("/dev/sda:1gb", 1 << 30), ("/dev/sda:1.5m", 3 << 19),
    ("/dev/sda:4KiB", 4096), ("/dev/sda:100b", 100), ("/dev/sda:0", 0),
    ("/dev/sda:1 mb", 1 << 20),
])
def test_throttle_bps(text: str, rate: int) -> None:
    assert blkio.parse_throttle_bps(text) == BlkioThrottleDevice("/dev/sda", rate)


BPS_HELP = ("The correct format is <device-path>:<number>[<unit>]. Number must be a positive "
            "integer. Unit is optional and can be kb, mb, or gb")


@pytest.mark.parametrize(("text", "reason"), [
    ("/dev/sda", "bad format: /dev/sda"),
    ("sda:1mb", "bad format for device path: sda:1mb"),
    ("/dev/sda:fast", f"invalid rate for device: /dev/sda:fast. {BPS_HELP}"),
    ("/dev/sda:-1", f"invalid rate for device: /dev/sda:-1. {BPS_HELP}"),
    ("/dev/sda:1mbb", f"invalid rate for device: /dev/sda:1mbb. {BPS_HELP}"),
    ("/dev/sda:", f"invalid rate for device: /dev/sda:. {BPS_HELP}"),
])
def test_bad_throttle_bps(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        blkio.parse_throttle_bps(text, "--device-write-bps")
    assert str(caught.value) == f'invalid argument "{text}" for "--device-write-bps" flag: ' \
        f"{reason}"


def test_throttle_iops() -> None:
    assert blkio.parse_throttle_iops("/dev/sdb:100") == BlkioThrottleDevice("/dev/sdb", 100)
    iops_help = ("The correct format is <device-path>:<number>. Number must be a positive "
                 "integer")
    for text in ("/dev/sdb:1k", "/dev/sdb:-3", "/dev/sdb:1.5"):
        with pytest.raises(InvalidArgument) as caught:
            blkio.parse_throttle_iops(text, "--device-read-iops")
        assert str(caught.value) == f'invalid argument "{text}" for "--device-read-iops" ' \
            f"flag: invalid rate for device: {text}. {iops_help}"
    with pytest.raises(InvalidArgument, match="bad format for device path: sdb:1"):
        blkio.parse_throttle_iops("sdb:1")


def test_spec_fields_from_click_options() -> None:
    options = {"blkio_weight": 300, "blkio_weight_device": ("/dev/sda:500",),
               "device_read_bps": ("/dev/sda:1mb",), "device_write_bps": (),
               "device_read_iops": ("/dev/sda:100", "/dev/sdb:7"),
               "device_write_iops": ("/dev/sdb:50",), "name": "unrelated"}
    fields = blkio.spec_fields(options)
    assert ContainerSpec("i", **fields) == ContainerSpec(
        "i", blkio_weight=300, blkio_weight_device=(BlkioWeightDevice("/dev/sda", 500),),
        device_read_bps=(BlkioThrottleDevice("/dev/sda", 1 << 20),),
        device_read_iops=(BlkioThrottleDevice("/dev/sda", 100),
                          BlkioThrottleDevice("/dev/sdb", 7)),
        device_write_iops=(BlkioThrottleDevice("/dev/sdb", 50),))
    assert blkio.spec_fields({}) == {}


def test_click_options_parse_the_flags() -> None:
    import click
    from click.testing import CliRunner

    seen: dict[str, object] = {}

    @click.command()
    def probe(**options: object) -> None:
        seen.update(blkio.spec_fields(options))

    for option in reversed(blkio.click_options()):
        probe = option(probe)
    result = CliRunner().invoke(probe, ["--blkio-weight", "300", "--device-write-bps",
                                        "/dev/sda:2mb", "--device-write-bps", "/dev/sdb:1k"])
    assert result.exit_code == 0, result.output
    assert seen == {"blkio_weight": 300, "device_write_bps": (
        BlkioThrottleDevice("/dev/sda", 2 << 20), BlkioThrottleDevice("/dev/sdb", 1024))}
