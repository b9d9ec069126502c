"""glibc's malloc set for a command that streams a large transfer through threads.

A pull reads each layer 256 KiB at a time and inflates it 1 MiB at a time, in three
threads, and every such piece is a new ``bytes`` from malloc.  glibc hands allocations
over its mmap threshold (dynamic, from 128 KiB) to ``mmap``, and gives the top of a
heap back to the kernel once more than its trim threshold (as dynamic) is free: so the
pieces' memory kept going back and coming again as fresh zeroed pages, ~30,000 page
faults in a pull of 200 MB (~8,000 with this).  Setting both thresholds keeps freed
pieces for the next ones (and turns glibc's own adjustment off, which is why both are
set: a trim threshold alone left the mmap threshold at 128 KiB and made that pull
1.7x slower).  Measured on bench/pull_push.py's image, interleaved, 10 rounds: 508 ->
470 ms (skopeo 456).

For a command that ends when its transfer does (the CLI's ``pull``), not for a
long-lived process such as ``dockyard serve``, which would keep up to
:data:`TRIM_THRESHOLD` of freed memory per arena.  Best effort: a C library without
``mallopt`` (musl has one that does nothing) leaves malloc as it is.
"""

MMAP_THRESHOLD = 4 << 20  # larger allocations are mapped (and unmapped when freed)
TRIM_THRESHOLD = 64 << 20  # free memory kept at a heap's top before it is given back
_M_TRIM_THRESHOLD = -1  # (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_freed_pieces() -> bool:
    """Set the thresholds for this process; whether the C library took them."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):  # (no ctypes, libc, or function)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
