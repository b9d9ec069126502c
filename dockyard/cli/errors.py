"""How the ``dockyard`` CLI reports errors: message, hint, exit code; no traceback.

Exit codes follow Docker where it has them: 125 when dockyard itself fails a
``run``, 126 when the command cannot be invoked, 127 when it is not found; 1 for
any other error; 2 for a bug (an exception that is not a DockyardError).
"""

from __future__ import annotations

import sys

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
