"""``dockyard compose`` beyond the first slice, for real: build services (through the
engine's builder), a failing build that creates nothing, ``exec``/``run`` and the
smaller verbs, secrets and configs, ``network_mode: service:``, static IPs, internal
networks, ``volumes_from``, profiles and include/extends at ``up``."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

DATA = Path(__file__).parent.parent / "data" / "compose"
PREDEFINED = {"bridge", "host", "none"}


def _inspect(box: Dockyard, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(box("inspect", name).stdout)[0]
    return doc


def _ids(box: Dockyard, compose: list[str]) -> dict[str, str]:
    rows = [json.loads(line) for line in
            box(*compose, "ps", "-a", "--format", "json").stdout.splitlines()]
    return {row["Name"]: row["ID"] for row in rows}


def _all_names(box: Dockyard) -> set[str]:
    return set(box("ps", "-a", "--format", "{{.Names}}").stdout.split())


def _networks(box: Dockyard) -> set[str]:
    return set(box("network", "ls", "--format", "{{.Name}}").stdout.split()) - PREDEFINED


@pytest.fixture
def built(box: Dockyard, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "bld"
    shutil.copytree(DATA / "build", folder)
    yield folder
    box("compose", "-f", str(folder / "compose.yaml"), "down", "-v", check=False)


def test_build_up_converge_and_rebuild(box: Dockyard, built: Path) -> None:
    compose = ["compose", "-f", str(built / "compose.yaml")]
    up = box(*compose, "up", "-d")
    assert "Service app  Building" in up.stderr and "Service inline  Built" in up.stderr
    assert "#" in up.stderr  # the builder's own progress lines
    first = _ids(box, compose)
    assert set(first) == {"bld-app-1", "bld-inline-1", "bld-db-1", "bld-db-2"}
    assert box("exec", "bld-app-1", "cat", "/greeting", "/stage").stdout == "hi\nfinal\n"
    assert box("exec", "bld-inline-1", "cat", "/made").stdout == "inline\n"
    image = json.loads(box("image", "inspect", "bld-app").stdout)[0]
    assert image["Config"]["Labels"]["built.by"] == "compose"
    app = _inspect(box, "bld-app-1")
    assert app["Config"]["Labels"]["com.docker.compose.image"] == image["Id"]

    # unchanged: nothing built, nothing recreated
    again = box(*compose, "up", "-d")
    assert "Building" not in again.stderr and _ids(box, compose) == first

    # an edited Dockerfile is not looked at without --build; with it, the new image
    # recreates the service that uses it (and only what depends on it)
    dockerfile = built / "ctx" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("echo final", "echo rebuilt"))
    box(*compose, "up", "-d")
    assert _ids(box, compose) == first
    box(*compose, "up", "-d", "--build")
    after = _ids(box, compose)
    assert after["bld-app-1"] != first["bld-app-1"]
    assert {n: after[n] for n in after if n != "bld-app-1"} == \
        {n: first[n] for n in first if n != "bld-app-1"}
    assert box("exec", "bld-app-1", "cat", "/stage").stdout == "rebuilt\n"

    # `compose build` with a build argument from the environment
    box(*compose, "build", "app", env={"GREETING": "from-env"})
    box(*compose, "up", "-d", "app")
    assert box("exec", "bld-app-1", "cat", "/greeting").stdout == "from-env\n"

    # the small verbs
    assert box(*compose, "port", "app", "8080").stdout.startswith("127.0.0.1:")
    images = box(*compose, "images", "--format", "json").stdout
    assert {json.loads(line)["Repository"] for line in images.splitlines()} == {
        "bld-app", "inline-img", "box"}
    box(*compose, "pause", "db")
    assert {_inspect(box, n)["State"]["Status"] for n in ("bld-db-1", "bld-db-2")} == {"paused"}
    box(*compose, "unpause", "db")
    top = box(*compose, "top", "db").stdout
    assert "bld-db-1" in top and "sleep 1000" in top
    assert "bld " in box(*compose, "ls").stdout
    box(*compose, "kill", "db")
    assert _inspect(box, "bld-db-1")["State"]["Status"] == "exited"

    # down --rmi local: the image built without a name goes, the named one stays
    box(*compose, "down", "--rmi", "local")
    assert box("images", "-q", "bld-app").stdout == ""
    assert box("images", "-q", "inline-img:1").stdout.strip()
    assert box("images", "-q", "box:1").stdout.strip()


def test_failing_build_names_the_service_and_creates_nothing(box: Dockyard,
                                                             built: Path) -> None:
    text = (built / "compose.yaml").read_text().replace("target: final", "target: broken")
    (built / "compose.yaml").write_text(text)
    result = box("compose", "-f", str(built / "compose.yaml"), "up", "-d", check=False)
    assert result.returncode != 0
    assert "failed to build service 'app'" in result.stderr
    assert _all_names(box) == set() and _networks(box) == set()
    assert box("images", "-q", "bld-app").stdout == ""


def test_exec_and_run(box: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("""
services:
  svc:
    image: box:1
    init: true
    command: [sleep, "1000"]
    environment: {FROM_FILE: "1"}
    group_add: [nogroup, "4242"]
    ports: ["127.0.0.1::80"]
    deploy: {replicas: 2}
    depends_on: [dep]
  dep: {image: box:1, init: true, command: [sleep, "1000"]}
