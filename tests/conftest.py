"""Shared fixtures: runtimes under test, throw-away bundles, the leak check."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.testing import leaks
from dockyard.testing.apiserver import ApiServer, api_server
from dockyard.testing.bundles import BundleFactory, Runtime, busybox_path, make_rootfs_tar
from dockyard.testing.cli import Dockyard

# Tests must leave no process behind: the supervisor zygote exits with the last
# container instead of lingering for the next `run`.
os.environ["DOCKYARD_ZYGOTE_LINGER"] = "0"
# ... and publishes ports only on loopback (test traffic stays on 127.0.0.1)
os.environ["DOCKYARD_DEFAULT_BIND_IP"] = "127.0.0.1"
# ... and never turn the host's IP forwarding on (nor its FORWARD policy to DROP): that
# is the host's setting, not the test's; tests of it run in network namespaces of their
# own (tests/kernel/test_port_publish.py)
os.environ["DOCKYARD_IP_FORWARD"] = "0"
# The commands under test are the ones installed beside this interpreter (the test
# virtualenv's, see scripts/test.sh), also when looked up by name: never another
# install's links in /usr/local/bin.
_BIN = Path(sys.executable).parent
if (_BIN / "dockyard-runtime").exists():
    os.environ["PATH"] = os.pathsep.join([str(_BIN), os.environ.get("PATH", os.defpath)])


def dockyard_runtime_argv() -> tuple[str, ...]:
    beside = Path(sys.executable).with_name("dockyard-runtime")
    if beside.exists():
        return (str(beside),)
    return (sys.executable, "-m", "dockyard.runtime.cli")


def _need_root_and_busybox() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: real namespaces, mounts and cgroups")
    if busybox_path() is None:
        pytest.skip("needs a static busybox (apt-get install busybox-static)")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dockyard")


@pytest.fixture(scope="session")
def factory(session_dir: Path) -> BundleFactory:
    _need_root_and_busybox()
    return BundleFactory(session_dir)


@pytest.fixture
def dockyard(tmp_path: Path) -> Runtime:
    _need_root_and_busybox()
    return Runtime("dockyard-runtime", dockyard_runtime_argv(), tmp_path / "state-dockyard")


@pytest.fixture
def runc(tmp_path: Path) -> Runtime:
    _need_root_and_busybox()
    path = shutil.which("runc")
    if path is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    return Runtime("runc", (path,), tmp_path / "state-runc")


@pytest.fixture(params=["dockyard-runtime", "runc"])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    """Each conformance test runs under both: a test failing under runc is a broken test."""
    name = "dockyard" if request.param == "dockyard-runtime" else "runc"
    result: Runtime = request.getfixturevalue(name)
    return result


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any root test that leaves a mount, netns, link, test cgroup, iptables chain,
    child or dockyard daemon behind, or removes a mount, netns, link or chain it found."""
    if request.node.get_closest_marker("root") is None or os.geteuid() != 0:
        yield
        return
    before = leaks.snapshot()
    yield
    report = leaks.leaked(before)
    assert not report, f"test leaked host resources: {report}"


@pytest.fixture
def dy(tmp_path: Path) -> Dockyard:
    return Dockyard(tmp_path / "root", tmp_path / "docker-config")


@pytest.fixture
def rootfs_tar(tmp_path: Path) -> Path:
    if busybox_path() is None:
        pytest.skip("needs a static busybox (apt-get install busybox-static)")
    return make_rootfs_tar(tmp_path)


@pytest.fixture
def box(tmp_path: Path, rootfs_tar: Path) -> Iterator[Dockyard]:
    """The CLI with a busybox image ``box:1``; every container, the root's bridge and
    its volumes are removed afterwards."""
    cli = Dockyard(tmp_path / "root", tmp_path / "docker-config")
    cli("import", "-c", 'CMD ["sh"]', str(rootfs_tar), "box:1")
    yield cli
    cli.remove_everything()


@pytest.fixture
def api(box: Dockyard) -> Iterator[ApiServer]:
    """``dockyard serve`` on ``box``'s root (stopped before ``box`` cleans up)."""
    with api_server(box) as server:
        yield server


@pytest.fixture
def http(api: ApiServer) -> Iterator[httpx.Client]:
    """An HTTP client on ``api``'s unix socket (the Engine API's requests, raw)."""
    transport = httpx.HTTPTransport(uds=str(api.socket))
    with httpx.Client(transport=transport, base_url="http://docker", timeout=60) as client:
        yield client
