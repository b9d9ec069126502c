"""What README.md says ``run`` and its neighbours do, each checked so that a flag doing
nothing would fail: restart loops, image VOLUMEs, limits and security options seen
from inside the container, stop signals, tmpfs, entrypoint, env files, attach, wait
and logs --since/-t.  (Exit 255 after a supervisor crash: test_supervision.py;
--rm and anonymous volumes: test_foreground.py.)"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until

pytestmark = pytest.mark.root

# Docker's default capability set (moby's oci/caps/defaults.go) as a CapEff mask
DEFAULT_CAPS = 0x00000000A80425FB
CAP_CHOWN, CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_SYS_ADMIN = 0, 10, 12, 21


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    return box  # its teardown removes containers, networks and volumes


def inspect(dy: Dockyard, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dy("container", "inspect", name).stdout)[0]
    return doc



def run(dy: Dockyard, *args: str) -> str:
    """A throw-away container's stdout (no network: nothing here needs one)."""
    return dy("run", "--rm", "--network", "none", *args).stdout


def status_field(dy: Dockyard, name: str, *args: str) -> int:
    text = run(dy, *args, "box:1", "grep", f"^{name}:", "/proc/self/status")
    return int(text.split()[1], 16 if name.startswith("Cap") else 10)


# --- restart policies -------------------------------------------------------------

def test_always_and_unless_stopped_restart_after_a_clean_exit_and_count(dy: Dockyard) -> None:
    """Both restart a container that exits 0 (on-failure would not), RestartCount
    grows; after a stop, system restore brings back the always one only."""
    for policy in ("always", "unless-stopped"):
        dy("run", "-d", "--name", policy, "--restart", policy, "box:1", "sh", "-c",
           "echo run; exit 0")
    for policy in ("always", "unless-stopped"):
        until(f"{policy} to restart three times",
              lambda policy=policy: inspect(dy, policy)["RestartCount"] >= 3)
        assert dy("logs", policy).stdout.split().count("run") >= 3
        dy("stop", policy)
    counts = {policy: inspect(dy, policy)["RestartCount"] for policy in ("always",
                                                                        "unless-stopped")}
    assert dy("system", "restore").stdout.split() == [inspect(dy, "always")["Id"]]
    assert inspect(dy, "always")["State"]["Status"] in ("running", "restarting")
    stopped = inspect(dy, "unless-stopped")
    assert stopped["State"]["Status"] == "exited"
    assert stopped["RestartCount"] == counts["unless-stopped"]
    dy("rm", "-f", "always")


# --- volumes from the image ----------------------------------------------------------