""")
    compose = ["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "ex"]
    try:
        # run starts the dependencies first, not the service itself
        done = box(*compose, "run", "--rm", "-e", "EXTRA=2", "svc", "sh", "-c",
                   "echo $FROM_FILE$EXTRA; exit 3", check=False)
        assert done.returncode == 3 and done.stdout == "12\n"
        assert set(_ids(box, compose)) == {"ex-dep-1"}
        assert _all_names(box) == {"ex-dep-1"}  # --rm: gone
        detached = box(*compose, "run", "-d", "--no-deps", "svc").stdout.strip()
        assert _inspect(box, detached)["Name"].lstrip("/").startswith("ex-svc-run-")
        labels = _inspect(box, detached)["Config"]["Labels"]
        assert labels["com.docker.compose.oneoff"] == "True"
        assert labels["com.docker.compose.service"] == "svc"
        assert _inspect(box, detached)["NetworkSettings"]["Ports"] == {}
        ported = box(*compose, "run", "-d", "--service-ports", "svc").stdout.strip()
        assert "80/tcp" in _inspect(box, ported)["NetworkSettings"]["Ports"]
        extra = box(*compose, "run", "-d", "--no-deps", "-p", "127.0.0.1::81", "svc"
                    ).stdout.strip()
        assert list(_inspect(box, extra)["NetworkSettings"]["Ports"]) == ["81/tcp"]
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "f").write_text("bound\n")
        bound = box(*compose, "run", "--rm", "--no-deps", "-v", f"{tmp_path / 'shared'}:/mnt",
                    "svc", "cat", "/mnt/f")
        assert bound.stdout == "bound\n"
        assert detached[:12] not in _ids(box, compose).values()  # ps leaves one-offs out

        box(*compose, "up", "-d")
        assert sorted(box("exec", "ex-svc-1", "id", "-G").stdout.split()) == [
            "0", "4242", "65534"]
        out = box(*compose, "exec", "-T", "-u", "1234", "-w", "/tmp", "-e", "X=y", "svc",
                  "sh", "-c", "id -u; pwd; echo $X$FROM_FILE; hostname").stdout.split()
        assert out[:3] == ["1234", "/tmp", "y1"]
        second = box(*compose, "exec", "-T", "--index", "2", "svc", "hostname").stdout.strip()
        assert second == _inspect(box, "ex-svc-2")["Config"]["Hostname"] != out[3]
        failed = box(*compose, "exec", "-T", "svc", "sh", "-c", "exit 4", check=False)
        assert failed.returncode == 4
        missing = box(*compose, "exec", "-T", "--index", "3", "svc", "true", check=False)
        assert missing.returncode != 0 and "no container number 3" in missing.stderr

        (tmp_path / "in.txt").write_text("copied\n")
        box(*compose, "cp", str(tmp_path / "in.txt"), "svc:/tmp/in.txt")
        box(*compose, "cp", "--index", "1", "svc:/tmp/in.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "copied\n"
        events = box(*compose, "events", "--json", "--since", "0", "--until", str(
            int(time.time()) + 1), "svc").stdout.splitlines()
        seen = [json.loads(line) for line in events]
        assert {e["service"] for e in seen} == {"svc"}
        assert {"create", "start"} <= {e["action"] for e in seen}
        assert "ex-svc-2" in {e["attributes"]["name"] for e in seen}
        stats = box(*compose, "stats", "--no-stream", "--format", "json", "svc").stdout
        assert {json.loads(line)["Name"] for line in stats.splitlines()} == {
            "ex-svc-1", "ex-svc-2"}
        box(*compose, "scale", "svc=1")
        assert set(_ids(box, compose)) == {"ex-dep-1", "ex-svc-1"}
        box(*compose, "kill", "svc")
        waited = box(*compose, "wait", "svc", check=False)
        assert waited.returncode == 137 and "ex-svc-1 exited with code 137" in waited.stdout
        version = box(*compose, "version", "--short").stdout.strip()
        assert version  # and every container, network of the project carries it, as Compose
        labels = json.loads(box("inspect", "ex-svc-1").stdout)[0]["Config"]["Labels"]
        network = json.loads(box("network", "inspect", "ex_default").stdout)[0]["Labels"]
        assert labels["com.docker.compose.version"] == version == \
            network["com.docker.compose.version"]
        box(*compose, "down")
        assert _all_names(box) == set()  # down removes run's containers too
    finally:
        box(*compose, "down", check=False)


def test_secrets_network_mode_static_ip_profiles(box: Dockyard, tmp_path: Path) -> None:
    third = random.randint(1, 250)
    (tmp_path / "token.txt").write_text("file-token\n")
    (tmp_path / "compose.yaml").write_text(f"""
