"""Loading compose files: discovery, .env, interpolation, merging, project names,
validation and the bad-input corpus (tests/data/compose/bad)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.compose.interpolate import MissingVariable, substitute
from dockyard.compose.loader import Options, find_files, load, normalize_name, read_dotenv
from dockyard.compose.lower import lower
from dockyard.errors import InvalidArgument, NotFound, NotImplementedFeature

DATA = Path(__file__).parent.parent / "data" / "compose"


@pytest.mark.parametrize(("text", "env", "want"), [
    ("$A", {"A": "1"}, "1"),
    ("${A}", {"A": "1"}, "1"),
    ("x${A}y$A", {"A": "1"}, "x1y1"),
    ("${U:-d}", {}, "d"),
    ("${E:-d}", {"E": ""}, "d"),
    ("${E-d}", {"E": ""}, ""),
    ("${U-d}", {}, "d"),
    ("${A:+alt}", {"A": "1"}, "alt"),
    ("${E:+alt}", {"E": ""}, ""),
    ("${E+alt}", {"E": ""}, "alt"),
    ("${U:-${A}x}", {"A": "1"}, "1x"),
    ("$$A and $$", {"A": "1"}, "$A and $"),
    ("cost $ 5", {}, "cost $ 5"),
    ("${U}", {}, ""),
])
def test_substitute(text: str, env: dict[str, str], want: str) -> None:
    assert substitute(text, env) == want


def test_required_variable_names_itself_and_the_key() -> None:
    with pytest.raises(MissingVariable, match=r"at\.key: required variable X is missing a "
                                              r"value: give X"):
        substitute("${X:?give X}", {}, "at.key")
    with pytest.raises(MissingVariable):
        substitute("${X:?}", {"X": ""})
    assert substitute("${X?msg}", {"X": ""}) == ""
    with pytest.raises(InvalidArgument, match="invalid interpolation"):
        substitute("${A", {"A": "1"})
    with pytest.raises(InvalidArgument, match="invalid interpolation"):
        substitute("${1A}", {})


def test_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text('# c\nA=1\nexport B=two # note\nC="q \\"x\\""\nD=\'lit $X\'\n\nE=\n')
    assert read_dotenv(path) == {"A": "1", "B": "two", "C": 'q "x"', "D": "lit $X", "E": ""}
    path.write_text("not a name=1\n")
    with pytest.raises(InvalidArgument, match=r"\.env:1: invalid variable name"):
        read_dotenv(path)


def test_interpolation_corpus_with_dotenv_and_override() -> None:
    folder = DATA / "interp"
    project = load(Options(("compose.yaml", "override.yaml")), folder,
                   {"PLAIN": "plain-value", "BOTH": "from-env"})
    app = project.doc["services"]["app"]
    assert app["image"] == "box:1"
    assert app["environment"] == {
        "PLAIN": "plain-value", "BRACED": "plain-value", "UNSET_DEFAULT": "fallback",
        "EMPTY_COLON_DEFAULT": "was-empty", "EMPTY_DASH_DEFAULT": "", "ALT": "alternative",
        "NO_ALT": "", "DOLLARS": "cost $5", "NESTED": "plain-value-nested",
        "FROM_DOTENV": "single quoted", "OVERRIDDEN": "from-override"}
    assert app["labels"] == {"extra": "1"}
    assert project.name == "interp" and project.working_dir == folder
    # the process environment wins over .env, before the override file replaces it
    single = load(Options(("compose.yaml",)), folder, {"BOTH": "from-env"})
    assert single.doc["services"]["app"]["environment"]["OVERRIDDEN"] == "from-env"
    assert load(Options(("compose.yaml",)), folder, {}).doc["services"]["app"][
        "environment"]["OVERRIDDEN"] == "from-dotenv"


def test_env_file_option_replaces_dotenv(tmp_path: Path) -> None:
    (tmp_path / "other.env").write_text("PLAIN=from-other\n")
    project = load(Options((str(DATA / "interp" / "compose.yaml"),),
                           env_files=("other.env",)), tmp_path, {})
    env = project.doc["services"]["app"]["environment"]
    assert env["PLAIN"] == "from-other" and env["FROM_DOTENV"] == ""


def test_discovery_walks_upwards(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {a: {image: box:1}}\n")
    deep = tmp_path / "x" / "y"
    deep.mkdir(parents=True)
    assert find_files(Options(), deep) == (tmp_path / "docker-compose.yml",)
    (tmp_path / "x" / "compose.yaml").write_text("services: {b: {image: box:1}}\n")
    assert find_files(Options(), deep) == (tmp_path / "x" / "compose.yaml",)
    with pytest.raises(NotFound, match="no such file"):
        find_files(Options(("missing.yaml",)), deep)


def test_project_name(tmp_path: Path) -> None:
    folder = tmp_path / "My.App_Dir"
    folder.mkdir()
    (folder / "compose.yaml").write_text("services: {a: {image: box:1}}\n")
    assert load(Options(), folder, {}).name == "myapp_dir"
    assert load(Options(), folder, {"COMPOSE_PROJECT_NAME": "fromenv"}).name == "fromenv"
    assert load(Options(project_name="flag"), folder,
                {"COMPOSE_PROJECT_NAME": "fromenv"}).name == "flag"
    (folder / "compose.yaml").write_text("name: named\nservices: {a: {image: box:1}}\n")
    assert load(Options(), folder, {}).name == "named"
    assert load(Options(), folder, {"COMPOSE_PROJECT_NAME": "env"}).name == "env"
    with pytest.raises(InvalidArgument, match="invalid project name 'Bad Name'"):
        load(Options(project_name="Bad Name"), folder, {})
    assert normalize_name("-Foo.Bar") == "foobar"


def test_anchors_and_extensions(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "x-base: &base\n  image: box:1\n  init: true\n"
        "services:\n  a:\n    <<: *base\n    x-note: ignored by the engine\n")
    doc = load(Options(), tmp_path, {}).doc
    assert "x-base" not in doc
    assert doc["services"]["a"]["image"] == "box:1" and doc["services"]["a"]["init"] is True


def _load_bad(name: str, env: dict[str, str] | None = None) -> None:
    lower(load(Options((str(DATA / "bad" / name),)), DATA / "bad", env or {}))


@pytest.mark.parametrize(("name", "error", "words"), [
    ("unknown-key.yaml", InvalidArgument,
     r"unknown-key\.yaml:4: services\.web: additional property 'imagee' is not allowed"),
    ("wrong-type.yaml", InvalidArgument,
     r"wrong-type\.yaml:4: services\.web\.read_only: .* is not of type"),
    ("cycle.yaml", InvalidArgument, r"cycle\.yaml: dependency cycle detected: a -> b -> c -> a"),
    ("undefined-network.yaml", InvalidArgument,
     r"undefined-network\.yaml: service 'web' refers to undefined network nowhere"),
    ("undefined-volume.yaml", InvalidArgument,
     r"undefined-volume\.yaml: service 'web' refers to undefined volume ghost"),
    ("missing-variable.yaml", MissingVariable,
     r"missing-variable\.yaml: services\.web\.environment\.TOKEN: required variable "
     r"COMPOSE_TEST_TOKEN is missing a value: set COMPOSE_TEST_TOKEN first"),
    ("undefined-secret.yaml", InvalidArgument,
     r"undefined-secret\.yaml: service 'web' refers to undefined secret ghost: invalid "
     r"compose project \(services\.web\.secrets\[0\]\)"),
    ("missing-build-context.yaml", NotFound,
     r"missing-build-context\.yaml: services\.web\.build\.context: .*/no-such-directory "
     r"is not a directory"),
    ("network-mode-with-networks.yaml", InvalidArgument,
     r"network-mode-with-networks\.yaml: services\.web: network_mode and networks cannot "
     r"be combined"),
    ("disabled-dependency.yaml", InvalidArgument,
     r'disabled-dependency\.yaml: service "web" depends on undefined service "tools": '
     r"invalid compose project \(its profiles debug are not active"),
    ("extends-cycle.yaml", InvalidArgument,
     r"extends-cycle\.yaml: services\.[ab]\.extends: extends cycle"),
    ("unsupported.yaml", NotImplementedFeature,
     r"unsupported\.yaml: not supported by dockyard compose yet: "
     r"services\.web\.storage_opt \(line 4\), services\.web\.runtime \(line 5\), "
     r"services\.web\.build\.isolation \(line 6\), "
     r"services\.web\.networks\.default\.ipv6_address \(line 7\), "
     r"secrets\.token\.external \(line 10\)"),
])
def test_bad_input_names_file_and_key(name: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        _load_bad(name)


def test_missing_variable_given_loads() -> None:
    _load_bad("missing-variable.yaml", {"COMPOSE_TEST_TOKEN": "t"})


def test_invalid_yaml_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: [\n")
    with pytest.raises(InvalidArgument, match=r"compose\.yaml: invalid YAML"):
        load(Options(), tmp_path, {})
    (tmp_path / "compose.yaml").write_text("")
    with pytest.raises(InvalidArgument, match="empty compose file"):
        load(Options(), tmp_path, {})


def test_error_lines_follow_anchors_and_merges(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "x-base: &base\n"
        "  image: box:1\n"
        "  init: [1]\n"
        "services:\n"
        "  a:\n"
        "    <<: *base\n"
        "    ports:\n"
        "      - 80\n"
        "      - {target: 81, bogus: 1}\n")
    with pytest.raises(InvalidArgument) as caught:
        load(Options(), tmp_path, {})
    message = str(caught.value)
    assert "compose.yaml:3: services.a.init: [1] is not of type" in message
    assert "compose.yaml:9: services.a.ports[1]:" in message
