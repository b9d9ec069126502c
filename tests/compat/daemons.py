"""The private dockerd the compatibility tests compare against: skipped where dockerd
or a static busybox (the images both engines load) is missing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from dockyard.testing import dockerd
from dockyard.testing.bundles import busybox_path


@contextlib.contextmanager
def busybox_dockerd(*extra_args: str) -> Iterator[dockerd.Daemon]:
    if not dockerd.available():
        pytest.skip("dockerd is not installed (Debian package docker.io)")
    if busybox_path() is None:
        pytest.skip("needs a static busybox (apt-get install busybox-static)")
    with dockerd.running_dockerd("--storage-driver=vfs", *extra_args) as running:
        yield running
