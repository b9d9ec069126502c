"""The bodies of ``images`` and ``inspect``, without click (see ``container_cmds``)."""

from __future__ import annotations

from dockyard.cli.container_cmds import echo
from dockyard.cli.flagtable import Opt, opt
from dockyard.cli.render import go_time, human_ago, human_size, render, render_inspect
from dockyard.engine.engine import Engine

IMAGES_OPTIONS: tuple[Opt, ...] = (
    opt("-a", "--all", dest="all_images", kind="flag", help="Show all images."),
    opt("-q", "--quiet", kind="flag", help="Only show image IDs."),
    opt("--digests", kind="flag", help="Show digests."),
    opt("--no-trunc", kind="flag", help="Do not truncate output."),
    opt("-f", "--filter", dest="filters", kind="multi",
        help="dangling=true|false, reference=PATTERN"),
    opt("--format", dest="fmt", help="table, json or a Go template."),
)
INSPECT_OPTIONS: tuple[Opt, ...] = (opt("-f", "--format", dest="fmt"),)


def images(engine: Engine, repository: str | None = None, *, all_images: bool,
           quiet: bool, digests: bool, no_trunc: bool, filters: tuple[str, ...],
           fmt: str | None) -> None:
    """``images``: Docker's table (or ``--format``) of the images."""
    dangling: bool | None = None
    pattern = repository
    for item in filters:
        key, _, value = item.partition("=")
        if key == "dangling":
            dangling = value.lower() in ("true", "1")
        elif key == "reference":
            pattern = value
        else:
            from dockyard.errors import InvalidArgument

            raise InvalidArgument(f"invalid filter {key!r}")
    rows = engine.images.summaries(all_images=all_images, dangling=dangling,
                                   reference_pattern=pattern, digests=digests,
                                   digest_columns=digests or "{{.Digest}}" in (fmt or ""))
    if quiet:
        seen: list[str] = []
        for row in rows:
            short = row.id if no_trunc else row.id.split(":")[1][:12]
            if short not in seen:
                seen.append(short)
        if seen:
            echo("\n".join(seen))
        return
    table = [{"Repository": r.repository, "Tag": r.tag, "Digest": r.digest,
              "ID": r.id if no_trunc else r.id.split(":")[1][:12],
              "CreatedSince": human_ago(r.created), "CreatedAt": go_time(r.created),
              "Size": human_size(r.size), "VirtualSize": human_size(r.size),
              "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A"} for r in rows]
    columns = ["Repository", "Tag"] + (["Digest"] if digests else []) + \
        ["ID", "CreatedSince", "Size"]
    headers = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
               "CreatedSince": "CREATED", "Size": "SIZE"}
    echo(render(table, columns, fmt, headers))


def inspect(engine: Engine, *names: str, fmt: str | None) -> None:
    """``inspect``: containers or images (a container wins when both match)."""
    from dockyard.errors import NotFound

    docs = []
    for name in names:
        try:
            docs.append(engine.containers.inspect(name))
        except NotFound:
            docs.append(engine.images.inspect(name))
    echo(render_inspect(docs, fmt))
