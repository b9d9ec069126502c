"""Images through the CLI, and interoperability with tools nobody here wrote:
docker-registry (push/pull), skopeo and umoci (OCI layout), all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from dockyard.oci import mediatypes as mt
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
    # GNU tar (no member outside the folder): Debian's python3.11 has no tarfile filters
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(layout)], check=True)
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


def test_a_pull_runs_without_click(dy: Dockyard, rootfs_tar: Path, registry: Registry,
                                        tmp_path: Path) -> None:
    """``pull`` is the fast path's (click was ~17 ms of a pull's start-up, against
    skopeo's whole 33 ms): its flags read from the same row as click's, the image pulled
    and its reference printed as ``docker pull -q`` prints it, or its per-layer lines
    and Docker's status without ``-q``; ``--no-tls-verify`` still goes to click, which
    alone reads it."""
    name = f"{registry.address}/fast/box:v1"
    dy("import", str(rootfs_tar), name)
    dy("push", "-q", name)
    other = tmp_path / "other"
    result = dy("pull", "-q", name, root=other, env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "dockyard.cli.fast" in imported and "dockyard.registry.transfer" in imported
    assert sorted({"click", "dockyard.cli.main", "rich"} & imported) == []
    assert result.stdout == f"{name}\n"
    assert dy("images", "-q", root=other).stdout.strip() == \
        dy("images", "-q").stdout.strip().splitlines()[0]
    plain = dy("pull", name, root=tmp_path / "plain", env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in plain.stderr.splitlines()
                if line.startswith("import time:")}
    assert "dockyard.cli.progress" in imported  # (its per-layer lines, off a terminal)
    assert sorted({"click", "dockyard.cli.main", "rich"} & imported) == []
    assert ": Pull complete\n" in plain.stdout
    assert f"Status: Downloaded newer image for {name}\n" in plain.stdout
    again = dy("pull", "--no-tls-verify", name, root=other,
               env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert "import time:" in again.stderr and " click\n" in again.stderr
    assert again.stdout.rstrip().endswith(name)


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


class _Seen(NamedTuple):
    method: str
    path: str
    range: str | None
    status: int


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Forwards GET and HEAD to the registry, recording each request's Range header
    and the registry's answer (what a pull sends is what the test checks)."""

    protocol_version = "HTTP/1.1"
    server: _RecordingProxy

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._forward(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward(body=False)

    def _forward(self, *, body: bool) -> None:
        sent = {k: v for k, v in self.headers.items()
                if k.lower() in ("accept", "range", "authorization")}
        with httpx.stream(self.command, f"http://{self.server.upstream}{self.path}",
                          headers={**sent, "Accept-Encoding": "identity"}) as answer:
            self.server.seen.append(_Seen(self.command, self.path,
                                          self.headers.get("Range"), answer.status_code))
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in ("connection", "transfer-encoding", "date", "server"):
                    self.send_header(key, value)
            self.end_headers()
            if body:
                for chunk in answer.iter_raw():
                    self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _RecordingProxy(http.server.ThreadingHTTPServer):
    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.upstream = upstream
        self.seen: list[_Seen] = []


@contextlib.contextmanager
def recording_proxy(registry: Registry) -> Iterator[_RecordingProxy]:
    """A 127.0.0.1 HTTP proxy in front of ``registry`` (its address: ``.address``)."""
    proxy = _RecordingProxy(registry.address)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join()


def _manifest(registry: Registry, repository: str, ref: str) -> tuple[str, str, bytes]:
    """(digest, media type, bytes) of a manifest in ``registry``."""
    got = httpx.get(f"http://{registry.address}/v2/{repository}/manifests/{ref}",
                    headers={"Accept": f"{mt.OCI_MANIFEST}, {mt.DOCKER_MANIFEST}"})
    assert got.status_code == 200, got.text
    return (got.headers["docker-content-digest"],
            got.headers["content-type"].split(";")[0], got.content)


def test_interrupted_pull_resumes(dy: Dockyard, rootfs_tar: Path, registry: Registry,
                                  tmp_path: Path) -> None:
    """The partial download is continued, not thrown away: the registry is asked for
    the rest of the layer (a Range request answered 206), never for all of it."""
    name = f"{registry.address}/team/box:v1"
    dy("import", str(rootfs_tar), name)
    dy("push", name)
    _digest, _type, raw = _manifest(registry, "team/box", "v1")
    layer = json.loads(raw)["layers"][0]["digest"]  # as stored there (maybe compressed)
    data = _registry_blob(registry, layer).read_bytes()
    other = tmp_path / "other"
    ingest = other / "content" / "ingest"
    ingest.mkdir(parents=True)
    done = len(data) // 3
    (ingest / f"{layer.split(':')[1]}.partial").write_bytes(data[:done])
    with recording_proxy(registry) as proxy:
        address = f"127.0.0.1:{proxy.server_address[1]}"
        dy("pull", f"{address}/team/box:v1", root=other)
    fetched = [(seen.method, seen.range, seen.status) for seen in proxy.seen
               if seen.path == f"/v2/team/box/blobs/{layer}"]
    assert fetched == [("GET", f"bytes={done}-", 206)], proxy.seen
    assert dy("system", "check", root=other).returncode == 0
    assert not list(ingest.iterdir())
    assert dy("run", "--rm", "--network", "none", f"{address}/team/box:v1", "echo", "whole",
              root=other).stdout == "whole\n"


def _put_blob(registry: Registry, repository: str, data: bytes) -> str:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    started = httpx.post(f"http://{registry.address}/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = str(httpx.URL(f"http://{registry.address}/").join(started.headers["location"]))
    put = httpx.put(location + ("&" if "?" in location else "?") + f"digest={digest}",
                    content=data, headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 201, put.text
    return digest


def test_pull_of_an_index_picks_the_host_platform(dy: Dockyard, rootfs_tar: Path,
                                                  registry: Registry, tmp_path: Path) -> None:
    """An index of three different images, one per platform, the host's in the middle:
    taking the first or the last entry, or any but the host's, pulls the wrong one."""
    from dockyard.images.imagefile import host_platform

    name = f"{registry.address}/multi/box"
    dy("import", "-c", 'CMD ["echo", "host"]', str(rootfs_tar), f"{name}:host")
    dy("push", f"{name}:host")
    host_digest, media_type, raw = _manifest(registry, "multi/box", "host")
    manifest = json.loads(raw)
    config = json.loads(httpx.get(f"http://{registry.address}/v2/multi/box/blobs/"
                                  f"{manifest['config']['digest']}").content)
    host = host_platform()
    foreign = [arch for arch in ("s390x", "ppc64le", "riscv64")
               if arch != host["architecture"]][:2]
    entries = []
    for arch in foreign:  # the same layer, another config: another manifest
        data = json.dumps({**config, "architecture": arch,
                           "config": {**config["config"], "Cmd": ["echo", arch]}}).encode()
        other = json.dumps({**manifest, "config": {**manifest["config"], "size": len(data),
                                                   "digest": _put_blob(registry, "multi/box",
                                                                       data)}}).encode()
        put = httpx.put(f"http://{registry.address}/v2/multi/box/manifests/{arch}",
                        content=other, headers={"Content-Type": media_type})
        assert put.status_code == 201, put.text
        entries.append({"mediaType": media_type, "size": len(other),
                        "digest": put.headers["docker-content-digest"],
                        "platform": {"os": "linux", "architecture": arch}})
    assert len({host_digest, *(entry["digest"] for entry in entries)}) == 3
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        entries[0], {"mediaType": media_type, "digest": host_digest, "size": len(raw),
                     "platform": {"os": host["os"], "architecture": host["architecture"]}},
        entries[1]]}).encode()
    put = httpx.put(f"http://{registry.address}/v2/multi/box/manifests/multi", content=index,
                    headers={"Content-Type": mt.OCI_INDEX})
    assert put.status_code == 201, put.text
    other_root = tmp_path / "other"
    dy("pull", f"{name}:multi", root=other_root)
    doc = json.loads(dy("image", "inspect", f"{name}:multi", root=other_root).stdout)[0]
    assert doc["Descriptor"]["digest"] == host_digest
    assert doc["Architecture"] == host["architecture"]
    assert doc["Config"]["Cmd"] == ["echo", "host"]
    index_digest = put.headers["docker-content-digest"]
    assert doc["RepoDigests"] == [f"{name}@{index_digest}"]
    assert dy("run", "--rm", "--network", "none", f"{name}:multi",
              root=other_root).stdout == "host\n"


