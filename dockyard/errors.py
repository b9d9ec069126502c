"""The one exception tree of dockyard.

Every error dockyard raises on purpose is a ``DockyardError``.  Its ``kind`` says
who must act, and front ends (CLI exit codes, API status codes) translate the kind
once, at the edge.  Foreign exceptions (``OSError`` and friends) are translated at
their seam with ``raise ... from exc``::

    DockyardError                      kind
    ├── InvalidArgument                invalid-argument   (caller's fault: 400)
    │   ├── InvalidSpec                  bad config.json / bundle
    │   └── DockerfileError              (builder)
    ├── NotFound                       not-found          (404)
    │   ├── ContainerNotFound            "container does not exist"
    │   └── ImageNotFound                "No such image: x"
    ├── AlreadyExists                  already-exists     (409)
    ├── Conflict                       conflict           (409: wrong state)
    │   └── ContainerNotRunning
    ├── PermissionDenied               permission-denied  (403)
    ├── Unavailable                    unavailable        (503: retry may help)
    ├── NotImplementedFeature          not-implemented    (501)
    ├── DataLoss                       data-loss          (500)
    │   └── DigestMismatch
    └── InternalError                  internal           (500)
        └── KernelError                  a syscall failed; carries op, path, errno
"""

from __future__ import annotations

from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import ClassVar


class ErrorKind:
    """What went wrong, in the terms front ends translate into codes: plain strings.

    Not an ``enum.Enum``: every ``dockyard-runtime`` command imports this module, and
    ``enum`` (with the ``functools`` it imports) cost ~3 ms of a ~13 ms ``start``.
    The strings are the values front ends send on (the runtime's error messages, the
    API helper's JSON).
    """

    INVALID_ARGUMENT = "invalid-argument"
    NOT_FOUND = "not-found"
    ALREADY_EXISTS = "already-exists"
    CONFLICT = "conflict"
    PERMISSION_DENIED = "permission-denied"
    UNAVAILABLE = "unavailable"
    NOT_IMPLEMENTED = "not-implemented"
    DATA_LOSS = "data-loss"
    INTERNAL = "internal"


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose.  Catch it at front ends only."""

    kind: ClassVar[str] = ErrorKind.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DockyardError):
    kind = ErrorKind.INVALID_ARGUMENT


class InvalidSpec(InvalidArgument):
    """A bundle or its config.json is malformed, incomplete or unsafe."""


class NotFound(DockyardError):
    kind = ErrorKind.NOT_FOUND


class ContainerNotFound(NotFound):
    """Docker's wording ("No such container: x"), which its clients match on."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"No such container: {container_id}")
        self.container_id = container_id


class RuntimeContainerNotFound(NotFound):
    """runc's wording, which callers of the runtime such as containerd match on."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container does not exist: {container_id}")
        self.container_id = container_id


class ImageNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")


class AlreadyExists(DockyardError):
    kind = ErrorKind.ALREADY_EXISTS


class Conflict(DockyardError):
    kind = ErrorKind.CONFLICT


class ContainerNotRunning(Conflict):
    pass


class PermissionDenied(DockyardError):
    kind = ErrorKind.PERMISSION_DENIED


class Unavailable(DockyardError):
    kind = ErrorKind.UNAVAILABLE


class NotImplementedFeature(DockyardError):
    kind = ErrorKind.NOT_IMPLEMENTED


class DataLoss(DockyardError):
    kind = ErrorKind.DATA_LOSS


class DigestMismatch(DataLoss):
    pass


class InternalError(DockyardError):
    kind = ErrorKind.INTERNAL


class KernelError(InternalError):
    """A system call failed in a way the caller could not have prevented."""

    def __init__(self, op: str, target: str, errno_: int, strerror: str) -> None:
        super().__init__(f"{op} {target}: {strerror}")
        self.op = op
        self.target = target
        self.errno = errno_


class ExecutableNotFound(NotFound):
    """runc's wording; Docker maps it to exit code 127."""

    def __init__(self, name: str) -> None:
        super().__init__(f'exec: "{name}": executable file not found in $PATH')


class NotExecutable(PermissionDenied):
    """Docker maps "permission denied" on exec to exit code 126."""

    def __init__(self, name: str) -> None:
        super().__init__(f'exec: "{name}": permission denied')
