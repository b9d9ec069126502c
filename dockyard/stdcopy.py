"""Docker's stdcopy framing, written and read in one place: each frame is a stream
byte, three zero bytes, a big-endian 32-bit length and that many bytes.

The supervisor writes it on ``attach.sock`` (``supervise.iohub``), the CLI's attach and
the API's hijacked streams read it there, and the API writes it to Docker's clients:
this module imports only ``struct``, so the supervisor and the CLI's fast path can
both take it without each other's modules.  The streams and words dockyard adds on
``attach.sock`` (the exit code, the exit hook's hand-over) are named here too, once."""

from __future__ import annotations

import struct

STDOUT, STDERR = 1, 2  # (0 is stdin, 3 a system error: Docker's numbers)
# dockyard's own streams on a container's attach.sock (``supervise.iohub``), past Docker's
EXIT_STREAM = 4  # the exit code, in decimal
HOOK_STREAM = 5  # to the exit hook's taker: TAKEN, then DONE (or FAILED)
TAKEN, DONE, FAILED = b"taken", b"done", b"failed"


def frame(stream: int, data: bytes) -> bytes:
    """``data`` as one frame of ``stream``."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def split_frame(buffer: bytes) -> tuple[int, bytes, bytes] | None:
    """The first whole frame of ``buffer`` — its stream, payload and the bytes after
    it — or None while it is not all there."""
    if len(buffer) < 8:
        return None
    stream, length = struct.unpack(">BxxxL", buffer[:8])
    if len(buffer) < 8 + length:
        return None
    return stream, buffer[8:8 + length], buffer[8 + length:]
