"""``build --sbom`` then ``push``: the SBOM reaches a real docker-registry (2.8, which
has no referrers API) through OCI distribution 1.1's fallback tag; digest-pinned
references (``FROM name@sha256:…``, ``run name@sha256:…``) through the same registry."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from dockyard.images.sbom.formats import validate_spdx_json
from dockyard.testing.cli import Dockyard
from tests.compat.conftest import Registry

pytestmark = pytest.mark.root

ACCEPT = ", ".join(["application/vnd.oci.image.index.v1+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])


def _get(registry: Registry, path: str) -> httpx.Response:
    response = httpx.get(f"http://{registry.address}/v2/{path}", headers={"Accept": ACCEPT})
    response.raise_for_status()
    return response


def test_push_carries_the_sbom_as_a_referrer(box: Dockyard, registry: Registry,
                                             tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "status").write_text("Package: libfoo1\nStatus: install ok installed\n"
                                    "Version: 1.0-1\n")
    (context / "Dockerfile").write_text("FROM box:1\nCOPY status /var/lib/dpkg/status\n")
    name = f"{registry.address}/team/app:1"
    box("build", "--sbom", "-t", name, str(context))
    pushed = box("push", name).stdout.split("digest: ")[1].split()[0]
    # no referrers API on distribution 2.8: the index under the fallback tag lists it
    index = _get(registry, f"team/app/manifests/{pushed.replace(':', '-')}").json()
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["artifactType"] == "application/spdx+json"
    artifact = _get(registry, f"team/app/manifests/{entry['digest']}").json()
    assert artifact["subject"]["digest"] == pushed  # the manifest as pushed (gzip layers)
    assert artifact["artifactType"] == "application/spdx+json"
    document = _get(registry, f"team/app/blobs/{artifact['layers'][0]['digest']}").text
    assert validate_spdx_json(document) == [] and "libfoo1" in document
    # pushing again keeps one entry, and a second tag of the same image shares it
    box("push", name)
    box("tag", name, f"{registry.address}/team/app:2")
    box("push", f"{registry.address}/team/app:2")
    again = _get(registry, f"team/app/manifests/{pushed.replace(':', '-')}").json()
    assert [e["digest"] for e in again["manifests"]] == [entry["digest"]]
    # and the client reads them back (the fallback, as the registry has no API)
    from dockyard.registry.client import RegistryClient
    from dockyard.registry.referrers import list_referrers, supports_referrers_api

    client = RegistryClient(registry.address)
    try:
        assert not supports_referrers_api(client, "team/app", pushed)
        assert list_referrers(client, "team/app", pushed) == again["manifests"]
        assert list_referrers(client, "team/app", "sha256:" + "0" * 64) == []
    finally:
        client.close()


def test_digest_references_pull_build_and_run(box: Dockyard, registry: Registry,
                                              tmp_path: Path) -> None:
    name = f"{registry.address}/base/box:1"
    box("tag", "box:1", name)
    digest = box("push", name).stdout.split("digest: ")[1].split()[0]
    fresh = Dockyard(tmp_path / "fresh-root", tmp_path / "docker-config")
    try:
        pinned = f"{registry.address}/base/box@{digest}"
        fresh("pull", pinned)  # `run` does not pull (in any form): pull by digest first
        assert fresh("run", "--rm", pinned, "echo", "by-digest").stdout.strip() == "by-digest"
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {registry.address}/base/box:1@{digest}\n"
                                            "RUN echo built > /built\n")
        fresh("rmi", pinned)  # FROM pulls what is missing, by digest
        fresh("build", "--pin", "-t", "child:1", str(context))  # already pinned: unchanged
        assert (context / "Dockerfile").read_text().startswith(
            f"FROM {registry.address}/base/box:1@{digest}\n")
        assert fresh("run", "--rm", "child:1", "cat", "/built").stdout.strip() == "built"
        # a tag resolved by --pin becomes the registry's digest, not a local one
        (context / "Dockerfile").write_text(f"FROM {name}\n")
        fresh("pull", name)
        fresh("build", "--pin", str(context))
        assert (context / "Dockerfile").read_text() == f"FROM {name}@{digest}\n"
        wrong = fresh("pull", f"{registry.address}/base/box@sha256:{'1' * 64}", check=False)
        assert wrong.returncode == 1
        inspect = json.loads(fresh("image", "inspect", pinned).stdout)[0]
        assert pinned in inspect["RepoDigests"]
    finally:
        fresh.remove_everything()
