"""Kubernetes YAML: load + validate (``load``), lower pods to ``ContainerSpec``
(``lower``), apply and remove (``play``), keep desired state (``controller``, with
``rollout`` planning each round, ``prober`` running the probes that are not a
healthcheck, ``grpc_health`` their gRPC call, and ``proxy`` serving Services), read it
back (``status``, ``get``), turn containers and compose projects back into YAML
(``generate``), and send YAML to a cluster (``apply``)."""
