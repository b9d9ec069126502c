"""Kubernetes YAML: load + validate (``load``), lower pods to ``ContainerSpec``
(``lower``), apply and remove (``play``), keep desired state (``controller``, with
``rollout`` planning each round, ``prober`` running network probes and ``proxy``
serving Services), read it back (``status``, ``get``), turn containers and compose
projects back into YAML (``generate``), and send YAML to a cluster (``apply``)."""
