"""``DOCKYARD_TRACE=1``: a per-phase timeline of one command, across its processes.

A command's work is spread over processes — the CLI, the zygote's fork that
supervises the container, the supervisor's runtime helper, the container's init,
the exit hook — so each appends ``<monotonic ns> <pid> <role> <phase>`` lines to
one file (``O_APPEND``: a line is one write, whole), named by
``DOCKYARD_TRACE_FILE``; the CLI that started the trace prints the timeline on
stderr when it ends.  CLOCK_MONOTONIC is one clock for every process of the host,
so the lines of different processes order correctly.

Off, this costs one environment lookup per process and a global test per mark.
Every command imports this module, so it imports nothing beyond os, sys and time
(no contextlib: ~4 ms of a command handed to the zygote, see ``cli.warm``).
"""

import os
import sys
import time

FILE_ENV = "DOCKYARD_TRACE_FILE"
_fd = -1
_role = ""
_owner = False


def begin(role: str) -> None:
    """A command's first process: start a trace if ``DOCKYARD_TRACE`` asks for one;
    processes it starts find the file in their environment."""
    global _owner
    if _role:
        return  # begun already (the fast entry, then the full CLI)
    if os.environ.get("DOCKYARD_TRACE", "") in ("", "0"):
        join(os.environ.get(FILE_ENV, ""), role)
        return
    import tempfile

    handle, path = tempfile.mkstemp(prefix="dockyard-trace-", suffix=".log")
    os.close(handle)
    os.environ[FILE_ENV] = path
    _owner = True
    join(path, role)
    mark("interpreter up")


def restart(role: str) -> None:
    """A fork that takes over another process's command (``cli.warm_worker``): the
    trace it writes to is the one in its (new) environment, never its parent's."""
    global _fd, _role, _owner
    if _fd >= 0:
        try:  # noqa: SIM105 - no contextlib (see cli.warm)
            os.close(_fd)
        except OSError:
            pass
    _fd, _role, _owner = -1, "", False
    join(os.environ.get(FILE_ENV, ""), role)


def join(path: str, role: str) -> None:
    """Append to the trace at ``path`` (nothing when it is empty) as ``role``."""
    global _fd, _role
    _role = role
    if not path or _fd >= 0:
        return
    try:
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        _fd = -1


def descriptor() -> int:
    """The trace file's descriptor in this process (-1 when tracing is off): a fork
    that closes what it inherited keeps this one."""
    return _fd


def path() -> str:
    """The trace file this process writes to ("" when tracing is off)."""
    return os.environ.get(FILE_ENV, "") if _fd >= 0 else ""


HANDOFF = "trace-to"  # in a container's folder: the trace its supervisor is to join


def hand_to(directory: str) -> None:
    """Ask a process already running — a container's supervisor, started by an
    earlier command — to add its phases to this trace (``rm -f``, ``stop``): the
    trace file's name goes into ``directory``, where ``follow`` reads it."""
    current = path()
    if current:
        try:
            with open(os.path.join(directory, HANDOFF), "w") as handle:
                handle.write(current)
        except OSError:
            pass


def follow(directory: str, role: str) -> None:
    """Join the trace a command handed to us (``hand_to``), if any (one failed open
    when none was)."""
    handoff = os.path.join(directory, HANDOFF)
    try:
        with open(handoff) as handle:
            trace_path = handle.read().strip()
        os.unlink(handoff)
    except OSError:
        return
    if _fd < 0:
        join(trace_path, role)
        _cpu_since_last()  # what this process spent before is not this command's


def _cpu_since_last() -> int:
    """This process's CPU time (user + system, ns) since its previous mark: a measure
    that a loaded machine does not stretch as it does the wall clock.  A fork starts
    at 0 (its own CPU times do), a process that joins later (``follow``) at its join."""
    global _cpu_pid, _cpu_previous
    now = time.process_time_ns()
    pid = os.getpid()
    previous = _cpu_previous if pid == _cpu_pid else 0
    _cpu_pid, _cpu_previous = pid, now
    return now - previous


_cpu_pid = 0
_cpu_previous = 0
CPU_SEPARATOR = "\x1f"  # a line's phase, then (newer writers) the CPU it took


def mark(phase: str) -> None:
    if _fd < 0:
        return
    line = (f"{time.clock_gettime_ns(time.CLOCK_MONOTONIC)} {os.getpid()} {_role} {phase}"
            f"{CPU_SEPARATOR}{_cpu_since_last()}\n")
    try:  # noqa: SIM105 - no contextlib (see cli.warm)
        os.write(_fd, line.encode())
    except OSError:  # closed under us (an init closes what it keeps)
        pass


def report() -> None:
    """The command's timeline on stderr, if this process began the trace."""
    if not _owner:
        return
    mark("exit")
    trace_path = os.environ.get(FILE_ENV, "")
    try:
        with open(trace_path) as handle:
            lines = [line.split(" ", 3) for line in handle if line.count(" ") >= 3]
        os.unlink(trace_path)
    except OSError:
        return
    events = sorted((int(ns), pid, role, phase.rstrip("\n")) for ns, pid, role, phase in lines)
    if not events:
        return
    first = previous = events[0][0]
    # cpu: what the process that marked the phase spent on it (user + system)
    sys.stderr.write("   at ms    +ms  cpu ms  process            phase\n")
    for ns, pid, role, text in events:
        phase, _, cpu = text.partition(CPU_SEPARATOR)
        cpu_ms = f"{int(cpu) / 1e6:6.1f}" if cpu.isdigit() else "     -"
        sys.stderr.write(f"{(ns - first) / 1e6:8.1f} {(ns - previous) / 1e6:6.1f}  {cpu_ms}  "
                         f"{role + ' ' + pid:<18} {phase}\n")
        previous = ns
