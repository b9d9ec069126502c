"""Kubernetes YAML: load + validate (``load``), lower pods to ``ContainerSpec``
(``lower``), apply and remove (``play``), keep desired state (``controller``), and
turn containers back into YAML (``generate``)."""