services:
  main:
    image: box:1
    init: true
    command: [sleep, "1000"]
    networks:
      fixed: {{ipv4_address: 10.231.{third}.10}}
      inner: {{}}
    secrets: [token, {{source: envtok, target: renamed, uid: "1000", gid: "1001", mode: 0440}}]
    configs: [inline, {{source: conf, target: /etc/app.conf}}]
    volumes: [shared:/shared]
  side:
    image: box:1
    init: true
    command: [sleep, "1001"]
    network_mode: service:main
    pid: service:main
    volumes_from: ["main:ro"]
  dbg:
    image: box:1
    init: true
    command: [sleep, "1000"]
    profiles: [debug]
networks:
  fixed:
    ipam: {{config: [{{subnet: 10.231.{third}.0/24}}]}}
  inner: {{internal: true}}
volumes:
  shared: {{}}
secrets:
  token: {{file: ./token.txt}}
  envtok: {{environment: TOKEN}}
configs:
  inline: {{content: "port=${{PORT:-80}}"}}
  conf: {{file: ./token.txt}}
""")
    compose = ["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "sec"]
    env = {"TOKEN": "env-token"}
    try:
        unset = box(*compose, "up", "-d", check=False)
        assert unset.returncode != 0
        assert "service 'main': secrets.envtok.environment: variable TOKEN is not set" in \
            unset.stderr
        assert _all_names(box) == set() and _networks(box) == set()
        box(*compose, "up", "-d", env=env)
        assert set(_ids(box, compose)) == {"sec-main-1", "sec-side-1"}  # no dbg
        show = box("exec", "sec-main-1", "sh", "-c",
                   "cat /run/secrets/token /run/secrets/renamed /inline /etc/app.conf; echo;"
                   "stat -c '%u %g %a' /run/secrets/renamed").stdout
        assert show == "file-token\nenv-token\nport=80\nfile-token\n\n1000 1001 440\n" or \
            show.splitlines() == ["file-token", "env-tokenport=80file-token", "",
                                  "1000 1001 440"]
        networks = _inspect(box, "sec-main-1")["NetworkSettings"]["Networks"]
        assert networks["sec_fixed"]["IPAddress"] == f"10.231.{third}.10"
        inner = json.loads(box("network", "inspect", "sec_inner").stdout)[0]
        assert inner["Internal"] is True
        ns = [box("exec", n, "readlink", "/proc/1/ns/net").stdout for n in
              ("sec-main-1", "sec-side-1")]
        assert ns[0] == ns[1]  # side lives in main's network namespace
        assert "sleep 1001" in box("exec", "sec-main-1", "ps").stdout  # and its PIDs
        box("exec", "sec-main-1", "sh", "-c", "echo shared > /shared/f")
        assert box("exec", "sec-side-1", "cat", "/shared/f").stdout == "shared\n"
        assert box("exec", "sec-side-1", "touch", "/shared/g", check=False).returncode != 0

        # unchanged: nothing recreated; a changed secret's value recreates its user
        first = _ids(box, compose)
        box(*compose, "up", "-d", env=env)
        assert _ids(box, compose) == first
        box(*compose, "up", "-d", env={"TOKEN": "changed"})
        assert _ids(box, compose)["sec-main-1"] != first["sec-main-1"]
        assert box("exec", "sec-main-1", "cat", "/run/secrets/renamed").stdout == "changed"

        box(*compose, "--profile", "debug", "up", "-d", env=env)
        assert "sec-dbg-1" in _ids(box, compose)
        box(*compose, "--profile", "debug", "down", "-v", env=env)
        assert _all_names(box) == set() and _networks(box) == set()
    finally:
        box(*compose, "--profile", "debug", "down", "-v", env=env, check=False)


def test_include_and_extends_at_up(box: Dockyard, tmp_path: Path) -> None:
    folder = tmp_path / "ext"
    shutil.copytree(DATA / "extends", folder)
    compose = ["compose", "-f", str(folder / "compose.yaml")]
    try:
        box(*compose, "up", "-d")
        assert set(_ids(box, compose)) == {"ext-cache-1", "ext-worker-1"}
        env = _inspect(box, "ext-cache-1")["Config"]["Env"]
        assert "GREETING=from lib's .env" in env
        mounts = {m["Destination"]: m["Source"] for m in _inspect(box, "ext-worker-1")["Mounts"]}
        assert mounts["/data"] == str(folder / "common" / "data")
        box(*compose, "up", "-d", "web")  # named: its profile (never) is on
        assert "ext-web-1" in _ids(box, compose)
    finally:
        box(*compose, "--profile", "*", "down", "-v", check=False)


def test_up_wait_abort_exit_code_and_expose(box: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("""
services:
  slow:
    image: box:1
    init: true
    command: [sh, -c, "sleep 1; touch /tmp/ok; exec sleep 1000"]
    healthcheck: {test: "test -f /tmp/ok", interval: 100ms, retries: 100}
  short:
    image: box:1
    command: [sh, -c, "sleep 0.5; echo bye; exit 5"]
  long:
    image: box:1
    init: true
    command: [sleep, "1000"]
    expose: ["9000", "9100-9101/udp"]
    sysctls: {net.ipv4.ip_local_port_range: "40000 40100", kernel.shmmni: "2048"}
    shm_size: 8m
    devices: ["/dev/zero:/dev/myzero:r"]
    domainname: example.org
  talker:
    image: box:1
    command: [sh, -c, "sleep 2; echo attached; exit 7"]
    profiles: [talk]
