"""config.json parsing: valid documents become typed values, bad ones name the field."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.errors import InvalidSpec
from dockyard.oci.runtime_spec import parse_spec
from dockyard.runtime.spec import default_spec


def test_default_spec_round_trips() -> None:
    spec = parse_spec(default_spec(("echo", "hi")))
    assert spec.process is not None
    assert spec.process.args == ("echo", "hi")
    assert spec.linux.namespace("pid") is not None
    assert "CAP_CHOWN" in spec.process.capabilities.bounding  # type: ignore[union-attr]
    assert spec.linux.seccomp is not None
    assert spec.linux.seccomp.default_action == "SCMP_ACT_ERRNO"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("ociVersion"), "ociVersion: missing"),
        (lambda c: c.update(ociVersion="2.0.0"), "unsupported version '2.0.0'"),
        (lambda c: c.pop("root"), "root: missing"),
        (lambda c: c["process"].update(args=[]), "process.args: must be a non-empty list"),
        (lambda c: c["process"].update(cwd="relative"), "process.cwd: must be an absolute path"),
        (lambda c: c["process"]["user"].update(uid="0"), "process.user.uid: must be an integer"),
        (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}),
         "linux.namespaces[6].type: unknown namespace type 'bogus'"),
        (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "listed twice"),
        (lambda c: c["mounts"].append({"destination": "rel"}),
         "mounts[7].destination: must be an absolute path"),
        (lambda c: c.update(hooks={"prestart": [{"path": "hook"}]}),
         "hooks.prestart[0].path: must be an absolute path"),
        (lambda c: c.update(hooks={"preboot": []}), "unknown hook kind 'preboot'"),
        (lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "z"}]),
         "linux.devices[0].type"),
        (lambda c: c["linux"].update(rootfsPropagation="sideways"), "unknown propagation"),
    ],
)
def test_bad_documents_name_the_field(mutate: Any, message: str) -> None:
    config = default_spec()
    mutate(config)
    with pytest.raises(InvalidSpec, match=None) as info:
        parse_spec(config)
    assert message in str(info.value)


def test_not_an_object() -> None:
    with pytest.raises(InvalidSpec, match="must be an object"):
        parse_spec([1, 2])
