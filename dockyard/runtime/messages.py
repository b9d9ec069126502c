"""Typed messages between the runtime (parent) and the container init (child).

They travel as JSON lines over a pair of pipes (not a socketpair: importing
``socket`` costs ~2 ms on every container start).  The child never raises into the
parent's code path: it reports ``Error`` and exits, and the parent turns that into
the same ``DockyardError`` kind the child hit.
"""

from __future__ import annotations

import os

from dockyard import errors, jsonlite
from dockyard.stdlite import NamedTuple


class Ready(NamedTuple):
    """The init finished setting up and now blocks on the exec fifo."""


class RunHooks(NamedTuple):
    """The init asks the runtime to run createRuntime hooks (namespaces exist)."""


class Proceed(NamedTuple):
    """The runtime's answer to ``RunHooks``."""


class Joined(NamedTuple):
    """The runtime has moved the init into its cgroup (it writes cgroup.procs itself,
    in parallel with the init's rootfs work: the first such write in a while waits
    for an RCU grace period, ~10 ms, which would otherwise add to every start)."""


class MapUser(NamedTuple):
    """The init's first stage made its user namespace: the runtime should write its
    uid_map and gid_map (only a process outside the namespace may)."""


class Mapped(NamedTuple):
    """The runtime's answer to ``MapUser``: the mappings are in place."""


class InitPid(NamedTuple):
    """The first stage forked the container's init (inside the namespaces the user
    namespace owns) and exits: ``pid`` is the init, as the runtime sees it."""

    pid: int


class Error(NamedTuple):
    kind: str
    message: str
    hint: str | None = None
    error_class: str = ""  # the DockyardError subclass, e.g. ExecutableNotFound

    @classmethod
    def from_exception(cls, exc: errors.DockyardError) -> Error:
        return cls(exc.kind, exc.message, exc.hint, type(exc).__name__)

    def to_exception(self) -> errors.DockyardError:
        """The same error class the init raised (front ends map classes to exit codes)."""
        named = getattr(errors, self.error_class, None)
        if isinstance(named, type) and issubclass(named, errors.DockyardError):
            exc = named.__new__(named)
            errors.DockyardError.__init__(exc, self.message, hint=self.hint)
            return exc
        for cls in _ERROR_CLASSES:
            if cls.kind == self.kind:
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

Message = Ready | RunHooks | Proceed | Joined | MapUser | Mapped | InitPid | Error
_TYPES: dict[str, type[Message]] = {
    "ready": Ready, "run-hooks": RunHooks, "proceed": Proceed, "joined": Joined,
    "map-user": MapUser, "mapped": Mapped, "init-pid": InitPid, "error": Error,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


class Channel:
    """One end of the parent/init link: a pipe to read from and one to write to."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buffer = b""

    def send(self, message: Message) -> None:
        body = message._asdict()
        body["type"] = _NAMES[type(message)]
        data = jsonlite.dumps(body).encode() + b"\n"
        while data:
            data = data[os.write(self.write_fd, data):]

    def receive(self) -> Message | None:
        """The next message, or None when the other end closed."""
        while b"\n" not in self._buffer:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        body = jsonlite.loads(line)
        cls = _TYPES[body.pop("type")]
        return cls(**body)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


def channel_pair() -> tuple[Channel, Channel]:
    """(parent end, child end); all four fds are close-on-exec."""
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    return Channel(up_r, down_w), Channel(down_r, up_w)
