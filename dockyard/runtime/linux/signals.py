"""The signal state a container process (and a hook) starts with: runc's.

execve(2) resets caught signals to their default action but keeps ignored ones
and the blocked mask.  The runtime is a Python process, which ignores SIGPIPE and
SIGXFSZ for itself, and its caller may ignore more (a supervisor ignores SIGHUP,
``nohup`` too): without this reset ``yes | head -n1`` in a container would print
"Broken pipe" and a container could not be hung up.  Under runc the process sees
``SigBlk``, ``SigIgn`` and ``SigCgt`` all zero; so it does here.
"""

from __future__ import annotations

from dockyard.stdlite import posix_signal, suppress

_UNCATCHABLE = frozenset({posix_signal.SIGKILL, posix_signal.SIGSTOP})


def names() -> dict[str, int]:
    """Every signal by its name (``SIGKILL``, ``SIGRTMIN``…), as ``signal.Signals``
    names them: of two names for one number (``SIGABRT`` and ``SIGIOT``) the first
    in alphabetical order."""
    table: dict[str, int] = {}
    for name in sorted(dir(posix_signal)):
        if name.startswith("SIG") and not name.startswith("SIG_"):
            number = getattr(posix_signal, name)
            if number not in table.values():
                table[name] = number
    return table


def reset() -> None:
    """Unblock every signal and set every disposition to SIG_DFL (call in a child).

    Must run before a seccomp filter is loaded: the filter may deny rt_sigaction.
    """
    posix_signal.pthread_sigmask(posix_signal.SIG_SETMASK, ())
    for sig in posix_signal.valid_signals():
        if sig in _UNCATCHABLE:
            continue
        with suppress(OSError, ValueError):  # reserved by the C library
            posix_signal.signal(sig, posix_signal.SIG_DFL)
