"""The scanner's pure parts: version order per ecosystem, OSV range evaluation, CVSS
scores, the config/history lint, rpm header parsing."""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.images.sbom.catalog import Package, rpm_header
from dockyard.images.scan import lint, osv
from dockyard.images.scan.versions import Unordered, compare


@pytest.mark.parametrize(("ecosystem", "low", "high"), [
    # dpkg: tilde before everything, epochs win, revisions after upstream, digits numeric
    ("Debian", "1.0~rc1-1", "1.0-1"), ("Debian", "1.0-1", "1:0.1-1"),
    ("Debian", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"), ("Debian", "1.2-3", "1.10-1"),
    ("Debian", "1.0", "1.0-0.1"), ("Debian", "1.0a", "1.0+"),
    ("Debian", "2.36-9", "2.36-9+deb12u1"),
    # apk: pre-release suffixes before none before post-release, letters, revisions
    ("Alpine", "1.2.4_rc1-r0", "1.2.4-r0"), ("Alpine", "1.2.4-r1", "1.2.4-r2"),
    ("Alpine", "1.2.4", "1.2.4a"), ("Alpine", "1.2.4-r9", "1.2.4_p1-r0"),
    ("Alpine", "1.2", "1.2.1"), ("Alpine", "1.36.1_alpha", "1.36.1_beta2"),
    # PEP 440
    ("PyPI", "2.0.0rc1", "2.0.0"), ("PyPI", "2.0.0", "2.0.0.post1"), ("PyPI", "1.9", "1.10"),
    # semver: pre-releases before the release, numeric identifiers numerically
    ("npm", "1.0.0-alpha", "1.0.0-alpha.1"), ("npm", "1.0.0-beta.2", "1.0.0-beta.10"),
    ("npm", "1.0.0-rc.1", "1.0.0"), ("npm", "4.17.20", "4.17.21"), ("npm", "1.0.0-1", "1.0.0-a"),
    # Go modules: semver with a "v", pseudo-versions before the release they precede
    ("Go", "v0.0.0-20250403165618-22662109213e", "v0.0.1"), ("Go", "v1.2.0", "1.10.0"),
])
def test_versions_order_as_their_package_managers_do(ecosystem: str, low: str,
                                                     high: str) -> None:
    assert compare(ecosystem, low, high) < 0
    assert compare(ecosystem, high, low) > 0
    assert compare(ecosystem, low, low) == 0


def test_equal_spellings_and_unparsable_versions() -> None:
    assert compare("Debian", "0:1.0-1", "1.0-1") == 0
    assert compare("npm", "1.0.0+build.5", "1.0.0") == 0
    assert compare("PyPI", "1.0", "1.0.0") == 0
    for ecosystem, bad in [("npm", "latest"), ("PyPI", "not a version"), ("Alpine", "1.2_x"),
                           ("Debian", "abc"), ("Maven", "1.0")]:
        with pytest.raises(Unordered):
            compare(ecosystem, bad, "1.0.0")


def _record(**affected: object) -> dict[str, object]:
    return {"id": "X-1", "affected": [{"package": {"ecosystem": "npm", "name": "p"},
                                       **affected}]}


@pytest.mark.parametrize(("events", "affected_versions"), [
    ([{"introduced": "0"}, {"fixed": "1.2.0"}], {"1.0.0", "1.1.9"}),
    ([{"introduced": "1.1.0"}, {"fixed": "1.2.0"}], {"1.1.9"}),
    ([{"introduced": "0"}, {"last_affected": "1.2.0"}], {"1.0.0", "1.1.9", "1.2.0"}),
    ([{"introduced": "1.2.0"}], {"1.2.0", "2.0.0"}),
    # two windows in one range, given out of order
    ([{"fixed": "1.1.0"}, {"introduced": "1.2.0"}, {"introduced": "0"}, {"fixed": "2.0.0"}],
     {"1.0.0", "1.2.0"}),
])
def test_osv_ranges(events: list[dict[str, str]], affected_versions: set[str]) -> None:
    record = _record(ranges=[{"type": "SEMVER", "events": events}])
    candidates = ["1.0.0", "1.1.9", "1.2.0", "2.0.0"]
    packages = [Package("p", v, "npm", f"/{v}") for v in candidates]
    hit = {m.package.version for m in osv.match([record], packages)}
    assert hit == affected_versions


def test_osv_versions_names_and_git_ranges() -> None:
    records = [
        {"id": "PY-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Zope.Interface"},
                                     "versions": ["5.0"]}]},
        {"id": "DEB-1", "affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
                                      "ranges": [{"type": "GIT", "events": [
                                          {"introduced": "0"}]}]}]},
        {"id": "DEB-2", "affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
                                      "ranges": [{"type": "ECOSYSTEM", "events": [
                                          {"introduced": "0"}, {"fixed": "2.36-9+deb12u4"}]}]}]},
    ]
    packages = [Package("zope-interface", "5.0", "pypi", "/m"),
                Package("libc6", "2.36-9+deb12u3", "deb", "/s", source="glibc"),
                Package("libc-bin", "2.36-9+deb12u4", "deb", "/s", source="glibc")]
    found = {(m.id, m.package.name, m.fixed) for m in osv.match(records, packages)}
    assert found == {("PY-1", "zope-interface", ""), ("DEB-2", "libc6", "2.36-9+deb12u4")}


