"""Blocking engine work on the event loop's terms.

Engine calls block (SQLite, flock, waiting for supervisors), so they run in the
server's thread pool (``call``).  Work that may block for as long as a container
lives (following a log) gets a thread of its own (``iterate``), so no number of
slow streams can starve the pool; it stops when the client goes.  ``BodyReader``
and ``ResponseWriter`` let engine code that reads or writes a file (load, save,
import) work on a request body or a streamed response from a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import io
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

EXECUTOR: web.AppKey[concurrent.futures.ThreadPoolExecutor] = web.AppKey(
    "executor", concurrent.futures.ThreadPoolExecutor)

_DONE = object()


async def call(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in the server's thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR],
                                       functools.partial(fn, *args, **kwargs))


async def iterate(make: Callable[[threading.Event], Iterator[T]],
                  buffered: int = 64) -> AsyncIterator[T]:
    """The items of ``make(stop)`` from a thread of its own.  When the consumer stops
    (the client went away), ``stop`` is set: the iterator is to look at it while it
    waits, and the thread ends at its next item or look.  Its errors are raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(buffered)
    stop = threading.Event()

    def put(item: Any) -> bool:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            with contextlib.suppress(concurrent.futures.TimeoutError):
                future.result(0.1)
                return True
        future.cancel()
        return False

    def produce() -> None:
        try:
            iterator = make(stop)
            try:
                for item in iterator:
                    if not put(item):
                        return
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failed(exc))

    thread = threading.Thread(target=produce, name="dockyard-api-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        await loop.run_in_executor(None, thread.join)


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def body_file(request: web.Request) -> io.BufferedReader:
    """The request body as a buffered binary file, for a worker thread."""
    return io.BufferedReader(BodyReader(request, asyncio.get_running_loop()), 1 << 16)


def response_file(response: web.StreamResponse) -> io.BufferedWriter:
    """A prepared response as a buffered binary file, for a worker thread (flush it)."""
    return io.BufferedWriter(ResponseWriter(response, asyncio.get_running_loop()), 1 << 16)


class BodyReader(io.RawIOBase):
    """A request body as a blocking file, for a worker thread (never the loop's)."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        future = asyncio.run_coroutine_threadsafe(self.content.read(len(view)), self.loop)
        data = future.result()
        view[:len(data)] = data
        return len(data)


class ResponseWriter(io.RawIOBase):
    """A prepared streamed response as a blocking file, for a worker thread."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.response = response
        self.loop = loop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if chunk:
            asyncio.run_coroutine_threadsafe(self.response.write(chunk), self.loop).result()
        return len(chunk)