""")
    compose = ["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "wt"]
    try:
        box(*compose, "up", "--wait", "slow")
        assert _inspect(box, "wt-slow-1")["State"]["Health"]["Status"] == "healthy"

        aborted = box(*compose, "up", "--abort-on-container-exit", "short", "long",
                      check=False)
        assert aborted.returncode == 5, aborted.stderr
        assert "wt-short-1  | bye" in aborted.stdout
        assert _inspect(box, "wt-long-1")["State"]["Status"] == "exited"
        assert _inspect(box, "wt-slow-1")["State"]["Running"]  # not named: left alone

        coded = box(*compose, "up", "--exit-code-from", "short", "short", "long",
                    check=False)
        assert coded.returncode == 5
        refused = box(*compose, "up", "-d", "--exit-code-from", "short", check=False)
        assert refused.returncode != 0 and "need an attached up" in refused.stderr

        box(*compose, "up", "-d", "talker")
        attached = box(*compose, "attach", "--no-stdin", "talker", check=False)
        assert attached.returncode == 7 and attached.stdout == "attached\n"
        box(*compose, "up", "-d", "long")  # stopped by the abort above
        shown = box("exec", "wt-long-1", "sh", "-c", "cat /proc/sys/net/ipv4/ip_local_port_range"
                    " /proc/sys/kernel/shmmni; df -k /dev/shm | tail -1").stdout.split()
        assert shown[:3] == ["40000", "40100", "2048"] and shown[4] == "8192"
        assert box("exec", "wt-long-1", "sh", "-c", "stat -c '%t %T' /dev/myzero; "
                   "head -c 3 /dev/myzero | wc -c; cat /proc/sys/kernel/domainname"
                   ).stdout.split() == ["1", "5", "3", "example.org"]
        exposed = _inspect(box, "wt-long-1")["Config"]["ExposedPorts"]
        assert set(exposed) == {"9000/tcp", "9100/udp", "9101/udp"}

        assert box(*compose, "ps", "--services").stdout.split() == ["long", "slow"]
        assert box(*compose, "ps", "--status", "exited", "--services").stdout.split() == [
            "short", "talker"]
        hashes = dict(line.split() for line in
                      box(*compose, "config", "--hash", "*").stdout.splitlines())
        assert set(hashes) == {"slow", "short", "long"} and len(hashes["slow"]) == 64
        assert hashes["long"] == _inspect(box, "wt-long-1")["Config"]["Labels"][
            "com.docker.compose.config-hash"]
        stamped = box(*compose, "logs", "-t", "short").stdout.splitlines()
        assert stamped[-1].startswith("wt-short-1  | 20") and stamped[-1].endswith(" bye")
    finally:
        box(*compose, "--profile", "talk", "down", "-t", "1", check=False)


def test_services_started_side_by_side_leave_no_idle_zygote(box: Dockyard,
                                                            tmp_path: Path) -> None:
    """Four independent services start at once from one `up`: their threads must share
    one supervisor zygote (two started together displaced each other's socket, and the
    loser waited a minute for a request; the leak check names it)."""
    services = "".join(f"  s{n}: {{image: box:1, init: true, command: [sleep, '1000']}}\n"
                       for n in range(4))
    (tmp_path / "compose.yaml").write_text("services:\n" + services)
    compose = ["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "par"]
    try:
        box(*compose, "up", "-d")
        assert len(_ids(box, compose)) == 4
    finally:
        box(*compose, "down", "-t", "1", check=False)

    def zygotes() -> list[str]:
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"dockyard.supervise.zygote" in argv and \
                    str(box.layout.run_dir).encode() in argv:
                found.append(proc.name)
        return found

    deadline = time.monotonic() + 8  # the one that served lingers 2 s after its last
    while zygotes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert zygotes() == []


def test_post_start_and_pre_stop_hooks(box: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out").chmod(0o777)  # the hook runs as uid 1234
    (tmp_path / "compose.yaml").write_text(f"""
