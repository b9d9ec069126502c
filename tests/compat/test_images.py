"""Images through the CLI, and interoperability with tools nobody here wrote:
docker-registry (push/pull), skopeo and umoci (OCI layout), all on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from dockyard.testing.cli import Dockyard
from tests.compat.conftest import Registry

pytestmark = pytest.mark.root


def test_import_list_tag_inspect_history_rmi(dy: Dockyard, rootfs_tar: Path) -> None:
    image_id = dy("import", "-c", 'CMD ["sh"]', str(rootfs_tar), "box:1").stdout.strip()
    assert image_id.startswith("sha256:")
    dy("tag", "box:1", "example.com/team/box:2")
    listing = dy("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    assert sorted(listing) == [f"box:1 {image_id[7:19]}", f"example.com/team/box:2 "
                               f"{image_id[7:19]}"]
    doc = json.loads(dy("image", "inspect", "box:1").stdout)[0]
    assert doc["Id"] == image_id
    assert doc["Config"]["Cmd"] == ["sh"]
    assert sorted(doc["RepoTags"]) == ["box:1", "example.com/team/box:2"]
    assert len(doc["RootFS"]["Layers"]) == 1
    assert "dockyard import" in dy("history", "box:1").stdout
    assert dy("images", "-q").stdout.strip() == image_id[7:19]
    assert dy("rmi", "box:1").stdout.strip() == "Untagged: box:1"
    out = dy("rmi", "example.com/team/box:2").stdout.splitlines()
    assert out == ["Untagged: example.com/team/box:2", f"Deleted: {image_id}"]
    assert dy("images", "-q").stdout.strip() == ""
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


def test_missing_image_uses_docker_wording(dy: Dockyard) -> None:
    result = dy("image", "inspect", "nope:1", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: No such image: nope:1"


def test_bad_tarball_leaves_store_consistent(dy: Dockyard, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive at all" * 100)
    result = dy("import", str(bad), "bad:1", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not a valid tar archive" in result.stderr
    assert dy("images", "-q").stdout.strip() == ""
    assert dy("system", "check").returncode == 0


def test_save_load_round_trip(dy: Dockyard, rootfs_tar: Path, tmp_path: Path) -> None:
    image_id = dy("import", str(rootfs_tar), "box:1").stdout.strip()
    for fmt in ("docker", "oci-archive"):
        archive = tmp_path / f"box-{fmt}.tar"
        dy("save", "--format", fmt, "-o", str(archive), "box:1")
        other = tmp_path / f"other-{fmt}"
        assert dy("load", "-i", str(archive), root=other).stdout.strip() == \
            "Loaded image: box:1"
        doc = json.loads(dy("image", "inspect", "box:1", root=other).stdout)[0]
        assert doc["Id"] == image_id


def test_load_refuses_archive_naming_a_missing_blob(dy: Dockyard, rootfs_tar: Path,
                                                    tmp_path: Path) -> None:
    dy("import", str(rootfs_tar), "box:1")
    good = tmp_path / "good.tar"
    dy("save", "--format", "oci-archive", "-o", str(good), "box:1")
    bad = tmp_path / "bad.tar"
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        members = src.getmembers()
        biggest = max(members, key=lambda m: m.size)
        for member in members:
            if member is not biggest:
                dst.addfile(member, src.extractfile(member))
    other = tmp_path / "other"
    result = dy("load", "-i", str(bad), root=other, check=False)
    assert result.returncode != 0
    assert "has no file 'blobs/sha256/" in result.stderr
    assert dy("images", "-q", root=other).stdout.strip() == ""


def test_oci_layout_read_by_skopeo_and_umoci(dy: Dockyard, rootfs_tar: Path,
                                             tmp_path: Path) -> None:
    if shutil.which("skopeo") is None or shutil.which("umoci") is None:
        pytest.skip("skopeo and umoci are needed (Debian packages skopeo, umoci)")
    dy("import", str(rootfs_tar), "box:1")
    archive = tmp_path / "box-oci.tar"
    dy("save", "--format", "oci-archive", "-o", str(archive), "box:1")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:1"],
                                     capture_output=True, text=True, check=True).stdout)
    doc = json.loads(dy("image", "inspect", "box:1").stdout)[0]
    assert info["Layers"] == doc["RootFS"]["Layers"]
    assert info["Architecture"] == doc["Architecture"]
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:1", str(bundle)], check=True,
                   capture_output=True)
    assert (bundle / "rootfs/bin/busybox").exists()


def test_push_pull_round_trip_keeps_digests(dy: Dockyard, rootfs_tar: Path,
                                            registry: Registry, tmp_path: Path) -> None:
    name = f"{registry.address}/team/box"
    dy("import", str(rootfs_tar), f"{name}:v1")
    pushed = dy("push", f"{name}:v1").stdout
    digest = pushed.strip().split("digest: ")[1].split()[0]
    dy("tag", f"{name}:v1", f"{name}:chunked")
    dy("push", "--chunk-size", "300000", f"{name}:chunked")
    tags = httpx.get(f"http://{registry.address}/v2/team/box/tags/list").json()["tags"]
    assert sorted(tags) == ["chunked", "v1"]
    dy("tag", f"{name}:v1", f"{registry.address}/elsewhere/box:v1")
    mounted = dy("push", f"{registry.address}/elsewhere/box:v1").stdout
    assert mounted.count("Mounted from team/box") == 1, mounted  # the layer, no upload
    other = tmp_path / "puller"
    dy("pull", f"{name}:v1", root=other)
    doc = json.loads(dy("image", "inspect", f"{name}:v1", root=other).stdout)[0]
    assert doc["RepoDigests"] == [f"{name}@{digest}"]
    original = json.loads(dy("image", "inspect", f"{name}:v1").stdout)[0]
    assert doc["Id"] == original["Id"]
    by_digest = tmp_path / "by-digest"
    dy("pull", f"{name}@{digest}", root=by_digest)
    assert dy("images", "-q", root=by_digest).stdout.strip() == original["Id"][7:19]
    assert dy("system", "check", root=other).returncode == 0


def test_skopeo_copy_then_dockyard_pull(dy: Dockyard, rootfs_tar: Path, registry: Registry,
                                        tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    dy("import", str(rootfs_tar), "box:1")
    archive = tmp_path / "box.tar"
    dy("save", "-o", str(archive), "box:1")
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{archive}",
                    f"docker://{registry.address}/skopeo/box:v1"], check=True,
                   capture_output=True)
    other = tmp_path / "other"
    dy("pull", f"{registry.address}/skopeo/box:v1", root=other)
    listed = dy("images", "--format", "{{.Repository}}:{{.Tag}}", root=other).stdout.strip()
    assert listed == f"{registry.address}/skopeo/box:v1"


def test_basic_auth_login_push_pull(dy: Dockyard, rootfs_tar: Path,
                                    auth_registry: Registry, tmp_path: Path) -> None:
    name = f"{auth_registry.address}/private/box:v1"
    dy("import", str(rootfs_tar), name)
    refused = dy("push", name, check=False)
    assert refused.returncode != 0 and "dockyard login" in refused.stderr
    wrong = dy("login", "-u", "alice", "--password-stdin", auth_registry.address,
               input=b"wrong\n", check=False)
    assert wrong.returncode != 0
    dy("login", "-u", "alice", "--password-stdin", auth_registry.address, input=b"s3cret\n")
    config = json.loads((Path(dy.env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert auth_registry.address in config["auths"]
    dy("push", name)
    dy("pull", name, root=tmp_path / "other")
    dy("logout", auth_registry.address)
    assert dy("pull", name, root=tmp_path / "third", check=False).returncode != 0


def _pushed_layer(registry: Registry, repository: str, tag: str) -> str:
    """The digest of the (gzip) layer blob a push put in the registry."""
    manifest = httpx.get(f"http://{registry.address}/v2/{repository}/manifests/{tag}",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    digest: str = manifest.json()["layers"][0]["digest"]
    return digest


def _registry_blob(registry: Registry, digest: str) -> Path:
    hexpart = digest.split(":")[1]
    return (registry.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart /
            "data")


def test_corrupt_and_truncated_blobs_are_refused(dy: Dockyard, rootfs_tar: Path,
                                                 registry: Registry, tmp_path: Path) -> None:
    name = f"{registry.address}/team/box:v1"
    dy("import", str(rootfs_tar), name)
    dy("push", name)
    blob = _registry_blob(registry, _pushed_layer(registry, "team/box", "v1"))
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    other = tmp_path / "other"
    result = dy("pull", name, root=other, check=False)
    assert result.returncode != 0 and "digest mismatch" in result.stderr
    assert dy("images", "-q", root=other).stdout.strip() == ""
    assert dy("system", "check", root=other).returncode == 0
    blob.write_bytes(original[: len(original) // 2])
    result = dy("pull", name, root=other, check=False)
    assert result.returncode != 0
    assert dy("images", "-q", root=other).stdout.strip() == ""


def test_interrupted_pull_resumes(dy: Dockyard, rootfs_tar: Path, registry: Registry,
                                  tmp_path: Path) -> None:
    name = f"{registry.address}/team/box:v1"
    dy("import", str(rootfs_tar), name)
    dy("push", name)
    layer = _pushed_layer(registry, "team/box", "v1")
    data = _registry_blob(registry, layer).read_bytes()
    other = tmp_path / "other"
    ingest = other / "content" / "ingest"
    ingest.mkdir(parents=True)
    (ingest / f"{layer.split(':')[1]}.partial").write_bytes(data[: len(data) // 3])
    dy("pull", name, root=other)
    assert dy("system", "check", root=other).returncode == 0
    assert not list(ingest.iterdir())


def test_pull_of_an_index_picks_the_host_platform(dy: Dockyard, rootfs_tar: Path,
                                                  registry: Registry, tmp_path: Path) -> None:
    from dockyard.images.imagefile import host_platform
    from dockyard.oci import mediatypes as mt

    name = f"{registry.address}/multi/box"
    dy("import", str(rootfs_tar), f"{name}:amd")
    digest = dy("push", f"{name}:amd").stdout.strip().split("digest: ")[1].split()[0]
    manifest = httpx.get(f"http://{registry.address}/v2/multi/box/manifests/{digest}",
                         headers={"Accept": mt.OCI_MANIFEST}).content
    host = host_platform()
    other = {"os": "linux", "architecture": "s390x" if host["architecture"] != "s390x"
             else "riscv64"}
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(manifest),
         "platform": other},
        {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(manifest),
         "platform": host}]}).encode()
    put = httpx.put(f"http://{registry.address}/v2/multi/box/manifests/multi", content=index,
                    headers={"Content-Type": mt.OCI_INDEX})
    assert put.status_code == 201, put.text
    other_root = tmp_path / "other"
    dy("pull", f"{name}:multi", root=other_root)
    doc = json.loads(dy("image", "inspect", f"{name}:multi", root=other_root).stdout)[0]
    assert doc["Descriptor"]["digest"] == digest
    assert doc["Architecture"] == host["architecture"]
    index_digest = put.headers["docker-content-digest"]
    assert doc["RepoDigests"] == [f"{name}@{index_digest}"]


def test_system_check_reports_a_corrupt_blob(dy: Dockyard, rootfs_tar: Path,
                                             tmp_path: Path) -> None:
    image_id = dy("import", str(rootfs_tar), "box:1").stdout.strip()
    blob = tmp_path / "root" / "content" / "blobs" / "sha256" / image_id.split(":")[1]
    blob.write_bytes(blob.read_bytes() + b" ")
    result = dy("system", "check", check=False)
    assert result.returncode == 1
    assert f"blob {image_id}: content does not match its digest" in result.stdout
