"""``run``'s namespace and node flags (``--shm-size``, ``--sysctl``, ``--group-add``,
``--device``, ``--pid``, ``--ipc``, ``--domainname``, ``--expose``), as docker's, and the
same fields through the API's create body."""

from __future__ import annotations

import json

import httpx
import pytest

from dockyard.testing.apiserver import ApiServer
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

SCRIPT = ("df -k /dev/shm | tail -1; cat /proc/sys/kernel/shmmax; id -G; "
          "cat /proc/sys/kernel/domainname; ls -ln /dev/mynull")


def _check(out: str, gid: str) -> None:
    lines = out.splitlines()
    assert lines[0].split()[1] == "16384", lines  # /dev/shm's size in KiB
    assert lines[1] == "12345"
    assert gid in lines[2].split()
    assert lines[3] == "example.test"
    node = lines[4].split()
    assert node[0].startswith("c") and node[4:6] == ["1,", "3"], node  # /dev/null's numbers


def test_run_flags(box: Dockyard) -> None:
    out = box("run", "--rm", "--network", "none", "--shm-size", "16m",
              "--sysctl", "kernel.shmmax=12345", "--group-add", "4321",
              "--domainname", "example.test", "--device", "/dev/null:/dev/mynull:rw",
              "box:1", "sh", "-c", SCRIPT).stdout
    _check(out, "4321")
    keeper = box("run", "-d", "--network", "none", "box:1", "sleep", "300").stdout.strip()
    keeper_ipc = box("exec", keeper, "readlink", "/proc/self/ns/ipc").stdout.strip()
    joined = box("run", "--rm", "--network", "none", "--ipc", f"container:{keeper}", "box:1",
                 "readlink", "/proc/self/ns/ipc").stdout.strip()
    alone = box("run", "--rm", "--network", "none", "--ipc", "private", "box:1",
                "readlink", "/proc/self/ns/ipc").stdout.strip()
    assert joined == keeper_ipc != alone  # one IPC namespace, and a private one
    host = box("run", "--rm", "--network", "none", "--pid", "host", "box:1",
               "cat", "/proc/1/comm").stdout.strip()
    assert host != "sh" and host  # the host's PID 1, not our own
    box("create", "--name", "exposing", "--network", "none", "--expose", "9000",
        "--expose", "53/udp", "box:1")
    doc = json.loads(box("inspect", "exposing").stdout)[0]
    assert {"9000/tcp", "53/udp"} <= set(doc["Config"]["ExposedPorts"])
    for bad in (["--sysctl", "kernel.shmmax"], ["--pid", "nope"], ["--ipc", "host"],
                ["--sysctl", "kernel.hostname=x"], ["--device", "/etc/hostname"],
                ["--ipc", f"container:{keeper}", "--sysctl", "kernel.shmmax=1"],
                ["--log-opt", "max-file=x"], ["--log-opt", "max-file=0"]):
        result = box("run", "--rm", "--network", "none", *bad, "box:1", "true", check=False)
        assert result.returncode == 125 and "Traceback" not in result.stderr, bad


def test_the_same_fields_through_the_api(api: ApiServer, box: Dockyard) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(api.socket)),
                      base_url="http://docker") as client:
        body = {"Image": "box:1", "Cmd": ["sh", "-c", SCRIPT + "; ls -A /etc"],
                "Domainname": "example.test", "ExposedPorts": {"9000/tcp": {}},
                "Healthcheck": {"Test": ["CMD", "true"], "StartPeriod": 10**10,
                                "StartInterval": 10**9},
                "HostConfig": {"NetworkMode": "none", "ShmSize": 16 * 2**20,
                               "MemoryReservation": 20 << 20,
                               "Mounts": [{"Type": "volume", "Source": "apinocopy",
                                           "Target": "/etc",
                                           "VolumeOptions": {"NoCopy": True}}],
                               "Sysctls": {"kernel.shmmax": "12345"}, "GroupAdd": ["4321"],
                               "Devices": [{"PathOnHost": "/dev/null",
                                            "PathInContainer": "/dev/mynull",
                                            "CgroupPermissions": "rwm"}]}}
        created = client.post("/containers/create", json=body)
        assert created.status_code == 201, created.text
        cid = created.json()["Id"]
        assert client.post(f"/containers/{cid}/start").status_code == 204
        assert client.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
        doc = client.get(f"/containers/{cid}/json").json()
        assert "9000/tcp" in doc["Config"]["ExposedPorts"]
        assert doc["HostConfig"]["MemoryReservation"] == 20 << 20
        assert doc["Config"]["Healthcheck"]["StartInterval"] == 10**9
        bodies: list[dict[str, object]] = [
            {"PidMode": "nope"}, {"IpcMode": "host"}, {"Devices": [{}]},
            {"Sysctls": {"kernel.shmmax": 1}}, {"ShmSize": "big"}]
        for bad in bodies:
            answer = client.post("/containers/create",
                                 json={"Image": "box:1", "HostConfig": bad})
            assert answer.status_code == 400 and answer.json()["message"], bad
    logs = box("logs", cid).stdout
    _check(logs, "4321")
    etc = logs.splitlines()[5:]  # the volume over /etc: nothing of the image's copied
    assert "passwd" not in etc and "hosts" in etc, etc
