"""Typed messages between the runtime (parent) and the container init (child).

They travel as JSON lines over a socketpair.  The child never raises into the
parent's code path: it reports ``Error`` and exits, and the parent turns that into
the same ``DockyardError`` kind the child hit.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from dockyard import errors


@dataclass(frozen=True)
class Ready:
    """The init finished setting up and now blocks on the exec fifo."""


@dataclass(frozen=True)
class RunHooks:
    """The init asks the runtime to run createRuntime hooks (namespaces exist)."""


@dataclass(frozen=True)
class Proceed:
    """The runtime's answer to ``RunHooks``."""


@dataclass(frozen=True)
class Error:
    kind: str
    message: str
    hint: str | None = None

    def to_exception(self) -> errors.DockyardError:
        for cls in _ERROR_CLASSES:
            if cls.kind.value == self.kind:
                return cls(self.message, hint=self.hint)
        return errors.InternalError(self.message, hint=self.hint)


_ERROR_CLASSES: tuple[type[errors.DockyardError], ...] = (
    errors.InvalidSpec,
    errors.NotFound,
    errors.AlreadyExists,
    errors.Conflict,
    errors.PermissionDenied,
    errors.Unavailable,
    errors.NotImplementedFeature,
    errors.DataLoss,
    errors.InternalError,
)

Message = Ready | RunHooks | Proceed | Error
_TYPES: dict[str, type[Message]] = {
    "ready": Ready, "run-hooks": RunHooks, "proceed": Proceed, "error": Error,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


class Channel:
    """One end of the parent/init socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, message: Message) -> None:
        body = dict(vars(message))
        body["type"] = _NAMES[type(message)]
        self.sock.sendall(json.dumps(body).encode() + b"\n")

    def receive(self) -> Message | None:
        """The next message, or None when the other end closed."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        body = json.loads(line)
        cls = _TYPES[body.pop("type")]
        return cls(**body)

    def close(self) -> None:
        self.sock.close()
