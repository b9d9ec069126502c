"""``POST /build``: the legacy builder's API over dockyard's own builder and cache.

The body is the context as a tar (any compression); the Dockerfile is inside it
(``dockerfile=``, default ``Dockerfile``; the docker CLI adds one from elsewhere as
``.dockerfile.<random>``).  Progress is Docker's JSON stream: ``{"stream": …}`` lines
(``Step 2/5 : RUN make``, the step's output, `` ---> Using cache``), ``{"aux": {"ID":
…}}`` with the image ID, then ``Successfully built <short id>`` and ``Successfully
tagged <name>`` — docker-py and the CLI's ``-q``/``--iidfile`` read those.  A failed
step ends the stream with ``{"error": …, "errorDetail": {"message": …}}``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from typing import IO, Any

from aiohttp import web

from dockyard.api import params
from dockyard.api.images import JsonStream
from dockyard.api.server import ENGINE, Router
from dockyard.api.streams import body_file, call
from dockyard.build.executor import BuildOptions
from dockyard.errors import DockyardError, InvalidArgument, NotImplementedFeature

_TITLE = re.compile(r"^\[(?:(?P<stage>\S+) )?(?P<count>\d+/\d+)\] (?P<what>.*)$", re.S)
NETWORK_MODES = {"": "default", "default": "default", "bridge": "default", "host": "host",
                 "none": "none"}


class PaddedTar(io.RawIOBase):
    """An uncompressed tar whose end is cut short, as the docker CLI sends a context
    with a Dockerfile from outside it (the last member's padding and the end-of-archive
    blocks are missing; Go's reader takes that): zeros are added at the end."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.count = 0
        self.tail: bytes | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.tail is None:
            data = self.inner.read(len(view))
            if data:
                self.count += len(data)
                view[:len(data)] = data
                return len(data)
            self.tail = bytes(-self.count % 512 + 1024)
        data, self.tail = self.tail[:len(view)], self.tail[len(view):]
        view[:len(data)] = data
        return len(data)


def context_stream(body: io.BufferedReader) -> IO[bytes]:
    """The body as the tar reader takes it (in a worker thread: this reads): a plain tar
    padded (see ``PaddedTar``), a compressed one as it is (its decompressor knows its
    end)."""
    head = body.peek(6)[:6]
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return body
    return io.BufferedReader(PaddedTar(body), 1 << 16)


def register(router: Router) -> None:
    router.add("POST", "/build", build)
    router.add("POST", "/session", no_buildkit)  # BuildKit's session (h2c upgrade)
    router.add("POST", "/grpc", no_buildkit)  # and its gRPC control API


NO_BUILDKIT = ("BuildKit is not supported by dockyard serve: build with the legacy builder "
               "(DOCKER_BUILDKIT=0; Docker Compose also COMPOSE_BAKE=false)")


async def no_buildkit(request: web.Request) -> web.Response:
    """What a BuildKit client (buildx, Compose's bake) meets: a 501 saying what to set."""
    raise NotImplementedFeature(NO_BUILDKIT)


class StreamReporter:
    """The builder's progress (``build.model.Reporter``) as Docker's legacy stream; with
    ``q=1`` only the end is told."""

    def __init__(self, stream: JsonStream, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.stream.send({"stream": text})

    def step_started(self, step: int, title: str) -> None:
        match = _TITLE.match(title)
        if match is None:
            self._say(f"Step {step} : {title}\n")
            return
        stage = f" ({match['stage']})" if match["stage"] else ""
        self._say(f"Step {match['count']}{stage} : {match['what']}\n")

    def step_output(self, step: int, line: str) -> None:
        self._say(line + "\n")

    def step_finished(self, step: int, *, cached: bool, seconds: float) -> None:
        if cached:
            self._say(" ---> Using cache\n")

    def step_failed(self, step: int, message: str) -> None:
        pass  # the error ends the stream

    def warning(self, text: str) -> None:
        self._say(f"[Warning] {text}\n")


def _json_map(request: web.Request, name: str) -> dict[str, str]:
    """``buildargs``/``labels``: a JSON object of strings (a null value: not given)."""
    text = request.query.get(name)
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"invalid {name}: {exc}") from None
    if not isinstance(raw, dict) or not all(
            isinstance(v, str | None) for v in raw.values()):
        raise InvalidArgument(f"invalid {name}: want a JSON object of strings")
    return {str(k): v for k, v in raw.items() if v is not None}


def options(request: web.Request) -> BuildOptions:
    from dockyard.oci import reference

    query = request.query
    if query.get("remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context "
                              "as the request body")
    tags = tuple(query.getall("t", []))
    for tag in tags:
        reference.parse(tag)  # a bad name fails before any work
    network = query.get("networkmode", "")
    if network not in NETWORK_MODES:
        raise InvalidArgument(f"networkmode {network!r}: only default, host and none are "
                              "supported for builds")
    platform = query.get("platform", "")
    if platform:
        from dockyard.images.imagefile import host_platform

        host = host_platform()
        if platform.lower() not in (host["os"], f"{host['os']}/{host['architecture']}"):
            raise InvalidArgument(f"platform {platform!r}: only the host platform "
                                  f"({host['os']}/{host['architecture']}) can be built here")
    for name in ("rm", "forcerm", "q", "squash"):  # answered 400 when malformed
        params.flag(request, name)
    return BuildOptions(tags=tags, build_args=_json_map(request, "buildargs"),
                        target=query.get("target") or None,
                        no_cache=params.flag(request, "nocache"),
                        pull=params.flag(request, "pull"),
                        labels=_json_map(request, "labels"), network=NETWORK_MODES[network])


def registry_config(request: web.Request) -> dict[str, Any]:
    """``X-Registry-Config``: base64 JSON ``{registry: auth config}`` for base images."""
    text = request.headers.get("X-Registry-Config", "")
    if not text:
        return {}
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"invalid X-Registry-Config header: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid X-Registry-Config header: want a JSON object")
    return raw


def _finish_lines(image_id: str, tags: tuple[str, ...], quiet: bool) -> list[dict[str, Any]]:
    from dockyard.oci import reference

    lines: list[dict[str, Any]] = [{"aux": {"ID": image_id}}]
    if quiet:
        return [*lines, {"stream": image_id + "\n"}]
    short = image_id.removeprefix("sha256:")[:12]
    lines.append({"stream": f"Successfully built {short}\n"})
    for tag in tags:
        ref = reference.parse(tag)
        lines.append({"stream": f"Successfully tagged {ref.familiar}:{ref.tag or 'latest'}\n"})
    return lines


async def build(request: web.Request) -> web.StreamResponse:
    from dockyard.registry import auth

    engine = request.app[ENGINE]
    if request.query.get("version") == "2":  # a BuildKit build (types.BuilderBuildKit)
        raise NotImplementedFeature(NO_BUILDKIT)
    wanted = options(request)._replace(
        logins=auth.parse_auth_configs(registry_config(request)))
    quiet = params.flag(request, "q")
    stream = JsonStream(request, asyncio.get_running_loop())
    reporter = StreamReporter(stream, quiet)
    error: DockyardError | None = None
    try:
        body = body_file(request)
        image_id = await call(request, lambda: engine.builds.build_tar(
            context_stream(body), request.query.get("dockerfile") or "Dockerfile", wanted,
            reporter))
        for line in _finish_lines(image_id, wanted.tags, quiet):
            await stream._send(line)
    except DockyardError as exc:
        error = exc
    return await stream.finish(error)
