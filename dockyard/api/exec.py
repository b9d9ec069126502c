"""Exec routes: create, start (hijacked, or detached), inspect, resize.

An exec instance lives in the server's memory, as in dockerd.  Its start runs the
runtime's ``exec`` (the command ``engine.container_ops.exec_argv`` builds, the one the
``dockyard exec`` CLI runs) as a child of the server: with pipes for stdin, stdout and
stderr, relayed in Docker's 8-byte frames; or, with ``Tty``, with the terminal's
master end received on a private console socket, relayed raw and resized there.

The run is a task of its own, not the request's: a client that hangs up leaves the
command running (as Docker does), its output drained, its exit code recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import struct
import tempfile
import termios
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.container_streams import Input, hijack
from dockyard.api.create import Fields
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import call
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.stdcopy import STDERR, STDOUT, frame

_KEPT = 1024  # finished exec instances kept for inspection
_DRAIN = 2.0  # seconds to wait for output still in flight once the command exited


def register(router: Router) -> None:
    router.app[EXECS] = {}
    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("GET", "/exec/{id}/json", inspect)
    router.add("POST", "/exec/{id}/resize", resize)


Sink = Callable[[bytes], Awaitable[None]]


class ExecInstance:
    def __init__(self, container_id: str, config: dict[str, Any]) -> None:
        self.id = secrets.token_hex(32)
        self.container_id = container_id
        self.cmd: list[str] = config["Cmd"]
        self.env: list[str] = config["Env"]
        self.user: str = config["User"]
        self.workdir: str = config["WorkingDir"]
        self.tty: bool = config["Tty"]
        self.stdin: bool = config["AttachStdin"]
        self.stdout: bool = config["AttachStdout"]
        self.stderr: bool = config["AttachStderr"]
        self.privileged: bool = config["Privileged"]
        self.started = False
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.master: int | None = None  # the terminal's master end, while it runs
        self.size: tuple[int, int] | None = None  # (height, width) asked for

    def inspect(self) -> dict[str, Any]:
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0],
                                  "arguments": self.cmd[1:], "privileged": self.privileged,
                                  "user": self.user},
                "OpenStdin": self.stdin, "OpenStderr": self.stderr,
                "OpenStdout": self.stdout, "CanRemove": False,
                "ContainerID": self.container_id, "DetachKeys": "", "Pid": self.pid}

    def apply_size(self) -> None:
        if self.master is not None and self.size is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", self.size[0], self.size[1], 0, 0))


EXECS: web.AppKey[dict[str, ExecInstance]] = web.AppKey("execs", dict)
_TASKS: set[asyncio.Task[None]] = set()  # runs outliving their request


def _config(body: Any) -> dict[str, Any]:
    fields = Fields(body, "container.ExecOptions")
    config = {
        "Cmd": list(fields.command("Cmd") or ()), "Env": list(fields.strings("Env")),
        "User": fields.text("User") or "", "WorkingDir": fields.text("WorkingDir") or "",
        "Tty": fields.boolean("Tty"), "AttachStdin": fields.boolean("AttachStdin"),
        "AttachStdout": fields.boolean("AttachStdout"),
        "AttachStderr": fields.boolean("AttachStderr"),
        "Privileged": fields.boolean("Privileged")}
    if not config["Cmd"]:
        raise InvalidArgument("No exec command specified")
    if config["Privileged"]:  # refused rather than run without what was asked for
        raise InvalidArgument("privileged exec is not supported yet")
    return config


def _find(request: web.Request) -> ExecInstance:
    ref = request.match_info["id"]
    instance = request.app[EXECS].get(ref)
    if instance is None:
        raise NotFound(f"No such exec instance: {ref}")
    return instance


async def create(request: web.Request) -> web.Response:
    config = _config(await params.json_body(request))
    engine = request.app[ENGINE]
    record = await call(request, engine.containers.get, request.match_info["id"])
    # the same checks as the start's (running, not paused, the user known)
    await call(request, engine.container_ops.exec_argv, record.id, tuple(config["Cmd"]),
               user=config["User"] or None)
    instance = ExecInstance(record.id, config)
    execs = request.app[EXECS]
    if len(execs) >= _KEPT:
        for key, old in list(execs.items()):
            if old.exit_code is not None or not old.started:
                del execs[key]
                break
    execs[instance.id] = instance
    return web.json_response({"Id": instance.id}, status=201)


async def inspect(request: web.Request) -> web.Response:
    return web.json_response(_find(request).inspect())


async def resize(request: web.Request) -> web.Response:
    instance = _find(request)
    height, width = params.integer(request, "h"), params.integer(request, "w")
    if height is None or width is None or not (0 <= height < 65536 and 0 <= width < 65536):
        raise InvalidArgument("Bad parameters: h and w must be integers from 0 to 65535")
    instance.size = (height, width)
    instance.apply_size()
    return web.Response(status=200)


async def start(request: web.Request) -> web.StreamResponse:
    instance = _find(request)
    fields = Fields(await params.json_body(request), "container.ExecStartOptions")
    detach = fields.boolean("Detach")
    tty = fields.boolean("Tty") or instance.tty
    size = fields.data.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) for n in size) \
            and size[0] > 0 and size[1] > 0:
        instance.size = (size[0], size[1])
    if instance.exit_code is not None:
        raise Conflict(f"Error: Exec command {instance.id} has already run")
    if instance.started:
        raise Conflict(f"Error: Exec command {instance.id} is already running")
    instance.started = True
    engine = request.app[ENGINE]
    scratch = tempfile.mkdtemp(prefix="dyexec-")
    run = _Run(instance, scratch, tty)
    try:
        argv = await call(request, engine.container_ops.exec_argv, instance.container_id,
                          tuple(instance.cmd), env=tuple(instance.env),
                          user=instance.user or None, workdir=instance.workdir or None,
                          tty=tty, log=run.log, console_socket=run.console_path,
                          console_size=instance.size,
                          process_file=os.path.join(scratch, "process.json"))
        await run.spawn(argv)
    except BaseException:
        instance.started = False
        await run.abort()
        raise
    if detach:
        _background(run.finish(None, None))
        return web.Response(status=200)
    try:
        response, feeder = await hijack(request, tty)
    except BaseException:  # the client went before the headers: the command runs on
        _background(run.finish(None, None))
        raise
    task = _background(run.finish(_sink(response), feeder if instance.stdin else None))
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(task)  # cancelled when the client goes: the run goes on
    return response


def _background(coroutine: Awaitable[None]) -> asyncio.Task[None]:
    task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


def _sink(response: web.StreamResponse) -> Sink:
    async def write(data: bytes) -> None:
        await response.write(data)
    return write


class _Run:
    """One start of an exec instance: the runtime's process and its streams."""

    def __init__(self, instance: ExecInstance, scratch: str, tty: bool) -> None:
        self.instance = instance
        self.scratch = scratch
        self.tty = tty
        self.log = os.path.join(scratch, "runtime.log")
        self.console_path = os.path.join(scratch, "console.sock") if tty else None
        self.listener: socket.socket | None = None
        self.process: asyncio.subprocess.Process | None = None

    async def spawn(self, argv: list[str]) -> None:
        if self.console_path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(self.console_path)
            self.listener.listen(1)
            self.listener.setblocking(False)
        pipe = asyncio.subprocess.PIPE
        devnull = asyncio.subprocess.DEVNULL
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=pipe if self.instance.stdin and not self.tty else devnull,
            stdout=devnull if self.tty else pipe, stderr=pipe, start_new_session=True)
        self.instance.running = True
        self.instance.pid = self.process.pid
        if self.listener is not None:
            self.instance.master = await self._receive_master()
            self.instance.apply_size()

    async def _receive_master(self) -> int | None:
        """The terminal's master end from the runtime, unless it fails first."""
        assert self.listener is not None and self.process is not None
        loop = asyncio.get_running_loop()
        accepting = asyncio.ensure_future(loop.sock_accept(self.listener))
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait([accepting, exited], return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not accepting.done():
            # exited first: a fast command's runtime may have sent the master and gone
            # before the loop saw the connection, which then waits in the backlog
            try:
                await asyncio.wait_for(asyncio.shield(accepting), 0.5)
            except TimeoutError:
                accepting.cancel()
                return None
        conn, _ = accepting.result()
        with conn:
            conn.setblocking(True)
            conn.settimeout(10)
            _, fds, _, _ = await loop.run_in_executor(None, socket.recv_fds, conn, 1, 1)
        if not fds:
            return None
        os.set_blocking(fds[0], False)
        return fds[0]

    async def finish(self, sink: Sink | None, feeder: Input | None) -> None:
        """Relay until the command exits, record its exit code, clean up."""
        assert self.process is not None
        process, instance = self.process, self.instance
        out = _Output(sink, raw=self.tty)
        pumps = [asyncio.ensure_future(self._pump(process.stderr, out, STDERR))]
        if instance.master is not None:
            pumps.append(asyncio.ensure_future(self._pump_master(instance.master, out)))
        elif process.stdout is not None:
            pumps.append(asyncio.ensure_future(self._pump(process.stdout, out, STDOUT)))
        feeding = asyncio.ensure_future(self._feed(feeder)) if feeder is not None else None
        try:
            code = await process.wait()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pumps), _DRAIN)
        finally:
            for task in (*pumps, *([feeding] if feeding else [])):
                task.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            code = process.returncode or 0
            failure = _exec_failure(self.log) if code else None
            instance.exit_code = failure or (128 - code if code < 0 else code)
            instance.running = False
            if instance.master is not None:
                os.close(instance.master)
                instance.master = None
            self.cleanup()

    async def abort(self) -> None:
        """A start that failed half way: no process left behind, no files."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self.instance.master is not None:
            os.close(self.instance.master)
            self.instance.master = None
        self.instance.running = False
        self.cleanup()

    def cleanup(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        shutil.rmtree(self.scratch, ignore_errors=True)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader | None, out: _Output, stream: int) -> None:
        if reader is None:
            return
        while data := await reader.read(65536):
            await out.write(stream, data)

    @staticmethod
    async def _pump_master(master: int, out: _Output) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    return  # EIO: the last holder of the terminal's other end is gone
                if not data:
                    return
                await out.write(STDOUT, data)
        finally:
            loop.remove_reader(master)

    async def _feed(self, feeder: Input) -> None:
        process, master = self.process, self.instance.master
        while True:
            data = await feeder.queue.get()
            if master is not None:
                if data is None:
                    return  # a terminal has no half-close; its ^D is in the bytes
                await _write_all(master, data)
                continue
            assert process is not None and process.stdin is not None
            if data is None:
                process.stdin.close()
                return
            try:
                process.stdin.write(data)
                await process.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                return


class _Output:
    """Output to the client while it is there; drained to nowhere once it is gone."""

    def __init__(self, sink: Sink | None, raw: bool) -> None:
        self.sink = sink
        self.raw = raw

    async def write(self, stream: int, data: bytes) -> None:
        if self.sink is None:
            return
        try:
            await self.sink(data if self.raw else frame(stream, data))
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            self.sink = None


async def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        except OSError:
            return
        data = data[written:]


def _exec_failure(log: str) -> int | None:
    from dockyard.engine.container_ops import ContainerOps

    return ContainerOps.exec_failure(log)
