"""``dockyard sbom`` and ``dockyard scan`` on real images (busybox-static rootfs with
planted package databases and hardening mistakes), ``build --sbom`` and ``build --pin``."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from dockyard.images.sbom.formats import validate_cyclonedx, validate_spdx_json
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard
from tests.unit.test_scan_rules import fake_go_binary, rpm_blob

pytestmark = pytest.mark.root

PRIVATE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
               "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
               "-----END OPENSSH PRIVATE KEY-----\n")
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"

DPKG_STATUS = """\
Package: libfoo1
Status: install ok installed
Architecture: amd64
Source: foo (1.2.3-1)
Version: 1.2.3-1
Description: a library
 with a continuation line

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u1

Package: gone
Status: deinstall ok config-files
Version: 9.9
"""
APK_INSTALLED = """\
C:Q1abc=
P:musl
V:1.2.4-r1
A:x86_64
L:MIT
o:musl

P:busybox-extras
V:1.36.1-r5
A:x86_64
"""
PY_METADATA = "Metadata-Version: 2.1\nName: Requests\nVersion: 2.25.0\nLicense: Apache 2.0\n\n" \
              "Requests is an HTTP library.\nName: not-this\n"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _plant_packages(rootfs: Path) -> None:
    _write(rootfs / "etc/os-release", 'PRETTY_NAME="Debian 12"\nID=debian\nVERSION_ID="12"\n')
    _write(rootfs / "var/lib/dpkg/status", DPKG_STATUS)
    _write(rootfs / "var/lib/dpkg/status.d/tzdata",
           "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n")
    _write(rootfs / "lib/apk/db/installed", APK_INSTALLED)
    _write(rootfs / "usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA",
           PY_METADATA)
    _write(rootfs / "app/node_modules/lodash/package.json",
           json.dumps({"name": "lodash", "version": "4.17.20", "license": "MIT"}))
    _write(rootfs / "app/node_modules/@acme/util/package.json",
           json.dumps({"name": "@acme/util", "version": "1.0.0-beta.2"}))
    _write(rootfs / "app/package.json", json.dumps({"name": "app", "version": "1.0.0"}))
    (rootfs / "var/lib/rpm").mkdir(parents=True)
    db = sqlite3.connect(rootfs / "var/lib/rpm/rpmdb.sqlite")
    db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB)")
    db.execute("INSERT INTO Packages (blob) VALUES (?)",
               (rpm_blob("bash", "5.2.15", "3.fc39", "GPL-3.0-or-later", "x86_64"),))
    db.commit()
    db.close()
    (rootfs / "var/lib/rpm/Packages").write_bytes(b"\0" * 512)  # an old Berkeley DB
    server = rootfs / "usr/local/bin/server"
    server.parent.mkdir(parents=True, exist_ok=True)
    server.write_bytes(fake_go_binary("path\texample.com/server\nmod\texample.com/server\t"
                                      "v1.0.0\th1:a=\ndep\tgolang.org/x/net\tv0.17.0\th1:b=\n"))
    server.chmod(0o755)


def _plant_mistakes(rootfs: Path) -> None:
    _write(rootfs / "usr/local/bin/helper", "#!/bin/sh\n", 0o4755)
    (rootfs / "var/drop").mkdir(parents=True)
    (rootfs / "var/drop").chmod(0o777)
    (rootfs / "var/shared").mkdir(parents=True)
    (rootfs / "var/shared").chmod(0o1777)  # sticky: fine
    _write(rootfs / "app/.env", "DATABASE_URL=postgres://u:p@db/app\n")
    _write(rootfs / "root/.ssh/id_rsa", PRIVATE_KEY, 0o600)


@pytest.fixture
def planted(box: Dockyard, tmp_path: Path) -> Dockyard:
    """``planted:1``: packages of every kind, and the hardening mistakes."""
    def prepare(rootfs: Path) -> None:
        _plant_packages(rootfs)
        _plant_mistakes(rootfs)

    tar = make_rootfs_tar(tmp_path / "planted", prepare)
    box("import", "-c", f"ENV GITHUB_TOKEN={GITHUB_TOKEN}", "-c", 'CMD ["sh"]', str(tar),
        "planted:1")
    return box


def _osv(tmp_path: Path) -> Path:
    records = [
        {"id": "DSA-TEST-1", "summary": "foo overflow",
         "severity": [{"type": "CVSS_V3",
                       "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
         "affected": [{"package": {"ecosystem": "Debian:12", "name": "foo"},
                       "ranges": [{"type": "ECOSYSTEM",
                                   "events": [{"introduced": "0"}, {"fixed": "1.2.3-2"}]}]}]},
        {"id": "DSA-TEST-2", "summary": "openssl, fixed in the installed version (tilde)",
         "affected": [{"package": {"ecosystem": "Debian", "name": "openssl"},
                       "ranges": [{"type": "ECOSYSTEM", "events": [
                           {"introduced": "0"}, {"fixed": "3.0.11-1~deb12u1"}]}]}]},
        {"id": "ALPINE-TEST-1", "database_specific": {"severity": "HIGH"},
         "affected": [{"package": {"ecosystem": "Alpine:v3.18", "name": "musl"},
                       "ranges": [{"type": "ECOSYSTEM", "events": [
                           {"introduced": "1.2.0-r0"}, {"fixed": "1.2.4-r2"}]}]}]},
        {"id": "PYSEC-TEST-1", "database_specific": {"severity": "MODERATE"},
         "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                       "versions": ["2.24.0", "2.25.0"]}]},
        {"id": "GHSA-test-lodash", "database_specific": {"severity": "LOW"},
         "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                       "ranges": [{"type": "SEMVER", "events": [
                           {"introduced": "0"}, {"last_affected": "4.17.20"}]}]}]},
        {"id": "GHSA-test-lodash-old",
         "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                       "ranges": [{"type": "SEMVER", "events": [
                           {"introduced": "0"}, {"fixed": "4.17.20"}]}]}]},
        {"id": "GO-TEST-1", "database_specific": {"severity": "HIGH"},
         "affected": [{"package": {"ecosystem": "Go", "name": "golang.org/x/net"},
                       "ranges": [{"type": "SEMVER", "events": [
                           {"introduced": "0"}, {"fixed": "0.23.0"}]}]}]},
        {"id": "GHSA-test-acme", "affected": [{"package": {"ecosystem": "npm",
                                                           "name": "@acme/util"},
                                               "ranges": [{"type": "SEMVER", "events": [
                                                   {"introduced": "1.0.0-alpha"},
                                                   {"fixed": "1.0.0-beta.10"}]}]}]},
    ]
    path = tmp_path / "osv.json"
    path.write_text(json.dumps(records))
    return path


def test_sbom_lists_every_kind_and_validates(planted: Dockyard) -> None:
    result = planted("sbom", "planted:1")
    assert "warning: /var/lib/rpm/Packages: a Berkeley DB rpm database is not read" in \
        result.stderr
    spdx = result.stdout
    assert validate_spdx_json(spdx) == []
    doc = json.loads(spdx)
    purls = {ref["referenceLocator"] for p in doc["packages"] for ref in p.get("externalRefs", [])}
    assert purls == {
        "pkg:deb/debian/libfoo1@1.2.3-1?arch=amd64&distro=debian-12&upstream=foo",
        "pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=amd64&distro=debian-12",
        "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12",
        "pkg:apk/alpine/musl@1.2.4-r1?arch=x86_64",
        "pkg:apk/alpine/busybox-extras@1.36.1-r5?arch=x86_64",
        "pkg:pypi/requests@2.25.0",
        "pkg:npm/lodash@4.17.20",
        "pkg:npm/%40acme/util@1.0.0-beta.2",
        "pkg:golang/example.com/server@v1.0.0",
        "pkg:golang/golang.org/x/net@v0.17.0",
        "pkg:rpm/redhat/bash@5.2.15-3.fc39?arch=x86_64",
    }
    cdx = planted("sbom", "--format", "cyclonedx-json", "planted:1").stdout
    validate_cyclonedx(cdx)
    components = json.loads(cdx)["components"]
    licences = {c["name"]: c.get("licenses") for c in components}
    assert licences["lodash"] == [{"license": {"id": "MIT"}}]
    assert licences["Requests"] == [{"license": {"name": "Apache 2.0"}}]
    names = {c["name"] for c in components}
    assert names == {"libfoo1", "openssl", "tzdata", "musl", "busybox-extras", "Requests",
                     "lodash", "@acme/util", "example.com/server", "golang.org/x/net",
                     "bash"}


def test_sbom_output_file_and_bad_format(planted: Dockyard, tmp_path: Path) -> None:
    out = tmp_path / "sbom.cdx.json"
    planted("sbom", "--format", "cyclonedx-json", "-o", str(out), "planted:1")
    validate_cyclonedx(out.read_text())
    bad = planted("sbom", "--format", "xml", "planted:1", check=False)
    assert bad.returncode == 2 and "xml" in bad.stderr
    missing = planted("sbom", "nosuch:1", check=False)
    assert missing.returncode == 1 and "No such image" in missing.stderr


def test_scan_finds_planted_vulnerabilities_and_mistakes(planted: Dockyard,
                                                         tmp_path: Path) -> None:
    result = planted("scan", "planted:1", "--db", str(_osv(tmp_path)), "--format", "json",
                     check=False)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    found = {(v["id"], v["package"]["name"], v["severity"]) for v in report["vulnerabilities"]}
    assert found == {("DSA-TEST-1", "libfoo1", "CRITICAL"), ("ALPINE-TEST-1", "musl", "HIGH"),
                     ("PYSEC-TEST-1", "Requests", "MEDIUM"),
                     ("GHSA-test-lodash", "lodash", "LOW"),
                     ("GO-TEST-1", "golang.org/x/net", "HIGH"),
                     ("GHSA-test-acme", "@acme/util", "UNKNOWN")}
    fixed = {v["id"]: v["fixedVersion"] for v in report["vulnerabilities"]}
    assert fixed["DSA-TEST-1"] == "1.2.3-2" and fixed["ALPINE-TEST-1"] == "1.2.4-r2"
    rules = {(f["id"], f["location"]) for f in report["findings"]}
    assert {("DY001", "config.User"), ("DY002", "config.Env GITHUB_TOKEN"),
            ("DY005", "/usr/local/bin/helper"), ("DY006", "/var/drop"),
            ("DY004", "layer 1: app/.env"), ("DY004", "layer 1: root/.ssh/id_rsa")} <= rules
    assert not {where for rule, where in rules if where == "/var/shared"}
    assert GITHUB_TOKEN not in result.stdout  # findings name secrets, never repeat them
    # the threshold: only UNKNOWN..CRITICAL at or above it count
    critical = planted("scan", "planted:1", "--db", str(_osv(tmp_path)), "--severity",
                       "critical", "--format", "sarif", check=False)
    assert critical.returncode == 1
    sarif = json.loads(critical.stdout)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert {"DSA-TEST-1", "DY002", "DY004"} <= {r["ruleId"] for r in results}
    assert {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]} == \
        {r["ruleId"] for r in results}


def test_a_clean_image_scans_clean(box: Dockyard, tmp_path: Path) -> None:
    tar = make_rootfs_tar(tmp_path / "clean")
    box("import", "-c", "USER nobody", str(tar), "clean:1")
    result = box("scan", "clean:1", "--db", str(_osv(tmp_path)), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no known vulnerabilities" in result.stdout
    assert "no hardening findings" in result.stdout
    table = box("scan", "box:1", "--severity", "HIGH", check=False)  # root: MEDIUM only
    assert table.returncode == 0 and "DY001" in table.stdout
    assert box("scan", "box:1", "--severity", "MEDIUM", check=False).returncode == 1


def test_scan_errors_exit_2(box: Dockyard, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "osv"}')
    result = box("scan", "box:1", "--db", str(bad), check=False)
    assert result.returncode == 2 and "not an OSV record" in result.stderr
    assert box("scan", "box:1", "--db", str(tmp_path / "none"), check=False).returncode == 2
    assert box("scan", "nosuch:2", check=False).returncode == 2


@pytest.mark.parametrize("kind", ["host-symlink", "relative-escape", "fifo", "huge", "dir"])
def test_hostile_package_databases(kind: str, box: Dockyard, tmp_path: Path) -> None:
    """What a hostile image puts where the databases are read: never the host's file,
    never a hang on a FIFO, never an unbounded read."""
    host = tmp_path / "host-status"
    host.write_text("Package: hostleak\nStatus: install ok installed\nVersion: 6.6.6\n")

    def prepare(rootfs: Path) -> None:
        dpkg = rootfs / "var/lib/dpkg"
        dpkg.mkdir(parents=True)
        (rootfs / "lib/apk/db").mkdir(parents=True)
        if kind == "host-symlink":
            (dpkg / "status").symlink_to(host)
            (rootfs / "lib/apk/db/installed").symlink_to("/proc/self/environ")
        elif kind == "relative-escape":
            (dpkg / "status").symlink_to("../" * 64 + str(host).lstrip("/"))
        elif kind == "fifo":
            os.mkfifo(dpkg / "status")
            os.mkfifo(rootfs / "lib/apk/db/installed")
        elif kind == "huge":
            (dpkg / "status.d").mkdir()
            with open(dpkg / "status.d/big", "w") as handle:
                handle.write("Package: big\nVersion: 1\n\n" + "x" * (2 << 20))
        else:
            (dpkg / "status").mkdir()

    tar = make_rootfs_tar(tmp_path / "hostile", prepare)
    box("import", str(tar), "hostile:1")
    result = box("sbom", "--format", "cyclonedx-json", "hostile:1")
    assert "hostleak" not in result.stdout
    assert json.loads(result.stdout).get("components", []) == []
    if kind in ("fifo", "huge", "dir"):
        assert "skipped" in result.stderr
        notes = [p["value"] for p in json.loads(result.stdout)["metadata"]["properties"]]
        assert any("skipped" in note for note in notes)
    assert stat.S_ISREG(host.stat().st_mode) and "hostleak" in host.read_text()


def test_build_sbom_attaches_a_referrer(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "status").write_text(DPKG_STATUS)
    (context / "Dockerfile").write_text("FROM box:1\nCOPY status /var/lib/dpkg/status\n")
    box("build", "--sbom", "-t", "withsbom:1", str(context))
    from dockyard.engine.engine import Engine
    from dockyard.images.referrers import ReferrerIndex

    engine = Engine(box.layout)
    record = engine.images.get("withsbom:1")
    referrers = ReferrerIndex(engine.db).of(record.manifest_digest)
    assert [r.artifact_type for r in referrers] == ["application/spdx+json"]
    manifest = json.loads(engine.images.content.read(referrers[0].digest))
    assert manifest["subject"]["digest"] == record.manifest_digest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    document = engine.images.content.read(manifest["layers"][0]["digest"]).decode()
    assert validate_spdx_json(document) == []
    assert "libfoo1" in document
    # garbage collection keeps it while the image lives
    box("builder", "prune")
    assert engine.images.content.exists(manifest["layers"][0]["digest"])
    box("rmi", "withsbom:1")
    box("image", "prune", "-f")
    assert not engine.images.content.exists(manifest["layers"][0]["digest"])


def test_build_pin_rewrites_from_lines_and_digests_resolve(box: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    dockerfile = context / "Dockerfile"
    image_id = json.loads(box("image", "inspect", "box:1").stdout)[0]["Id"]
    dockerfile.write_text("# base\nARG V=1\nFROM box:${V} AS vars\nFROM box:1 AS first\n"
                          "RUN true\nFROM first\nFROM scratch\nCOPY --from=first /bin/busybox /\n"
                          f"FROM {image_id} AS by-id\nFROM elsewhere.example/never:pulled AS x\n")
    dockerfile.chmod(0o640)
    result = box("build", "--pin", "--target", "first", "-t", "pinned:1", str(context))
    text = dockerfile.read_text()
    lines = text.split("\n")
    assert lines[2] == "FROM box:${V} AS vars"  # a variable: left alone
    assert lines[3].startswith("FROM box:1@sha256:") and lines[3].endswith(" AS first")
    assert lines[5:7] == ["FROM first", "FROM scratch"]
    assert lines[8] == f"FROM {image_id} AS by-id"  # an ID is content-addressed already
    assert lines[9] == "FROM elsewhere.example/never:pulled AS x"  # --target skipped it
    assert "FROM elsewhere.example/never:pulled not pinned" in result.stderr
    assert "FROM box:1 -> box:1@sha256:" in result.stderr
    pinned = lines[3].split()[1]
    # the pinned reference builds and runs, by itself and without its tag
    box("build", "--target", "first", "-t", "again:1", str(context))
    bare = pinned.replace(":1@", "@")
    assert box("run", "--rm", bare, "echo", "pinned-ok").stdout.strip() == "pinned-ok"
    assert box("run", "--rm", pinned, "true").returncode == 0
    wrong = box("run", "--rm", "box@sha256:" + "0" * 64, "true", check=False)
    assert wrong.returncode == 125
    assert stat.S_IMODE(dockerfile.stat().st_mode) == 0o640
    from dockyard.engine.engine import Engine
    from dockyard.engine.supply import pinned_reference

    images = Engine(box.layout).images
    assert pinned_reference(images, "box:1") == bare
    assert pinned_reference(images, "docker.io/library/box", keep_tag=True,
                            manifest_digest=bare.split("@")[1]) == pinned.replace(":1@", ":latest@")
    # building again from the pinned file changes nothing more
    box("build", "--pin", "--target", "first", str(context))
    assert dockerfile.read_text() == text
    refused = box("build", "--pin", "-", input=b"FROM box:1\n", check=False)
    assert refused.returncode == 1 and "--pin rewrites a Dockerfile on disk" in refused.stderr


def test_a_secret_deleted_by_a_later_layer_is_still_found(planted: Dockyard,
                                                          tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM planted:1\nRUN rm /app/.env /root/.ssh/id_rsa\n"
                                        "USER nobody\n")
    planted("build", "-t", "tidied:1", str(context))
    assert planted("run", "--rm", "tidied:1", "ls", "/app/.env", check=False).returncode != 0
    report = json.loads(planted("scan", "tidied:1", "--format", "json", check=False).stdout)
    rules = {(f["id"], f["location"]) for f in report["findings"]}
    assert {("DY004", "layer 1: app/.env"), ("DY004", "layer 1: root/.ssh/id_rsa")} <= rules
    assert "DY001" not in {rule for rule, _where in rules}


def test_lint_reads_what_the_builder_records(box: Dockyard, tmp_path: Path) -> None:
    """ADD of a URL with and without --checksum, a secret ENV and a token in a RUN line,
    as dockyard's builder writes them into the config and history."""
    import hashlib
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "tool.sh").write_text("echo tool\n")
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,),
                   {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/tool.sh"
        checksum = "sha256:" + hashlib.sha256(b"echo tool\n").hexdigest()
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(
            f"FROM box:1\nADD {url} /opt/unchecked.sh\n"
            f"ADD --checksum={checksum} {url} /opt/checked.sh\n"
            "ENV SERVICE_API_KEY=k3y-from-the-vendor\n"
            f"RUN echo {GITHUB_TOKEN} > /dev/null\nUSER nobody\n")
        box("build", "--label", "org.opencontainers.image.base.name=box", "-t", "linted:1",
            str(context))
    finally:
        server.shutdown()
        server.server_close()
    report = json.loads(box("scan", "linted:1", "--format", "json", check=False).stdout)
    found = {(f["id"], f["location"].split("[")[0]) for f in report["findings"]}
    assert found == {("DY008", "history"), ("DY002", "config.Env SERVICE_API_KEY"),
                     ("DY003", "history"), ("DY007", "config.Labels")}
    [add] = [f for f in report["findings"] if f["id"] == "DY008"]
    assert "unchecked.sh" in add["title"]
    assert GITHUB_TOKEN not in json.dumps(report)
