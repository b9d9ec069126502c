"""A container's output streams: ``logs`` (follow included) and hijacked ``attach``.

Attach rides on the supervisor's attach socket (``supervise.iohub``).  Docker's
clients attach *before* they start a container: such an attach is parked here until
the start, which then starts the container with ``attach=True`` (its supervisor
waits for a client before the container runs, so no byte is lost) and hands the
parked connections their sockets.  The first of them asks for ``attach exit``, so the
exit code comes back on it; a ``wait?condition=removed`` for an ``--rm`` container
reads it from here once the record is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
import termios
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.server import ENGINE, _common_headers
from dockyard.api.streams import call, iterate
from dockyard.engine.attach_socket import connect as connect_attach
from dockyard.engine.records import ACTIVE_STATES, ContainerRecord
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.stdcopy import EXIT_STREAM, STDERR, STDOUT, frame, split_frame

log = logging.getLogger("dockyard.api")

_KEPT_CODES = 1024
_HEADERS_READ_WAIT = 2.0  # seconds a hijacked stream's output waits for its headers' read


class _State:
    def __init__(self) -> None:
        self.parked: dict[str, list[asyncio.Future[tuple[socket.socket, bool]]]] = {}
        self.codes: dict[str, int] = {}  # exit codes read from ``attach exit`` sockets
        self.pumping: dict[str, asyncio.Event] = {}  # set when that socket is done


STATE: web.AppKey[_State] = web.AppKey("attachments", _State)


def _connect(bundle: Path, first_line: str) -> socket.socket:
    """The supervisor's attach socket, non-blocking for the event loop."""
    sock = connect_attach(bundle, first_line)
    sock.setblocking(False)
    return sock


class Attachments:
    """Parked attaches and the exit codes their sockets brought, per application."""

    @staticmethod
    def setup(app: web.Application) -> None:
        app[STATE] = _State()

    @staticmethod
    def take(app: web.Application,
             container_id: str) -> list[asyncio.Future[tuple[socket.socket, bool]]]:
        return [f for f in app[STATE].parked.pop(container_id, []) if not f.done()]

    @staticmethod
    async def connect(request: web.Request, container_id: str,
                      waiting: list[asyncio.Future[tuple[socket.socket, bool]]]) -> None:
        """After a start with ``attach``: a socket for each parked attach."""
        state = request.app[STATE]
        bundle = request.app[ENGINE].containers.bundle(container_id)
        for index, future in enumerate(waiting):
            first = index == 0
            try:
                sock = await call(request, _connect, bundle, "attach exit" if first else "attach")
            except OSError as exc:
                future.set_exception(exc)
                continue
            if first:
                state.pumping[container_id] = asyncio.Event()
            if future.done():  # its client hung up meanwhile
                sock.close()
                if first:
                    state.pumping.pop(container_id).set()
                continue
            future.set_result((sock, first))

    @staticmethod
    async def exit_code(app: web.Application, container_id: str, default: int) -> int:
        state = app[STATE]
        pumping = state.pumping.get(container_id)
        if pumping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pumping.wait(), 30)
        return state.codes.pop(container_id, default)


ATTACHMENTS = Attachments()


class Input(asyncio.Protocol):
    """The hijacked connection's protocol once the headers are out: input into a
    queue (None at EOF), and a half-close kept half: the docker CLI closes its write
    side as soon as it has no more stdin (at once without ``-i``) and still reads the
    output, where aiohttp's own protocol would close the whole connection.  Write
    flow control and the final loss go on to aiohttp's protocol, which still owns the
    response (and cancels the handler when the client is gone)."""

    def __init__(self, inner: asyncio.BaseProtocol | None) -> None:
        self.inner = inner
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(bytes(data))

    def eof_received(self) -> bool:
        self.queue.put_nowait(None)
        return True  # keep the transport open for the output

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


async def hijack(request: web.Request, tty: bool) -> tuple[web.StreamResponse, Input]:
    """Docker's hijacked response: ``101 UPGRADED`` (``Upgrade: tcp``), then raw bytes
    both ways, no chunking; a client that did not ask to upgrade gets a 200."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    response = web.StreamResponse(status=101 if upgrade else 200,
                                  reason="UPGRADED" if upgrade else "OK")
    response.content_type = ("application/vnd.docker.raw-stream" if tty else
                             "application/vnd.docker.multiplexed-stream")
    if upgrade:
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    _common_headers(response)
    response.force_close()
    await response.prepare(request)
    transport = request.transport
    feeder = Input(transport.get_protocol() if transport is not None else None)
    if upgrade and transport is not None:
        transport.set_protocol(feeder)
    if transport is not None:
        await _headers_read(transport)
    return response, feeder


async def _headers_read(transport: asyncio.BaseTransport) -> None:
    """Return once the client has read the response's headers, or after a short wait.

    docker-py reads a hijacked stream from the raw socket, beneath the buffered reader
    that parsed the headers (docker/docker-py#3332, #425).  Output that reached the
    client together with the headers lands in that reader's buffer and is lost:
    ``exec_run`` of a fast command then returns nothing (dockerd has this race).  So
    the stream's first byte goes only once the headers have left the socket.  A Unix
    socket tells how much its peer has yet to read (SIOCOUTQ); over TCP the kernel
    cannot say whether the client has read, and nothing is waited for.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _HEADERS_READ_WAIT
    pause = 0.0005
    while loop.time() < deadline and not transport.is_closing():
        buffered = transport.get_write_buffer_size() \
            if isinstance(transport, asyncio.WriteTransport) else 0
        if buffered == 0 and _unread(sock.fileno()) == 0:
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.02)


