"""The builder's pure parts: word expansion, .dockerignore, instructions, plan, config."""

from __future__ import annotations

import pytest

from dockyard.build import dispatch
from dockyard.build.instructions import escape_character, parse
from dockyard.build.patterns import IgnoreMatcher, glob_match
from dockyard.build.plan import dependencies, global_scope, parse_plan, target_stage
from dockyard.build.shellwords import expand_heredoc, expand_word, expand_words
from dockyard.errors import InvalidArgument

ENV = {"A": "a", "EMPTY": "", "SPACE": "x y"}


@pytest.mark.parametrize(("text", "expected"), [
    ("$A", "a"), ("${A}", "a"), ("pre${A}post", "preapost"),
    ("$UNSET", ""), ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""), ("${A:+alt}", "alt"), ("${UNSET:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("'$A'", "$A"), ('"$A"', "a"), ("\\$A", "$A"),
    ('"\\$A"', "$A"), ('"a\\b"', "a\\b"), ("a\\ b", "a b"), ("$", "$"), ("$1x", "x"),
    ("${UNSET:-${A}}", "a"), ('"${SPACE}"', "x y"),
])
def test_expand_word(text: str, expected: str) -> None:
    assert expand_word(text, ENV) == expected


def test_expand_words_splits_on_unquoted_blanks_only() -> None:
    assert expand_words('a "b c" d\\ e $A', ENV) == ["a", "b c", "d e", "a"]
    assert expand_words('""', ENV) == [""]


def test_escape_token_backtick() -> None:
    assert expand_word("C:`$A", ENV, "`") == "C:$A"


def test_expand_errors() -> None:
    with pytest.raises(InvalidArgument, match="double-quote"):
        expand_word('"open', ENV)
    with pytest.raises(InvalidArgument, match="UNSET: must be set"):
        expand_word("${UNSET:?must be set}", ENV)
    with pytest.raises(InvalidArgument, match="bad substitution"):
        expand_word("${}", ENV)


def test_heredoc_expansion_keeps_quotes() -> None:
    assert expand_heredoc("say '$A' \"$A\" \\$A \\n\n", ENV) == "say 'a' \"a\" $A \\n\n"


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("*.txt", "a.txt", True), ("*.txt", "d/a.txt", False), ("**/*.txt", "d/e/a.txt", True),
    ("**/*.txt", "a.txt", True), ("d/**", "d/e/f", True), ("a?c", "abc", True),
    ("a?c", "a/c", False), ("[ab].go", "b.go", True), ("[!ab].go", "b.go", False),
    ("d/*/f", "d/e/f", True),
])
def test_glob(pattern: str, path: str, hit: bool) -> None:
    assert glob_match(pattern, path) is hit


def test_dockerignore_rules() -> None:
    matcher = IgnoreMatcher.from_text("""
# comment
*.log
/build
docs/
!docs/keep.md
**/secret*
!important.log
""")
    assert matcher.excluded("x.log")
    assert not matcher.excluded("important.log")
    assert matcher.excluded("build/out/bin")  # a directory excludes what is below it
    assert matcher.excluded("docs/a.md")
    assert not matcher.excluded("docs/keep.md")
    assert matcher.excluded("deep/dir/secret.key")
    assert not matcher.excluded("src/main.py")
    assert matcher.may_reinclude_under("docs")


def test_instructions_check_names_and_flags() -> None:
    with pytest.raises(InvalidArgument, match="Dockerfile:2: unknown instruction: FOO"):
        parse("FROM a\nFOO bar\n")
    with pytest.raises(InvalidArgument, match="Dockerfile:2: unknown flag: --bogus"):
        parse("FROM a\nRUN --bogus=1 true\n")
    with pytest.raises(InvalidArgument, match="Dockerfile:2: unknown flag: --from"):
        parse("FROM a\nADD --from=x a b\n")
    with pytest.raises(InvalidArgument, match="isn't allowed as an ONBUILD trigger"):
        parse("FROM a\nONBUILD FROM b\n")
    with pytest.raises(InvalidArgument, match="SHELL requires the arguments to be in JSON"):
        parse("FROM a\nSHELL /bin/bash -c\n")
    copy = parse("FROM a\nCOPY --link --chown=1:2 a b\n")[1]
    assert copy.flags == {"link": ["true"], "chown": ["1:2"]}
    assert escape_character("# escape=`\nFROM a\n") == "`"


