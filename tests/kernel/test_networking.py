"""The bridge network and published ports, with traffic only on this test's bridge
and 127.0.0.1; the bridge is removed at the end (the leak check verifies)."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www; echo {text} > /www/index.html; exec httpd -f -p 8080 -h /www"


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    return box


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, deadline: float = 10) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_published_port_answers_on_loopback(dy: Dockyard) -> None:
    port = _free_port()
    dy("run", "-d", "--name", "web", "--network", "bridge", "-p", f"127.0.0.1:{port}:8080",
       "box:1", "sh", "-c", HTTPD.format(text="hello-from-web"))
    assert _get(f"http://127.0.0.1:{port}/") == "hello-from-web\n"
    doc = json.loads(dy("container", "inspect", "web").stdout)[0]
    assert doc["NetworkSettings"]["Ports"]["8080/tcp"] == [{"HostIp": "127.0.0.1",
                                                            "HostPort": str(port)}]


def test_containers_on_the_bridge_reach_each_other(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "server", "--network", "bridge", "box:1", "sh", "-c",
       HTTPD.format(text="peer-data"))
    address = json.loads(dy("container", "inspect", "server").stdout)[0][
        "NetworkSettings"]["IPAddress"]
    out = dy("run", "--rm", "--network", "bridge", "box:1", "sh", "-c",
             f"for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://{address}:8080/ && "
             "break; sleep 0.2; done").stdout
    assert out == "peer-data\n"


def test_a_taken_port_fails_before_the_container_starts(dy: Dockyard) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = dy("run", "--name", "clash", "--network", "bridge", "-p",
                    f"127.0.0.1:{port}:80", "box:1", "echo", "should-not-run", check=False)
    assert result.returncode == 125
    assert f"127.0.0.1:{port} failed: port is already allocated" in result.stderr
    assert dy("logs", "clash").stdout == ""


def test_none_has_only_loopback(dy: Dockyard) -> None:
    out = dy("run", "--rm", "--network", "none", "box:1", "ls", "/sys/class/net").stdout
    assert out.split() == ["lo"]


def test_publish_all_and_port(dy: Dockyard, rootfs_tar: Path) -> None:
    dy("import", "-c", "EXPOSE 8080", str(rootfs_tar), "exposed:1")
    dy("run", "-d", "--name", "pub", "--network", "bridge", "-P", "exposed:1", "sh", "-c",
       HTTPD.format(text="published-all"))
    mapping = dy("port", "pub", "8080").stdout.strip()
    host_ip, host_port = mapping.rsplit(":", 1)
    assert host_ip == "127.0.0.1"  # DOCKYARD_DEFAULT_BIND_IP, set for every test
    assert _get(f"http://127.0.0.1:{host_port}/") == "published-all\n"
    assert dy("port", "pub").stdout.strip() == f"8080/tcp -> {mapping}"


def test_ps_shows_published_ports(dy: Dockyard) -> None:
    port = _free_port()
    dy("run", "-d", "--name", "shown", "-p", f"127.0.0.1:{port}:8080", "box:1", "sleep", "30")
    assert dy("ps", "--format", "{{.Ports}}").stdout.strip() == \
        f"127.0.0.1:{port}->8080/tcp"
