"""``dockyard serve``: the Docker Engine API on a unix socket (loopback TCP, TCP with
mutual TLS, or the sockets systemd hands over), so the docker CLI, docker-py and
friends drive this root's containers unchanged."""

from __future__ import annotations

import click

from dockyard.engine.engine import Engine


@click.command("serve")
@click.option("-H", "--host", "hosts", multiple=True, metavar="URL",
              help="unix:///PATH (default unix:///run/dockyard/docker.sock), "
                   "tcp://127.0.0.1:PORT, tcp://ADDRESS:PORT with --tlsverify, or fd:// "
                   "(systemd socket activation); repeat for more.")
@click.option("--tlsverify", is_flag=True,
              help="Serve TCP with TLS and accept only clients whose certificate "
                   "--tlscacert signed.")
@click.option("--tlscacert", default=None, metavar="FILE", help="CA of client certificates.")
@click.option("--tlscert", default=None, metavar="FILE", help="The server's certificate.")
@click.option("--tlskey", default=None, metavar="FILE", help="The server's private key.")
@click.pass_obj
def serve_cmd(engine: Engine, hosts: tuple[str, ...], tlsverify: bool, tlscacert: str | None,
              tlscert: str | None, tlskey: str | None) -> None:
    """Serve the Docker Engine API (foreground; SIGTERM or Ctrl-C stops it).

    Point a client at it with DOCKER_HOST=unix:///run/dockyard/docker.sock.  Containers
    keep running when the server stops: it is one more front end, not their parent.
    """
    import asyncio
    import logging

    from dockyard.api.listeners import Tls, parse_host, tls_context
    from dockyard.api.server import serve

    tls = None
    if tlsverify:
        missing = [name for name, value in (("--tlscacert", tlscacert),
                                            ("--tlscert", tlscert), ("--tlskey", tlskey))
                   if not value]
        if missing:
            raise click.UsageError(f"--tlsverify needs {', '.join(missing)}")
        assert tlscacert and tlscert and tlskey
        tls = Tls(tlscacert, tlscert, tlskey)
        tls_context(tls)  # unreadable or mismatched files fail before anything listens
    elif tlscacert or tlscert or tlskey:
        raise click.UsageError("--tlscacert/--tlscert/--tlskey are used with --tlsverify "
                               "(dockyard serves TLS only with client certificates checked)")
    for host in hosts:
        parse_host(host, tls)  # refused before anything listens
    logging.basicConfig(level=logging.INFO, format="dockyard serve: %(message)s")

    def ready(addresses: list[str]) -> None:
        click.echo(f"API listening on {', '.join(addresses)}", err=True)

    asyncio.run(serve(engine, list(hosts), ready, tls))


COMMANDS = [serve_cmd]
