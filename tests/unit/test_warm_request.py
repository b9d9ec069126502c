"""The warm path's pieces that need no kernel: the caller finds the run dir as the
store's layout does, and the zygote reads back exactly the request it was sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.cli import warm
from dockyard.store.layout import Layout
from dockyard.supervise.zygote import _warm_request


@pytest.mark.parametrize("root", [None, "/var/lib/dockyard", "/var/lib/dockyard/",
                                  "/srv/dy", "relative/root", "/tmp/a/../b"])
def test_the_caller_finds_the_run_dir_the_layout_names(root: str | None) -> None:
    assert Path(warm.run_dir(root)).resolve() == Layout.for_root(root).run_dir.resolve()


def test_the_zygote_reads_the_request_it_was_sent() -> None:
    argv = ["--root", "/r", "run", "-e", "A=b=c", "box:1", "sh", "-c", "echo 'ü' $X", ""]
    env = {"X": "1", "EMPTY": "", "WITH_EQ": "a=b", "BYTES": "\udcff"}
    request = _warm_request(warm.encode_request(argv, env, 0o027))
    assert request == {"cli": warm.WORKER_MODULE, "umask": 0o027, "argv": argv, "env": env}


def _framed(rest: bytes, length: int | None = None) -> bytes:
    return b"\0warm\0%d\0" % (len(rest) if length is None else length) + rest


@pytest.mark.parametrize("data", [
    b"\0warm\0",  # no fields
    _framed(b"m\0x\0" b"1"),  # a umask that is no number
    _framed(b"m\0" b"18\0" b"5\0a"),  # fewer arguments than counted
    _framed(b"m\0" b"18\0" b"0\0NOEQUALS"),  # an environment entry without "="
    _framed(b"m\0" b"18\0" b"0\0A=1", 9),  # cut short: shorter than it says
    _framed(b"m\0" b"18\0" b"0\0A=1", 7),  # longer than it says
    b"\0warm\0x\0m\0" b"18\0" b"0"])  # a length that is no number
def test_a_malformed_request_reads_as_nothing(data: bytes) -> None:
    assert _warm_request(data) == {}


@pytest.mark.parametrize(("argv", "expected"), [
    (["ps"], ("ps", None)), (["--root", "/x", "run", "-d"], ("run", "/x")),
    (["--root=/y", "--insecure-registry", "r:5000", "images"], ("images", "/y")),
    (["--debug", "ps"], None), (["--root"], None), ([], None)])
def test_the_command_and_root_are_read_as_the_click_group_reads_them(
        argv: list[str], expected: tuple[str, str | None] | None) -> None:
    assert warm.command_root(argv) == expected
