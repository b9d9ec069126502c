"""What every kube test's root needs afterwards: each play's controller log shown (a
failing test's story), and everything the YAML files beside the root made taken down."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from dockyard.testing.cli import Dockyard


@contextlib.contextmanager
def kube_root(box: Dockyard) -> Iterator[Dockyard]:
    yield box
    for log in (box.root / "kube" / "controllers").glob("*.log"):
        print(f"--- {log.name}\n{log.read_text()}")
    for path in box.root.parent.glob("*.yaml"):
        box("kube", "down", str(path), check=False)


@pytest.fixture(name="dy")
def kube_dy(box: Dockyard) -> Iterator[Dockyard]:
    """``box`` for a kube test (import ``kube_dy``, use ``dy``): ``kube_root``'s
    teardown afterwards."""
    with kube_root(box) as root:
        yield root


def deployment(name: str, containers: str, *, port: int | None = 8080) -> str:
    """A one-replica Deployment ``name`` (label app=NAME) whose pod spec's containers
    are ``containers`` (YAML, indented for a pod spec's items: 6 spaces), and a
    Service ``name`` on port 80 to the pods' ``port`` (none without one)."""
    text = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
{containers.rstrip()}
"""
    if port is None:
        return text
    return text + f"""\
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: {port}}}]
"""