services:
  hooked:
    image: box:1
    init: true
    command: [sleep, "1000"]
    volumes: ["{tmp_path / 'out'}:/out"]
    post_start:
      - command: [sh, -c, "echo started as $$(id -u) in $$(pwd) with $$HOOK > /out/post"]
        user: "1234"
        working_dir: /tmp
        environment: {{HOOK: yes}}
    pre_stop:
      - command: [sh, -c, "echo stopping > /out/pre"]
  failing:
    image: box:1
    init: true
    command: [sleep, "1000"]
    profiles: [bad]
    post_start:
      - command: [sh, -c, "echo no way; exit 3"]
""")
    compose = ["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "hk"]
    try:
        box(*compose, "up", "-d")
        assert (tmp_path / "out" / "post").read_text() == "started as 1234 in /tmp with yes\n"
        assert not (tmp_path / "out" / "pre").exists()
        box(*compose, "stop")
        assert (tmp_path / "out" / "pre").read_text() == "stopping\n"
        failed = box(*compose, "up", "-d", "failing", check=False)
        assert failed.returncode != 0
        assert "service 'failing': post_start hook 'sh -c echo no way; exit 3' exited with " \
            "status 3" in failed.stderr and "no way" in failed.stderr
        assert _inspect(box, "hk-failing-1")["State"]["Running"] is False
    finally:
        box(*compose, "--profile", "bad", "down", "-t", "1", check=False)


def test_a_recreated_container_keeps_its_anonymous_volumes(box: Dockyard,
                                                           tmp_path: Path) -> None:
    text = """
