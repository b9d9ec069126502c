"""``supervise.monitor.parse_args``: the supervisor's arguments read without argparse
(a supervisor that ran argparse kept ~450 KiB more private memory) agree with
argparse's reading of the same table, and whatever it does not take is argparse's."""

from __future__ import annotations

import json

import pytest

from dockyard.supervise import monitor

_BASE = ["--id", "c" * 64, "--bundle", "/r/containers/x", "--runtime", '["rt"]',
         "--runtime-root", "/run/rt", "--ready-fd", "7"]


@pytest.mark.parametrize("argv", [
    _BASE,
    [*_BASE, "--tty", "--stdin", "--wait-attach", "--restart", "always", "--restart-count",
     "3", "--log-max-size", "1048576", "--log-max-file", "2", "--exit-hook",
     json.dumps(["@python", "m", "f"]), "--network", json.dumps({"endpoints": []}),
     "--trace", "", "--pause-at", "after-create", "--adopt", "12:34"],
    ["--ready-fd", "0", "--driver", "dockyard.runtime.driver", *_BASE[:-2]],
])
def test_the_engines_argv_is_read_as_argparse_reads_it(argv: list[str]) -> None:
    ours = monitor.parse_args(argv)
    theirs = monitor.build_parser().parse_args(argv)
    assert type(ours).__name__ == "SimpleNamespace"  # (not argparse's: the fast path)
    assert vars(ours) == vars(theirs)


@pytest.mark.parametrize("argv", [
    [*_BASE, "--log-max-size=5"],  # a form the engine does not write: argparse's
    [*_BASE[:-2], "--ready-f", "7"],  # an abbreviation: argparse's
])
def test_other_forms_go_to_argparse(argv: list[str]) -> None:
    assert vars(monitor.parse_args(argv)) == vars(monitor.build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [
    _BASE[2:],  # --id missing
    [*_BASE[:-1], "seven"],  # not a number
    [*_BASE, "--no-such-option", "x"],
    [*_BASE, "--restart"],  # no value
])
def test_bad_arguments_are_worded_by_argparse(argv: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        monitor.parse_args(argv)
    assert raised.value.code == 2
    assert "dockyard-supervisor: error:" in capsys.readouterr().err
