"""Registry commands: pull, push, login, logout."""

from __future__ import annotations

import sys

import click

from dockyard.cli.flagtable import click_options
from dockyard.cli.registry_cmds import PULL_OPTIONS, insecure_for, progress_for, pull
from dockyard.engine.engine import Engine


@click.command("pull")
@click.argument("ref")
@click_options(PULL_OPTIONS)
@click.option("--tls-verify/--no-tls-verify", default=True,
              help="--no-tls-verify allows plain HTTP to this registry.")
@click.pass_obj
def pull_cmd(engine: Engine, ref: str, quiet: bool, tls_verify: bool) -> None:
    """Pull an image from a registry."""
    pull(engine, ref, quiet=quiet, tls_verify=tls_verify)


@click.command("push")
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--tls-verify/--no-tls-verify", default=True)
@click.option("--chunk-size", type=int, default=None, help="Upload blobs in chunks of N bytes.")
@click.option("--sign-by", "sign_by", default=None, metavar="FINGERPRINT",
              help="Sign the pushed manifest with this GPG key (simple signing, written to "
                   "the registries.d lookaside).")
@click.pass_obj
def push_cmd(engine: Engine, ref: str, quiet: bool, tls_verify: bool,
             chunk_size: int | None, sign_by: str | None) -> None:
    """Push an image to a registry."""
    from dockyard.oci import reference

    parsed = reference.parse(ref)
    if not quiet:
        click.echo(f"The push refers to repository [{parsed.name}]")
    with progress_for(quiet) as progress:
        record, digest = engine.push_image(ref, insecure=insecure_for(engine, tls_verify, ref),
                                           progress=progress, chunk_size=chunk_size)
    if sign_by is not None:  # as podman push --sign-by: after the manifest is up
        from dockyard.registry.trust.sign import sign_gpg

        path = sign_gpg(parsed, digest, sign_by, engine.registries_d)
        if not quiet:
            click.echo(f"Signature written to {path}")
    if quiet:  # as docker push -q: the reference alone
        click.echo(str(parsed))
        return
    content = engine.images.content
    size = content.size(digest if content.exists(digest) else record.manifest_digest)
    click.echo(f"{parsed.tag or 'latest'}: digest: {digest} size: {size}")


@click.command("login")
@click.argument("server", required=False, default="docker.io")
@click.option("-u", "--username", default=None)
@click.option("-p", "--password", default=None)
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.option("--tls-verify/--no-tls-verify", default=True)
@click.pass_obj
def login_cmd(engine: Engine, server: str, username: str | None, password: str | None,
              password_stdin: bool, tls_verify: bool) -> None:
    """Log in to a registry (credentials go to Docker's config.json)."""
    from dockyard.errors import InvalidArgument
    from dockyard.registry import auth
    from dockyard.registry.client import RegistryClient

    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    if username is None:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    if not username or not password:
        raise InvalidArgument("login: username and password are required")
    insecure = set(engine.insecure_registries) | ({server} if not tls_verify else set())
    client = RegistryClient(server, insecure=frozenset(insecure))
    client.credentials = auth.Credentials(username, password)
    try:
        client.ping()
    finally:
        client.close()
    path = auth.store(server, auth.Credentials(username, password))
    click.echo(f"Credentials saved in {path}")
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("server", required=False, default="docker.io")
def logout_cmd(server: str) -> None:
    """Log out from a registry."""
    from dockyard.registry import auth

    if auth.remove(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")


COMMANDS = [pull_cmd, push_cmd, login_cmd, logout_cmd]