def test_plan_stages_args_and_dependencies() -> None:
    plan = parse_plan("""ARG BASE=busybox
ARG UNUSED
FROM ${BASE} AS deps
RUN true
FROM deps AS build
COPY --from=tools /x /x
FROM busybox AS tools
FROM busybox AS final
COPY --from=build /x /x
""")
    with pytest.raises(InvalidArgument, match="not defined before it"):
        dependencies(plan, target_stage(plan, "final"), global_scope(plan, {}))
    plan = parse_plan("""ARG BASE=busybox
FROM ${BASE} AS deps
FROM busybox AS tools
FROM deps AS build
COPY --from=tools /x /x
FROM busybox AS unused
FROM busybox
COPY --from=build /x /x
""")
    scope = global_scope(plan, {"BASE": "alpine"})
    assert scope["BASE"] == "alpine" and scope["TARGETOS"] == "linux"
    needed = dependencies(plan, target_stage(plan, None), scope)
    assert needed == {4: {2}, 2: {0, 1}, 0: set(), 1: set()}  # "unused" (3) is skipped
    assert target_stage(plan, "tools").number == 1
    with pytest.raises(InvalidArgument, match='target stage "nope" could not be found'):
        target_stage(plan, "nope")
    with pytest.raises(InvalidArgument, match="duplicate stage name"):
        parse_plan("FROM a AS x\nFROM b AS x\n")
    with pytest.raises(InvalidArgument, match="only ARG may come before FROM"):
        parse_plan("RUN true\nFROM a\n")


def test_metadata_instructions_give_docker_config_shapes() -> None:
    config: dict[str, object] = {"Env": ["PATH=/bin"], "Cmd": ["sh"]}
    steps = parse("""FROM x
ENV A=1 B="two words"
ENV PATH=/usr/bin:$PATH
LABEL "com.example.name"="my app" version=1.0
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data"]
VOLUME /logs /cache
USER app:staff
STOPSIGNAL SIGINT
HEALTHCHECK --interval=1m30s --timeout=3s --retries=2 CMD wget -q -O- localhost || exit 1
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
ENTRYPOINT exec server
ONBUILD RUN echo child
""")[1:]
    env = {"PATH": "/bin"}
    for step in steps:
        dispatch.apply_metadata(config, step, {**env, **dispatch.env_map(config)}, "\\", True)
    assert config["Env"] == ["PATH=/usr/bin:/bin", "A=1", "B=two words"]
    assert config["Labels"] == {"com.example.name": "my app", "version": "1.0"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000-8001/tcp": {}}
    assert config["Volumes"] == {"/data": {}, "/logs": {}, "/cache": {}}
    assert config["User"] == "app:staff" and config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q -O- localhost || exit 1"],
        "Interval": 90_000_000_000, "Timeout": 3_000_000_000, "Retries": 2}
    assert config["Entrypoint"] == ["/bin/ash", "-eo", "pipefail", "-c", "exec server"]
    assert config["Cmd"] is None  # ENTRYPOINT resets the base image's CMD
    assert config["OnBuild"] == ["RUN echo child"]
    bad = parse("FROM x\nEXPOSE 99999\n")[1]
    with pytest.raises(InvalidArgument, match="Dockerfile:2: invalid port"):
        dispatch.apply_metadata({}, bad, {}, "\\", False)
    bad = parse("FROM x\nHEALTHCHECK --interval=soon CMD true\n")[1]
    with pytest.raises(InvalidArgument, match="invalid duration"):
        dispatch.apply_metadata({}, bad, {}, "\\", False)
