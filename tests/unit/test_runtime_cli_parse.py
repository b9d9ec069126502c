"""``dockyard-runtime``'s fast parser parses as argparse does (both are built from one
table of flags), or declines and leaves the case, and its error messages, to argparse."""

from __future__ import annotations

import pytest

from dockyard.runtime import cli

AGREE = [
    ["start", "abc"],
    ["--root", "/r", "state", "abc"],
    ["--root=/r", "--log", "/l.json", "--log-format", "json", "create", "--bundle", "/b",
     "--pid-file", "/p", "--console-socket", "/s", "abc"],
    ["--root", "/r", "create", "abc", "-b", "/b", "--preserve-fds", "3", "--no-pivot",
     "--no-new-keyring"],
    ["--systemd-cgroup", "--debug", "run", "-d", "--keep", "--bundle=/b", "x"],
    ["run", "-b", "/b", "--detach", "x"],
    ["kill", "abc"],
    ["kill", "abc", "KILL"],
    ["kill", "--all", "abc", "9"],
    ["kill", "-a", "abc", "SIGTERM"],
    ["delete", "abc"],
    ["delete", "-f", "abc"],
    ["--root", "/r", "delete", "--force", "abc"],
    ["pause", "abc"], ["resume", "abc"],
    ["--rootless", "false", "--criu", "x", "state", ""],
    ["create", "abc", "--preserve-fds=+2"],
]

DECLINED = [
    [],  # help
    ["-v"],  # no subcommand
    ["list"], ["exec", "abc", "ls"], ["ps", "abc"], ["spec"], ["update", "abc"],  # not hot
    ["start"],  # a missing id
    ["start", "a", "b"],  # one too many
    ["kill", "a", "b", "c"],
    ["start", "--help", "abc"],
    ["--root"],  # a missing value
    ["create", "--bundle"],
    ["create", "--pid-file", "--bundle", "abc"],
    ["--log-format", "xml", "start", "abc"],  # not a choice
    ["create", "--preserve-fds", "three", "abc"],
    ["create", "--preserve-fds", "²", "abc"],
    ["create", "--bund", "/b", "abc"],  # an abbreviation: argparse's rules
    ["create", "-b/b", "abc"],  # an attached short value
    ["start", "--", "abc"],
    ["delete", "--force=yes", "abc"],
    ["--bundle", "/b", "create", "abc"],  # a subcommand's flag before it
    ["create", "--root", "/r", "abc"],  # a global flag after the subcommand
    ["kill", "abc", "-9"],
]


def _argparse(argv: list[str]) -> dict[str, object]:
    return vars(cli._parser().parse_args(argv))


@pytest.mark.parametrize("argv", AGREE, ids=" ".join)
def test_fast_parser_agrees_with_argparse(argv: list[str]) -> None:
    fast = cli.fast_parse(argv)
    assert fast is not None
    assert vars(fast) == _argparse(argv)


@pytest.mark.parametrize("argv", DECLINED, ids=" ".join)
def test_fast_parser_declines_what_is_not_plain(argv: list[str]) -> None:
    assert cli.fast_parse(argv) is None


def test_argparse_still_parses_the_rest() -> None:
    args = cli.parse(["exec", "-e", "A=1", "-e", "B=2", "-g", "5", "abc", "ls", "-l"])
    assert args.subcommand == "exec" and args.env == ["A=1", "B=2"]
    assert args.additional_gids == [5] and args.command == ["ls", "-l"]
    with pytest.raises(SystemExit):
        cli.parse(["create", "--preserve-fds", "three", "abc"])


def test_every_subcommand_flag_is_in_argparse() -> None:
    """A flag added to the table is a flag of both parsers."""
    for name, (_help, _positionals, flags) in cli.COMMANDS.items():
        parser = cli._parser(name)
        sub = next(a for a in parser._actions if a.dest == "subcommand")
        options = sub.choices[name]._option_string_actions  # type: ignore[index]
        for names, _kind, _default, _choices in flags:
            assert set(names) <= set(options), (name, names)