services:
  db:
    image: box:1
    init: true
    command: [sleep, "1000"]
    environment: {VERSION: "1"}
    volumes: [/data, "named:/named", {type: volume, target: /ro, read_only: "true"}]
volumes:
  named: {}
"""
    (tmp_path / "compose.yaml").write_text(text)
    compose = ["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "anon"]
    try:
        box(*compose, "up", "-d")
        first = _ids(box, compose)["anon-db-1"]
        box("exec", "anon-db-1", "sh", "-c", "echo kept > /data/f")
        (tmp_path / "compose.yaml").write_text(text.replace('"1"', '"2"'))
        box(*compose, "up", "-d")
        assert _ids(box, compose)["anon-db-1"] != first
        assert box("exec", "anon-db-1", "cat", "/data/f").stdout == "kept\n"
        # carried over with the service's own options ("true", a string, read as YAML's)
        refused = box("exec", "anon-db-1", "touch", "/ro/x", check=False)
        assert refused.returncode != 0 and "Read-only" in refused.stderr
        assert len(box("volume", "ls", "-q").stdout.split()) == 3  # the same three
        box(*compose, "down", "-v")
        assert box("volume", "ls", "-q").stdout == ""
    finally:
        box(*compose, "down", "-v", check=False)


def test_watch_syncs_execs_and_rebuilds(box: Dockyard, tmp_path: Path) -> None:
    import signal

    from dockyard.testing.poll import until

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("one\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "version").write_text("v1\n")
    (tmp_path / "Dockerfile").write_text("FROM box:1\nCOPY version /version\n")
    (tmp_path / "compose.yaml").write_text("""
services:
  web:
    build: .
    init: true
    command: [sleep, "1000"]
    develop:
      watch:
        - {action: sync, path: ./src, target: /app, ignore: ["*.tmp"], initial_sync: true}
        - {action: rebuild, path: ./version}
  side:
    image: box:1
    init: true
    command: [sleep, "1000"]
    develop:
      watch:
        - action: sync+exec
          path: ./conf
          target: /conf
          exec: {command: [sh, -c, "cat /conf/c > /tmp/seen"]}
""")
    compose = ["compose", "-f", str(tmp_path / "compose.yaml"), "-p", "w"]
    watch = subprocess.Popen([*box.argv, "--root", str(box.root), *compose, "watch"],
                             env=box.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)

    def read(container: str, path: str) -> str:
        result = box("exec", container, "cat", path, check=False)
        return result.stdout if result.returncode == 0 else ""

    try:
        until("the initial sync", lambda: read("w-web-1", "/app/a.txt") == "one\n", 120)
        (tmp_path / "src" / "skip.tmp").write_text("no\n")
        (tmp_path / "src" / "sub").mkdir()
        (tmp_path / "src" / "sub" / "b.txt").write_text("two\n")
        until("a new file synced", lambda: read("w-web-1", "/app/sub/b.txt") == "two\n")
        assert box("exec", "w-web-1", "ls", "/app").stdout.split() == ["a.txt", "sub"]
        (tmp_path / "src" / "a.txt").unlink()
        until("a removed file removed", lambda: read("w-web-1", "/app/a.txt") == "")

        (tmp_path / "conf" / "c").write_text("conf\n")
        until("sync+exec ran", lambda: read("w-side-1", "/tmp/seen") == "conf\n")

        first = _ids(box, compose)["w-web-1"]
        (tmp_path / "version").write_text("v2\n")
        until("the rebuilt service", lambda: _ids(box, compose).get("w-web-1", first) != first
              and read("w-web-1", "/version") == "v2\n", 120)
        assert watch.poll() is None  # still watching
    finally:
        watch.send_signal(signal.SIGTERM)
        try:
            _, errors = watch.communicate(timeout=30)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
        box(*compose, "down", "-t", "1", check=False)
    assert watch.returncode == 0, errors
    assert "Watch enabled" in errors
