"""userns_remap's mapping: subordinate id files, explicit ranges, shifting, the marker."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.store.idmap import (
    IdMap,
    IdRange,
    check_marker,
    parse_ranges,
    resolve,
    subordinate_ranges,
)


def test_subordinate_ranges_are_laid_end_to_end_by_name_or_number(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("# a comment\nother:100000:65536\nalice:200000:1000\n\n"
                      "1001:500000:64536\n")
    assert subordinate_ranges(subuid, ["alice", "1001"]) == (
        IdRange(0, 200000, 1000), IdRange(1000, 500000, 64536))
    assert subordinate_ranges(subuid, ["nobody-here"]) == ()
    assert subordinate_ranges(tmp_path / "missing", ["alice"]) == ()


@pytest.mark.parametrize("line", ["alice:100000", "alice:x:10", "alice:100000:0"])
def test_a_malformed_subordinate_line_is_named(tmp_path: Path, line: str) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text(f"{line}\n")
    with pytest.raises(InvalidArgument, match=f"{subuid}:1"):
        subordinate_ranges(subuid, ["alice"])


def test_explicit_ranges_and_their_refusals() -> None:
    assert parse_ranges("0:100000:65536,65536:300000:10") == (
        IdRange(0, 100000, 65536), IdRange(65536, 300000, 10))
    for bad in ("0:100000", "a:b:c", "0:1:0"):
        with pytest.raises(InvalidArgument, match="userns_remap"):
            parse_ranges(bad)
    with pytest.raises(InvalidArgument, match="host's root"):
        resolve("0:0:65536")
    with pytest.raises(InvalidArgument, match="container uid 0 is not mapped"):
        resolve("1:100000:65536")
    assert resolve("") is None


def test_shifting_both_ways() -> None:
    idmap = IdMap((IdRange(0, 100000, 1000), IdRange(1000, 300000, 1000)),
                  (IdRange(0, 100000, 65536),))
    assert idmap.root == (100000, 100000)
    assert idmap.to_host(1500, 7) == (300500, 100007)
    assert idmap.to_container(300500, 100007) == (1500, 7)
    assert idmap.to_container(0, 5) == (65534, 65534)  # the kernel's overflow id
    with pytest.raises(InvalidArgument, match="outside the root's user namespace"):
        idmap.to_host(5000, 0)
    info = tarfile.TarInfo("f")
    info.uid, info.gid = 100000, 100001
    idmap.header_to_container(info)
    assert (info.uid, info.gid) == (0, 1)
    assert idmap.oci()["uidMappings"][1] == {"containerID": 1000, "hostID": 300000,
                                             "size": 1000}


def test_unknown_user_is_named() -> None:
    with pytest.raises(InvalidArgument, match="no such user"):
        resolve("no-such-user-here-xyz")


def test_the_marker_refuses_layers_of_another_mapping(tmp_path: Path) -> None:
    idmap = IdMap((IdRange(0, 100000, 65536),), (IdRange(0, 100000, 65536),))
    check_marker(tmp_path, idmap, holds_layers=False)  # first use: recorded
    assert (tmp_path / "idmap").read_text().strip() == idmap.marker()
    check_marker(tmp_path, idmap, holds_layers=True)
    with pytest.raises(InvalidArgument, match="were unpacked for user namespace mapping"):
        check_marker(tmp_path, None, holds_layers=True)
    check_marker(tmp_path, None, holds_layers=False)  # nothing unpacked: a new start
    assert (tmp_path / "idmap").read_text().strip() == "none"
    legacy = tmp_path / "legacy"  # layers from before the marker: not remapped
    legacy.mkdir()
    with pytest.raises(InvalidArgument, match="asks for 'uids 0:100000"):
        check_marker(legacy, idmap, holds_layers=True)
