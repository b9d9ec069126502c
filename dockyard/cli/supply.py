"""``dockyard sbom`` and ``dockyard scan``.

``scan`` exits 0 when nothing at or above ``--severity`` was found, 1 when something
was, and 2 on an error (a bad reference, a database that is not OSV JSON, a bug):
a CI step can tell "findings" from "the scan did not run".
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dockyard.engine.engine import Engine

EXIT_FINDINGS = 1
EXIT_SCAN_ERROR = 2


@click.command("sbom")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["spdx-json", "cyclonedx-json"]),
              default="spdx-json", show_default=True)
@click.option("-o", "--output", default=None, metavar="FILE",
              help="Write the document here (atomically) instead of stdout.")
@click.pass_obj
def sbom_cmd(engine: Engine, ref: str, fmt: str, output: str | None) -> None:
    """List what is installed in an image (dpkg, apk, rpm, Python, npm) as an SBOM."""
    from dockyard.engine.supply import SupplyChain

    document, notes = SupplyChain(engine).sbom(ref, fmt)
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    if output:
        from dockyard.store.atomic import atomic_write

        atomic_write(Path(output), document, 0o644)
    else:
        sys.stdout.buffer.write(document)
        if not document.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()


@click.command("scan")
@click.argument("ref")
@click.option("--db", default=None, metavar="FILE|DIR",
              help="OSV records: a JSON file (one record or a list), a directory of them, "
                   "or OSV's all.zip.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]),
              default="table", show_default=True)
@click.option("--severity", type=click.Choice(["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"],
                                              case_sensitive=False),
              default="LOW", show_default=True,
              help="Exit 1 when a result is at or above this severity.")
@click.option("-o", "--output", default=None, metavar="FILE", help="Write the report here.")
@click.pass_obj
def scan_cmd(engine: Engine, ref: str, db: str | None, fmt: str, severity: str,
             output: str | None) -> int:
    """Match an image's packages against OSV records and lint its hardening.

    Exit status: 0 nothing at or above --severity, 1 findings, 2 the scan did not run.
    """
    from dockyard.cli.errors import report
    from dockyard.engine.supply import SupplyChain
    from dockyard.errors import DockyardError
    from dockyard.images.scan.report import RENDERERS

    try:
        result = SupplyChain(engine).scan(ref, db)
        text = RENDERERS[fmt](result)
        if output:
            from dockyard.store.atomic import atomic_write

            atomic_write(Path(output), text.encode(), 0o644)
        else:
            click.echo(text, nl=False)
    except DockyardError as exc:
        report(exc)
        return EXIT_SCAN_ERROR
    except OSError as exc:  # a report path that cannot be written, a database unreadable
        from dockyard.store.oserror import user_error

        report(user_error(exc) or exc)
        return EXIT_SCAN_ERROR
    return EXIT_FINDINGS if result.worst_at_least(severity.upper()) else 0


COMMANDS = [sbom_cmd, scan_cmd]
