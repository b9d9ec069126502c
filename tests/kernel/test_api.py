"""``dockyard serve`` over raw HTTP: routing, versions, Docker's error statuses and
words, bad input refused with a 400 (the server alive, nothing created)."""

from __future__ import annotations

import stat
import subprocess
from typing import Any

import httpx
import pytest

from dockyard.testing.apiserver import ApiServer
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root


def test_socket_is_0660(api: ApiServer) -> None:
    assert stat.S_IMODE(api.socket.stat().st_mode) == 0o660


def test_ping_headers_and_versions(http: httpx.Client) -> None:
    for method in ("GET", "HEAD"):
        answer = http.request(method, "/_ping")
        assert answer.status_code == 200
        assert answer.headers["API-Version"] == "1.50"
        assert answer.headers["OSType"] == "linux"
        assert answer.headers["Docker-Experimental"] == "false"
    assert http.get("/_ping").text == "OK"
    assert http.get("/v1.24/version").json()["MinAPIVersion"] == "1.24"
    old = http.get("/v1.23/version")
    assert old.status_code == 400 and "too old" in old.json()["message"]
    new = http.get("/v1.99/containers/json")
    assert new.status_code == 400 and "too new" in new.json()["message"]
    missing = http.get("/v1.50/no/such/route")
    assert (missing.status_code, missing.json()) == (404, {"message": "page not found"})


def test_buildkit_clients_are_told_what_to_set(http: httpx.Client) -> None:
    """No BuildKit: ``_ping`` says builder 1, and what a BuildKit client calls (its
    session, its gRPC API, a build with ``version=2``) is a 501 naming the settings."""
    assert http.head("/_ping").headers["Builder-Version"] == "1"
    for path in ("/session", "/v1.50/grpc", "/v1.50/build?version=2&t=x:1"):
        answer = http.post(path, headers={"Upgrade": "h2c", "Connection": "Upgrade"})
        assert answer.status_code == 501, path
        assert "DOCKER_BUILDKIT=0" in answer.json()["message"]
        assert "COMPOSE_BAKE=false" in answer.json()["message"]


def test_docker_error_words_and_statuses(http: httpx.Client, box: Dockyard) -> None:
    answer = http.get("/containers/nosuch/json")
    assert (answer.status_code, answer.json()) == (404, {"message": "No such container: nosuch"})
    assert answer.headers["Content-Type"] == "application/json"
    created = http.post("/containers/create", json={"Image": "nosuch:1"})
    assert (created.status_code, created.json()) == (404, {"message": "No such image: nosuch:1"})
    cid = http.post("/containers/create?name=c1",
                    json={"Image": "box:1", "Cmd": ["sleep", "60"]}).json()["Id"]
    assert http.post(f"/containers/{cid}/stop").status_code == 304  # not running
    assert http.post(f"/containers/{cid}/kill").status_code == 409
    assert http.post(f"/containers/{cid}/start").status_code == 204
    assert http.post(f"/containers/{cid}/start").status_code == 304  # already running
    refused = http.delete(f"/containers/{cid}")
    assert refused.status_code == 409 and "cannot remove a running" in refused.json()["message"]
    taken = http.post("/containers/create?name=c1", json={"Image": "box:1"})
    assert taken.status_code == 409
    assert http.delete(f"/containers/{cid}?force=1").status_code == 204
    assert box("ps", "-a", "-q").stdout == ""


@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"Image": "box:1", "Cmd": 5}',
    b'{"Image": "box:1", "Env": "A=1"}',
    b'{"Image": "box:1", "Tty": "yes"}',
    b'{"Image": "box:1", "HostConfig": {"Memory": "lots"}}',
    b'{"Image": "box:1", "HostConfig": {"Binds": ["a:b:c:d"]}}',
    b'{"Image": "box:1", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}',
    b'{"Image": "box:1", "HostConfig": {"PortBindings": {"http": []}}}',
    b'{"Image": "box:1", "HostConfig": []}',
    b"[1, 2]",
    b"{}",
])
def test_bad_create_bodies_are_400(http: httpx.Client, box: Dockyard, body: bytes) -> None:
    answer = http.post("/containers/create", content=body,
                       headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"]
    assert http.get("/_ping").status_code == 200  # alive
    assert http.get("/containers/json?all=1").json() == []  # nothing created


def test_bad_query_values_are_400(http: httpx.Client) -> None:
    assert http.get("/containers/json?filters=%7Bnope").status_code == 400
    assert http.get('/containers/json?filters={"colour":["red"]}').status_code == 400
    assert http.get("/containers/json?all=maybe").status_code == 400
    assert http.post("/containers/x/wait?condition=sometime").status_code == 400


def test_create_maps_the_body_onto_the_spec(http: httpx.Client) -> None:
    body: dict[str, Any] = {"Image": "box:1", "Cmd": ["true"], "Entrypoint": None, "Env": ["A=1"],
            "Labels": {"k": "v"}, "WorkingDir": "/tmp", "User": "1:1", "Tty": True,
            "OpenStdin": True, "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"Binds": ["/tmp:/host:ro"], "NetworkMode": "none",
                           "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                           "Memory": 32 * 1024 * 1024, "NanoCpus": 500_000_000,
                           "CapAdd": ["SYS_TIME"], "CapDrop": ["NET_RAW"],
                           "Mounts": [{"Type": "tmpfs", "Target": "/scratch"}]}}
    cid = http.post("/containers/create", json=body).json()["Id"]
    doc = http.get(f"/v1.44/containers/{cid}/json").json()
    config, host = doc["Config"], doc["HostConfig"]
    assert (config["Cmd"], config["WorkingDir"], config["User"], config["Tty"]) == \
        (["true"], "/tmp", "1:1", True)
    assert "A=1" in config["Env"] and config["Labels"] == {"k": "v"}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (host["Memory"], host["NanoCpus"], host["NetworkMode"]) == \
        (32 * 1024 * 1024, 500_000_000, "none")
    assert (host["CapAdd"], host["CapDrop"]) == (["SYS_TIME"], ["NET_RAW"])
    mounts = {m["Destination"]: m for m in doc["Mounts"]}
    assert mounts["/host"]["Source"] == "/tmp" and mounts["/host"]["RW"] is False
    assert mounts["/scratch"]["Type"] == "tmpfs"
    assert http.delete(f"/containers/{cid}").status_code == 204


