"""What containment costs: layer unpack and the door's check against tar, and cp.

Times (median of N runs, interleaved, as root):
  unpack   dockyard's layer unpack of a ~200 MB layer (many files, by descriptor)
           vs ``tar -x`` of the same tar
  check    the door's streaming check of that layer (what import/load/pull add)
           vs ``tar -t`` (reading the same headers)
  cp       ``dockyard cp`` of a directory of 1,000 files into a running container
           and back out, vs ``tar -c | tar -x`` of the same directory on the host
and prints each pair and its ratio (dockyard / peer; below 1.0 is faster).
Usage: python bench/containment.py [--runs 3] [--layer-mb 200] [--files 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dockyard.snapshots.unpack import apply_layer, check_layer
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import scratch_root


def _layer(path: Path, total: int, files: int) -> None:
    """A layer of ``files`` files in 20 directories adding up to ``total`` bytes."""
    each = max(1, total // files)
    with tarfile.open(path, mode="w") as archive:
        for i in range(files):
            data = os.urandom(each)
            info = tarfile.TarInfo(f"d{i % 20}/f{i}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _shell(command: str) -> None:
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)


def _unpack(layer: Path, target: Path) -> None:
    with open(layer, "rb") as handle:
        apply_layer(handle, str(target))


def _check(layer: Path) -> None:
    with open(layer, "rb") as handle:
        check_layer(io.BufferedReader(handle))  # the stream path, as a download sees it


def _report(name: str, ours: list[float], peer: list[float], peer_name: str) -> None:
    a, b = statistics.median(ours), statistics.median(peer)
    print(f"{name:8} dockyard {a * 1000:8.1f} ms   {peer_name:12} {b * 1000:8.1f} ms   "
          f"ratio {a / b:5.2f}")


def bench_unpack(work: Path, runs: int, layer_mb: int) -> None:
    layer = work / "layer.tar"
    _layer(layer, layer_mb << 20, 4000)
    ours, tar, checks, listing = [], [], [], []
    for run in range(runs):
        target = work / f"ours{run}"
        target.mkdir()
        ours.append(_timed(lambda: _unpack(layer, target)))  # noqa: B023 - called at once
        peer = work / f"tar{run}"
        peer.mkdir()
        tar.append(_timed(lambda: _shell(f"tar -x -f {layer} -C {peer}")))  # noqa: B023
        checks.append(_timed(lambda: _check(layer)))
        listing.append(_timed(lambda: _shell(f"tar -t -f {layer}")))
        shutil.rmtree(target)
        shutil.rmtree(peer)
    _report("unpack", ours, tar, "tar -x")
    _report("check", checks, listing, "tar -t")


def bench_cp(work: Path, runs: int, files: int) -> None:
    source = work / "many"
    source.mkdir()
    for i in range(files):
        (source / f"file{i}").write_bytes(os.urandom(1024))
    with scratch_root("dy-bench-cp-") as (_scratch, cli):
        cli("import", str(make_rootfs_tar(work)), "box:1")
        cli("run", "-d", "--name", "cp", "--network", "none", "box:1", "sleep", "600")
        into, out, peer = [], [], []
        for run in range(runs):
            inside = f"cp:/tmp/in{run}"
            into.append(_timed(lambda: cli("cp", str(source), inside)))  # noqa: B023
            target = work / f"out{run}"
            out.append(_timed(lambda: cli("cp", inside, str(target))))  # noqa: B023
            copy = work / f"peer{run}"
            copy.mkdir()
            command = f"tar -C {work} -c many | tar -C {copy} -x"
            peer.append(_timed(lambda: _shell(command)))  # noqa: B023
            shutil.rmtree(target)
            shutil.rmtree(copy)
    _report("cp in", into, peer, "tar | tar")
    _report("cp out", out, peer, "tar | tar")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layer-mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dy-bench-containment-"))
    try:
        bench_unpack(work, args.runs, args.layer_mb)
        bench_cp(work, args.runs, args.files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
