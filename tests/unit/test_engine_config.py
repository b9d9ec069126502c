"""The engine config file: defaults, values, environment overrides, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.store.config import EngineConfig, load


def test_defaults_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_SUBNET", raising=False)
    monkeypatch.delenv("DOCKYARD_NETWORK_POOL", raising=False)
    monkeypatch.delenv("DOCKYARD_DEFAULT_BIND_IP", raising=False)
    monkeypatch.delenv("DOCKYARD_USERLAND_PROXY", raising=False)
    monkeypatch.delenv("DOCKYARD_IP_FORWARD", raising=False)
    assert load(tmp_path) == EngineConfig()
    (tmp_path / "engine.json").write_text(json.dumps(
        {"bridge_subnet": "10.219.40.0/24", "network_pool": "10.230.0.0/16"}))
    assert load(tmp_path) == EngineConfig("10.219.40.0/24", "10.230.0.0/16", "")
    monkeypatch.setenv("DOCKYARD_NETWORK_POOL", "10.231.0.0/16")
    assert load(tmp_path).network_pool == "10.231.0.0/16"


def test_userland_proxy_is_a_boolean_from_the_file_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_USERLAND_PROXY", raising=False)
    assert load(tmp_path).userland_proxy is False  # loopback goes through the kernel
    (tmp_path / "engine.json").write_text(json.dumps({"userland_proxy": True}))
    assert load(tmp_path).userland_proxy is True
    monkeypatch.setenv("DOCKYARD_USERLAND_PROXY", "0")  # the environment wins
    assert load(tmp_path).userland_proxy is False
    monkeypatch.setenv("DOCKYARD_USERLAND_PROXY", "maybe")
    with pytest.raises(InvalidArgument, match="userland_proxy: 'maybe' is not a boolean"):
        load(tmp_path)


def test_ip_forward_is_on_unless_set_false(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_IP_FORWARD", raising=False)
    assert load(tmp_path).ip_forward is True  # as dockerd's --ip-forward
    (tmp_path / "engine.json").write_text(json.dumps({"ip_forward": False}))
    assert load(tmp_path).ip_forward is False
    monkeypatch.setenv("DOCKYARD_IP_FORWARD", "yes")
    assert load(tmp_path).ip_forward is True
    monkeypatch.setenv("DOCKYARD_IP_FORWARD", "2")
    with pytest.raises(InvalidArgument, match="ip_forward: '2' is not a boolean"):
        load(tmp_path)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"), ('["a"]', "expected a JSON object"),
    ('{"bridge": "x"}', "unknown setting(s) bridge"),
    ('{"bridge_subnet": "10.0.0.0/33"}', "bridge_subnet"),
    ('{"default_bind_ip": "localhost"}', "default_bind_ip"),
    ('{"userland_proxy": "sometimes"}', "userland_proxy"),
    ('{"ip_forward": "sometimes"}', "ip_forward"),
])
def test_bad_config_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str,
                             message: str) -> None:
    monkeypatch.delenv("DOCKYARD_DEFAULT_BIND_IP", raising=False)
    monkeypatch.delenv("DOCKYARD_USERLAND_PROXY", raising=False)
    monkeypatch.delenv("DOCKYARD_IP_FORWARD", raising=False)
    (tmp_path / "engine.json").write_text(content)
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path)
