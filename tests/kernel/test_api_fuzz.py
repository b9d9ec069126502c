"""Hostile HTTP at ``dockyard serve``: truncated requests, bad chunking, huge headers,
malformed and deeply nested JSON, wrong types all over a create body.  Every answer
is a 4xx with Docker's ``{"message": …}`` body (or, for a request cut short, the
connection closed), the server stays up, and nothing is created."""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.apiserver import ApiServer
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

CREATE = b"POST /containers/create HTTP/1.1\r\nHost: docker\r\n"
JSON = b"Content-Type: application/json\r\n"


def exchange(path: Path, data: bytes, *, cut: bool = False, timeout: float = 20) -> bytes:
    """Send ``data`` on a fresh connection and read one answer (``cut``: then close our
    side, as a client that died mid-request: the server may only close too)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        try:
            sock.sendall(data)
            if cut:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early: what it said is still to read
        answer = b""
        while not _complete(answer):
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    return answer


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b": ")
        if name.lower() == b"content-length":
            return len(body) >= int(value)
    return False


def check_answer(answer: bytes, *, may_close: bool = False) -> int:
    """A 4xx with a JSON ``{"message": "…"}`` body; or nothing, where ``may_close``."""
    if not answer:
        assert may_close, "the server closed the connection without an answer"
        return 0
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:500]
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"Content-Type"] == b"application/json", head
    message = json.loads(body)["message"]
    assert isinstance(message, str) and message.strip(), body
    return status


def alive_and_empty(api: ApiServer) -> None:
    ping = exchange(api.socket, b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert ping.startswith(b"HTTP/1.1 200"), ping[:200]
    listed = exchange(api.socket, b"GET /containers/json?all=1 HTTP/1.1\r\nHost: d\r\n"
                                  b"Connection: close\r\n\r\n")
    assert listed.partition(b"\r\n\r\n")[2].strip() == b"[]", listed[:300]


def _create(body: bytes) -> bytes:
    return CREATE + JSON + b"Content-Length: %d\r\n\r\n" % len(body) + body


MALFORMED_HTTP = [
    # cut short: the request line, the headers, the body
    (b"GET /containers/js", True),
    (CREATE + b"Content-Ty", True),
    (CREATE + JSON + b"Content-Length: 200\r\n\r\n{\"Image\": \"box:1\"", True),
    # bad chunking: a size that is not hex, sizes that lie, no terminator
    (CREATE + JSON + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", False),
    (CREATE + JSON + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{\"Image\": \"box:1\"}\r\n0\r\n\r\n",
     False),
    (CREATE + JSON + b"Transfer-Encoding: chunked\r\n\r\n40\r\n{\"Image\"", True),
    (CREATE + JSON + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", False),
    # huge: a header, the request line, the number of headers
    (CREATE + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n", False),
    (b"GET /containers/json?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: d\r\n\r\n", False),
    (CREATE + b"".join(b"X-H%d: v\r\n" % n for n in range(5000)) + b"\r\n", False),
    # not HTTP at all
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)), False),
    (b"FOO\x00BAR / HTTP/1.1\r\n\r\n", False),
    (b"GET / HTTP/9.9\r\nHost: d\r\n\r\n", False),
    # a body larger than the server takes whole
    (CREATE + JSON + b"Content-Length: 5000000\r\n\r\n" + b" " * 5_000_000, False),
]


def test_malformed_http(api: ApiServer) -> None:
    for number, (data, may_close) in enumerate(MALFORMED_HTTP):
        try:
            check_answer(exchange(api.socket, data, cut=may_close), may_close=may_close)
            alive_and_empty(api)
        except AssertionError as exc:
            raise AssertionError(f"case {number} ({data[:60]!r}): {exc}") from exc


BAD_JSON = [
    b"{", b"{\"Image\": \"box:1\",}", b"\xff\xfe{}", b"{\"Image\": \"box:1\"}{}",
    b"[" * 100_000 + b"]" * 100_000, b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000,
    b"\"just a string\"", b"null", b"1e999999", b"{\"Image\": \"box:1\", \"Cmd\": [\"\\ud800\"]}",
    b"{\"Image\": \"" + b"x" * 300 + b"\"}", b"{\"Image\": \"box:1\", \"Env\": [\"A\\u0000=1\"]}",
]


def test_invalid_json_bodies(api: ApiServer, box: Dockyard) -> None:
    for body in BAD_JSON:
        check_answer(exchange(api.socket, _create(body)))
    for route in (b"/networks/create", b"/volumes/create", b"/auth", b"/exec/x/start"):
        for body in BAD_JSON[:6]:
            request = b"POST " + route + b" HTTP/1.1\r\nHost: d\r\n" + JSON + \
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            check_answer(exchange(api.socket, request))
    alive_and_empty(api)
    assert box("network", "ls", "-q").stdout.count("\n") <= 3  # the predefined ones
    assert box("volume", "ls", "-q").stdout == ""


# every HostConfig field the create body reads, with a value of its own type
HOST_CONFIG: dict[str, Any] = {
    "Binds": ["/tmp:/x"], "NetworkMode": "none", "Memory": 1 << 25, "MemorySwap": -1,
    "NanoCpus": 10**8, "CpuShares": 512, "CapAdd": ["SYS_TIME"], "CapDrop": ["NET_RAW"],
    "Privileged": False, "ReadonlyRootfs": False, "AutoRemove": False, "Init": False,
    "RestartPolicy": {"Name": "no"}, "PortBindings": {"80/tcp": [{"HostPort": "0"}]},
    "Mounts": [{"Type": "tmpfs", "Target": "/t"}], "Tmpfs": {"/r": ""}, "Dns": ["1.1.1.1"],
    "ExtraHosts": ["h:1.2.3.4"], "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 10}],
    "PidsLimit": 10, "ShmSize": 1 << 20, "SecurityOpt": [], "LogConfig": {"Type": "json-file"},
    "PublishAllPorts": False, "VolumesFrom": ["other"], "Devices": [{"PathOnHost": "/x"}],
    "GroupAdd": ["1"], "CpuQuota": 1000, "CgroupParent": "p", "Sysctls": {"a": "b"},
}
WRONG = [7, -1, 2**70, 1.5, "text", True, [1, "a"], {"k": 1}, [[]], [{"x": None}]]


def _shape(value: Any) -> str:
    if isinstance(value, list):
        return "list of " + (_shape(value[0]) if value else "anything")
    return "int" if type(value) is int else type(value).__name__


def _wrong_for(value: Any, rng: random.Random) -> Any:
    """A value the field's Go type cannot hold (a list's items of another type; not an
    object with other keys: Go ignores unknown keys)."""
    choices = [w for w in WRONG if _shape(w) != _shape(value) and not (
        isinstance(w, dict) and isinstance(value, dict)) and not (
        value and isinstance(value, list) and _shape(w) == "list of dict" and
        _shape(value) == "list of dict") and not (
        value == [] and isinstance(w, list))]
    return rng.choice(choices)


def test_wrong_types_in_host_config(api: ApiServer, box: Dockyard) -> None:
    rng = random.Random(14)  # fixed: a failure is reproducible
    statuses = set()
    for round_ in range(60):
        host = dict(HOST_CONFIG)
        for key in rng.sample(sorted(HOST_CONFIG), rng.randint(1, 3)):
            host[key] = _wrong_for(HOST_CONFIG[key], rng)
        body = json.dumps({"Image": "box:1", "Cmd": ["true"], "HostConfig": host}).encode()
        answer = exchange(api.socket, _create(body))
        assert answer[9:12] != b"201", (round_, body, answer[:400])
        statuses.add(check_answer(answer))
    assert statuses == {400}
    alive_and_empty(api)