def test_system_check_reports_a_corrupt_blob(dy: Dockyard, rootfs_tar: Path,
                                             tmp_path: Path) -> None:
    image_id = dy("import", str(rootfs_tar), "box:1").stdout.strip()
    blob = tmp_path / "root" / "content" / "blobs" / "sha256" / image_id.split(":")[1]
    blob.write_bytes(blob.read_bytes() + b" ")
    result = dy("system", "check", check=False)
    assert result.returncode == 1
    assert f"blob {image_id}: content does not match its digest" in result.stdout


def _upload_image(registry: Registry, repository: str, tag: str, layers: list[bytes]) -> None:
    """An image put into the registry by hand (no dockyard on the way: its own door
    would refuse to store a hostile layer to push)."""
    base = f"http://{registry.address}/v2/{repository}"

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = httpx.post(f"{base}/blobs/uploads/")
        location = started.headers["Location"]
        location = location if location.startswith("http") else \
            f"http://{registry.address}{location}"
        joiner = "&" if "?" in location else "?"  # the upload's state is in its query
        httpx.put(f"{location}{joiner}digest={digest}", content=data).raise_for_status()
        return {"mediaType": mt.OCI_LAYER, "digest": digest, "size": len(data)}

    described = [blob(layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers",
        "diff_ids": [d["digest"] for d in described]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {**blob(config), "mediaType": mt.OCI_CONFIG}, "layers": described}
    httpx.put(f"{base}/manifests/{tag}", content=json.dumps(manifest).encode(),
              headers={"Content-Type": mt.OCI_MANIFEST}).raise_for_status()


def _tar(*members: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_pulled_hostile_layer_is_refused_at_the_door(dy: Dockyard, registry: Registry,
                                                       tmp_path: Path) -> None:
    """Each layer is checked as it arrives, beside the other downloads: a hostile layer
    among good ones fails the pull with the unpacker's words and leaves nothing."""
    good = [_tar((f"file{i}", bytes(200_000))) for i in range(3)]
    _upload_image(registry, "team/hostile", "v1",
                  [good[0], _tar(("../escape", b"x")), good[1], good[2]])
    root = tmp_path / "pulled"
    result = dy("pull", f"{registry.address}/team/hostile:v1", root=root, check=False)
    assert result.returncode != 0
    assert "'../escape' has a '..' component" in result.stderr, result.stderr
    assert dy("images", "-q", root=root).stdout.strip() == ""
    assert not [p for p in (root / "content").rglob("*") if p.is_file()]
    assert dy("system", "check", root=root).returncode == 0
    _upload_image(registry, "team/fine", "v1", good)  # and the same good layers pass
    dy("pull", f"{registry.address}/team/fine:v1", root=root)
