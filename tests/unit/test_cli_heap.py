"""cli.heap: a pull's process keeps freed pieces in its heap instead of giving them
back to the kernel and faulting them in again.  Each check runs in a fresh interpreter:
malloc's settings are the whole process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# prints whether a 2 MiB piece lies in the main heap (not a mapping of its own), and how
# many MiB of the heap 16 freed pieces of 2 MiB leave in place
PROBE = """
import sys
sys.path.insert(0, {root!r})

def heap_bounds():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            return [int(x, 16) for x in line.split()[0].split("-")]

if {tuned}:
    from dockyard.cli.heap import keep_freed_pieces
    assert keep_freed_pieces()
_, start = heap_bounds()
piece = bytes(2 << 20)
low, high = heap_bounds()
in_heap = low <= id(piece) < high
pieces = [bytes(2 << 20) for _ in range(16)]
del pieces, piece
_, end = heap_bounds()
print(in_heap, (end - start) >> 20)
"""


def _probe(tuned: bool) -> tuple[bool, int]:
    # (malloc's own settings from the environment would change what is probed)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), tuned=tuned)],
                          capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout.split()
    return out[0] == "True", int(out[1])


def test_pieces_stay_in_the_heap_and_freed_ones_are_kept() -> None:
    in_heap, kept_mib = _probe(tuned=True)
    assert in_heap
    assert kept_mib >= 32


def test_glibc_without_the_setting_maps_and_returns_them() -> None:
    """The default this module changes (so the test above can fail)."""
    in_heap, kept_mib = _probe(tuned=False)
    assert not in_heap
    assert kept_mib < 2