@pytest.mark.parametrize(("vector", "score"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
])
def test_cvss3_base_scores_match_first_calculator(vector: str, score: float) -> None:
    assert osv.cvss3_base_score(vector) == score


def test_severity_takes_the_worst_and_defaults_to_unknown() -> None:
    record = {"severity": [{"type": "CVSS_V3",
                            "score": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}],
              "database_specific": {"severity": "HIGH"}}
    assert osv.severity_of(record, {}) == "HIGH"
    assert osv.severity_of({}, {"ecosystem_specific": {"severity": "unimportant"}}) == "LOW"
    assert osv.severity_of({"severity": [{"type": "CVSS_V4", "score": "x"}]}, {}) == "UNKNOWN"


def test_databases_load_from_files_dirs_and_zips(tmp_path: Path) -> None:
    (tmp_path / "db" / "sub").mkdir(parents=True)
    (tmp_path / "db" / "one.json").write_text(json.dumps({"id": "A", "affected": []}))
    (tmp_path / "db" / "sub" / "list.json").write_text(json.dumps([{"id": "B"}, {"id": "C"}]))
    (tmp_path / "db" / "README").write_text("not a record")
    with zipfile.ZipFile(tmp_path / "db" / "all.zip", "w") as archive:
        archive.writestr("D.json", json.dumps({"id": "D", "affected": []}))
    assert sorted(r["id"] for r in osv.load(tmp_path / "db")) == ["A", "B", "C", "D"]
    os.mkfifo(tmp_path / "db" / "sub" / "fifo.json")
    with pytest.raises(InvalidArgument, match="fifo.json: not a regular file"):
        osv.load(tmp_path / "db")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InvalidArgument, match="not a readable zip archive"):
        osv.load(tmp_path / "broken.zip")
    bad = tmp_path / "bad.json"
    for text in ("[1, 2]", "{", "[" * 100_000, json.dumps({"id": 5})):
        bad.write_text(text)
        with pytest.raises(InvalidArgument, match="bad.json"):
            osv.load(bad)


def test_config_lint_rules() -> None:
    config = {
        "config": {"User": "app", "Env": ["PATH=/usr/bin", "DB_PASSWORD=hunter2",
                                          "PASSWORD_FILE=/run/secrets/pw", "TOKEN="],
                   "Labels": {"org.opencontainers.image.base.name": "docker.io/library/debian"}},
        "history": [
            {"created_by": "ADD https://example.com/app.tgz /app # buildkit"},
            {"created_by": "ADD --checksum=sha256:abc https://example.com/x /x # buildkit"},
            {"created_by": "RUN curl -H 'Authorization: token " + "ghp_" + "x" * 36 + "' …"},
            {"created_by": "COPY . /src # buildkit"},
        ],
    }
    found = {(f.id, f.location) for f in lint.config_findings(config)}
    assert found == {("DY002", "config.Env DB_PASSWORD"), ("DY007", "config.Labels"),
                     ("DY008", "history[0]"), ("DY003", "history[2]")}
    pinned = {"config": {"User": "0:0", "Labels": {
        "org.opencontainers.image.base.name": "debian:12",
        "org.opencontainers.image.base.digest": "sha256:" + "a" * 64}}}
    assert [f.id for f in lint.config_findings(pinned)] == ["DY001"]


def rpm_blob(name: str, version: str, release: str, licence: str, arch: str) -> bytes:
    """An rpm header blob as rpmdb.sqlite's Packages table stores it."""
    data = b""
    entries = []
    for tag, text in ((1000, name), (1001, version), (1002, release), (1014, licence),
                      (1022, arch)):
        entries.append(struct.pack(">iiii", tag, 6, len(data), 1))
        data += text.encode() + b"\0"
    return struct.pack(">II", len(entries), len(data)) + b"".join(entries) + data


