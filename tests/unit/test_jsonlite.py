"""``dockyard.jsonlite`` writes and reads exactly what ``json`` does, errors included,
and costs the runtime neither ``json`` nor ``re``."""

from __future__ import annotations

import json
import math

import pytest

from dockyard import jsonlite
from dockyard.testing.imports import loaded_after

DOCUMENTS: list[object] = [
    {}, [], "", 0, -1, 2**70, 1.5, -0.0, 1e300, True, False, None, "x",
    {"ociVersion": "1.2.0", "id": "c1", "pid": 4242, "status": "running",
     "annotations": {"org.opencontainers.image.title": "é ☃ \u2028 \x00 \"q\" \\ /"}},
    [[], {}, [[]], {"a": {}}, {"a": []}],
    {"k": [1, [2, [3, {"deep": [None, True, 1.25]}]]]},
    (1, "tuple as list"),
    {"non-str": {1: "a", False: "b", None: "c", 2.5: "d"}},
]


@pytest.mark.parametrize("indent", [None, 0, 2, 4])
@pytest.mark.parametrize("document", DOCUMENTS)
def test_dumps_is_json_dumps(document: object, indent: int | None) -> None:
    assert jsonlite.dumps(document, indent=indent) == json.dumps(document, indent=indent)


def test_dumps_nan_and_infinity_as_json_does() -> None:
    values = [math.nan, math.inf, -math.inf]
    assert jsonlite.dumps(values) == json.dumps(values)
    assert jsonlite.dumps(values, indent=2) == json.dumps(values, indent=2)


@pytest.mark.parametrize("indent", [None, 2])
def test_dumps_refuses_what_json_refuses(indent: int | None) -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        jsonlite.dumps({"a": {1, 2}}, indent=indent)
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonlite.dumps(circular)


def test_a_failed_dumps_leaves_nothing_behind() -> None:
    """The same document, mended, encodes: no circular-check marker of the failed
    encode is left over (it was, with one encoder shared by every call)."""
    document: dict[str, object] = {"a": {1}}
    with pytest.raises(TypeError):
        jsonlite.dumps(document)
    document["a"] = 1
    assert jsonlite.dumps(document) == json.dumps(document)
    assert jsonlite.dumps(document, indent=2) == json.dumps(document, indent=2)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_loads_reads_back(document: object) -> None:
    text = json.dumps(document, indent=2)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(text.encode()) == json.loads(text.encode())


@pytest.mark.parametrize("text", [" \n{} \t", '"\\u00e9"', "[1, 2.5e3, -0]",
                                  '{"a": NaN, "b": -Infinity}', "  null\r\n"])
def test_loads_is_json_loads(text: str) -> None:
    want, got = json.loads(text), jsonlite.loads(text)
    assert repr(got) == repr(want)  # (repr: NaN != NaN)


@pytest.mark.parametrize("text", ["", "   ", '{"a": }', "[1,]", "{} x", "1 2", "nul",
                                  '"a\x01"', '{"a" 1}', '{"a": 1', "[", '{"ociVersion": '])
def test_loads_fails_as_json_does(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        jsonlite.loads(text)
    assert (got.value.msg, got.value.pos, got.value.lineno, got.value.colno) == \
        (want.value.msg, want.value.pos, want.value.lineno, want.value.colno)


def test_imports_neither_json_nor_re() -> None:
    code = ("from dockyard import jsonlite\n"
            "jsonlite.loads(jsonlite.dumps({'a': [1, 'b']}, indent=2))\n")
    assert loaded_after(code, ("json", "re", "typing"), no_site=True) == []
