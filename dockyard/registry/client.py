"""An OCI distribution-spec client over httpx: auth challenges, retries, blobs, manifests.

Plain HTTP is used for 127.0.0.0/8, localhost and any registry named insecure;
everything else is HTTPS.  A 401 is answered once per scope: Basic with the
stored credentials, or a Bearer token fetched from the challenge's realm.
``httpx.HTTPError`` is translated here, once, into ``Unavailable``.
"""

from __future__ import annotations

import base64
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, NamedTuple
from urllib.parse import urlencode
from urllib.request import getproxies_environment

from dockyard.errors import DockyardError, ImageNotFound, NotFound, PermissionDenied, Unavailable
from dockyard.oci import mediatypes as mt
from dockyard.registry import auth

# httpx imports its command-line client (rich, pygments: ~30 ms) whenever click and rich
# are installed, as they are beside dockyard: code a registry client never runs.  None
# in sys.modules makes that import fail, and httpx defines a stand-in, as it does when
# the extra is not installed (unless something imported it before: then nothing).
# Likewise httpcore's HTTP/2 connections (~8 ms: they load h2): the client never asks
# for HTTP/2 (no http2=True, so no "h2" in its ALPN offer), and httpcore stands in a
# class that says h2 is missing.  h2 itself stays importable: kube's gRPC probes use it
# directly, in the same process as a pull.
for _unused in ("httpx._main", "httpcore._sync.http2", "httpcore._async.http2"):
    sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

import httpcore  # noqa: E402
import httpx  # noqa: E402 - after the stand-ins above

# httpcore reads a response body 64 KiB at a time (``HTTP11Connection.READ_NUM_BYTES``),
# and each read costs ~50 us of Python with the GIL held (h11's buffer and events,
# httpcore's and httpx's iterators): ~3,400 reads of a 210 MB pull, taken in turn by six
# downloading threads whose hashing, decompressing and writing could otherwise run
# beside them.  Reads of 256 KiB made bench/pull_push.py's download ~20% quicker
# (660 -> 510 ms of hashed, checked and written blobs); larger ones gained nothing more.
# Over TLS a read returns one record (16 KiB) at most whatever is asked, so this helps
# plain-HTTP registries (a local one, a mirror on the LAN), not HTTPS ones.
# A class attribute meant to be tuned, httpcore's own; unit-tested to still be its knob.
BODY_READ = 256 << 10
httpcore.HTTP11Connection.READ_NUM_BYTES = BODY_READ

ACCEPT_MANIFESTS = ", ".join([mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST,
                              mt.DOCKER_MANIFEST])
_RETRIES = 4


class ManifestResponse(NamedTuple):
    data: bytes
    media_type: str
    digest: str


def is_insecure(registry: str, insecure: frozenset[str]) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry
    return (registry in insecure or host == "localhost" or host.startswith("127.")
            or host == "[::1]")


