"""Where ``dockyard serve`` listens, and the rules for it.

- ``unix:///PATH``: a socket born 0660 (group ``dockyard`` when there is one).
- ``tcp://HOST:PORT``: on a loopback address as it is; on any other address only
  with mutual TLS (``--tlsverify`` with a CA, a certificate and its key: a client
  needs a certificate that CA signed), since whoever reaches the API is root here.
  With ``--tlsverify`` every TCP listener speaks TLS.
- ``fd://``: the listening sockets systemd hands over (socket activation:
  ``LISTEN_PID``/``LISTEN_FDS``, descriptors from 3); the same rules for TCP ones.
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import socket
import ssl
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from aiohttp import web

from dockyard.errors import InvalidArgument

SD_LISTEN_FDS_START = 3


class Tls(NamedTuple):
    """``--tlsverify``'s files: the CA client certificates must chain to, ours, our key."""

    ca: str
    cert: str
    key: str


class Listener(NamedTuple):
    kind: str  # unix | tcp | fd
    path: str = ""
    host: str = ""
    port: int = 0


def _refuse_plain(where: str) -> InvalidArgument:
    return InvalidArgument(
        f"--host {where}: refusing to serve the API on a non-loopback address without "
        "mutual TLS (anyone who can reach it would be root on this host): add --tlsverify "
        "--tlscacert CA --tlscert CERT --tlskey KEY, or listen on 127.0.0.1 or a unix socket")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_host(text: str, tls: Tls | None = None) -> Listener:
    """``unix:///path``, ``tcp://HOST:PORT`` (non-loopback only with ``tls``), ``fd://``."""
    parts = urlsplit(text)
    if parts.scheme == "unix":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path.startswith("/"):
            raise InvalidArgument(f"--host {text}: want unix:///absolute/path")
        return Listener("unix", path=path)
    if parts.scheme == "tcp":
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise InvalidArgument(f"--host {text}: invalid port") from None
        if not host or port is None:
            raise InvalidArgument(f"--host {text}: want tcp://127.0.0.1:PORT")
        if not _loopback(host) and tls is None:
            raise _refuse_plain(text)
        return Listener("tcp", host=host, port=port)
    if parts.scheme == "fd":
        if parts.netloc or parts.path:
            raise InvalidArgument(f"--host {text}: want fd:// (every socket systemd hands "
                                  "over)")
        return Listener("fd")
    raise InvalidArgument(f"--host {text}: want unix:///PATH, tcp://HOST:PORT or fd://")


def tls_context(tls: Tls) -> ssl.SSLContext:
    """A server context that asks every client for a certificate signed by ``tls.ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"--tlscert {tls.cert} / --tlskey {tls.key}: {exc}") from None
    try:
        context.load_verify_locations(tls.ca)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"--tlscacert {tls.ca}: {exc}") from None
    return context


def inherited_sockets(tls: Tls | None) -> list[socket.socket]:
    """The listening sockets of socket activation (``sd_listen_fds``), taken once: the
    variables are removed and the descriptors closed on exec, so nothing the server
    starts inherits them."""
    try:
        wanted_pid = int(os.environ.get("LISTEN_PID", "0"))
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        raise InvalidArgument("fd://: LISTEN_PID and LISTEN_FDS must be numbers") from None
    if wanted_pid != os.getpid() or count <= 0:
        raise InvalidArgument("--host fd://: no sockets were handed over (LISTEN_PID/"
                              "LISTEN_FDS are not for this process: start it from "
                              "contrib/systemd/dockyard.socket)")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM or \
                not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise InvalidArgument(f"fd://: descriptor {fd} is not a listening stream socket")
        if sock.family in (socket.AF_INET, socket.AF_INET6) and tls is None and \
                not _loopback(sock.getsockname()[0]):
            raise _refuse_plain(f"fd:// (descriptor {fd}, {sock.getsockname()[0]})")
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


async def unix_site(runner: web.AppRunner, path: str) -> web.UnixSite:
    socket_path = Path(path)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.is_socket():
        socket_path.unlink()  # a previous server's (a live one would still answer)
    old = os.umask(0o117)  # born 0660: never a moment open to everyone
    try:
        site = web.UnixSite(runner, path)
        await site.start()
    finally:
        os.umask(old)
    with contextlib.suppress(KeyError):
        os.chown(path, 0, grp.getgrnam("dockyard").gr_gid)
    os.chmod(path, 0o660)
    return site


async def open_sites(runner: web.AppRunner, listeners: list[Listener],
                     tls: Tls | None) -> list[str]:
    """Start every listener; returns the unix socket paths made (removed at the end)."""
    context = tls_context(tls) if tls is not None else None
    paths = []
    for listener in listeners:
        if listener.kind == "unix":
            await unix_site(runner, listener.path)
            paths.append(listener.path)
        elif listener.kind == "tcp":
            await web.TCPSite(runner, listener.host, listener.port,
                              ssl_context=context).start()
        else:
            for sock in inherited_sockets(tls):
                tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
                await web.SockSite(runner, sock, ssl_context=context if tcp else None).start()
    return paths
