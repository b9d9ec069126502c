"""A gRPC probe: one ``grpc.health.v1.Health/Check`` call over plaintext HTTP/2, as
the kubelet's grpc probe makes it (``grpc: {port, service}``), passing only when the
server answers ``SERVING``.

HTTP/2 framing, HPACK and flow control are the ``h2`` library's; the two messages
are so small (a string field in, an enum field out) that they are encoded here by
hand rather than through generated protobuf code:

    message HealthCheckRequest { string service = 1; }
    message HealthCheckResponse { ServingStatus status = 1; }  // SERVING = 1
"""

from __future__ import annotations

import socket
import time

PATH = "/grpc.health.v1.Health/Check"
SERVING = 1


def request(service: str) -> bytes:
    """The length-prefixed gRPC message of a HealthCheckRequest."""
    raw = service.encode()
    body = b"\x0a" + _varint(len(raw)) + raw if raw else b""  # proto3: "" is left out
    return b"\x00" + len(body).to_bytes(4, "big") + body


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def status_of(message: bytes) -> int:
    """The ``status`` of a length-prefixed HealthCheckResponse (0, UNKNOWN, when it is
    missing or the message is not one)."""
    if len(message) < 5 or message[0] != 0:  # compressed: never asked for
        return 0
    body = message[5:5 + int.from_bytes(message[1:5], "big")]
    index, status = 0, 0
    while index < len(body):
        key, index = _read_varint(body, index)
        if key == 0x08:  # field 1, varint
            status, index = _read_varint(body, index)
        elif key & 7 == 0:
            _, index = _read_varint(body, index)
        elif key & 7 == 2:
            length, index = _read_varint(body, index)
            index += length
        else:  # no other wire type belongs in this message
            return 0
    return status


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while index < len(data):
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index
    return 0, len(data) + 1


def serving(address: str, port: int, service: str, timeout: float) -> bool:
    """The server at ``address:port`` says ``service`` ("" for the server as a whole)
    is SERVING, within ``timeout`` seconds in all."""
    import h2.exceptions

    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            return _call(sock, f"{address}:{port}", service, deadline)
    except (OSError, h2.exceptions.H2Error):  # refused, timed out, or not HTTP/2
        return False


def _call(sock: socket.socket, authority: str, service: str, deadline: float) -> bool:
    import h2.config
    import h2.connection
    import h2.events

    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    millis = max(1, int((deadline - time.monotonic()) * 1000))
    connection.send_headers(stream, [
        (":method", "POST"), (":scheme", "http"), (":path", PATH), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers"),
        ("grpc-timeout", f"{millis}m"), ("user-agent", "dockyard-kube-probe")])
    connection.send_data(stream, request(service), end_stream=True)
    sock.sendall(connection.data_to_send())
    headers: dict[bytes, bytes] = {}
    body = b""
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            return False
        for event in connection.receive_data(data):
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                headers.update((bytes(k), bytes(v)) for k, v in event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamEnded):
                return (headers.get(b":status") == b"200" and headers.get(b"grpc-status") == b"0"
                        and status_of(body) == SERVING)
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                return False
        sock.sendall(connection.data_to_send())
