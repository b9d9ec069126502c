"""The fast path and click read every flag of the hot commands alike (one table,
two parsers), and the fast path leaves to click whatever it is not sure of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import pytest

from dockyard.cli import compose as compose_cli
from dockyard.cli import compose_cmds, fast
from dockyard.cli.build import build_cmd
from dockyard.cli.build_cmds import BUILD_OPTIONS
from dockyard.cli.container_cmds import (
    EXEC_OPTIONS,
    KILL_OPTIONS,
    PS_OPTIONS,
    RM_OPTIONS,
    START_OPTIONS,
    STOP_OPTIONS,
)
from dockyard.cli.container_flags import RUN_OPTIONS
from dockyard.cli.container_ops import exec_cmd
from dockyard.cli.containers import (
    kill_cmd,
    ps_cmd,
    restart_cmd,
    rm_cmd,
    run_cmd,
    start_cmd,
    stop_cmd,
)
from dockyard.cli.flagtable import NotFast, Opt, parse
from dockyard.cli.image_cmds import IMAGES_OPTIONS, INSPECT_OPTIONS
from dockyard.cli.images import images_cmd, inspect_cmd
from dockyard.cli.registry import pull_cmd
from dockyard.cli.registry_cmds import PULL_OPTIONS


def _click_reading(command: click.Command, args: list[str]) -> dict[str, Any]:
    context = command.make_context(command.name or "", list(args))
    return dict(context.params)


def _samples(row: Opt) -> list[list[str]]:
    """Every spelling of one flag the docker CLI's users write."""
    value = "7" if row.type in (int, float) else row.choices[0] if row.choices else "v=1:x"
    spellings: list[list[str]] = []
    for name in row.names:
        if row.kind == "flag":
            spellings.append([name])
        elif name.startswith("--"):
            spellings += [[name, value], [f"{name}={value}"]]
        else:
            spellings += [[name, value], [f"{name}{value}"]]
    if row.kind == "multi":
        first, second = row.choices[:2] if row.choices else ("a", "b")
        spellings.append([row.names[0], first, row.names[-1], second])
    return spellings


def _fast_reading(table: Sequence[Opt], args: list[str], *,
                  interspersed: bool) -> tuple[dict[str, Any], list[str]]:
    return parse(table, args, interspersed=interspersed)


@pytest.mark.parametrize("row", RUN_OPTIONS, ids=lambda r: r.names[-1])
def test_run_reads_every_flag_as_click_does(row: Opt) -> None:
    for spelling in _samples(row):
        args = [*spelling, "img:1", "sh", "-c", "echo --rm -d"]
        options, positionals = _fast_reading(RUN_OPTIONS, args, interspersed=False)
        clicked = _click_reading(run_cmd, args)
        assert positionals == ["img:1", "sh", "-c", "echo --rm -d"]
        assert clicked.pop("image") == "img:1"
        assert clicked.pop("command") == ("sh", "-c", "echo --rm -d")
        assert options == clicked, spelling


@pytest.mark.parametrize("row", PS_OPTIONS, ids=lambda r: r.names[-1])
def test_ps_reads_every_flag_as_click_does(row: Opt) -> None:
    for spelling in _samples(row):
        options, positionals = _fast_reading(PS_OPTIONS, spelling, interspersed=True)
        assert positionals == [] and options == _click_reading(ps_cmd, spelling), spelling


@pytest.mark.parametrize("row", EXEC_OPTIONS, ids=lambda r: r.names[-1])
def test_exec_reads_every_flag_as_click_does(row: Opt) -> None:
    for spelling in _samples(row):
        args = [*spelling, "box", "sh", "-c", "exit 3"]
        options, positionals = _fast_reading(EXEC_OPTIONS, args, interspersed=False)
        clicked = _click_reading(exec_cmd, args)
        assert positionals == [clicked.pop("container"), *clicked.pop("command")]
        assert options == clicked, spelling


@pytest.mark.parametrize(("table", "command", "positional"), [
    (IMAGES_OPTIONS, images_cmd, "repository"), (BUILD_OPTIONS, build_cmd, "context"),
    (PULL_OPTIONS, pull_cmd, "ref")],
    ids=["images", "build", "pull"])
def test_one_argument_commands_read_every_flag_as_click_does(
        table: Sequence[Opt], command: click.Command, positional: str) -> None:
    for row in table:
        for spelling in _samples(row):
            args = [*spelling, "box"]
            options, positionals = _fast_reading(table, args, interspersed=True)
            clicked = _click_reading(command, args)
            if command is pull_cmd:  # (its TLS flag pair is click's alone: see below)
                assert clicked.pop("tls_verify") is True
            assert positionals == [clicked.pop(positional)] and options == clicked, spelling


@pytest.mark.parametrize("row", INSPECT_OPTIONS, ids=lambda r: r.names[-1])
def test_inspect_reads_every_flag_as_click_does(row: Opt) -> None:
    for spelling in _samples(row):
        args = ["one", *spelling, "two"]
        options, positionals = _fast_reading(INSPECT_OPTIONS, args, interspersed=True)
        clicked = _click_reading(inspect_cmd, args)
        assert tuple(positionals) == clicked.pop("names") and options == clicked, spelling


