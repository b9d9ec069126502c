"""Where ``dockyard serve`` listens: TCP with mutual TLS (a CA, server and client
certificates made here), the refusals, and systemd socket activation (listening
descriptors handed over with LISTEN_PID/LISTEN_FDS)."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from dockyard.testing.cli import Dockyard, free_port, run_captured
from dockyard.testing.poll import until

pytestmark = pytest.mark.root


class Pki(NamedTuple):
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key: Any, issuer: tuple[str, Any] | None, *,
                 usage: str = "") -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(_name(issuer_name)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None),
                              critical=True))
    if usage == "server":
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif usage == "client":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: Any = None, key: Any = None) -> Path:
    from cryptography.hazmat.primitives import serialization

    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    path.chmod(0o600)
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    pytest.importorskip("cryptography")
    ca_key, rogue_ca_key = _key(), _key()
    ca = _certificate("dockyard test CA", ca_key, None)
    rogue_ca = _certificate("another CA", rogue_ca_key, None)
    keys = {name: _key() for name in ("server", "client", "rogue")}
    server = _certificate("localhost", keys["server"], ("dockyard test CA", ca_key),
                          usage="server")
    client = _certificate("client", keys["client"], ("dockyard test CA", ca_key),
                          usage="client")
    rogue = _certificate("rogue", keys["rogue"], ("another CA", rogue_ca_key),
                         usage="client")
    _ = rogue_ca
    d = tmp_path
    return Pki(_write(d / "ca.pem", ca), _write(d / "server.pem", server),
               _write(d / "server-key.pem", key=keys["server"]),
               _write(d / "cert.pem", client), _write(d / "key.pem", key=keys["client"]),
               _write(d / "rogue.pem", rogue), _write(d / "rogue-key.pem", key=keys["rogue"]))


class Served(NamedTuple):
    process: subprocess.Popen[bytes]
    log: Path


def _serve(box: Dockyard, tmp_path: Path, *args: str, pass_fds: tuple[int, ...] = (),
           prefix: tuple[str, ...] = (),
           ready: Any = None) -> Iterator[Served]:
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*prefix, *box.argv, "--root", str(box.root), "serve",
                                    *args], stdout=out, stderr=out, env=box.env,
                                   pass_fds=pass_fds)
    try:
        until("the server", lambda: "API listening" in log.read_text() or
              process.poll() is not None)
        assert process.poll() is None, log.read_text()
        yield Served(process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _client(pki: Pki, cert: Path, key: Path) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(cert), str(key))
    return httpx.Client(verify=context, timeout=30)


def test_mutual_tls_on_a_non_loopback_listener(box: Dockyard, tmp_path: Path,
                                               pki: Pki) -> None:
    port = free_port()
    # every address of the host (not loopback): only with mutual TLS; clients here
    # talk to 127.0.0.1 only
    for served in _serve(box, tmp_path, "--host", f"tcp://0.0.0.0:{port}", "--tlsverify",
                         "--tlscacert", str(pki.ca), "--tlscert", str(pki.server_cert),
                         "--tlskey", str(pki.server_key)):
        url = f"https://127.0.0.1:{port}"
        with _client(pki, pki.client_cert, pki.client_key) as client:
            answer = client.get(f"{url}/_ping")
            assert (answer.status_code, answer.text) == (200, "OK")
            assert client.get(f"{url}/containers/json").json() == []
        with _client(pki, pki.rogue_cert, pki.rogue_key) as rogue, \
                pytest.raises(httpx.HTTPError):
            rogue.get(f"{url}/_ping")  # a certificate from another CA
        no_cert = httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca)))
        with no_cert, pytest.raises(httpx.HTTPError):
            no_cert.get(f"{url}/_ping")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/_ping", timeout=10)  # plain HTTP
        if shutil.which("docker"):
            env = {**box.env, "DOCKER_CONFIG": str(tmp_path / "docker-cli")}
            tls = ["--tlsverify", "--tlscacert", str(pki.ca), "--tlscert",
                   str(pki.client_cert), "--tlskey", str(pki.client_key)]
            out = run_captured(["docker", *tls, "-H", f"tcp://127.0.0.1:{port}", "version",
                                "--format", "{{.Server.APIVersion}}"], env=env)
            assert out.stdout == "1.50\n"
            box("run", "-d", "--name", "over-tls", "box:1", "sleep", "60")
            ps = run_captured(["docker", *tls, "-H", f"tcp://127.0.0.1:{port}", "ps",
                               "--format", "{{.Names}}"], env=env)
            assert ps.stdout == "over-tls\n"
            box("rm", "-f", "over-tls")
            refused = run_captured(["docker", "--tlsverify", "--tlscacert", str(pki.ca),
                                    "--tlscert", str(pki.rogue_cert), "--tlskey",
                                    str(pki.rogue_key), "-H", f"tcp://127.0.0.1:{port}",
                                    "version"], env=env, check=False)
            assert refused.returncode != 0
        assert served.process.poll() is None


def _serve_fails(box: Dockyard, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([*box.argv, "--root", str(box.root), "serve", *args],
                            capture_output=True, text=True, timeout=60, env=env or box.env)
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_listener_refusals(box: Dockyard, pki: Pki) -> None:
    port = str(free_port())
    plain = _serve_fails(box, "--host", f"tcp://0.0.0.0:{port}")
    assert "non-loopback" in plain and "--tlsverify" in plain
    assert "--tlskey" in _serve_fails(box, "--host", f"tcp://0.0.0.0:{port}", "--tlsverify",
                                      "--tlscacert", str(pki.ca), "--tlscert",
                                      str(pki.server_cert))
    assert "--tlsverify" in _serve_fails(box, "--host", f"tcp://127.0.0.1:{port}",
                                         "--tlscert", str(pki.server_cert))
    mismatched = _serve_fails(box, "--host", f"tcp://0.0.0.0:{port}", "--tlsverify",
                              "--tlscacert", str(pki.ca), "--tlscert", str(pki.server_cert),
                              "--tlskey", str(pki.client_key))
    assert "--tlscert" in mismatched
    assert "LISTEN_PID" in _serve_fails(box, "--host", "fd://")
    with socket.create_server(("127.0.0.1", 0)) as listening:
        # not for this process: refused, not taken
        env = {**box.env, "LISTEN_PID": "1", "LISTEN_FDS": "1"}
        assert "LISTEN_PID" in _serve_fails(box, "--host", "fd://", env=env)
        assert listening.fileno() >= 0


def test_socket_activation(box: Dockyard, tmp_path: Path) -> None:
    """As systemd starts dockyard.service from dockyard.socket: listening sockets on
    descriptors 3 and up, LISTEN_FDS saying how many, LISTEN_PID naming the server."""
    path = tmp_path / "activated.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(path))
    unix.listen(16)
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    # a launcher puts the sockets on 3 and 4, names its own pid and becomes the server
    launcher = ("import fcntl, os, sys\n"
                "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 100) for fd in sys.argv[1:3]]\n"
                "for number, fd in enumerate(high, start=3):\n"
                "    os.dup2(fd, number)\n"
                "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2')\n"
                "os.execv(sys.argv[3], sys.argv[3:])\n")
    try:
        for served in _serve(box, tmp_path, "--host", "fd://",
                             pass_fds=(unix.fileno(), tcp.fileno()),
                             prefix=(sys.executable, "-c", launcher, str(unix.fileno()),
                                     str(tcp.fileno()))):
            unix.close()
            tcp.close()  # the server holds its own copies now
            transport = httpx.HTTPTransport(uds=str(path))
            with httpx.Client(transport=transport, base_url="http://docker") as client:
                assert client.get("/_ping").text == "OK"
                assert client.get("/containers/json").json() == []
            assert httpx.get(f"http://127.0.0.1:{port}/_ping", timeout=10).text == "OK"
            environ = (Path("/proc") / str(served.process.pid) / "environ").read_bytes()
            assert b"LISTEN_PID=" in environ  # as it was started (the process's own
            # copy is removed, so nothing it starts sees the variables)
    finally:
        unix.close()
        tcp.close()
