"""The project cache (``compose.cache``): a project is loaded again whenever anything it
was made from changed — a compose file, an included or extended file, ``.env``
(edited, created, removed), an ``env_file``, a secret file, an environment variable
(set, changed, unset) — and is otherwise read back whole, without YAML or schema."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from dockyard.compose.cache import project_plan
from dockyard.compose.files import Options
from dockyard.compose.plan import ProjectPlan

MAIN = """\
include: [lib/compose.yaml]
services:
  web:
    image: box:1
    command: ["echo", "${GREETING:-hello}"]
    env_file: [web.env]
    environment: [FROM_SHELL]
    secrets: [token]
  worker:
    extends: {file: base.yaml, service: base}
secrets:
  token: {file: token.txt}
"""
BASE = "services:\n  base:\n    image: box:1\n    command: [\"sleep\", \"1\"]\n"
LIB = "services:\n  cache:\n    image: box:1\n    command: [\"echo\", \"${LIB_WORD:-lib}\"]\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    (folder / "lib").mkdir(parents=True)
    (folder / "compose.yaml").write_text(MAIN)
    (folder / "base.yaml").write_text(BASE)
    (folder / "lib" / "compose.yaml").write_text(LIB)
    (folder / "web.env").write_text("FROM_FILE=1\n")
    (folder / "token.txt").write_text("secret\n")
    return folder


class Cached:
    """``project_plan`` with a cache folder, telling whether the entry was written
    (a load) or only read (a hit)."""

    def __init__(self, folder: Path, cwd: Path) -> None:
        self.folder, self.cwd = folder, cwd
        self.env: dict[str, str] = {}

    def __call__(self, **options: object) -> tuple[ProjectPlan, bool]:
        before = self._stamps()
        plan = project_plan(Options(**options), self.cwd, self.env,  # type: ignore[arg-type]
                            (), self.folder)
        return plan, self._stamps() != before

    def _stamps(self) -> dict[str, int]:
        if not self.folder.is_dir():
            return {}
        return {e.name: e.stat().st_mtime_ns + e.stat().st_ino for e in os.scandir(self.folder)}


def _command(plan: ProjectPlan, service: str) -> tuple[str, ...] | None:
    return plan.services[service].spec.command


def test_an_unchanged_project_is_read_back(project: Path, tmp_path: Path) -> None:
    load = Cached(tmp_path / "cache", project)
    first, written = load()
    assert written
    again, written = load()
    assert not written and again == first


@pytest.mark.parametrize("edit", ["compose file", "included file", "extended file",
                                  "env_file", "secret file"])
def test_an_edited_file_is_applied(project: Path, tmp_path: Path, edit: str) -> None:
    load = Cached(tmp_path / "cache", project)
    load()
    if edit == "compose file":
        (project / "compose.yaml").write_text(MAIN.replace("hello", "edited"))
    elif edit == "included file":
        (project / "lib" / "compose.yaml").write_text(LIB.replace("lib}", "edited}"))
    elif edit == "extended file":
        (project / "base.yaml").write_text(BASE.replace('"1"', '"2"'))
    elif edit == "env_file":
        (project / "web.env").write_text("FROM_FILE=2\n")
    else:
        (project / "token.txt").unlink()
    if edit == "secret file":  # the file gone: the project says so again
        with pytest.raises(Exception, match="token.txt"):
            load()
        return
    plan, written = load()
    assert written
    assert {"compose file": _command(plan, "web") == ("echo", "edited"),
            "included file": _command(plan, "cache") == ("echo", "edited"),
            "extended file": _command(plan, "worker") == ("sleep", "2"),
            "env_file": "FROM_FILE=2" in plan.services["web"].spec.env}[edit]


def test_dotenv_created_edited_and_removed(project: Path, tmp_path: Path) -> None:
    load = Cached(tmp_path / "cache", project)
    assert _command(load()[0], "web") == ("echo", "hello")
    dotenv = project / ".env"
    dotenv.write_text("GREETING=from-dotenv\n")  # there was none
    assert _command(load()[0], "web") == ("echo", "from-dotenv")
    dotenv.write_text("GREETING=edited\n")
    assert _command(load()[0], "web") == ("echo", "edited")
    dotenv.unlink()
    assert _command(load()[0], "web") == ("echo", "hello")


def test_variables_set_changed_and_unset(project: Path, tmp_path: Path) -> None:
    load = Cached(tmp_path / "cache", project)
    load()
    load.env["GREETING"] = "set"  # interpolation
    assert _command(load()[0], "web") == ("echo", "set")
    load.env["GREETING"] = "changed"
    assert _command(load()[0], "web") == ("echo", "changed")
    load.env["LIB_WORD"] = "included"  # interpolation in an included file
    assert _command(load()[0], "cache") == ("echo", "included")
    load.env["FROM_SHELL"] = "x"  # `environment: [NAME]` takes the shell's value
    assert "FROM_SHELL=x" in load()[0].services["web"].spec.env
    del load.env["GREETING"]
    plan, written = load()
    assert written and _command(plan, "web") == ("echo", "hello")
    load.env["UNRELATED"] = "1"  # a variable the project never looked at
    assert not load()[1]


def test_a_bare_name_in_an_env_file_follows_the_environment(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``NAME`` alone in an ``env_file`` takes the process environment's value (the
    docker CLI's rule): that variable is noted too."""
    (project / "web.env").write_text("FROM_FILE=1\nDY_BARE\n")
    load = Cached(tmp_path / "cache", project)
    monkeypatch.setenv("DY_BARE", "one")
    load.env["DY_BARE"] = "one"
    assert "DY_BARE=one" in load()[0].services["web"].spec.env
    monkeypatch.setenv("DY_BARE", "two")
    load.env["DY_BARE"] = "two"
    assert "DY_BARE=two" in load()[0].services["web"].spec.env


