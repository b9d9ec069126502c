"""``registry.client.PlainFirst``: a plain-HTTP registry's client loads no CA bundle
until an https:// URL (a token realm, a redirect to storage) asks for one."""

from __future__ import annotations

import ssl

import httpx
import pytest

from dockyard.registry.client import PlainFirst, RegistryClient
from dockyard.testing.cli import free_port


@pytest.fixture
def ca_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    loads: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loads.append(args or kwargs)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return loads


def test_plain_requests_load_no_ca_bundle_and_https_loads_it_once(ca_loads: list[object]
                                                                  ) -> None:
    client = RegistryClient(f"127.0.0.1:{free_port()}")
    try:
        assert isinstance(client.http._transport, PlainFirst)
        with pytest.raises(httpx.ConnectError):
            client.http.get(client.base + "/v2/")
        assert ca_loads == []
        for _ in range(2):  # https: a verifying transport, made once
            with pytest.raises(httpx.ConnectError):
                client.http.get(f"https://127.0.0.1:{free_port()}/token")
        assert len(ca_loads) == 1
    finally:
        client.close()


def test_https_registries_and_proxies_keep_httpx_transport(ca_loads: list[object],
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    secure = RegistryClient("registry.example")
    assert not isinstance(secure.http._transport, PlainFirst) and ca_loads
    secure.close()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    proxied = RegistryClient("127.0.0.1:5000")
    assert not isinstance(proxied.http._transport, PlainFirst)
    proxied.close()
