"""The grpc probe's two messages, held to protobuf's own encoding of grpc's health
messages (the ``grpc_health.v1`` module that grpcio-health-checking ships)."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from dockyard.kube.grpc_health import SERVING, request, status_of


@pytest.mark.parametrize("service", ["", "ready", "x" * 300])
def test_the_request_is_protobufs_encoding(service: str) -> None:
    body = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    assert request(service) == b"\x00" + len(body).to_bytes(4, "big") + body


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_the_status_is_read_from_protobufs_encoding(status: int) -> None:
    body = health_pb2.HealthCheckResponse(status=status).SerializeToString()
    assert status_of(b"\x00" + len(body).to_bytes(4, "big") + body) == status
    assert health_pb2.HealthCheckResponse.ServingStatus.Value("SERVING") == SERVING


def test_a_compressed_or_broken_answer_is_not_serving() -> None:
    assert status_of(b"\x01\x00\x00\x00\x02\x08\x01") == 0  # compressed: never asked for
    assert status_of(b"\x00\x00\x00") == 0
    assert status_of(b"\x00\x00\x00\x00\x02\x0d\x01") == 0  # a 32-bit field: not this message
