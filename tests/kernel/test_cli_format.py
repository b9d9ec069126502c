"""``--format`` as Docker users write it: Go templates through the real CLI."""

from __future__ import annotations

import json

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    """``box`` with one exited container ``c1`` (no network: nothing on the host)."""
    box("run", "--name", "c1", "--network", "none", "--label", "tier=web", "-e", "GREETING=<hi>&",
        "box:1", "true")
    return box


def test_inspect_nested_fields_and_json(dy: Dockyard) -> None:
    assert dy("inspect", "--format", "{{.State.Status}}", "c1").stdout == "exited\n"
    assert dy("container", "inspect", "-f", "{{.State.ExitCode}} {{.Name}}", "c1").stdout \
        == "0 /c1\n"
    env = json.loads(dy("inspect", "--format", "{{json .Config.Env}}", "c1").stdout)
    assert "GREETING=<hi>&" in env
    # Docker's json function: compact, no HTML escaping, one line per container
    raw = dy("inspect", "--format", "{{json .Config.Env}}", "c1").stdout
    assert raw.endswith('"]\n') and '","' in raw and "<hi>&" in raw
    whole = json.loads(dy("inspect", "--format", "{{json .}}", "c1").stdout)
    assert whole["Name"] == "/c1" and whole["State"]["Status"] == "exited"
    assert dy("inspect", "--format", '{{index .Config.Labels "tier"}}', "c1").stdout == "web\n"
    text = '{{range .Config.Env}}{{if eq . "GREETING=<hi>&"}}{{upper .}}{{end}}{{end}}'
    assert dy("inspect", "--format", text, "c1").stdout == "GREETING=<HI>&\n"


def test_inspect_format_json_is_one_compact_array(dy: Dockyard) -> None:
    out = dy("inspect", "--format", "json", "c1").stdout
    assert out.startswith('[{"Id":') and out.count("\n") == 1
    assert json.loads(out)[0]["Name"] == "/c1"


def test_ps_table_has_docker_header_and_alignment(dy: Dockyard) -> None:
    lines = dy("ps", "-a", "--format", r"table {{.Names}}\t{{.Status}}").stdout.splitlines()
    assert lines[0] == "NAMES     STATUS"   # tabwriter: cells padded to at least 10
    assert lines[1].startswith("c1        Exited (0) ")
    lines = dy("ps", "-a", "--format", r"table {{.ID}}\t{{.Names}}").stdout.splitlines()
    assert lines[0] == "CONTAINER ID   NAMES"
    row = json.loads(dy("ps", "-a", "--format", "{{json .}}").stdout)
    assert row["Names"] == "c1" and row["State"] == "exited" and "Label" not in row
    assert list(row) == sorted(row)


def test_ps_columns_without_and_with_the_inspected_fields(dy: Dockyard) -> None:
    """The table and column templates take the command line alone; a template naming
    an inspected field, ``{{json .}}`` or ``--format json`` get every field."""
    table = dy("ps", "-a").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    assert '"true"' in table[1] and table[1].rstrip().endswith("c1")
    assert dy("ps", "-a", "--format", "{{.Command}}|{{.Names}}").stdout == '"true"|c1\n'
    assert dy("ps", "-a", "--format", "{{.Labels}}").stdout == "tier=web\n"
    assert dy("ps", "-a", "--format", '{{.Label "tier"}} {{.Names}}').stdout == "web c1\n"
    for fmt in ("{{json .}}", "json"):
        row = json.loads(dy("ps", "-a", "--format", fmt).stdout)
        assert row["Labels"] == "tier=web" and row["Command"] == '"true"', fmt
        assert row["CreatedAt"] and row["LocalVolumes"] == "0", fmt


def test_images_repository_and_tag(dy: Dockyard) -> None:
    assert dy("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "box:1\n"
    lines = dy("images", "--format", r"table {{.ID}}\t{{.Repository}}").stdout.splitlines()
    assert lines[0] == "IMAGE ID       REPOSITORY"
    assert lines[1].endswith("   box")


def test_volume_and_network_formats(dy: Dockyard) -> None:
    dy("volume", "create", "--label", "a=b", "v1")
    assert dy("volume", "inspect", "--format", '{{.Name}} {{index .Labels "a"}}', "v1").stdout \
        == "v1 b\n"
    assert dy("volume", "ls", "--format", "{{.Name}} {{.Labels}}").stdout == "v1 a=b\n"
    assert dy("network", "inspect", "-f", "{{.Name}} {{.Driver}}", "none").stdout \
        == "none null\n"
    dy("volume", "rm", "v1")


def test_template_errors_are_dockers(dy: Dockyard) -> None:
    result = dy("inspect", "--format", "{{.State.Nope}}", "c1", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert 'template parsing error: template: :1:8: executing "" at <.State.Nope>: ' \
           'map has no entry for key "Nope"' in result.stderr
    assert "Traceback" not in result.stderr
    result = dy("inspect", "--format", "{{.State.Status", "c1", check=False)
    assert result.returncode == 64   # Docker's status for an inspect template that won't parse
    assert "template parsing error: template: :1: unclosed action" in result.stderr
    result = dy("ps", "-a", "--format", "{{.Names", check=False)
    assert result.returncode == 1
    assert "template parsing error: template: :1: unclosed action" in result.stderr
    result = dy("images", "--format", "{{nope .ID}}", check=False)
    assert result.returncode == 1
    assert 'template: :1: function "nope" not defined' in result.stderr
