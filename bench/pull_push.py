"""Registry transfer and unpack speed: dockyard against skopeo and tar, side by side.

Makes a ~200 MB image of 5 incompressible layers (with ``--real``: of 4 layers that
are tars of this host's /usr/lib/python3, /usr/lib/python3.11, /usr/share/perl and
/usr/share/doc, ~250 MB of files that compress as a real image's do), starts Debian's
docker-registry on 127.0.0.1, then times (median of N runs each, interleaved):
  push  dockyard push          vs skopeo copy oci:dir -> docker://
  pull  dockyard pull (fresh)  vs skopeo copy docker:// -> oci:dir
  unpack dockyard's layer unpack of the 5 layers vs tar -x of the same tars
and prints each pair and its ratio (dockyard / peer; below 1.0 is faster).
Usage (as root): python bench/pull_push.py [--runs 3] [--layer-mb 40] [--real]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from dockyard.snapshots.unpack import apply_layer
from dockyard.testing.registry import local_registry


def _layer(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for i in range(4):
            data = os.urandom(size // 4)
            info = tarfile.TarInfo(f"data/file-{uuid.uuid4().hex[:8]}-{i}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


HOST_DIRS = ("/usr/lib/python3", "/usr/lib/python3.11", "/usr/share/perl", "/usr/share/doc")


def _host_layer(directory: str) -> bytes:
    """A tar of ``directory`` (regular files, directories and symlinks) as a layer."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for top, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(top, name)
                info = archive.gettarinfo(path, arcname=path.lstrip("/"))
                if info.isfile():
                    with open(path, "rb") as handle:
                        archive.addfile(info, handle)
                elif info.isdir() or info.issym():
                    archive.addfile(info)
    return buffer.getvalue()


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layer-mb", type=int, default=40)
    parser.add_argument("--real", action="store_true",
                        help="layers of this host's files (compressible) instead of "
                             "random bytes")
    args = parser.parse_args()
    for tool in ("docker-registry", "skopeo", "tar"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 1
    dockyard = str(Path(sys.executable).with_name("dockyard"))
    work = Path(tempfile.mkdtemp(prefix="dy-bench-"))
    try:
        with local_registry(work) as registry:
            return _bench(args, work, int(registry.address.rsplit(":", 1)[1]), dockyard)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(args: argparse.Namespace, work: Path, port: int, dockyard: str) -> int:
    size = args.layer_mb * 1024 * 1024
    layers = [_host_layer(d) for d in HOST_DIRS if os.path.isdir(d)] if args.real else \
        [_layer(size) for _ in range(5)]
    layer_dir = work / "layers"
    layer_dir.mkdir()
    for i, data in enumerate(layers):
        (layer_dir / f"{i}.tar").write_bytes(data)
    # one image: 5 layers, built by loading a docker-archive made here
    archive = work / "image.tar"
    _make_docker_archive(archive, layers)
    root = work / "root"
    _run(dockyard, "--root", str(root), "load", "-i", str(archive))
    name = f"127.0.0.1:{port}/bench/img"
    _run(dockyard, "--root", str(root), "tag", "bench:1", f"{name}:src")
    _run(dockyard, "--root", str(root), "save", "--format", "oci-archive", "-o",
         str(work / "oci.tar"), "bench:1")
    (work / "oci").mkdir()
    _run("tar", "-C", str(work / "oci"), "-xf", str(work / "oci.tar"))
    total_mb = sum(len(x) for x in layers) / 1e6
    results: dict[str, tuple[list[float], list[float]]] = {}

    def measure(label: str, ours: Callable[[], None], theirs: Callable[[], None]) -> None:
        mine, peer = [], []
        for _ in range(args.runs):
            mine.append(_timed(ours))
            peer.append(_timed(theirs))
        results[label] = (mine, peer)

    cold_roots: list[Path] = []

    def prepare_cold_root() -> Path:
        """A root that has never pushed the image (no known blob locations to mount from)."""
        fresh = work / f"cold-{uuid.uuid4().hex[:6]}"
        _run(dockyard, "--root", str(fresh), "load", "-i", str(archive))
        return fresh

    for _ in range(args.runs):
        cold_roots.append(prepare_cold_root())

    def push_ours() -> None:
        repo = f"127.0.0.1:{port}/bench/ours-{uuid.uuid4().hex[:6]}"
        cold = cold_roots.pop()
        _run(dockyard, "--root", str(cold), "tag", "bench:1", f"{repo}:1")
        _run(dockyard, "--root", str(cold), "push", "-q", f"{repo}:1")

    def push_skopeo() -> None:
        repo = f"127.0.0.1:{port}/bench/skopeo-{uuid.uuid4().hex[:6]}"
        # skopeo (as root) remembers where blobs live in /var/lib/containers/cache and
        # would mount them instead of uploading: give it an empty cache, privately
        script = ("mkdir -p /var/lib/containers/cache && mount -t tmpfs none "
                  "/var/lib/containers/cache && exec skopeo copy --dest-tls-verify=false "
                  f"oci:{work / 'oci'}:1 docker://{repo}:1")
        _run("unshare", "--mount", "--propagation", "private", "sh", "-c", script)

    measure("push", push_ours, push_skopeo)
    _run(dockyard, "--root", str(root), "push", "-q", f"{name}:src")

    def pull_ours() -> None:
        fresh = work / f"pull-{uuid.uuid4().hex[:6]}"
        _run(dockyard, "--root", str(fresh), "pull", "-q", f"{name}:src")
        shutil.rmtree(fresh)

    def pull_skopeo() -> None:
        fresh = work / f"skopeo-{uuid.uuid4().hex[:6]}"
        _run("skopeo", "copy", "--src-tls-verify=false", f"docker://{name}:src",
             f"oci:{fresh}:1")
        shutil.rmtree(fresh)

    measure("pull", pull_ours, pull_skopeo)

    def unpack_ours() -> None:
        target = work / f"unpack-{uuid.uuid4().hex[:6]}"
        for i in range(len(layers)):
            (target / str(i)).mkdir(parents=True)
            with open(layer_dir / f"{i}.tar", "rb") as stream:
                apply_layer(stream, str(target / str(i)))
        shutil.rmtree(target)

    def unpack_tar() -> None:
        target = work / f"tar-{uuid.uuid4().hex[:6]}"
        for i in range(len(layers)):
            (target / str(i)).mkdir(parents=True)
            _run("tar", "-C", str(target / str(i)), "-xf", str(layer_dir / f"{i}.tar"))
        shutil.rmtree(target)

    measure("unpack", unpack_ours, unpack_tar)
    print(f"image: {len(layers)} layers of {'host files' if args.real else 'random bytes'}, "
          f"{total_mb:.0f} MB; medians of {args.runs} runs")
    for label, (mine, peer) in results.items():
        a, b = statistics.median(mine), statistics.median(peer)
        peer_name = "tar -x" if label == "unpack" else "skopeo"
        print(f"{label:7} dockyard {a:6.2f} s ({total_mb / a:6.1f} MB/s)   {peer_name} "
              f"{b:6.2f} s ({total_mb / b:6.1f} MB/s)   ratio {a / b:.2f}")
    return 0


def _make_docker_archive(path: Path, layers: list[bytes]) -> None:
    import hashlib
    import json

    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": ["bench:1"],
                 "Layers": [f"{d[7:]}/layer.tar" for d in diff_ids]}]
    with tarfile.open(path, "w") as archive:
        for name, data in [(config_name, config),
                           ("manifest.json", json.dumps(manifest).encode()),
                           *[(f"{d[7:]}/layer.tar", x) for d, x in zip(diff_ids, layers,
                                                                       strict=True)]]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    sys.exit(main())