def test_a_fifo_or_a_big_file_is_noted_without_reading_it_whole(
        project: Path, tmp_path: Path) -> None:
    """A FIFO where ``.env`` would be is no file (never opened to be read: no hang);
    a secret file over 4 MiB is known by its identity, size and times, and an edit
    to it still loads the project again."""
    os.mkfifo(project / ".env")
    load = Cached(tmp_path / "cache", project)
    assert _command(load()[0], "web") == ("echo", "hello")
    assert not load()[1]
    (project / "token.txt").write_bytes(b"x" * (5 << 20))
    assert load()[1] and not load()[1]
    with open(project / "token.txt", "r+b") as handle:  # same size, other bytes
        handle.write(b"y")
    assert load()[1]


def test_a_project_holding_a_secret_value_is_not_kept(project: Path,
                                                       tmp_path: Path) -> None:
    (project / "compose.yaml").write_text(MAIN.replace("token: {file: token.txt}",
                                                       "token: {environment: TOKEN}"))
    load = Cached(tmp_path / "cache", project)
    load.env["TOKEN"] = "s3cr3t"
    plan, _ = load()
    assert plan.services["web"].files[0].content == b"s3cr3t"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_other_options_are_other_entries(project: Path, tmp_path: Path) -> None:
    load = Cached(tmp_path / "cache", project)
    assert load()[0].name == "app"
    assert load(project_name="other")[0].name == "other"
    assert not load()[1] and not load(project_name="other")[1]


def test_a_damaged_or_foreign_entry_is_made_again(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    load = Cached(folder, project)
    first, _ = load()
    (entry,) = folder.iterdir()
    header = entry.read_bytes().partition(b"\n")[0]
    entry.write_bytes(header + b"\n" + b"\x80\x05garbage")
    assert load() == (first, True)
    # an entry holding anything but the plan's types is refused, not run
    marker = tmp_path / "ran"
    entry.write_bytes(header + b"\n" + pickle.dumps(_Runs(str(marker))))
    assert load() == (first, True)
    assert not marker.exists()
    entry.write_bytes(b"not json\n")
    assert load() == (first, True)


class _Runs:
    """Unpickled, it would make a directory."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (self.path,)
