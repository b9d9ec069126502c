"""How the ``dockyard`` CLI reports errors: message, hint, exit code; no traceback.

Exit codes follow Docker where it has them: 125 when dockyard itself fails a
``run``, 126 when the command cannot be invoked, 127 when it is not found; 1 for
any other error; 2 for a bug (an exception that is not a DockyardError).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from dockyard.errors import DockyardError, ExecutableNotFound, NotExecutable

EXIT_ERROR = 1
EXIT_BUG = 2
EXIT_RUN_ENGINE = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


def exit_code_for(exc: DockyardError, *, run: bool = False) -> int:
    if isinstance(exc, ExecutableNotFound):
        return EXIT_NOT_FOUND if run else EXIT_ERROR
    if isinstance(exc, NotExecutable):
        return EXIT_CANNOT_INVOKE if run else EXIT_ERROR
    return EXIT_RUN_ENGINE if run else EXIT_ERROR


def report(exc: BaseException) -> None:
    if isinstance(exc, DockyardError):
        # one line, whatever a foreign exception's text looked like (tarfile lists
        # every compression it tried, one per line)
        lines = [line for line in exc.message.splitlines() if line.strip()] or [""]
        message = lines[0].rstrip(":") if len(lines) > 1 else lines[0]
        print(f"Error: {message}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
    else:
        import traceback  # only for bugs: ~2 ms every command would pay

        traceback.print_exception(exc, file=sys.stderr)
        print("Error: internal error (a bug in dockyard; the traceback is above)",
              file=sys.stderr)


def guarded(call: Callable[[], object], *, run: bool) -> int:
    """Run a command's body as the CLI does: its exit code; a ``DockyardError`` or
    an ``OSError`` a user can act on as one line and Docker's exit code (``run``:
    125/126/127); anything else as a bug.  ``SystemExit`` passes through."""
    try:
        code = call()
    except DockyardError as exc:
        report(exc)
        return exit_code_for(exc, run=run)
    except BrokenPipeError:  # our reader left (`dockyard ps | head -1`): quietly, as a
        return 128 + 13  # program SIGPIPE ends (what a shell's pipefail then sees)
    except OSError as exc:
        from dockyard.store.oserror import user_error

        error = user_error(exc)
        report(error or exc)
        return EXIT_BUG if error is None else exit_code_for(error, run=run)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        report(exc)
        return EXIT_BUG
    return code if isinstance(code, int) else 0