def test_an_image_volume_gets_an_anonymous_volume_filled_from_the_image(
        dy: Dockyard, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM box:1\nRUN mkdir /data && echo seeded > /data/f\nVOLUME /data\n")
    dy("build", "-t", "vol:1", str(context))
    result = dy("run", "--name", "vol", "--network", "none", "vol:1", "sh", "-c",
                "cat /data/f; echo new > /data/g")
    assert result.stdout == "seeded\n"
    mounts = inspect(dy, "vol")["Mounts"]
    assert [(m["Type"], m["Destination"]) for m in mounts] == [("volume", "/data")]
    volume = mounts[0]["Name"]
    assert dy("volume", "ls", "-q").stdout.split() == [volume]
    assert not any("/data/g" in line for line in dy("diff", "vol").stdout.splitlines())
    data = Path(json.loads(dy("volume", "inspect", volume).stdout)[0]["Mountpoint"])
    assert (data / "f").read_text() == "seeded\n" and (data / "g").read_text() == "new\n"
    dy("rm", "-v", "vol")
    assert dy("volume", "ls", "-q").stdout == ""


# --- limits and security, read from inside ------------------------------------------------

def test_ulimit(dy: Dockyard) -> None:
    assert run(dy, "--ulimit", "nofile=512:1024", "box:1", "sh", "-c",
               "ulimit -n; ulimit -Hn").split() == ["512", "1024"]


def test_cap_add_and_cap_drop(dy: Dockyard) -> None:
    assert status_field(dy, "CapEff") == DEFAULT_CAPS
    assert status_field(dy, "CapEff", "--cap-drop", "CHOWN") == \
        DEFAULT_CAPS & ~(1 << CAP_CHOWN)
    assert status_field(dy, "CapEff", "--cap-add", "NET_ADMIN") == \
        DEFAULT_CAPS | 1 << CAP_NET_ADMIN
    assert status_field(dy, "CapEff", "--cap-drop", "ALL", "--cap-add",
                        "NET_BIND_SERVICE") == 1 << CAP_NET_BIND_SERVICE


def test_security_opt_no_new_privileges_and_seccomp(dy: Dockyard, tmp_path: Path) -> None:
    assert status_field(dy, "NoNewPrivs") == 0
    assert status_field(dy, "NoNewPrivs", "--security-opt", "no-new-privileges") == 1
    assert status_field(dy, "Seccomp") == 2  # the default profile: a filter
    assert status_field(dy, "Seccomp", "--security-opt", "seccomp=unconfined") == 0
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    script = "mkdir /tmp/d 2>&1 && echo made"
    assert run(dy, "box:1", "sh", "-c", script) == "made\n"
    refused = run(dy, "--security-opt", f"seccomp={profile}", "box:1", "sh", "-c",
                  script + "; true")
    assert "Operation not permitted" in refused and "made" not in refused


def _host_device() -> str:
    """A device node of the host's that a default container's /dev does not have."""
    for name in ("kmsg", "loop-control", "vda", "sda", "nvme0n1", "loop0", "mem"):
        if os.path.exists(f"/dev/{name}"):
            return name
    pytest.skip("no device node to look for in /dev")


def test_privileged_has_every_capability_and_the_hosts_devices(dy: Dockyard) -> None:
    device = _host_device()
    with open("/proc/self/status") as handle:  # ours: root's whole bounding set
        bounding = int(next(line for line in handle if line.startswith("CapBnd:")).split()[1],
                       16)
    assert status_field(dy, "CapEff") & (1 << CAP_SYS_ADMIN) == 0
    assert status_field(dy, "CapEff", "--privileged") == bounding
    look = f"test -e /dev/{device} && echo seen || echo missing"
    assert run(dy, "box:1", "sh", "-c", look) == "missing\n"
    assert run(dy, "--privileged", "box:1", "sh", "-c", look) == "seen\n"


def test_cpus_sets_the_cfs_quota(dy: Dockyard) -> None:
    files = ["/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"]
    assert run(dy, "box:1", "cat", files[0]).split() == ["-1"]
    assert run(dy, "--cpus", "0.5", "box:1", "cat", *files).split() == ["50000", "100000"]
    assert run(dy, "--cpus", "1.25", "box:1", "cat", *files).split() == ["125000", "100000"]


# --- process and filesystem options ------------------------------------------------------

def test_stop_signal_is_what_stop_sends(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "usr1", "--stop-signal", "USR1", "box:1", "sh", "-c",
       "trap 'echo got-usr1; exit 0' USR1; echo ready; while true; do sleep 0.05; done")
    until("the trap", lambda: dy("logs", "usr1").stdout == "ready\n")
    dy("stop", "-t", "30", "usr1")  # pid 1 ignores SIGTERM: only USR1 ends it with 0
    assert dy("logs", "usr1").stdout == "ready\ngot-usr1\n"
    assert inspect(dy, "usr1")["State"]["ExitCode"] == 0


def test_tmpfs_is_a_writable_tmpfs_on_a_read_only_root(dy: Dockyard) -> None:
    out = run(dy, "--read-only", "--tmpfs", "/scratch:size=1m", "box:1", "sh", "-c",
              "grep ' /scratch ' /proc/mounts; touch /scratch/x && echo wrote; "
              "touch /x 2>/dev/null || echo ro")
    mount, wrote, ro = out.splitlines()
    assert mount.startswith("tmpfs /scratch tmpfs rw,") and "size=1024k" in mount
    assert (wrote, ro) == ("wrote", "ro")


def test_entrypoint_replaces_the_images_and_its_cmd(dy: Dockyard) -> None:
    assert run(dy, "--entrypoint", "echo", "box:1", "hi", "there") == "hi there\n"
    assert run(dy, "--entrypoint", "echo", "box:1") == "\n"  # the image's CMD (sh) is gone


def test_env_file(dy: Dockyard, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\n\nA=1\n  B=two words  \nFROM_HOST\nC=x=y\n")
    out = dy("run", "--rm", "--network", "none", "--env-file", str(env_file), "-e", "A=2",
             "box:1", "sh", "-c", 'echo "$A|$B|$FROM_HOST|$C"',
             env={"FROM_HOST": "passed"}).stdout
    assert out == "2|two words  |passed|x=y\n"  # -e wins; values kept as written
    bad = tmp_path / "bad"
    bad.write_text("MY VAR=1\n")
    refused = dy("run", "--rm", "--env-file", str(bad), "box:1", "true", check=False)
    assert refused.returncode == 125 and "contains whitespaces" in refused.stderr


# --- attach, wait, logs -------------------------------------------------------------

def test_attach_sends_stdin_and_gets_output_and_the_exit_code(dy: Dockyard) -> None:
    dy("run", "-d", "-i", "--name", "asker", "box:1", "sh", "-c",
       "read x; echo got-$x; echo to-err >&2; exit 3")
    result = dy("attach", "asker", input=b"hello\n", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "got-hello\n", "to-err\n")


def test_attach_follows_a_running_container_to_its_exit(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "ticker", "box:1", "sh", "-c",
       "while [ ! -e /tmp/go ]; do echo tick; sleep 0.05; done; echo done; exit 5")
    attached = subprocess.Popen([*dy.argv, "--root", str(dy.root), "attach", "ticker"],
                                env=dy.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        assert attached.stdout is not None
        assert attached.stdout.readline() == "tick\n"  # attached: output flows
        dy("exec", "-d", "ticker", "touch", "/tmp/go")  # -d: a touch the exit kills ends in 137
        out, _ = attached.communicate(timeout=60)
    finally:
        if attached.poll() is None:
            attached.kill()
            attached.communicate()
    assert attached.returncode == 5
    assert out.splitlines()[-1] == "done" and set(out.splitlines()[:-1]) <= {"tick"}


def test_wait_blocks_until_the_exit_and_prints_the_codes(dy: Dockyard) -> None:
    for name, code in (("w1", 7), ("w2", 0)):
        dy("run", "-d", "--name", name, "box:1", "sh", "-c",
           f"while [ ! -e /tmp/go ]; do sleep 0.05; done; exit {code}")
    waiter = subprocess.Popen([*dy.argv, "--root", str(dy.root), "wait", "w1", "w2"],
                              env=dy.env, stdout=subprocess.PIPE, text=True)
    try:
        for name in ("w1", "w2"):
            # detached: the container exits on seeing the file, and its init's end
            # kills a touch not yet gone, whose exec would then end in 137
            dy("exec", "-d", name, "touch", "/tmp/go")
        out, _ = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert (waiter.returncode, out) == (0, "7\n0\n")


STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) (.*)")


def test_logs_timestamps_and_since(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "clock", "box:1", "sh", "-c",
       "echo early; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo late")
    until("the first line", lambda: dy("logs", "clock").stdout == "early\n")
    stamped = STAMP.fullmatch(dy("logs", "-t", "clock").stdout.strip())
    assert stamped is not None and stamped[2] == "early"
    early = datetime.datetime.fromisoformat(stamped[1][:26] + "+00:00")
    started = inspect(dy, "clock")["State"]["StartedAt"]
    assert early >= datetime.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
    # a whole second after the first line, which "late" comes after
    after = int(early.timestamp()) + 1
    until("the next second", lambda: time.time() > after + 0.01)
    dy("exec", "-d", "clock", "touch", "/tmp/go")  # -d: a touch the exit kills ends in 137
    until("the last line", lambda: dy("logs", "clock").stdout == "early\nlate\n")
    utc = datetime.datetime.fromtimestamp(after, datetime.UTC)
    plus_two = utc.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    for since in (str(after), utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  plus_two.isoformat(), stamped[1][:-1] + "999Z"):
        assert dy("logs", "--since", since, "clock").stdout == "late\n", since
    assert dy("logs", "--since", str(after - 60), "clock").stdout == "early\nlate\n"
    assert dy("logs", "--since", "1h", "clock").stdout == "early\nlate\n"
    refused = dy("logs", "--since", "yesterday", "clock", check=False)
    assert refused.returncode == 1 and "failed to parse value as time or duration" in \
        refused.stderr
