"""The ``dockyard`` executable: hot commands on the fast path, the rest through click.

This module imports almost nothing: what a command needs is imported by the path
that runs it (``cli.warm``, which hands a hot command to a fork of the root's warm
zygote when one runs; else ``cli.fast`` for ``run`` and ``ps``, ``cli.main``'s click
group for everything, and for whatever the fast path leaves to click).
"""

import os
import sys

from dockyard import trace


def main() -> None:
    trace.begin("cli")
    from dockyard.cli import warm

    code: int | None = None
    try:
        code = warm.run(sys.argv[1:])
        if code is None:
            if sys.flags.no_site and "site" not in sys.modules:
                import site  # run here after all (see bin/dockyard): as started without -S

                site.main()
            from dockyard.cli.fast import dispatch

            code = dispatch(sys.argv[1:])
    finally:
        if code is not None or sys.exc_info()[0] is not None:
            trace.report()  # (the full CLI reports its own trace)
    if code is not None:
        # done: skip the interpreter's teardown (module and GC finalization, ~5-10 ms
        # a command), as dockyard-runtime does; what it would flush is flushed here
        for stream in (sys.stdout, sys.stderr):
            # a reader gone (`dockyard ps | head -1`): nothing more to say
            try:  # noqa: SIM105 - no contextlib (see cli.warm)
                stream.flush()
            except OSError:
                pass
        os._exit(code)
    from dockyard.cli.main import main as full

    full()


if __name__ == "__main__":
    main()
