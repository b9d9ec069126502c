"""Registry routes: push (``X-Registry-Auth``), ``/auth`` (log in: the credentials are
checked against the registry, never stored by the server) and
``/distribution/{name}/json`` (the descriptor and platforms the registry has).

``X-Registry-Auth`` is Docker's AuthConfig as base64url JSON; the docker CLI sends
the user's own credentials with every push and pull, so the server's config.json is
only the fallback when a client sends none.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from aiohttp import web

from dockyard.api import params
from dockyard.api.errors import error_response
from dockyard.api.images import JsonStream
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import call
from dockyard.engine.engine import Engine
from dockyard.errors import DockyardError, InvalidArgument, PermissionDenied
from dockyard.registry.auth import Credentials


def register(router: Router) -> None:
    router.add("POST", "/images/{name:.+}/push", push)
    router.add("POST", "/auth", login)
    router.add("GET", "/distribution/{name:.+}/json", distribution)


def decode_auth(text: str) -> object:
    """A base64url (or plain base64) JSON header value."""
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        return json.loads(raw)
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {exc}") from None


def credentials(request: web.Request) -> Credentials | None:
    """``X-Registry-Auth``'s username and password (or ``auth``), when sent."""
    from dockyard.registry.auth import from_auth_config

    text = request.headers.get("X-Registry-Auth", "")
    if not text:
        return None
    return from_auth_config(decode_auth(text))[1]


def _insecure(engine: Engine) -> frozenset[str]:
    return frozenset(engine.insecure_registries)


# --- push ----------------------------------------------------------------------------
def _names_to_push(engine: Engine, name: str, tag: str) -> list[str]:
    """``name:tag``, or every tag of the repository when no tag is given."""
    from dockyard.oci import reference

    if tag:
        return [f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"]
    wanted = reference.parse(name)
    if wanted.tag or wanted.digest:
        return [name]
    names = sorted(n for n, _digest in engine.images.index.all_refs()
                   if reference.parse(n).name == wanted.name and "@" not in n)
    if not names:
        raise InvalidArgument(f"An image does not exist locally with the tag: "
                              f"{wanted.familiar}")
    return names


def _push(engine: Engine, names: list[str], creds: Credentials | None,
          stream: JsonStream) -> None:
    from dockyard.oci import reference
    images = engine.images
    first = reference.parse(names[0])
    stream.send({"status": f"The push refers to repository [{first.name}]"})
    for name in names:
        ref = reference.parse(name)
        record, digest = engine.push_image(str(ref), insecure=_insecure(engine),
                                           progress=stream, credentials=creds)
        size = images.content.size(digest if images.content.exists(digest)
                                   else record.manifest_digest)
        tag = ref.tag or "latest"
        stream.send({"status": f"{tag}: digest: {digest} size: {size}"})
        stream.send({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest,
                                                   "Size": size}})


async def push(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    creds = credentials(request)
    names = await call(request, _names_to_push, engine, request.match_info["name"],
                       request.query.get("tag") or "")
    for name in names:  # a 404 before the first byte
        await call(request, engine.images.get, name)
    stream = JsonStream(request, asyncio.get_running_loop())
    error: DockyardError | None = None
    try:
        await call(request, _push, engine, names, creds, stream)
    except DockyardError as exc:
        error = exc
    return await stream.finish(error)


# --- log in --------------------------------------------------------------------------
def _check_login(engine: Engine, registry: str, creds: Credentials) -> None:
    from dockyard.registry.client import RegistryClient

    client = RegistryClient(registry, insecure=_insecure(engine), credentials=creds)
    try:
        client.ping()
    finally:
        client.close()


async def login(request: web.Request) -> web.Response:
    """Docker's ``/auth``: 200 ``{"Status": "Login Succeeded"}`` when the registry takes
    the credentials, 401 with the registry's words when it does not."""
    from dockyard.registry.auth import from_auth_config

    registry, creds = from_auth_config(await params.json_body(request))
    if creds is None or not creds.username or not creds.password:
        raise InvalidArgument("Username and password are required")
    try:
        await call(request, _check_login, request.app[ENGINE], registry, creds)
    except PermissionDenied as exc:
        return error_response(401, f"login attempt to {registry} failed: {exc.message}")
    return web.json_response({"Status": "Login Succeeded", "IdentityToken": ""})


# --- distribution --------------------------------------------------------------------
async def distribution(request: web.Request) -> web.Response:
    from dockyard.registry.transfer import describe

    engine = request.app[ENGINE]
    descriptor, platforms = await call(request, describe, request.match_info["name"],
                                       insecure=_insecure(engine),
                                       credentials=credentials(request))
    return web.json_response({"Descriptor": descriptor, "Platforms": platforms})
