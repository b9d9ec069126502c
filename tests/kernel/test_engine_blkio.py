"""Block I/O limits from a ContainerSpec to the running container's cgroup: device
paths resolved to the host's major:minor, lowered into blockIO, applied by the runtime.

The spec goes through the records' JSON to an engine in a process of its own (as the
CLI's, so its supervisors are not this test's children); ``dockyard run
--device-read-bps …`` is this spec built from flags by ``cli/blkio.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.engine.records import spec_to_json
from dockyard.engine.spec import BlkioThrottleDevice, BlkioWeightDevice, ContainerSpec
from dockyard.testing.cli import Dockyard
from tests.conformance.test_runtime_cgroup_limits import (
    V2_ONLY,
    has_blkio_weight,
    has_controller,
    whole_disk,
)

pytestmark = pytest.mark.root

_RUN = """
import sys
from dockyard.engine.engine import Engine
from dockyard.engine.records import spec_from_json
from dockyard.errors import DockyardError
from dockyard.store.layout import Layout

engine = Engine(Layout.for_root(sys.argv[1]))
record = engine.containers.create(spec_from_json(sys.argv[2]))
print(record.id, flush=True)
try:
    engine.containers.start(record.id)
except DockyardError as exc:
    sys.exit(f"start: {exc}")
"""


def run_spec(box: Dockyard, spec: ContainerSpec) -> tuple[str, subprocess.CompletedProcess[str]]:
    result = subprocess.run([sys.executable, "-c", _RUN, str(box.root), spec_to_json(spec)],
                            capture_output=True, text=True, timeout=60, check=False,
                            env=box.env)
    assert result.stdout.strip(), result.stderr
    return result.stdout.split()[0], result


@pytest.fixture(autouse=True)
def _blkio_v1() -> None:
    if V2_ONLY or not has_controller("blkio"):
        pytest.skip("needs a cgroup v1 blkio hierarchy")


def test_device_throttles_and_weight_reach_the_cgroup(box: Dockyard) -> None:
    major, minor, disk = whole_disk()
    device = f"/dev/{disk}"
    if not Path(device).exists():
        pytest.skip(f"no {device} node on this host")
    weight = 300 if has_blkio_weight() else None
    cid, result = run_spec(box, ContainerSpec(
        "box:1", command=("sleep", "30"), network_mode="none", blkio_weight=weight,
        device_read_bps=(BlkioThrottleDevice(device, 1 << 20),),
        device_write_bps=(BlkioThrottleDevice(device, 2 << 20),),
        device_read_iops=(BlkioThrottleDevice(device, 100),),
        device_write_iops=(BlkioThrottleDevice(device, 50),)))
    assert result.returncode == 0, result.stderr
    cgroup = Path("/sys/fs/cgroup/blkio") / box.layout.cgroup_path(cid[:24]).lstrip("/")
    read = {name: (cgroup / f"blkio.throttle.{name}").read_text() for name in (
        "read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device")}
    dev = f"{major}:{minor}"
    assert read == {"read_bps_device": f"{dev} 1048576\n", "write_bps_device": f"{dev} 2097152\n",
                    "read_iops_device": f"{dev} 100\n", "write_iops_device": f"{dev} 50\n"}
    if weight is not None:
        assert [(cgroup / name).read_text().strip() for name in (
            "blkio.weight", "blkio.bfq.weight") if (cgroup / name).exists()] == ["300"]


def test_a_path_that_is_no_block_device_fails_start_clearly(box: Dockyard) -> None:
    _cid, result = run_spec(box, ContainerSpec(
        "box:1", command=("true",), network_mode="none",
        blkio_weight_device=(BlkioWeightDevice("/dev/null", 500),)))
    assert result.returncode != 0
    assert "start: /dev/null is not a block device" in result.stderr


def test_run_flags_reach_the_cgroup(box: Dockyard) -> None:
    """``dockyard run --device-read-bps/--device-write-iops/--blkio-weight`` as users
    type them: read back inside the container; a weight out of range is refused (125)."""
    _major, _minor, disk = whole_disk()
    device = f"/dev/{disk}"
    if not Path(device).exists():
        pytest.skip(f"no {device} node on this host")
    out = box("run", "--rm", "--network", "none", "--device-read-bps", f"{device}:1mb",
              "--device-write-iops", f"{device}:70", "box:1", "cat",
              "/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device",
              "/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device").stdout.split()
    assert out[1::2] == ["1048576", "70"]
    refused = box("run", "--rm", "--blkio-weight", "5", "box:1", "true", check=False)
    assert refused.returncode == 125 and "Range of blkio weight" in refused.stderr