def _unread(fd: int) -> int:
    """Bytes sent on a Unix socket that its peer has not read yet (SIOCOUTQ)."""
    try:
        raw = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0  # closed meanwhile: nothing more to wait for
    return int(struct.unpack("i", raw)[0])


def _wanted(request: web.Request) -> set[int]:
    wanted = {n for n, name in ((STDOUT, "stdout"), (STDERR, "stderr"))
              if params.flag(request, name)}
    return wanted


async def _pump_output(reader: asyncio.StreamReader, response: web.StreamResponse, *,
                       framed: bool, tty: bool, wanted: set[int]) -> int | None:
    """The socket's output to the client until it ends; the exit code if one came."""
    buffer, code = b"", None
    while True:
        data = await reader.read(65536)
        if not data:
            return code
        if not framed:
            await response.write(data)
            continue
        buffer += data
        while (split := split_frame(buffer)) is not None:
            stream, payload, buffer = split
            if stream == EXIT_STREAM:
                with contextlib.suppress(ValueError):
                    code = int(payload)
            elif stream in wanted or tty:
                await response.write(payload if tty else frame(stream, payload))


async def _pump_input(feeder: Input, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await feeder.queue.get()
        if data is None:
            with contextlib.suppress(OSError):
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def attach(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    record = await call(request, engine.containers.get, request.match_info["id"])
    tty = record.spec.tty
    wanted = _wanted(request) or ({STDOUT, STDERR} if tty else set())
    stdin = params.flag(request, "stdin") and record.spec.stdin_open
    if not params.flag(request, "stream") and not params.flag(request, "logs"):
        raise InvalidArgument("Bad parameters: at least one of stream or logs must be set")
    response, feeder = await hijack(request, tty)
    try:
        await _attached(request, response, feeder, record, tty=tty, wanted=wanted, stdin=stdin)
    except (DockyardError, OSError) as exc:  # after the headers: the connection just ends
        log.info("attach %s: %s", record.id[:12], exc)
    return response


async def _attached(request: web.Request, response: web.StreamResponse, feeder: Input,
                    record: ContainerRecord, *, tty: bool, wanted: set[int],
                    stdin: bool) -> None:
    engine = request.app[ENGINE]
    if params.flag(request, "logs"):
        await _write_logs(request, response, record.id, tty=tty, wanted=wanted,
                          follow=False, timestamps=False, tail=None, since=None)
    if not params.flag(request, "stream"):
        return
    state = request.app[STATE]
    exit_mode = False
    if record.state in ACTIVE_STATES:
        sock = await call(request, _connect, engine.containers.bundle(record.id), "attach")
    else:  # parked until the start
        future: asyncio.Future[tuple[socket.socket, bool]] = \
            asyncio.get_running_loop().create_future()
        state.parked.setdefault(record.id, []).append(future)
        try:
            sock, exit_mode = await future
        finally:
            parked = state.parked.get(record.id, [])
            if future in parked:
                parked.remove(future)
            if not parked:
                state.parked.pop(record.id, None)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    feeding = asyncio.create_task(_pump_input(feeder, writer)) if stdin else None
    try:
        code = await _pump_output(reader, response, framed=exit_mode or not tty, tty=tty,
                                  wanted=wanted)
        if exit_mode and code is not None:
            if len(state.codes) >= _KEPT_CODES:
                state.codes.pop(next(iter(state.codes)))
            state.codes[record.id] = code
    finally:
        if feeding is not None:
            feeding.cancel()
        writer.close()
        if exit_mode:
            state.pumping.pop(record.id, asyncio.Event()).set()


# --- logs ----------------------------------------------------------------------------
async def _write_logs(request: web.Request, response: web.StreamResponse, container_id: str,
                      *, tty: bool, wanted: set[int], follow: bool, timestamps: bool,
                      tail: int | None, since: str | None) -> None:
    engine = request.app[ENGINE]

    def entries(stop: Any) -> Any:
        return engine.containers.logs(container_id, follow=follow, tail=tail, since=since,
                                      stop=stop.is_set)

    async for entry in iterate(entries):
        stream = STDOUT if entry["stream"] == "stdout" else STDERR
        if stream not in wanted:
            continue
        data = ((entry["time"] + " ") if timestamps else "") + entry["log"]
        payload = data.encode(errors="surrogateescape")
        await response.write(payload if tty else frame(stream, payload))


def _tail(request: web.Request) -> int | None:
    text = request.query.get("tail", "all")
    if text in ("all", ""):
        return None
    try:
        count = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid value for tail: {text!r}") from None
    return None if count < 0 else count


async def logs(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    wanted = _wanted(request)
    if not wanted:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tail = _tail(request)
    since = request.query.get("since") or None
    if since in ("0", "0.000000000"):
        since = None
    record = await call(request, engine.containers.get, request.match_info["id"])
    tty = record.spec.tty
    response = web.StreamResponse()
    response.content_type = ("application/vnd.docker.raw-stream" if tty else
                             "application/vnd.docker.multiplexed-stream")
    _common_headers(response)
    await response.prepare(request)
    await _write_logs(request, response, record.id, tty=tty, wanted=wanted,
                      follow=params.flag(request, "follow"),
                      timestamps=params.flag(request, "timestamps"), tail=tail, since=since)
    await response.write_eof()
    return response
