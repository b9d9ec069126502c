"""The signal state a container process (and a hook) starts with: runc's.

execve(2) resets caught signals to their default action but keeps ignored ones
and the blocked mask.  The runtime is a Python process, which ignores SIGPIPE and
SIGXFSZ for itself, and its caller may ignore more (a supervisor ignores SIGHUP,
``nohup`` too): without this reset ``yes | head -n1`` in a container would print
"Broken pipe" and a container could not be hung up.  Under runc the process sees
``SigBlk``, ``SigIgn`` and ``SigCgt`` all zero; so it does here.
"""

from __future__ import annotations

import signal

from dockyard.stdlite import suppress

_UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


def reset() -> None:
    """Unblock every signal and set every disposition to SIG_DFL (call in a child).

    Must run before a seccomp filter is loaded: the filter may deny rt_sigaction.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for sig in signal.valid_signals():
        if sig in _UNCATCHABLE:
            continue
        with suppress(OSError, ValueError):  # reserved by the C library
            signal.signal(sig, signal.SIG_DFL)
