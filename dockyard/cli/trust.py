"""``image keygen``, ``image sign`` and ``image verify``: cosign's keys and signatures,
and GPG simple signing (``--sign-by``) as Podman and skopeo do it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from dockyard.cli.registry_cmds import insecure_for
from dockyard.engine.engine import Engine


def _passphrase(confirm: bool) -> bytes:
    """``COSIGN_PASSWORD`` (empty is allowed, as cosign allows it), else a prompt."""
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    text: str = click.prompt("Enter password for private key", hide_input=True,
                             confirmation_prompt=confirm, default="", show_default=False,
                             err=True)
    return text.encode()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    from dockyard.errors import AlreadyExists

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise AlreadyExists(f"{path} already exists: not overwritten") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@click.command("keygen")
@click.option("--output-key-prefix", default="cosign", show_default=True,
              help="Write PREFIX.key and PREFIX.pub.")
def keygen_cmd(output_key_prefix: str) -> None:
    """Make a cosign key pair: PREFIX.key (encrypted; password from COSIGN_PASSWORD or a
    prompt) and PREFIX.pub."""
    from dockyard.registry.trust import cosign

    private, public = Path(f"{output_key_prefix}.key"), Path(f"{output_key_prefix}.pub")
    for path in (private, public):
        if path.exists():
            from dockyard.errors import AlreadyExists

            raise AlreadyExists(f"{path} already exists: not overwritten")
    pair = cosign.generate(_passphrase(confirm=True))
    _write_new(private, pair.private_pem, 0o600)
    _write_new(public, pair.public_pem, 0o644)
    click.echo(f"Private key written to {private}", err=True)
    click.echo(f"Public key written to {public}", err=True)


@click.command("sign")
@click.argument("ref")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Sign with this cosign private key (cosign's format).")
@click.option("--sign-by", "fingerprint", default=None, metavar="FINGERPRINT",
              help="Sign with this GPG key into the registries.d lookaside.")
@click.option("--tls-verify/--no-tls-verify", default=True)
@click.pass_obj
def sign_cmd(engine: Engine, ref: str, key_path: Path | None, fingerprint: str | None,
             tls_verify: bool) -> None:
    """Sign an image already in a registry (its manifest digest, as the registry has it)."""
    from dockyard.errors import InvalidArgument
    from dockyard.oci import reference
    from dockyard.registry.client import RegistryClient
    from dockyard.registry.trust import sign

    if (key_path is None) == (fingerprint is None):
        raise InvalidArgument("image sign: give exactly one of --key and --sign-by")
    insecure = insecure_for(engine, tls_verify, ref)
    if key_path is not None:
        image, places = sign.sign_cosign(ref, _read(key_path), _passphrase(confirm=False),
                                         insecure)
        for place in places:
            click.echo(f"Pushing signature to: {place}", err=True)
        click.echo(f"{image.ref.name}@{image.digest}")
        return
    parsed = reference.parse(ref)
    client = RegistryClient(parsed.registry, insecure=insecure)
    try:
        image = sign.remote_image(client, parsed)
    finally:
        client.close()
    assert fingerprint is not None
    path = sign.sign_gpg(parsed, image.digest, fingerprint, engine.registries_d)
    click.echo(f"Signature of {parsed}@{image.digest} written to {path}", err=True)
    click.echo(f"{parsed.name}@{image.digest}")


@click.command("verify")
@click.argument("ref")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="The cosign public key (PEM).")
@click.option("--tls-verify/--no-tls-verify", default=True)
@click.pass_obj
def verify_cmd(engine: Engine, ref: str, key_path: Path, tls_verify: bool) -> None:
    """Verify an image's cosign signatures against a public key (as ``cosign verify``:
    the checks on stderr, the verified payloads as JSON on stdout)."""
    from dockyard.registry.trust import sign

    image, payloads = sign.verify_cosign(ref, _read(key_path),
                                         insecure_for(engine, tls_verify, ref))
    sys.stderr.write(f"\nVerification for {image.ref.name}@{image.digest} --\n"
                     "The following checks were performed on each of these signatures:\n"
                     "  - The cosign claims were validated\n"
                     "  - The signatures were verified against the specified public key\n")
    click.echo(json.dumps(payloads, separators=(",", ":")))


def _read(path: Path) -> bytes:
    from dockyard.errors import InvalidArgument

    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from None


TRUST_COMMANDS = [keygen_cmd, sign_cmd, verify_cmd]