def test_logs_are_framed_and_wait_reports_the_code(http: httpx.Client) -> None:
    cid = http.post("/containers/create",
                    json={"Image": "box:1",
                          "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 7"]}).json()["Id"]
    assert http.post(f"/containers/{cid}/start").status_code == 204
    waited = http.post(f"/containers/{cid}/wait")
    assert waited.json() == {"StatusCode": 7, "Error": None}
    logs = http.get(f"/containers/{cid}/logs?stdout=1&stderr=1").content
    assert logs == b"\x01\0\0\0\0\0\0\x04out\n" + b"\x02\0\0\0\0\0\0\x04err\n"
    assert http.get(f"/containers/{cid}/logs").status_code == 400  # no stream chosen
    assert http.delete(f"/containers/{cid}").status_code == 204


def test_non_loopback_tcp_is_refused(box: Dockyard) -> None:
    result = subprocess.run([*box.argv, "--root", str(box.root), "serve", "--host",
                             "tcp://0.0.0.0:2375"], capture_output=True, text=True,
                            timeout=60, env=box.env)
    assert result.returncode != 0
    assert "non-loopback" in result.stderr and "TLS" in result.stderr


def test_exec_frames_statuses_and_a_vanished_client(http: httpx.Client, api: ApiServer) -> None:
    import socket
    import time

    cid = http.post("/containers/create",
                    json={"Image": "box:1", "Cmd": ["sleep", "60"]}).json()["Id"]
    created = http.post(f"/containers/{cid}/exec", json={"Cmd": ["true"]})
    assert created.status_code == 409  # not running
    assert created.json()["message"] == f"Container {cid} is not running"
    assert http.post(f"/containers/{cid}/start").status_code == 204
    assert http.post(f"/containers/{cid}/exec", json={"Cmd": []}).json()["message"] == \
        "No exec command specified"
    assert http.post(f"/containers/{cid}/exec", json={"Cmd": ["x"], "Tty": 1}).status_code \
        == 400
    assert http.post("/exec/nosuch/start", json={}).json() == \
        {"message": "No such exec instance: nosuch"}
    exec_id = http.post(f"/containers/{cid}/exec", json={
        "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"], "AttachStdout": True,
        "AttachStderr": True}).json()["Id"]
    assert http.post(f"/exec/{exec_id}/resize?h=x&w=1").status_code == 400
    answer = http.post(f"/exec/{exec_id}/start", json={})
    assert answer.content == b"\x01\0\0\0\0\0\0\x04out\n" + b"\x02\0\0\0\0\0\0\x04err\n"
    doc = http.get(f"/exec/{exec_id}/json").json()
    assert (doc["ExitCode"], doc["Running"], doc["ContainerID"]) == (3, False, cid)
    again = http.post(f"/exec/{exec_id}/start", json={})
    assert again.status_code == 409 and "has already run" in again.json()["message"]
    # a client that hangs up mid-stream: the command runs on, its code recorded
    exec_id = http.post(f"/containers/{cid}/exec", json={
        "Cmd": ["sh", "-c", "sleep 0.5; echo late; exit 9"], "AttachStdout": True}).json()["Id"]
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(api.socket))
        raw.sendall(f"POST /exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade"
                    "\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
                    "Content-Length: 2\r\n\r\n{}".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 101 UPGRADED")
    deadline = time.monotonic() + 30
    while http.get(f"/exec/{exec_id}/json").json()["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 9
    assert http.get("/_ping").status_code == 200
    assert http.delete(f"/containers/{cid}?force=1").status_code == 204


def test_hijacked_output_waits_until_the_headers_are_read(http: httpx.Client,
                                                         api: ApiServer) -> None:
    """A client slow to read the 101 gets the headers alone, the output after them:
    docker-py reads the stream under its buffered header reader and would lose it."""
    import socket
    import time

    cid = http.post("/containers/create",
                    json={"Image": "box:1", "Cmd": ["sleep", "60"]}).json()["Id"]
    assert http.post(f"/containers/{cid}/start").status_code == 204
    for tty, output in ((True, b"quick\r\n"), (False, b"\x01\0\0\0\0\0\0\x06quick\n")):
        exec_id = http.post(f"/containers/{cid}/exec", json={
            "Cmd": ["echo", "quick"], "Tty": tty, "AttachStdout": True}).json()["Id"]
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(api.socket))
            raw.sendall(f"POST /exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\n"
                        "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                        .encode())
            time.sleep(1)  # the command has long exited, its output waiting
            headers = raw.recv(65536)
            assert headers.startswith(b"HTTP/1.1 101 UPGRADED") and \
                headers.endswith(b"\r\n\r\n"), headers
            rest = b""
            while chunk := raw.recv(65536):
                rest += chunk
        assert rest == output
    assert http.delete(f"/containers/{cid}?force=1").status_code == 204


def test_archive_stat_header_and_refusals(http: httpx.Client) -> None:
    import base64
    import json

    cid = http.post("/containers/create", json={"Image": "box:1", "Cmd": ["true"]}).json()["Id"]
    head = http.head(f"/containers/{cid}/archive?path=/etc/passwd")  # a stopped container
    assert head.status_code == 200
    found = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert (found["name"], found["mode"], found["linkTarget"]) == ("passwd", 0o644, "")
    assert found["size"] > 0 and found["mtime"].endswith("Z")
    assert http.get(f"/containers/{cid}/archive").status_code == 400  # no path
    assert http.head(f"/containers/{cid}/archive?path=/nosuch").status_code == 404
    put = http.put(f"/containers/{cid}/archive?path=/etc/passwd", content=b"")
    assert put.status_code == 400 and "not a directory" in put.json()["message"]
    bad = http.put(f"/containers/{cid}/archive?path=/tmp", content=b"not a tar" * 100)
    assert bad.status_code == 400, bad.text
    assert http.get("/containers/nosuch/export").status_code == 404
    assert http.get(f"/containers/{cid}/changes").json() is None
    assert http.delete(f"/containers/{cid}").status_code == 204


BAD_OPERATIONS = [
    ("POST", "/containers/{cid}/update", b'{"Memory": "lots"}', 400),
    ("POST", "/containers/{cid}/update", b'{"CpusetCpus": "0"}', 400),
    ("POST", "/containers/{cid}/update", b"[1]", 400),
    ("POST", "/containers/{cid}/rename", b"", 400),
    ("POST", "/containers/{cid}/rename?name=bad%20name", b"", 400),
    ("POST", "/containers/{cid}/pause", b"", 409),
    ("POST", "/containers/{cid}/unpause", b"", 409),
    ("GET", "/containers/{cid}/top", b"", 409),
    ("GET", "/containers/{cid}/stats?stream=maybe", b"", 400),
    ("GET", "/containers/{cid}/stats?stream=1&one-shot=1", b"", 400),
    ("POST", "/containers/{cid}/exec", b'{"Cmd": "true", "Env": "A=1"}', 400),
    ("POST", "/exec/nosuch/resize?h=1&w=1", b"", 404),
    ("POST", "/containers/{cid}/exec", b'{"Cmd": ["true"], "Privileged": true}', 400),
    ("POST", "/containers/prune?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D", b"", 400),
    ("POST", "/images/prune?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D", b"", 400),
    ("POST", "/networks/nosuch/connect", b'{"Container": "x"}', 404),
    ("POST", "/networks/bridge/connect", b'{"Container": 5}', 400),
    ("POST", "/networks/bridge/disconnect", b"{}", 400),
    ("GET", "/events?since=yesterday", b"", 400),
    ("GET", "/events?since=20&until=10", b"", 400),
    ("GET", "/events?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D", b"", 400),
]


def test_bad_operations_are_refused(http: httpx.Client, box: Dockyard) -> None:
    """Each a 4xx with a message; the server alive, nothing made or lost."""
    cid = http.post("/containers/create", json={"Image": "box:1", "Cmd": ["true"]}).json()["Id"]
    for method, path, body, status in BAD_OPERATIONS:
        answer = http.request(method, path.format(cid=cid), content=body,
                              headers={"Content-Type": "application/json"})
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.json()["message"]
    assert http.get("/_ping").status_code == 200  # alive
    assert [c["Id"] for c in http.get("/containers/json?all=1").json()] == [cid]
    assert http.get("/networks").json()[0]["Name"] == "bridge"
    assert http.delete(f"/containers/{cid}").status_code == 204
