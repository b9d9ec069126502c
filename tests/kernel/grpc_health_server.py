"""gRPC's own health server (``grpcio``'s ``grpc_health.v1.health.HealthServicer``) on
``0.0.0.0:PORT``, for the kube grpc-probe test, which runs it inside a pod's network
namespace (``nsenter -n``).  It prints ``listening`` once it serves; then each line
``SERVICE STATUS`` on stdin (``-`` for the server as a whole, STATUS a
``ServingStatus`` name) sets that status and is answered with ``set``."""

from __future__ import annotations

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    print("listening", flush=True)
    for line in sys.stdin:
        service, status = line.split()
        servicer.set("" if service == "-" else service,
                     health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        print("set", flush=True)
    server.stop(0)


if __name__ == "__main__":
    main(int(sys.argv[1]))
