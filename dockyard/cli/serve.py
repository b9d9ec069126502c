"""``dockyard serve``: the Docker Engine API on a unix socket (and loopback TCP), so the
docker CLI, docker-py and friends drive this root's containers unchanged."""

from __future__ import annotations

import click

from dockyard.engine.engine import Engine


@click.command("serve")
@click.option("-H", "--host", "hosts", multiple=True, metavar="URL",
              help="unix:///PATH (default unix:///run/dockyard/docker.sock) or "
                   "tcp://127.0.0.1:PORT; repeat for more.")
@click.pass_obj
def serve_cmd(engine: Engine, hosts: tuple[str, ...]) -> None:
    """Serve the Docker Engine API (foreground; SIGTERM or Ctrl-C stops it).

    Point a client at it with DOCKER_HOST=unix:///run/dockyard/docker.sock.  Containers
    keep running when the server stops: it is one more front end, not their parent.
    """
    import asyncio
    import logging

    from dockyard.api.server import parse_host, serve

    for host in hosts:
        parse_host(host)  # refused before anything listens
    logging.basicConfig(level=logging.INFO, format="dockyard serve: %(message)s")

    def ready(addresses: list[str]) -> None:
        click.echo(f"API listening on {', '.join(addresses)}", err=True)

    asyncio.run(serve(engine, list(hosts), ready))


COMMANDS = [serve_cmd]