@pytest.mark.parametrize("row", RM_OPTIONS, ids=lambda r: r.names[-1])
def test_rm_reads_every_flag_as_click_does(row: Opt) -> None:
    for spelling in [*_samples(row), ["-fv"], ["-vf"]]:
        args = ["one", *spelling, "two"]
        options, positionals = _fast_reading(RM_OPTIONS, args, interspersed=True)
        clicked = _click_reading(rm_cmd, args)
        assert tuple(positionals) == clicked.pop("containers") and options == clicked, spelling


@pytest.mark.parametrize(("table", "command"), [
    (START_OPTIONS, start_cmd), (STOP_OPTIONS, stop_cmd), (STOP_OPTIONS, restart_cmd),
    (KILL_OPTIONS, kill_cmd)], ids=["start", "stop", "restart", "kill"])
def test_container_life_commands_read_every_flag_as_click_does(
        table: Sequence[Opt], command: click.Command) -> None:
    for row in table:
        for spelling in [*_samples(row), []]:
            args = ["one", *spelling, "two"]
            options, positionals = _fast_reading(table, args, interspersed=True)
            clicked = _click_reading(command, args)
            assert tuple(positionals) == clicked.pop("containers") and options == clicked, \
                spelling


@pytest.mark.parametrize(("table", "command"), [
    (compose_cmds.COMPOSE_OPTIONS, compose_cli.compose_group),
    (compose_cmds.UP_OPTIONS, compose_cli.up_cmd),
    (compose_cmds.PS_OPTIONS, compose_cli.ps_cmd),
    (compose_cmds.DOWN_OPTIONS, compose_cli.down_cmd)],
    ids=["compose", "compose up", "compose ps", "compose down"])
def test_compose_reads_every_flag_as_click_does(table: Sequence[Opt],
                                                command: click.Command) -> None:
    group = command is compose_cli.compose_group
    takes_services = any(p.name == "services" for p in command.params)
    for row in table:
        for spelling in _samples(row):
            args = [*spelling, "web"] if takes_services else spelling
            options, positionals = _fast_reading(table, args, interspersed=not group)
            clicked = _click_reading(command, args)
            if not group and "services" in clicked:
                assert tuple(positionals) == clicked.pop("services"), spelling
            assert options == {k: v for k, v in clicked.items() if k != "services"}, spelling


def test_clustered_short_flags_and_a_last_value_winning() -> None:
    args = ["-it", "--rm", "-eA=1", "-e", "B=2", "--name", "a", "--name=b", "img"]
    options, positionals = parse(RUN_OPTIONS, args, interspersed=False)
    assert options == {k: v for k, v in _click_reading(run_cmd, args).items()
                       if k not in ("image", "command")}
    assert options["interactive"] and options["tty"] and options["env"] == ("A=1", "B=2")
    assert options["name"] == "b" and positionals == ["img"]


@pytest.mark.parametrize("args", [
    ["--help"], ["--bogus", "img"], ["--stop-timeout", "soon", "img"], ["--rm=yes", "img"],
    ["-x", "img"], ["--name"],
])
def test_what_the_fast_path_leaves_to_click(args: list[str]) -> None:
    with pytest.raises(NotFast):
        parse(RUN_OPTIONS, args, interspersed=False)


@pytest.mark.parametrize("argv", [
    ["ps", "--help"], ["ps", "extra"], ["run"], ["--version"], ["images", "a", "b"],
    ["inspect"], ["rmi", "x"], ["rm"], ["rm", "--force=1", "x"], ["rm", "-l", "x"],
    ["start"], ["start", "--help"], ["stop", "-t", "soon", "x"], ["kill", "-s"],
    ["restart", "--bogus", "x"],
    ["--root"], ["--debug", "ps"], ["ps", "--filter"],
    ["compose"], ["compose", "--help"], ["compose", "up", "--help"], ["compose", "logs"],
    ["compose", "ps", "--status", "bogus"], ["compose", "down", "web"],
    ["compose", "-x", "up"], ["compose", "up", "--wait-timeout", "soon"],
    ["build"], ["build", "a", "b"], ["build", "--help", "."], ["build", "--progress", "x", "."],
    ["build", "-f", "-", "-"], ["build", "--build-arg", "=1", "."],
    ["build", "--label", "=x", "."], ["build", "--build-context", "=d", "."],
    ["pull"], ["pull", "a", "b"], ["pull", "--help", "x"], ["pull", "--no-tls-verify", "x"],
    ["pull", "--tls-verify", "x"], ["pull", "-a", "x"],
])
def test_dispatch_hands_these_to_click(argv: list[str]) -> None:
    assert fast.dispatch(argv) is None


def test_a_reader_that_left_ends_the_command_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    """``dockyard ps | head -1``: a broken pipe is a SIGPIPE-like exit (141), no report."""
    from dockyard.cli.errors import guarded

    def write_to_a_closed_pipe() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    assert guarded(write_to_a_closed_pipe, run=False) == 141
    assert capsys.readouterr().err == ""


def test_plain_build_progress_drops_terminal_escapes_off_a_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    """As ``click.echo`` did: a RUN step's colours are not written into a log."""
    from dockyard.cli.build_cmds import PlainReporter

    reporter = PlainReporter()
    reporter.step_started(3, "[2/5] RUN make")
    reporter.step_output(3, "\x1b[1;31merror\x1b[0m: it broke")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "error: it broke" in err
