"""contrib/systemd: the socket is where ``dockyard serve`` listens by default, the
service takes it over (``fd://``) after ``dockyard system restore`` and leaves the
containers running when it stops; systemd itself checks both files where it is
installed."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.api.listeners import parse_host
from dockyard.api.server import DEFAULT_HOST

UNITS = Path(__file__).parent.parent.parent / "contrib" / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def test_socket_and_service_agree_with_serve() -> None:
    socket_unit, service = _unit("dockyard.socket"), _unit("dockyard.service")
    assert f"unix://{socket_unit['Socket']['ListenStream']}" == DEFAULT_HOST
    assert socket_unit["Socket"]["SocketMode"] == "0660"
    assert socket_unit["Socket"]["SocketGroup"] == "dockyard"
    start = service["Service"]["ExecStart"].split()
    assert start[1:] == ["serve", "--host", "fd://"]
    assert parse_host(start[-1]).kind == "fd"
    assert service["Service"]["ExecStartPre"].split()[1:] == ["system", "restore"]
    assert service["Service"]["KillMode"] == "process"  # containers outlive the server
    assert service["Unit"]["Requires"] == "dockyard.socket"


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    dockyard = Path(sys.executable).with_name("dockyard")
    for name in ("dockyard.socket", "dockyard.service"):
        text = (UNITS / name).read_text().replace("/usr/local/bin/dockyard", str(dockyard))
        (tmp_path / name).write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / "dockyard.socket"),
                             str(tmp_path / "dockyard.service")], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "dockyard" not in result.stderr, result.stderr
