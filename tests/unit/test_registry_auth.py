"""The auth challenge flow against an in-process fake registry (httpx.MockTransport).

The real docker-registry (tests/compat) covers plain and Basic auth; a Bearer
token service is not available here, so that flow is checked at the HTTP
boundary with a transport double.
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from dockyard.errors import PermissionDenied
from dockyard.registry import auth
from dockyard.registry.client import RegistryClient, is_insecure


def test_parse_challenge() -> None:
    challenge = auth.parse_challenge('Bearer realm="https://auth.example/token",'
                                     'service="registry.example",scope="repository:a/b:pull"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.example/token",
                                "service": "registry.example", "scope": "repository:a/b:pull"}
    assert auth.parse_challenge('Basic realm="Registry"').scheme == "basic"


def test_insecure_rules() -> None:
    assert is_insecure("127.0.0.1:5000", frozenset())
    assert is_insecure("localhost:5000", frozenset())
    assert not is_insecure("registry.example", frozenset())
    assert is_insecure("registry.example", frozenset({"registry.example"}))


def test_credentials_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth.store("reg.example:5000", auth.Credentials("alice", "s3cret"))
    assert auth.lookup("reg.example:5000") == auth.Credentials("alice", "s3cret")
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600
    assert auth.remove("reg.example:5000")
    assert auth.lookup("reg.example:5000") is None


def _fake_registry(seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.host == "auth.example":
            expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
            if request.headers.get("authorization") != expected:
                return httpx.Response(401)
            assert request.url.params["scope"] == "repository:app:pull"
            return httpx.Response(200, json={"token": "tok123"})
        if request.headers.get("authorization") != "Bearer tok123":
            return httpx.Response(401, headers={"WWW-Authenticate":
                                  'Bearer realm="https://auth.example/token",service="reg",'
                                  'scope="repository:app:pull"'})
        return httpx.Response(200, json={"name": "app", "tags": ["v1", "v2"]})

    return httpx.MockTransport(handler)


def test_bearer_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth.store("reg.example", auth.Credentials("alice", "s3cret"))
    seen: list[str] = []
    client = RegistryClient("reg.example", transport=_fake_registry(seen))
    assert client.tags("app") == ["v1", "v2"]
    assert client.tags("app") == ["v1", "v2"]  # the token is reused for the same scope
    assert seen == ["GET /v2/app/tags/list", "GET /token", "GET /v2/app/tags/list",
                    "GET /v2/app/tags/list"]


def test_bearer_flow_without_credentials_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client = RegistryClient("reg.example", transport=_fake_registry([]))
    with pytest.raises(PermissionDenied, match="token request refused"):
        client.tags("app")
