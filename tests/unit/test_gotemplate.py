"""Go templates as Docker's ``--format`` runs them: the documented examples, Go's own
examples, and errors in Go's words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.cli import render as output
from dockyard.cli.gotemplate import Template, TemplateError, render
from dockyard.errors import InvalidArgument

CONTAINER: dict[str, Any] = {
    "Id": "4fa6e0f0c678",
    "Name": "/YUN-teSt",
    "Path": "sh",
    "Args": ["-c", "sleep 1"],
    "Image": "nginx:latest",
    "LogPath": "/var/lib/docker/containers/4fa6/4fa6-json.log",
    "State": {"Status": "exited", "Running": False, "ExitCode": 0, "Pid": 0},
    "HostConfig": {"CgroupnsMode": "host", "Links": None,
                   "MaskedPaths": ["/proc/asound", "/proc/acpi"]},
    "Config": {"Image": "nginx", "Env": ["PATH=/usr/bin", "A=<b>&c"],
               "Labels": {"com.example.vendor": "ACME", "tier": "web"}},
    "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/v", "RW": True}],
    "NetworkSettings": {
        "MacAddress": "02:42:ac:11:00:06",
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                  "8787/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18787"}]},
        "Networks": {"bridge": {"IPAddress": "172.17.0.2", "MacAddress": "02:42:ac:11:00:02"},
                     "front": {"IPAddress": "10.30.0.5", "MacAddress": "02:42:0a:1e:00:05"}},
    },
}

# (template, expected) over CONTAINER
CASES = [
    # docs.docker.com "Format command and log output"
    ('{{join .Args " , "}}', "-c , sleep 1"),
    ("{{json .Mounts}}", '[{"Type":"volume","Name":"data","Source":"/var/lib/v","RW":true}]'),
    ("{{lower .Name}}", "/yun-test"),
    ("{{upper .Name}}", "/YUN-TEST"),
    ('{{split .Image ":"}}', "[nginx latest]"),
    ("{{title .HostConfig.CgroupnsMode}}", "Host"),
    ('{{split .NetworkSettings.MacAddress ":" }}', "[02 42 ac 11 00 06]"),
    ('{{join .HostConfig.MaskedPaths ","}}', "/proc/asound,/proc/acpi"),
    ("{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}",
     "172.17.0.2\n10.30.0.5\n"),
    ('{{split (join .Args "/") "/"}}', "[-c sleep 1]"),
    # docs.docker.com "docker inspect"
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "172.17.0.210.30.0.5"),
    ("{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}",
     "02:42:ac:11:00:0202:42:0a:1e:00:05"),
    ("{{.LogPath}}", "/var/lib/docker/containers/4fa6/4fa6-json.log"),
    ("{{.Config.Image}}", "nginx"),
    ("{{range $p, $conf := .NetworkSettings.Ports}} {{$p}} -> {{(index $conf 0).HostPort}} {{end}}",
     " 80/tcp -> 8080  8787/tcp -> 18787 "),
    ('{{(index (index .NetworkSettings.Ports "8787/tcp") 0).HostPort}}', "18787"),
    ("{{json .Config.Labels}}", '{"com.example.vendor":"ACME","tier":"web"}'),
    # the examples
    ("{{.State.Status}}", "exited"),
    ('{{index .Config.Labels "tier"}}', "web"),
    ('[{{index .Config.Labels "missing"}}]', "[]"),   # a map of strings: ""
    ("{{json .Config.Env}}", '["PATH=/usr/bin","A=<b>&c"]'),   # Docker: no HTML escaping
    ("{{.Config.Env}}", "[PATH=/usr/bin A=<b>&c]"),
    ("{{.Config.Labels}}", "map[com.example.vendor:ACME tier:web]"),
    ("{{.HostConfig.Links}}", "<no value>"),
    ("{{.State.Running}} {{.State.ExitCode}}", "false 0"),
    ("{{.Name | upper}}", "/YUN-TEST"),
    ("{{.Name | printf \"%s!\" | lower}}", "/yun-test!"),
    ('{{if eq .State.Status "running"}}up{{else if eq .State.Status "exited"}}down{{else}}?{{end}}',
     "down"),
    ("{{if not .State.Running}}stopped{{end}}", "stopped"),
    ("{{if and .Name (gt (len .Args) 1)}}yes{{end}}", "yes"),
    ('{{or .HostConfig.Links "none"}}', "none"),
    ("{{with .State}}{{.Status}}/{{.Pid}}{{end}}", "exited/0"),
    ("{{with .HostConfig.Links}}x{{else}}no links{{end}}", "no links"),
    ("{{range .HostConfig.Links}}x{{else}}empty{{end}}", "empty"),
    ("{{range $i, $a := .Args}}{{$i}}={{$a}};{{end}}", "0=-c;1=sleep 1;"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}} {{end}}",
     "com.example.vendor:ACME tier:web "),
    ("{{range .Args}}{{if eq . \"-c\"}}{{continue}}{{end}}{{.}}{{break}}{{end}}", "sleep 1"),
    ("{{range .Args}}{{$.Name}}{{end}}", "/YUN-teSt/YUN-teSt"),
    ("{{$s := .State}}{{$s.Status}}", "exited"),
    ("{{$n := 1}}{{if true}}{{$n = 2}}{{end}}{{$n}}", "2"),
    ('{{printf "%s has %d args" .Name (len .Args)}}', "/YUN-teSt has 2 args"),
    ('{{printf "%-8s|%5.2f|%05d|%x|%q|%v|%t" "ab" 3.14159 42 255 "q" .Args true}}',
     'ab      | 3.14|00042|ff|"q"|[-c sleep 1]|true'),
    ('{{printf "%d"}} {{printf "%d" 1 2}} {{printf "%d" "x"}}',
     "%!d(MISSING) 1%!(EXTRA int=2) %!d(string=x)"),
    ('{{print 1 2 "a" "b" 3}}', "1 2ab3"),
    ('{{println "a" 1}}', "a 1\n"),
    ("{{len .Args}} {{len .Config.Labels}} {{len .Name}}", "2 2 9"),
    ("{{truncate .Id 4}}|{{pad .Id 1 2}}|{{pad \"\" 1 1}}|", "4fa6| 4fa6e0f0c678  ||"),
    ('{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge "b" "a"}} {{ne .Path "sh"}} {{eq .Path "x" "sh"}}',
     "true true false true false true"),
    ("{{index .Args 1}} {{slice .Id 0 4}} {{index .Mounts 0 | json}}",
     'sleep 1 4fa6 {"Type":"volume","Name":"data","Source":"/var/lib/v","RW":true}'),
    # literals, whitespace trimming, comments
    ('{{"quoted"}} {{`raw\\t`}} {{42}} {{-7}} {{0x1F}} {{1e3}} {{1.5}} {{true}} {{\'a\'}}',
     "quoted raw\\t 42 -7 31 1000 1.5 true 97"),
    ("{{23 -}} < {{- 45}}", "23<45"),
    ("a\n  {{- .Path -}}  \n b", "ashb"),
    ("{{/* a comment */}}x{{- /* trimmed */ -}} y", "xy"),
    # Go's text/template documentation: every one prints "output" quoted
    ('{{"output" | printf "%q"}}', '"output"'),
    ('{{printf "%q" (print "out" "put")}}', '"output"'),
    ('{{"put" | printf "%s%s" "out" | printf "%q"}}', '"output"'),
    ('{{with $x := "output" | printf "%q"}}{{$x}}{{end}}', '"output"'),
    ('{{with $x := "output"}}{{$x | printf "%q"}}{{end}}', '"output"'),
    # Go's other builtins
    ('{{html "<a href=\'x\'>"}}', "&lt;a href=&#39;x&#39;&gt;"),
    ('{{urlquery "a b&c"}}', "a+b%26c"),
    ('{{js "it\'s"}}', "it\\'s"),
    ("{{range 3}}{{.}}{{end}}", "012"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_template(template: str, expected: str) -> None:
    assert render(template, CONTAINER) == expected


def test_json_of_everything_is_the_whole_document() -> None:
    assert json.loads(render("{{json .}}", CONTAINER)) == CONTAINER
    assert render("{{json .}}", {"a": 1.0, "b": "\u2028"}) == '{"a":1,"b":"\\u2028"}'


ERRORS = [
    ("{{.Foo}}", 'template: :1:2: executing "" at <.Foo>: map has no entry for key "Foo"'),
    ("{{.State.Foo}}",
     'template: :1:8: executing "" at <.State.Foo>: map has no entry for key "Foo"'),
    ("{{.ID}} {{.Foo}}", 'template: :1:2: executing "" at <.ID>: map has no entry for key "ID"'),
    ("{{.NetworkSettings.Networks.nope}}",
     'template: :1:18: executing "" at <.NetworkSettings.Net...>: map has no entry for key '
     '"nope"'),
    ("line\n  {{.Nope}}",
     'template: :2:4: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("{{.HostConfig.Links.X}}",
     'template: :1:13: executing "" at <.HostConfig.Links.X>: nil pointer evaluating '
     "interface {}.X"),
    ("{{.Name.X}}",
     'template: :1:7: executing "" at <.Name.X>: can\'t evaluate field X in type string'),
    ("{{.Name 1}}", 'template: :1:2: executing "" at <.Name>: Name is not a method but has '
     "arguments"),
    ('{{"a" 1}}', 'template: :1:2: executing "" at <"a">: can\'t give argument to '
     'non-function "a"'),
    ("{{index .Args 5}}",
     'template: :1:2: executing "" at <index>: error calling index: index out of range: 5'),
    ("{{upper .Args}}", 'template: :1:8: executing "" at <.Args>: wrong type for value; '
     "expected string; got []interface {}"),
    ("{{len 3}}", 'template: :1:2: executing "" at <len>: error calling len: len of type int'),
    ('{{eq 1 "a"}}', 'template: :1:2: executing "" at <eq>: error calling eq: incompatible '
     "types for comparison"),
    ("{{range .Name}}{{end}}",
     'template: :1:8: executing "" at <.Name>: range can\'t iterate over /YUN-teSt'),
    ("{{upper}}", 'template: :1:2: executing "" at <upper>: wrong number of args for upper: '
     "want 1 got 0"),
    ('{{truncate .Id "x"}}', 'template: :1:15: executing "" at <"x">: expected integer; '
     'found "x"'),
    ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
    # parse errors carry a line, no column
    ("{{.State.Status", "template: :1: unclosed action"),
    ("{{if .Name}}x", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{nope .Name}}", 'template: :1: function "nope" not defined'),
    ("{{$x}}", 'template: :1: undefined variable "$x"'),
    ("{{if true}}{{$v := 1}}{{end}}{{$v}}", 'template: :1: undefined variable "$v"'),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{.Foo-bar}}", "template: :1: bad character U+002D '-'"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{if}}{{end}}", "template: :1: missing value for if"),
    ("{{(.Name}}", "template: :1: unclosed left paren"),
    ("{{.Name | 2}}", "template: :1: non executable command in pipeline stage 2"),
    ("{{with 1}}{{else}}{{else}}{{end}}", "template: :1: expected end; found {{else}}"),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{3x}}", 'template: :1: bad number syntax: "3x"'),
    ("{{/* open", "template: :1: unclosed comment"),
    ("a\nb\n{{.Foo", "template: :3: unclosed action"),
]


@pytest.mark.parametrize(("template", "message"), ERRORS)
def test_error_in_gos_words(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTAINER)
    assert str(caught.value) == message


def test_parse_errors_come_before_execution() -> None:
    with pytest.raises(TemplateError, match="unclosed action"):
        Template("{{.Name}} {{.Foo")


# ------------------------------------------------------------------ list and inspect output

PS_ROWS = [
    {"ID": "4fa6e0f0c678", "Image": "nginx", "Command": '"nginx -g …"', "RunningFor":
     "2 minutes ago", "Status": "Up 2 minutes", "Ports": "", "Names": "web", "State": "running",
     "Labels": "tier=web", "Label": lambda name: {"tier": "web"}.get(name, "")},
    {"ID": "0123456789ab", "Image": "busybox", "Command": '"sh"', "RunningFor": "3 hours ago",
     "Status": "Exited (0) 3 hours ago", "Ports": "", "Names": "a-much-longer-name",
     "State": "exited", "Labels": "", "Label": lambda name: ""},
]
PS_COLUMNS = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES"}


def ps(fmt: str | None) -> str:
    return output.render(PS_ROWS, PS_COLUMNS, fmt, PS_HEADERS)


def test_table_header_names_columns_as_docker_does() -> None:
    assert ps(r"table {{.ID}}\t{{.Names}}").splitlines() == [
        "CONTAINER ID   NAMES",
        "4fa6e0f0c678   web",
        "0123456789ab   a-much-longer-name"]
    # tabwriter: a column is at least 10 wide, padding 3; the last cell is not padded
    assert ps(r"table {{.Names}}\t{{.State}}\t{{.Image}}").splitlines() == [
        "NAMES                STATE     IMAGE",
        "web                  running   nginx",
        "a-much-longer-name   exited    busybox"]


def test_table_header_keeps_names_through_functions() -> None:
    lines = ps(r'table {{upper .Names}}\t{{json .Labels}}\t{{.Label "com.acme.tier-name"}}')
    assert lines.splitlines()[0] == "NAMES".ljust(21) + "LABELS".ljust(13) + "tier name"
    assert lines.splitlines()[1] == "WEB".ljust(21) + '"tier=web"'.ljust(13)
    # fields without a given header are their name in upper-case words
    assert ps(r"table {{.RunningFor}}\t{{.State}}").splitlines()[0].split() == \
        ["CREATED", "STATE"]


def test_table_with_no_rows_is_the_header() -> None:
    assert output.render([], PS_COLUMNS, r"table {{.ID}}\t{{.CreatedAt}}", PS_HEADERS) == \
        "CONTAINER ID   CREATED AT"
    assert output.render([], PS_COLUMNS, "{{.ID}}", PS_HEADERS) == ""


def test_default_table_and_json_lines() -> None:
    assert ps(None).splitlines()[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND",
                                                "CREATED", "STATUS", "PORTS", "NAMES"]
    assert ps("table") == ps(None)
    rows = [json.loads(line) for line in ps("json").splitlines()]
    assert rows[0]["Names"] == "web" and list(rows[0]) == sorted(rows[0])
    assert "Label" not in rows[0]   # a method, not data
    assert ps("{{json .}}") == ps("json")


def test_list_templates_expand_backslash_escapes_and_methods() -> None:
    assert ps(r"{{.Names}}\t{{.State}}\n") == "web\trunning\n\na-much-longer-name\texited\n"
    assert ps('{{.Label "tier"}}|{{.Labels}}') == "web|tier=web\n|"


def test_list_errors_are_one_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as caught:
        ps("{{.Nope}}")
    assert caught.value.message == ('template parsing error: template: :1:2: executing "" '
                                    'at <.Nope>: map has no entry for key "Nope"')
    with pytest.raises(InvalidArgument, match="^template parsing error: template: :1: "
                       "unclosed action$"):
        ps("{{.Names")


def test_inspect_output() -> None:
    docs = [CONTAINER, {**CONTAINER, "Name": "/other"}]
    assert output.render_inspect(docs, "{{.Name}}") == "/YUN-teSt\n/other"
    assert output.render(docs, [], "{{.State.Status}}") == "exited\nexited"
    assert json.loads(output.render_inspect(docs, None)) == docs
    compact = output.render_inspect(docs, "json")
    assert "\n" not in compact and json.loads(compact) == docs
    assert "A=\\u003cb\\u003e\\u0026c" in compact   # Go's json.Marshal escapes HTML
    # no \t expansion for inspect, as Docker
    assert output.render_inspect(docs[:1], r"{{.Path}}\t") == "sh\\t"


def test_inspect_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidArgument, match=r'at <\.Nope>: map has no entry for key "Nope"'):
        output.render_inspect([CONTAINER], "{{.Nope}}")
    with pytest.raises(SystemExit) as exited:
        output.render_inspect([CONTAINER], "{{.Nope")
    assert exited.value.code == output.EXIT_BAD_INSPECT_TEMPLATE == 64
    assert capsys.readouterr().err == \
        "Error: template parsing error: template: :1: unclosed action\n"


def test_container_fields_are_dockers_ps_columns() -> None:
    fields = output.container_fields(
        {**CONTAINER, "Created": "2024-05-01T10:00:00.123Z",
         "Mounts": [{"Type": "volume", "Name": "0123456789abcdef"},
                    {"Type": "bind", "Name": None, "Source": "/home/user/data"}]})
    assert fields["Labels"] == "com.example.vendor=ACME,tier=web"
    assert fields["Label"]("tier") == "web" and fields["Label"]("nope") == ""
    assert fields["Mounts"] == "0123456789ab,/home/user/d"   # Docker's TruncateID
    assert fields["LocalVolumes"] == "1"
    assert fields["Networks"] == "bridge,front"
    assert fields["CreatedAt"].startswith("2024-05-01 ") or \
        fields["CreatedAt"].startswith("2024-04-30 ")


def test_go_time_is_go_time_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        assert output.go_time("2024-05-01T10:00:00.5Z") == "2024-05-01 10:00:00 +0000 UTC"
        assert output.go_time("2024-05-01T10:00:00.5Z", fraction=True) == \
            "2024-05-01 10:00:00.5 +0000 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_tabwrite_aligns_runs_of_lines_like_go() -> None:
    # a line with fewer cells ends the column block above it
    assert output.tabwrite("a\tb\tc\nlonger-cell\tx\n\nz\ty").splitlines() == [
        "a".ljust(14) + "b".ljust(10) + "c",
        "longer-cell".ljust(14) + "x",
        "",
        "z".ljust(10) + "y"]


def test_default_table_needs_no_field_names() -> None:
    """``top``'s columns come from ps(1): ``%CPU`` is no template field, yet a column."""
    titles = ["PID", "%CPU", "COMMAND"]
    table = output.render([{"PID": 1, "%CPU": "0.0", "COMMAND": "sleep 9"}], titles, None,
                          {t: t for t in titles})
    assert table.splitlines() == ["PID       %CPU      COMMAND", "1         0.0       sleep 9"]
