"""``supervise.pool_holes``: a child forked after the fill keeps less private memory
for the same allocations — measured, as the zygote's supervisors would, in a child
of a process with a zygote-sized preload (the kernel's own count: smaps_rollup)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent('''
    import gc, os, sys
    import dockyard.engine.exit_hook  # a preload of the zygote's size
    from dockyard.supervise import pool_holes

    gc.collect()
    filled = pool_holes.fill() if sys.argv[1] == "fill" else 0
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        kept = [(i, str(i), [i], {"k": i}, b"x" * (i % 200)) for i in range(3000)]
        with open("/proc/self/smaps_rollup") as handle:
            dirty = [int(line.split()[1]) for line in handle
                     if line.startswith("Private_Dirty:")][0]
        print(filled, dirty, flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
''')


def _child_private_dirty(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    return int(out[0]), int(out[1])


def test_a_child_of_a_filled_parent_dirties_fewer_pages() -> None:
    filled, with_fill = _child_private_dirty("fill")
    _, without = _child_private_dirty("plain")
    assert filled > 500  # the preload leaves thousands of free blocks behind
    assert with_fill < without - 128, (with_fill, without)  # KiB: measured ~370 less


def test_the_free_blocks_are_read_from_the_allocators_report() -> None:
    from dockyard.supervise import pool_holes

    before = pool_holes.free_blocks()
    assert set(before) == {16 * n for n in range(1, 33)}  # 32 size classes up to 512
    pool_holes.fill()
    after = pool_holes.free_blocks()
    assert after[16] < before[16] or before[16] == 0
    assert sum(after.values()) < sum(before.values())