def test_rpm_headers_are_parsed_and_garbage_is_empty() -> None:
    blob = rpm_blob("bash", "5.2.15", "3.fc39", "GPLv3+", "x86_64")
    assert rpm_header(blob) == {"name": "bash", "version": "5.2.15", "release": "3.fc39",
                                "license": "GPLv3+", "arch": "x86_64"}
    assert rpm_header(b"\xff" * 40) == {} and rpm_header(b"") == {}


def test_the_sbom_libraries_load_only_for_the_commands_that_use_them() -> None:
    from dockyard.testing.imports import loaded_after

    code = ("import dockyard.cli.main, dockyard.cli.build, dockyard.cli.supply, "
            "dockyard.cli.registry, dockyard.engine.supply, dockyard.registry.transfer")
    assert loaded_after(code, ("spdx_tools", "cyclonedx", "packageurl", "packaging",
                               "license_expression")) == []


def _tar(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_secret_files_in_a_layer() -> None:
    layer = _tar({
        "home/u/.npmrc": "//registry.npmjs.org/:_authToken=abc123\n",
        "home/u/.netrc": "# nothing here\n",
        "etc/ssl/server.key": "-----BEGIN EC PRIVATE KEY-----\nMHc\n",
        "etc/ssl/cert.pem": "-----BEGIN CERTIFICATE-----\nMII\n",
        "srv/.env.production": "SECRET=1\n",
        "srv/readme.env": "# only a comment\n",
        "srv/notes.txt": "-----BEGIN RSA PRIVATE KEY-----\n",  # not a candidate name
    })
    found = {f.location for f in lint.layer_findings(3, layer)}
    assert found == {"layer 3: home/u/.npmrc", "layer 3: etc/ssl/server.key",
                     "layer 3: srv/.env.production"}


def test_threshold_counts_unknown_only_when_asked() -> None:
    from dockyard.images.scan.report import ScanResult

    match = osv.Match("X-1", (), "", "UNKNOWN", Package("p", "1", "npm", "/"), "")
    result = ScanResult("img", "sha256:x", [match], [], [])
    assert result.worst_at_least("LOW") == 0 and result.worst_at_least("UNKNOWN") == 1


def _uvarint(value: int) -> bytes:
    out = b""
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


SENTINEL = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")


def fake_go_binary(modinfo: str, go_version: str = "go1.22.5") -> bytes:
    """A minimal ELF64 whose only sections are ``.shstrtab`` and a Go 1.18+
    ``.go.buildinfo`` (header, flags 2, inline version and module info)."""
    info = SENTINEL + modinfo.encode() + b"\n" + SENTINEL
    section = (b"\xff Go buildinf:" + bytes([8, 2]) + bytes(16) + _uvarint(len(go_version))
               + go_version.encode() + _uvarint(len(info)) + info)
    names = b"\0.shstrtab\0.go.buildinfo\0"
    names_at, section_at = 64, 64 + len(names)
    shoff = section_at + len(section)
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 1)
    entries = [bytes(64),
               struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, names_at, len(names), 0, 0, 1, 0),
               struct.pack("<IIQQQQIIQQ", 11, 1, 3, 0, section_at, len(section), 0, 0, 16, 0)]
    return (header + names + section + b"".join(entries)).ljust(8192, b"\0")  # binary-sized


def test_go_buildinfo_modules(tmp_path: Path) -> None:
    from dockyard.images.sbom.gobuild import modules

    binary = tmp_path / "app"
    binary.write_bytes(fake_go_binary(
        "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
        "dep\tgolang.org/x/net\tv0.17.0\th1:x=\n"
        "dep\tgithub.com/old/lib\tv1.0.0\th1:y=\n=>\tgithub.com/new/lib\tv1.2.0\th1:z=\n"
        "dep\tgithub.com/local/thing\tv0.1.0\n=>\t../thing\n"))
    fd = os.open(binary, os.O_RDONLY)
    try:
        assert modules(fd) == [("golang.org/x/net", "v0.17.0"), ("github.com/new/lib", "v1.2.0"),
                               ("github.com/local/thing", "v0.1.0")]
    finally:
        os.close(fd)
    for junk in (b"\x7fELF" + b"\xff" * 200, b"#!/bin/sh\n" * 500, fake_go_binary("x")[:100]):
        binary.write_bytes(junk)
        fd = os.open(binary, os.O_RDONLY)
        try:
            assert modules(fd) == []
        finally:
            os.close(fd)
