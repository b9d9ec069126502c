"""The real docker CLI and docker-py against ``dockyard serve``: the same containers as
the ``dockyard`` CLI sees, driven through the Docker Engine API."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from dockyard.testing.apiserver import ApiServer
from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _docker_cli() -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (Debian package docker.io)")


def test_version_and_ping(api: ApiServer) -> None:
    out = api.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}")
    assert out.stdout.split() == ["1.50", "1.24"]
    assert api.docker("info", "--format", "{{.OSType}} {{.Driver}}").stdout.strip() == \
        "linux overlay2"


def test_run_rm_prints_output_and_exit_code(api: ApiServer, box: Dockyard) -> None:
    assert api.docker("run", "--rm", "box:1", "echo", "hi").stdout == "hi\n"
    failed = api.docker("run", "--rm", "box:1", "sh", "-c", "echo out; echo err >&2; exit 3",
                        check=False)
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    assert box("ps", "-a", "-q").stdout == ""  # --rm: nothing left


def test_run_with_stdin_and_tty(api: ApiServer) -> None:
    assert api.docker("run", "-i", "--rm", "box:1", "cat", input=b"piped\n").stdout == \
        "piped\n"
    # -t without a terminal here: the docker CLI still gets a pty-backed container
    out = api.docker("run", "-t", "--rm", "box:1", "sh", "-c", "test -t 1 && echo tty")
    assert out.stdout.replace("\r", "") == "tty\n"


def test_detached_lifecycle_seen_by_both_clis(api: ApiServer, box: Dockyard) -> None:
    cid = api.docker("run", "-d", "--name", "web", "-l", "team=a", "box:1", "sh", "-c",
                     "echo out; echo err >&2; exec sleep 60").stdout.strip()
    assert len(cid) == 64
    assert box("ps", "-q", "--no-trunc").stdout.split() == [cid]  # dockyard sees it
    ps = api.docker("ps", "--filter", "label=team=a", "--format", "{{.Names}} {{.State}}")
    assert ps.stdout == "web running\n"
    until("the container's output", lambda: "out" in api.docker("logs", "web").stdout)
    logs = api.docker("logs", "web")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    assert api.docker("inspect", "-f", "{{.State.Status}} {{.Name}} {{.Config.Labels.team}}",
                      "web").stdout == "running /web a\n"
    api.docker("stop", "-t", "1", "web")
    assert api.docker("inspect", "-f", "{{.State.Running}}", "web").stdout == "false\n"
    assert api.docker("ps", "-a", "--format", "{{.Status}}").stdout.startswith("Exited (")
    api.docker("rm", "web")
    assert box("ps", "-a", "-q").stdout == ""


def test_dockyard_run_shows_in_docker_ps(api: ApiServer, box: Dockyard) -> None:
    box("run", "-d", "--name", "fromcli", "box:1", "sleep", "60")
    assert api.docker("ps", "--format", "{{.Names}} {{.Image}}").stdout == "fromcli box:1\n"
    api.docker("rm", "-f", "fromcli")
    assert box("ps", "-a", "-q").stdout == ""


def test_errors_in_docker_words(api: ApiServer) -> None:
    missing = api.docker("rm", "nosuch", check=False)
    assert missing.returncode == 1
    assert "Error response from daemon: No such container: nosuch" in missing.stderr
    api.docker("run", "-d", "--name", "busy", "box:1", "sleep", "60")
    busy = api.docker("rm", "busy", check=False)
    assert busy.returncode == 1 and "You cannot remove a running container" in busy.stderr
    api.docker("rm", "-f", "busy")


def test_images_tag_and_remove(api: ApiServer) -> None:
    rows = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert rows == ["box:1"]
    api.docker("tag", "box:1", "other/box:2")
    rows = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(rows) == ["box:1", "other/box:2"]
    assert api.docker("rmi", "other/box:2").stdout == "Untagged: other/box:2\n"
    assert api.docker("image", "inspect", "-f", "{{.Os}}", "box:1").stdout == "linux\n"


def test_save_and_load_round_trip(api: ApiServer) -> None:
    saved = subprocess.run(["docker", "save", "box:1"], env=api.env, capture_output=True,
                           check=True, timeout=120).stdout
    api.docker("rmi", "box:1")
    assert api.docker("images", "-q").stdout == ""
    loaded = api.docker("load", input=saved)
    assert "Loaded image: box:1" in loaded.stdout
    assert api.docker("run", "--rm", "box:1", "echo", "back").stdout == "back\n"


def test_logs_follow_does_not_block_other_requests(api: ApiServer) -> None:
    api.docker("run", "-d", "--name", "quiet", "box:1", "sleep", "60")
    followers = [subprocess.Popen(["docker", "logs", "-f", "quiet"], env=api.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(20)]  # more than the server's thread pool
    try:
        assert api.docker("ps", "--format", "{{.Names}}").stdout == "quiet\n"
    finally:
        for process in followers:
            process.kill()
            process.wait()
    api.docker("rm", "-f", "quiet")
    assert api.docker("version", "--format", "{{.Server.APIVersion}}").stdout == "1.50\n"


# --- docker-py -----------------------------------------------------------------------------
@pytest.fixture
def client(api: ApiServer) -> Iterator[Any]:
    docker = pytest.importorskip("docker")
    connected = docker.DockerClient(base_url=api.url, timeout=120)
    try:
        yield connected
    finally:
        connected.close()


def test_docker_py_containers(client: Any, box: Dockyard) -> None:
    import docker

    assert client.containers.run("box:1", ["echo", "hi"], remove=True) == b"hi\n"
    container = client.containers.run("box:1", ["sh", "-c", "echo one; echo two >&2; exit 2"],
                                      detach=True, labels={"k": "v"})
    assert container.wait()["StatusCode"] == 2
    assert container.logs(stdout=True, stderr=False) == b"one\n"
    assert container.logs(stdout=False, stderr=True) == b"two\n"
    assert [c.id for c in client.containers.list(all=True, filters={"label": "k=v"})] == \
        [container.id]
    container.reload()
    assert container.status == "exited" and container.attrs["State"]["ExitCode"] == 2
    container.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)
    assert box("ps", "-a", "-q").stdout == ""


def test_docker_py_streamed_logs(client: Any) -> None:
    container = client.containers.run("box:1", ["sh", "-c", "for i in 1 2 3; do echo $i; "
                                                            "sleep 0.1; done"], detach=True)
    lines = list(container.logs(stream=True, follow=True))
    assert b"".join(lines) == b"1\n2\n3\n"
    container.remove(force=True)


def test_docker_py_images_networks_volumes(client: Any) -> None:
    import docker

    assert "box:1" in [tag for image in client.images.list() for tag in image.tags]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuch:1")
    network = client.networks.create("apinet")
    assert "apinet" in [n.name for n in client.networks.list()]
    assert client.networks.get("apinet").attrs["Driver"] == "bridge"
    network.remove()
    volume = client.volumes.create("apivol", labels={"a": "b"})
    assert client.volumes.get("apivol").attrs["Labels"] == {"a": "b"}
    assert "apivol" in [v.name for v in client.volumes.list()]
    volume.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("apivol")


def test_docker_py_low_level_create_body(client: Any) -> None:
    """A create body with HostConfig fields lands in the container's inspect document."""
    api = client.api
    host_config = api.create_host_config(mem_limit=64 * 1024 * 1024, cap_drop=["NET_RAW"],
                                         restart_policy={"Name": "on-failure",
                                                         "MaximumRetryCount": 2})
    created = api.create_container("box:1", ["true"], environment={"A": "1"},
                                   working_dir="/tmp", host_config=host_config)
    doc = api.inspect_container(created["Id"])
    assert doc["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert doc["HostConfig"]["CapDrop"] == ["NET_RAW"]
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert "A=1" in doc["Config"]["Env"] and doc["Config"]["WorkingDir"] == "/tmp"
    api.remove_container(created["Id"])
    assert json.dumps(api.containers(all=True)) == "[]"


# --- exec ------------------------------------------------------------------------------------
def test_exec_with_and_without_a_tty(api: ApiServer) -> None:
    api.docker("run", "-d", "--name", "ex", "box:1", "sleep", "60")
    out = api.docker("exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 5", check=False)
    assert (out.returncode, out.stdout, out.stderr) == (5, "out\n", "err\n")
    assert api.docker("exec", "-i", "ex", "cat", input=b"in\n").stdout == "in\n"
    assert api.docker("exec", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "ex", "sh", "-c",
                      "echo $A $(pwd) $(id -u)").stdout == "1 /tmp 65534\n"
    missing = api.docker("exec", "ex", "nosuch", check=False)
    assert missing.returncode == 127 and "nosuch" in missing.stdout + missing.stderr
    api.docker("exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d")
    until("the detached exec's file",
          lambda: api.docker("exec", "ex", "cat", "/tmp/d", check=False).stdout == "detached\n")
    # -it through a real terminal (script), a window size set by the CLI
    session = subprocess.run(
        ["script", "-qec", "stty cols 91 rows 17; docker exec -it ex sh -c "
                           "'test -t 0 && stty size; exit 3'", "/dev/null"],
        env=api.env, capture_output=True, text=True, timeout=60, check=False)
    assert session.returncode == 3, session
    assert "17 91" in session.stdout
    typed = subprocess.run(["script", "-qec", "docker exec -it ex sh", "/dev/null"],
                           env=api.env, input="echo typed-$((1+1))\nexit 4\n",
                           capture_output=True, text=True, timeout=60, check=False)
    assert typed.returncode == 4 and "typed-2" in typed.stdout, typed
    stopped = api.docker("run", "-d", "box:1", "true").stdout.strip()
    api.docker("wait", stopped)
    refused = api.docker("exec", stopped, "true", check=False)
    assert refused.returncode == 1 and f"Container {stopped} is not running" in refused.stderr
    api.docker("rm", "-f", "ex", stopped)


def test_docker_py_exec_run(client: Any) -> None:
    container = client.containers.run("box:1", ["sleep", "60"], detach=True)
    result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (result.exit_code, result.output) == (4, b"out\nerr\n")
    result = container.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert (result.exit_code, result.output) == (0, (b"out\n", b"err\n"))
    assert container.exec_run("sh -c 'test -t 1 && echo tty'", tty=True).output == b"tty\r\n"
    api = client.api
    exec_id = api.exec_create(container.id, ["sh", "-c", "exit 7"])["Id"]
    assert api.exec_inspect(exec_id)["Running"] is False
    api.exec_start(exec_id)
    assert api.exec_inspect(exec_id)["ExitCode"] == 7
    container.remove(force=True)



def test_docker_py_exec_run_with_a_slow_client(client: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-py reads exec output from the raw socket beneath the buffered reader of
    the headers (docker/docker-py#3332): a client late to read the 101 still gets it."""
    import http.client
    import time

    container = client.containers.run("box:1", ["sleep", "60"], detach=True)
    begin = http.client.HTTPResponse.begin

    def late_begin(self: http.client.HTTPResponse) -> None:
        time.sleep(0.5)
        begin(self)

    monkeypatch.setattr(http.client.HTTPResponse, "begin", late_begin)
    assert container.exec_run("echo quick", tty=True).output == b"quick\r\n"
    assert container.exec_run("echo quick").output == b"quick\n"
    monkeypatch.undo()
    container.remove(force=True)

# --- files ------------------------------------------------------------------------------------
def test_cp_both_ways_export_and_diff(api: ApiServer, tmp_path: Any) -> None:
    api.docker("run", "-d", "--name", "files", "box:1", "sh", "-c",
               "mkdir -p /data/sub && echo hello > /data/sub/f && rm /bin/true && sleep 60")
    until("the container's files",
          lambda: api.docker("exec", "files", "test", "-f", "/data/sub/f", check=False)
          .returncode == 0)
    api.docker("cp", "files:/data", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "f").read_text() == "hello\n"
    api.docker("cp", "files:/data/sub/f", str(tmp_path / "one"))
    assert (tmp_path / "one").read_text() == "hello\n"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "g").write_text("from host\n")
    api.docker("cp", str(tmp_path / "in"), "files:/data/")
    api.docker("cp", str(tmp_path / "in" / "g"), "files:/data/renamed")
    assert api.docker("exec", "files", "cat", "/data/in/g", "/data/renamed").stdout == \
        "from host\nfrom host\n"
    assert api.docker("exec", "files", "stat", "-c", "%u", "/data/renamed").stdout == "0\n"
    missing = api.docker("cp", "files:/nosuch", str(tmp_path / "x"), check=False)
    assert missing.returncode == 1
    assert "Could not find the file /nosuch in container files" in missing.stderr
    diff = api.docker("diff", "files").stdout.splitlines()
    assert "A /data/sub/f" in diff and "D /bin/true" in diff and "C /bin" in diff
    exported = subprocess.run(["docker", "export", "files"], env=api.env, capture_output=True,
                              check=True, timeout=120).stdout
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(exported)) as archive:
        names = archive.getnames()
    assert "data/sub/f" in names and "data/renamed" in names and "bin/true" not in names
    api.docker("rm", "-f", "files")


def test_docker_py_put_and_get_archive(client: Any) -> None:
    import io
    import tarfile

    container = client.containers.run("box:1", ["sleep", "60"], detach=True)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo("note")
        info.size, info.uid, info.mode = 3, 1234, 0o640
        archive.addfile(info, io.BytesIO(b"hi\n"))
    assert container.put_archive("/tmp", data.getvalue()) is True
    chunks, stat = container.get_archive("/tmp/note")
    assert (stat["name"], stat["size"], stat["mode"]) == ("note", 3, 0o640)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.getmember("note")
        assert archive.extractfile(member).read() == b"hi\n"  # type: ignore[union-attr]
        assert member.uid == 0  # owned by the container's root, as docker cp
    _, stat = container.get_archive("/tmp")
    assert stat["mode"] & (1 << 31)  # Go's ModeDir
    import docker

    with pytest.raises(docker.errors.NotFound):
        container.get_archive("/nosuch")
    with pytest.raises(docker.errors.NotFound):
        container.put_archive("/nosuch", data.getvalue())
    container.remove(force=True)


# --- more container operations ------------------------------------------------------------
def test_top_stats_pause_rename_update_prune(api: ApiServer, box: Dockyard) -> None:
    api.docker("run", "-d", "--name", "ops", "box:1", "sleep", "60")
    top = api.docker("top", "ops").stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and "sleep 60" in top[1]
    stats = api.docker("stats", "--no-stream", "--format",
                       "{{.Name}} {{.MemUsage}} {{.PIDs}}", "ops").stdout.split()
    assert stats[0] == "ops" and stats[-1] == "1" and stats[1].endswith("B")
    api.docker("pause", "ops")
    assert api.docker("inspect", "-f", "{{.State.Status}}", "ops").stdout == "paused\n"
    again = api.docker("pause", "ops", check=False)
    assert again.returncode == 1 and "is already paused" in again.stderr
    api.docker("unpause", "ops")
    not_paused = api.docker("unpause", "ops", check=False)
    assert not_paused.returncode == 1 and "is not paused" in not_paused.stderr
    api.docker("rename", "ops", "renamed")
    assert api.docker("ps", "--format", "{{.Names}}").stdout == "renamed\n"
    api.docker("update", "--memory", "64m", "--pids-limit", "50", "renamed")
    assert api.docker("inspect", "-f", "{{.HostConfig.Memory}}", "renamed").stdout == \
        f"{64 * 1024 * 1024}\n"
    assert api.docker("exec", "renamed", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                      check=False).stdout in (f"{64 * 1024 * 1024}\n", "")
    api.docker("run", "--name", "done1", "-l", "keep=no", "box:1", "true")
    api.docker("run", "--name", "done2", "-l", "keep=yes", "box:1", "true")
    pruned = api.docker("container", "prune", "-f", "--filter", "label=keep=no").stdout
    assert "Deleted Containers:" in pruned
    assert sorted(api.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()) == \
        ["done2", "renamed"]
    api.docker("container", "prune", "-f")
    assert api.docker("ps", "-a", "--format", "{{.Names}}").stdout == "renamed\n"
    df = api.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
    assert df.stdout.splitlines()[:2] == ["Images 1 1", "Containers 1 1"]
    api.docker("rm", "-f", "renamed")


def test_network_connect_and_disconnect(api: ApiServer) -> None:
    api.docker("network", "create", "--subnet", "10.231.7.0/24", "apiconn")
    api.docker("run", "-d", "--name", "joiner", "box:1", "sleep", "60")
    api.docker("network", "connect", "--alias", "extra", "--ip", "10.231.7.9", "apiconn",
               "joiner")
    addresses = api.docker("exec", "joiner", "ip", "-4", "-o", "addr").stdout
    assert "10.231.7.9/24" in addresses
    networks = api.docker("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}"
                          "{{$k}} {{end}}", "joiner").stdout.split()
    assert sorted(networks) == ["apiconn", "bridge"]
    assert sorted(api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()) == \
        ["apiconn", "bridge", "host", "none"]  # the default bridge once
    twice = api.docker("network", "connect", "apiconn", "joiner", check=False)
    assert twice.returncode == 1 and "already exists in network" in twice.stderr
    api.docker("network", "disconnect", "apiconn", "joiner")
    assert "10.231.7.9" not in api.docker("exec", "joiner", "ip", "-4", "-o", "addr").stdout
    missing = api.docker("network", "connect", "nosuchnet", "joiner", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    api.docker("rm", "-f", "joiner")
    api.docker("network", "rm", "apiconn")


def test_system_prune(api: ApiServer) -> None:
    api.docker("run", "--name", "gone", "box:1", "true")
    api.docker("network", "create", "unused")
    api.docker("tag", "box:1", "spare:1")
    out = api.docker("system", "prune", "-f").stdout
    assert "Deleted Containers:" in out and "Deleted Networks:\nunused" in out
    assert api.docker("ps", "-aq").stdout == ""
    assert api.docker("network", "ls", "-q", "--filter", "name=unused").stdout == ""
    assert len(set(api.docker("images", "-q").stdout.split())) == 1  # tagged: not dangling
    out = api.docker("image", "prune", "-af").stdout
    assert "Total reclaimed space" in out and api.docker("images", "-q").stdout == ""


def test_docker_py_top_stats_and_friends(client: Any) -> None:
    import docker

    container = client.containers.run("box:1", ["sleep", "60"], detach=True)
    assert any("sleep 60" in " ".join(row) for row in container.top()["Processes"])
    stats = container.stats(stream=False)
    assert stats["id"] == container.id and stats["memory_stats"]["usage"] > 0
    assert stats["cpu_stats"]["system_cpu_usage"] >= stats["precpu_stats"]["system_cpu_usage"]
    streamed = container.stats(stream=True, decode=True)
    first, second = next(streamed), next(streamed)
    assert second["precpu_stats"] == first["cpu_stats"]
    streamed.close()
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.update(mem_limit="32m")
    assert client.api.inspect_container(container.id)["HostConfig"]["Memory"] == 32 << 20
    with pytest.raises(docker.errors.APIError) as refused:
        container.update(cpuset_cpus="0")
    assert refused.value.status_code == 400
    container.rename("pyrenamed")
    assert client.containers.get("pyrenamed").id == container.id
    assert client.df()["Containers"][0]["Id"] == container.id
    container.remove(force=True)
    assert client.containers.prune() == {"ContainersDeleted": None, "SpaceReclaimed": 0}


# --- events -------------------------------------------------------------------------------------
def test_events_from_both_clis(api: ApiServer, box: Dockyard) -> None:
    import time

    since = f"{time.time() - 1:.3f}"
    follower = subprocess.Popen(["docker", "events", "--filter", "type=container",
                                 "--filter", "event=start", "--format",
                                 "{{.Action}} {{.Actor.Attributes.name}}"],
                                env=api.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # the follower is listening (events before it are not streamed)
        code = api.docker("run", "--rm", "--name", "ev1", "-l", "team=x", "box:1", "sh", "-c",
                          "exit 3", check=False).returncode
        assert code == 3
        assert follower.stdout is not None
        assert follower.stdout.readline() == "start ev1\n"  # streamed as it happened
    finally:
        follower.kill()
        follower.communicate()
    api.docker("tag", "box:1", "evtag:1")
    api.docker("rmi", "evtag:1")
    box("run", "-d", "--name", "ev2", "box:1", "sleep", "60")  # by dockyard's own CLI
    box("kill", "ev2")
    api.docker("volume", "create", "evvol")
    api.docker("volume", "rm", "evvol")
    api.docker("network", "create", "evnet")
    api.docker("network", "connect", "evnet", "ev2")
    api.docker("network", "disconnect", "evnet", "ev2")
    api.docker("rm", "ev2")
    api.docker("network", "rm", "evnet")
    until_ = f"{time.time() + 0.5:.3f}"
    time.sleep(0.6)
    shown = api.docker("events", "--since", since, "--until", until_, "--format",
                       "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}").stdout.splitlines()
    assert shown[:4] == ["container create ev1", "container start ev1", "container die ev1",
                         "container destroy ev1"]
    assert "container kill ev2" in shown and "container destroy ev2" in shown
    assert "image tag evtag:1" in shown and "image untag evtag:1" in shown
    assert "volume create <no value>" in shown and "volume destroy <no value>" in shown, shown
    assert "network connect evnet" in shown and "network disconnect evnet" in shown
    died = api.docker("events", "--since", since, "--until", until_, "--filter", "event=die",
                      "--filter", "label=team=x", "--format",
                      "{{.Actor.Attributes.exitCode}}").stdout
    assert died == "3\n"
    own = box("events", "--since", since, "--until", until_, "--filter", "container=ev2")
    assert [line.split()[2] for line in own.stdout.splitlines()] == \
        ["create", "start", "kill", "die", "destroy"]
    refused = api.docker("events", "--filter", "colour=red", "--until", "1", check=False)
    assert refused.returncode == 1 and "invalid filter 'colour'" in refused.stderr


def test_docker_py_events(client: Any) -> None:
    import time

    since = time.time() - 1
    container = client.containers.run("box:1", ["true"], detach=True)
    container.wait()
    container.remove()
    found = client.events(since=since, until=time.time() + 0.2, decode=True,
                          filters={"container": container.id})
    assert [e["Action"] for e in found] == ["create", "start", "die", "destroy"]