class PlainFirst(httpx.BaseTransport):
    """A plain-HTTP registry's transport: ``http://`` through a transport without TLS
    set up, ``https://`` (a token realm, a redirect to blob storage) through a
    verifying one made on its first use.  httpx's default transport loads the CA
    bundle when the client is made: ~70 ms of CPU, a tenth of a pull of 200 MB from a
    local registry, for nothing when every request is plain."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        # (verify=False: its context is never used, as it never sees an https:// URL)
        self._plain = httpx.HTTPTransport(verify=False, limits=limits)
        self._tls: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return self._plain.handle_request(request)
        with self._lock:
            if self._tls is None:
                self._tls = httpx.HTTPTransport(limits=self._limits)
        return self._tls.handle_request(request)

    def close(self) -> None:
        self._plain.close()
        if self._tls is not None:
            self._tls.close()


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError as exc:
        raise Unavailable(f"{what}: {exc}") from exc


class RegistryClient:
    def __init__(self, registry: str, *, insecure: frozenset[str] = frozenset(),
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None,
                 credentials: auth.Credentials | None = None) -> None:
        """``credentials`` given (the API's ``X-Registry-Auth``) are used instead of the
        ones stored in Docker's config.json."""
        self.registry = registry
        host = "registry-1.docker.io" if registry == "docker.io" else registry
        scheme = "http" if is_insecure(registry, insecure) else "https"
        self.base = f"{scheme}://{host}"
        limits = httpx.Limits(max_connections=16)
        if transport is None and scheme == "http" and not getproxies_environment():
            transport = PlainFirst(limits)  # (proxies from the environment: httpx's own)
        self.http = httpx.Client(timeout=timeout, follow_redirects=True, transport=transport,
                                 limits=limits)
        self.credentials = credentials or auth.lookup(registry)
        self._auth_headers: dict[str, str] = {}  # scope -> Authorization
        self._auth_lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # --- plumbing ------------------------------------------------------------
    def request(self, method: str, url: str, scope: str, *, headers: dict[str, str] | None = None,
                content: bytes | Callable[[], Iterator[bytes]] | None = None,
                stream: bool = False, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        """One request with auth and retries; returns a response whose status is in ``ok``.

        ``content`` may be a function returning a fresh iterator of chunks: the body is
        then streamed (never held whole in memory) and started anew on a retry."""
        full = url if url.startswith("http") else self.base + url
        last: Exception | None = None
        for attempt in range(_RETRIES):
            send_headers = dict(headers or {})
            if scope in self._auth_headers:
                send_headers["Authorization"] = self._auth_headers[scope]
            try:
                body = content() if callable(content) else content
                request = self.http.build_request(method, full, headers=send_headers,
                                                  content=body)
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                last = exc
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status_code == 401 and self._should_retry_auth(response, scope,
                                                                       send_headers):
                response.close()
                continue
            if response.status_code in (429, 500, 502, 503, 504) and attempt < _RETRIES - 1:
                response.close()
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status_code not in ok:
                self._raise_for(response, method, full)
            return response
        raise Unavailable(f"{self.registry}: {method} {full} failed after {_RETRIES} attempts: "
                          f"{last}")

    def _should_retry_auth(self, response: httpx.Response, scope: str,
                           sent: dict[str, str]) -> bool:
        """After a 401: authenticate once per scope; threads share the result."""
        with self._auth_lock:
            current = self._auth_headers.get(scope)
            if sent.get("Authorization") != current:
                return True  # another thread authenticated meanwhile: use its header
            if current is not None:
                return False  # our credentials were refused
            self._authenticate(response, scope)
            return True

    def _raise_for(self, response: httpx.Response, method: str, url: str) -> None:
        if stream_open(response):
            response.read()
        detail = ""
        with contextlib.suppress(Exception):
            errors = response.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        status = response.status_code
        message = f"{self.registry}: {method} {url}: {status} {detail or response.reason_phrase}"
        if status == 401:
            raise PermissionDenied(message, hint="log in with `dockyard login "
                                   f"{self.registry}`")
        if status == 403:
            raise PermissionDenied(message)
        if status == 404:
            raise NotFound(message)
        raise Unavailable(message)

    def _authenticate(self, response: httpx.Response, scope: str) -> None:
        header = response.headers.get("www-authenticate", "")
        challenge = auth.parse_challenge(header)
        creds = self.credentials
        if challenge.scheme == "basic":
            if creds is None:
                raise PermissionDenied(f"{self.registry}: authentication required",
                                       hint=f"log in with `dockyard login {self.registry}`")
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self._auth_headers[scope] = f"Basic {token}"
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise PermissionDenied(f"{self.registry}: unsupported auth challenge {header!r}")
        query: dict[str, str] = {}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        query["scope"] = challenge.params.get("scope", scope)
        basic = httpx.BasicAuth(creds.username, creds.password) if creds else None
        with _translated(f"{self.registry}: token request"):
            token_response = self.http.get(f"{challenge.params['realm']}?{urlencode(query)}",
                                           auth=basic)
        if token_response.status_code != 200:
            raise PermissionDenied(f"{self.registry}: token request refused: "
                                   f"{token_response.status_code}")
        body = token_response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise PermissionDenied(f"{self.registry}: token response carried no token")
        self._auth_headers[scope] = f"Bearer {token}"

    # --- the distribution API -------------------------------------------------
    def get_manifest(self, repository: str, ref: str) -> ManifestResponse:
        scope = f"repository:{repository}:pull"
        with _translated(f"{self.registry}: manifest {repository}:{ref}"):
            try:
                response = self.request("GET", f"/v2/{repository}/manifests/{ref}", scope,
                                        headers={"Accept": ACCEPT_MANIFESTS})
            except NotFound:
                raise ImageNotFound(f"{self.registry}/{repository}:{ref}") from None
            data = response.content
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        digest = response.headers.get("docker-content-digest", "")
        return ManifestResponse(data, media_type, digest)

    def blob_exists(self, repository: str, digest: str, scope: str) -> bool:
        with _translated(f"{self.registry}: HEAD blob {digest}"):
            response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope,
                                    ok=(200, 404))
            return response.status_code == 200

    def fetch_blob(self, repository: str, digest: str, offset: int,
                   sink: Callable[[bytes], None]) -> bool:
        """Stream a blob from ``offset`` into ``sink``; returns False if the server
        ignored the Range (then nothing was read: see :meth:`blob_pieces`)."""
        with self.blob_pieces(repository, digest, offset) as pieces:
            if pieces is None:
                return False
            for piece in pieces:
                sink(piece)
        return True

    @contextlib.contextmanager
    def blob_pieces(self, repository: str, digest: str,
                    offset: int) -> Iterator[Iterator[bytes] | None]:
        """A blob from ``offset`` as httpx's own pieces, read as the caller iterates (a
        pull's door check reads a layer through them as it arrives); None if the server
        ignored the Range and would send the whole blob.

        The pieces are httpx's (one socket read, :data:`BODY_READ` at most), not pieces
        gathered into 1 MiB: gathering copied every byte twice more, into buffers too
        big for the CPU's cache and each one fresh memory (~50,000 page faults in a
        pull of 200 MB); the pull's system time halved without it."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        scope = f"repository:{repository}:pull"
        with _translated(f"{self.registry}: blob {digest}"):
            response = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope,
                                    headers=headers, stream=True, ok=(200, 206))
            try:
                yield None if offset and response.status_code == 200 else \
                    response.iter_bytes()
            finally:
                response.close()

    def upload_blob(self, repository: str, digest: str, size: int, open_blob: Callable[[],
                    IO[bytes]], *, mount_from: str | None = None,
                    chunk_size: int | None = None) -> str:
        """Upload unless present; cross-repository mount first; monolithic or chunked.

        Returns "exists", "mounted" or "pushed".
        """
        scope = f"repository:{repository}:pull,push"
        if self.blob_exists(repository, digest, scope):
            return "exists"
        query = f"?mount={digest}&from={mount_from}" if mount_from else ""
        with _translated(f"{self.registry}: upload {digest}"):
            start = self.request("POST", f"/v2/{repository}/blobs/uploads/{query}", scope,
                                 ok=(201, 202))
            if start.status_code == 201:
                return "mounted"
            location = self._absolute(start.headers["location"])
            with open_blob() as blob:
                if chunk_size is None:
                    def body() -> Iterator[bytes]:
                        blob.seek(0)
                        while chunk := blob.read(_STREAM_CHUNK):
                            yield chunk

                    self.request("PUT", _with_digest(location, digest), scope,
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(size)},
                                 content=body, ok=(201,))
                else:
                    self._upload_chunks(location, digest, blob, chunk_size, scope)
        return "pushed"

    def _upload_chunks(self, location: str, digest: str, blob: IO[bytes], chunk_size: int,
                       scope: str) -> None:
        offset = 0
        while chunk := blob.read(chunk_size):
            end = offset + len(chunk) - 1
            response = self.request("PATCH", location, scope, content=chunk, ok=(202,),
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": f"{offset}-{end}",
                                             "Content-Length": str(len(chunk))})
            location = self._absolute(response.headers["location"])
            offset = end + 1
        self.request("PUT", _with_digest(location, digest), scope, ok=(201,),
                     headers={"Content-Length": "0"})

    def _absolute(self, location: str) -> str:
        return location if location.startswith("http") else self.base + location

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> str:
        scope = f"repository:{repository}:pull,push"
        with _translated(f"{self.registry}: manifest {repository}:{ref}"):
            response = self.request("PUT", f"/v2/{repository}/manifests/{ref}", scope,
                                    headers={"Content-Type": media_type}, content=data,
                                    ok=(201,))
        return str(response.headers.get("docker-content-digest", ""))

    def tags(self, repository: str) -> list[str]:
        scope = f"repository:{repository}:pull"
        with _translated(f"{self.registry}: tags of {repository}"):
            body: dict[str, Any] = self.request("GET", f"/v2/{repository}/tags/list",
                                                scope).json()
        return list(body.get("tags") or [])

    def ping(self) -> None:
        """``/v2/``: checks reachability and, with credentials, that they are accepted."""
        with _translated(f"{self.registry}: ping"):
            self.request("GET", "/v2/", "registry:catalog:*")


def stream_open(response: httpx.Response) -> bool:
    return not response.is_closed and not hasattr(response, "_content")


_STREAM_CHUNK = 1 << 20


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


__all__ = ["DockyardError", "ManifestResponse", "RegistryClient", "is_insecure"]
