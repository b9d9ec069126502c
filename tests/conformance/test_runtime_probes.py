"""The runtime conformance suite: each test runs under dockyard-runtime *and* runc.

A test asserts what the process sees from inside the container (busybox is the
probe).  The same assertion holding under runc proves the test; holding under
dockyard-runtime proves the runtime.  ``test_same_view_as_runc`` additionally
runs a set of probes under both and compares their outputs directly.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.linux.capabilities import mask
from dockyard.testing.bundles import BundleFactory, Runtime, base_config, run_and_get_output

pytestmark = pytest.mark.root


def sh(script: str, **overrides: Any) -> dict[str, Any]:
    return base_config(["/bin/sh", "-c", script], **overrides)


def status_field(text: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(\S+)", text, re.M)
    assert match, f"{name} not in /proc/self/status"
    return match.group(1)


def test_stdout_and_exit_code(runtime: Runtime, factory: BundleFactory) -> None:
    result = run_and_get_output(runtime, factory, sh("echo hello; exit 42"))
    assert result.stdout == "hello\n"
    assert result.returncode == 42


def test_process_is_pid_1_with_hostname(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("echo $$; hostname")
    config["hostname"] = "probe-host"
    result = run_and_get_output(runtime, factory, config)
    assert result.stdout.split() == ["1", "probe-host"], result.stderr


def test_user_and_groups(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("id -u; id -g; id -G")
    config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    result = run_and_get_output(runtime, factory, config)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["1000", "1001"], result.stderr
    assert set(lines[2].split()) == {"1001", "10", "20"}


def test_env_and_cwd(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh('echo "$GREETING"; pwd')
    config["process"]["env"].append("GREETING=hi there")
    config["process"]["cwd"] = "/tmp"
    result = run_and_get_output(runtime, factory, config)
    assert result.stdout.splitlines() == ["hi there", "/tmp"]


def test_capability_sets(runtime: Runtime, factory: BundleFactory) -> None:
    """As a non-root user the sets survive execve exactly as configured."""
    config = sh("cat /proc/self/status")
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    config["process"]["capabilities"] = {
        "bounding": caps, "effective": caps[:2], "permitted": caps[:2],
        "inheritable": caps[:1], "ambient": caps[:1],
    }
    result = run_and_get_output(runtime, factory, config)
    assert int(status_field(result.stdout, "CapBnd"), 16) == mask(tuple(caps))
    # a non-root execve keeps only the ambient set in permitted/effective
    assert int(status_field(result.stdout, "CapEff"), 16) == mask(tuple(caps[:1]))
    assert int(status_field(result.stdout, "CapPrm"), 16) == mask(tuple(caps[:1]))
    assert int(status_field(result.stdout, "CapInh"), 16) == mask(tuple(caps[:1]))
    assert int(status_field(result.stdout, "CapAmb"), 16) == mask(tuple(caps[:1]))


def test_root_gets_its_bounding_set(runtime: Runtime, factory: BundleFactory) -> None:
    """uid 0 gains every bounding capability on execve (kernel rule for root)."""
    config = sh("cat /proc/self/status")
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps[:1],
                                         "permitted": caps[:1]}
    result = run_and_get_output(runtime, factory, config)
    assert int(status_field(result.stdout, "CapEff"), 16) == mask(tuple(caps))
    assert int(status_field(result.stdout, "CapBnd"), 16) == mask(tuple(caps))


def test_ambient_capabilities_survive_non_root_user(runtime: Runtime,
                                                    factory: BundleFactory) -> None:
    config = sh("cat /proc/self/status")
    caps = ["CAP_NET_BIND_SERVICE"]
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {key: caps for key in
                                         ("bounding", "effective", "permitted", "inheritable",
                                          "ambient")}
    result = run_and_get_output(runtime, factory, config)
    assert int(status_field(result.stdout, "CapAmb"), 16) == mask(tuple(caps))
    assert int(status_field(result.stdout, "CapEff"), 16) == mask(tuple(caps))


def test_no_new_privileges(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("grep NoNewPrivs /proc/self/status")
    config["process"]["noNewPrivileges"] = True
    assert run_and_get_output(runtime, factory, config).stdout.split()[-1] == "1"
    config["process"]["noNewPrivileges"] = False
    assert run_and_get_output(runtime, factory, config).stdout.split()[-1] == "0"


def test_seccomp_does_not_imply_no_new_privileges(runtime: Runtime,
                                                  factory: BundleFactory) -> None:
    from dockyard.runtime.linux.capabilities import DOCKER_DEFAULT_CAPABILITIES
    from dockyard.runtime.seccomp_profile import default_profile

    config = sh("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status")
    config["linux"]["seccomp"] = default_profile(DOCKER_DEFAULT_CAPABILITIES)
    config["process"]["noNewPrivileges"] = False
    result = run_and_get_output(runtime, factory, config)
    assert result.stdout.split() == ["NoNewPrivs:", "0", "Seccomp:", "2"], result.stderr


def test_seccomp_denies_with_eperm(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("grep '^Seccomp:' /proc/self/status; mkdir /tmp/denied && echo made")
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}],
    }
    result = run_and_get_output(runtime, factory, config)
    assert result.stdout.split() == ["Seccomp:", "2"], result.stderr
    assert "Operation not permitted" in result.stderr
    assert result.returncode == 1


def test_docker_default_seccomp_profile_blocks_unshare(runtime: Runtime,
                                                       factory: BundleFactory) -> None:
    from dockyard.runtime.linux.capabilities import DOCKER_DEFAULT_CAPABILITIES
    from dockyard.runtime.seccomp_profile import default_profile

    config = sh("echo ok; unshare -n true && echo unshared")
    config["linux"]["seccomp"] = default_profile(DOCKER_DEFAULT_CAPABILITIES)
    result = run_and_get_output(runtime, factory, config)
    assert result.stdout.split() == ["ok"]
    assert result.returncode != 0


def test_rlimits_lowered(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("ulimit -n; ulimit -Hn")
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}]
    assert run_and_get_output(runtime, factory, config).stdout.split() == ["256", "512"]


def test_masked_paths_are_unreadable(runtime: Runtime, factory: BundleFactory) -> None:
    import os

    files = [p for p in ("/proc/keys", "/proc/timer_list", "/proc/interrupts")
             if os.path.exists(p)]
    assert files, "the host has none of the masked files this test reads"
    script = "".join(f"wc -c < {p}; " for p in files)
    script += "ls /sys/firmware | wc -l; echo x > /sys/firmware/f || echo ro"
    result = run_and_get_output(runtime, factory, sh(script))
    assert result.stdout.split() == ["0"] * len(files) + ["0", "ro"], result.stderr


def test_readonly_paths_and_readonly_root(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("echo 1 > /proc/sys/kernel/domainname || echo sys-ro; "
                "touch /newfile || echo root-ro; touch /dev/shm/ok && echo shm-rw")
    config["root"]["readonly"] = True
    result = run_and_get_output(runtime, factory, config)
    assert result.stdout.split() == ["sys-ro", "root-ro", "shm-rw"], result.stderr


def test_bind_mount_readonly_and_flags(runtime: Runtime, factory: BundleFactory,
                                       tmp_path: Any) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data").write_text("from host\n")
    config = sh("cat /mnt/data; touch /mnt/new || echo refused; "
                "grep ' /mnt ' /proc/self/mountinfo")
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(shared),
                             "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
    result = run_and_get_output(runtime, factory, config)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["from host", "refused"], result.stderr
    options = lines[2].split()[5].split(",")
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(options)
    assert not (shared / "new").exists()


def test_default_devices_and_links(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("for d in null zero full random urandom tty; do "
                "stat -c '%n %t:%T %a' /dev/$d; done; "
                "for l in fd stdin ptmx; do readlink /dev/$l; done; "
                "echo x > /dev/null && echo null-ok; stat -c '%n %t:%T' /dev/probe")
    config["linux"]["devices"] = [{"path": "/dev/probe", "type": "c", "major": 1, "minor": 3,
                                   "fileMode": 0o666, "uid": 0, "gid": 0}]
    result = run_and_get_output(runtime, factory, config)
    lines = result.stdout.splitlines()
    assert lines[:6] == ["/dev/null 1:3 666", "/dev/zero 1:5 666", "/dev/full 1:7 666",
                         "/dev/random 1:8 666", "/dev/urandom 1:9 666", "/dev/tty 5:0 666"]
    assert lines[6:9] == ["/proc/self/fd", "/proc/self/fd/0", "pts/ptmx"]
    assert lines[9:] == ["null-ok", "/dev/probe 1:3"], result.stderr


def test_fifo_device(runtime: Runtime, factory: BundleFactory) -> None:
    """A FIFO is made in /dev; only block and character devices are cgroup rules
    (an unbuffered "u" device is a character one to the cgroup)."""
    config = sh("stat -c '%n %F %a %u' /dev/probe-fifo; "
                "(echo through > /dev/probe-fifo &); cat /dev/probe-fifo; "
                "echo x > /dev/probe-null && echo null-written; "
                "cat /sys/fs/cgroup/devices/devices.list")
    config["linux"]["devices"] = [
        {"path": "/dev/probe-fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o620,
         "uid": 1000, "gid": 0},
        {"path": "/dev/probe-null", "type": "u", "major": 1, "minor": 3, "fileMode": 0o666}]
    result = run_and_get_output(runtime, factory, config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["/dev/probe-fifo fifo 620 1000", "through", "null-written"]
    assert not any(rule.startswith(("p ", "u ")) for rule in lines[3:])


def test_cgroup_limits_visible_inside(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    config["linux"]["resources"].update({
        "memory": {"limit": 64 * 1024 * 1024},
        "pids": {"limit": 42},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    })
    result = run_and_get_output(runtime, factory, config)
    assert result.stdout.split() == [str(64 * 1024 * 1024), "42", "512", "50000", "100000"], \
        result.stderr


def test_pids_limit_holds(runtime: Runtime, factory: BundleFactory) -> None:
    config = sh("i=0; while [ $i -lt 8 ]; do sleep 2 & i=$((i+1)); done; echo forked-all")
    config["linux"]["resources"]["pids"] = {"limit": 4}
    result = run_and_get_output(runtime, factory, config)
    assert "can't fork: Resource temporarily unavailable" in result.stderr
    assert "forked-all" not in result.stdout


def test_namespaces_are_new(runtime: Runtime, factory: BundleFactory) -> None:
    import os

    result = run_and_get_output(runtime, factory, sh(
        "for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done"))
    host = {os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "net", "ipc", "uts", "mnt",
                                                         "cgroup")}
    inside = set(result.stdout.split())
    assert len(inside) == 6 and not inside & host, result.stderr


def test_network_namespace_has_only_loopback(runtime: Runtime, factory: BundleFactory) -> None:
    result = run_and_get_output(runtime, factory, sh("ls /sys/class/net"))
    assert result.stdout.split() == ["lo"]


def test_same_view_as_runc(dockyard: Runtime, runc: Runtime, factory: BundleFactory) -> None:
    """One probe script, both runtimes, outputs compared line by line."""
    script = ("id; hostname; echo $$; cat /proc/self/status | grep -E "
              "'^(Cap|NoNewPrivs|Seccomp:|Sig(Blk|Ign|Cgt):)'; ulimit -n; "
              "ls -l /dev | awk '{print $1, $NF}'; umask; cat /proc/self/mountinfo")
    config = sh(script)
    config["hostname"] = "same"
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 1000}]
    ours = run_and_get_output(dockyard, factory, config)
    theirs = run_and_get_output(runc, factory, config)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    ours_lines, ours_mounts = _split_mountinfo(ours.stdout)
    theirs_lines, theirs_mounts = _split_mountinfo(theirs.stdout)
    assert ours_lines == theirs_lines
    assert ours_mounts == theirs_mounts


def _split_mountinfo(text: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Other lines as they are; mountinfo lines as (mount point, fs type, options)."""
    lines, mounts = [], []
    for line in text.splitlines():
        if " - " in line and line.split()[0].isdigit():
            left, right = line.split(" - ", 1)
            mounts.append((left.split()[4], right.split()[0], left.split()[5]))
        else:
            lines.append(line)
    return lines, sorted(mounts)


SIGNAL_PROBE = "grep -E '^Sig(Blk|Ign|Cgt):' /proc/self/status; yes | head -n1"
CLEAN_SIGNALS = ["SigBlk:", "0" * 16, "SigIgn:", "0" * 16, "SigCgt:", "0" * 16, "y"]


def _ignore_hangup() -> None:
    """What a supervisor (or nohup) does before it starts the runtime."""
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_signal_state_is_clean(runtime: Runtime, factory: BundleFactory) -> None:
    """Default dispositions, nothing blocked: `yes | head` ends quietly by SIGPIPE.

    The runtime's own interpreter ignores SIGPIPE and SIGXFSZ; execve keeps
    ignored dispositions, so the runtime must reset them in the container process.
    """
    result = run_and_get_output(runtime, factory, sh(SIGNAL_PROBE))
    assert result.stdout.split() == CLEAN_SIGNALS
    assert result.stderr == ""


def test_signal_state_is_clean_when_the_caller_ignores_hangup(
        runtime: Runtime, factory: BundleFactory) -> None:
    bundle = factory.make(sh(SIGNAL_PROBE))
    result = runtime.call("run", "--bundle", str(bundle), "sighup-ignored",
                          stdin=subprocess.DEVNULL, preexec_fn=_ignore_hangup)
    assert result.stdout.split() == CLEAN_SIGNALS, result.stderr
    assert result.stderr == ""


@pytest.fixture(params=["private-host", "shared-host"])
def placed_factory(request: pytest.FixtureRequest, factory: BundleFactory,
                   tmp_path: Path) -> Iterator[BundleFactory]:
    """Bundles where the tests keep them (private mounts here), or on a tmpfs the
    test makes shared, as every mount is on a systemd host."""
    if request.param == "private-host":
        yield factory
        return
    base = tmp_path / "shared-mount"
    base.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "dockyard-test", str(base)],
                   check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(base)], check=True)
        yield BundleFactory(base)
        with open("/proc/self/mountinfo") as handle:
            below = [line.split()[4] for line in handle
                     if line.split()[4].startswith(f"{base}/")]
        assert below == [], "container mounts propagated to the host"
    finally:
        subprocess.run(["umount", "-l", str(base)], check=True)


@pytest.mark.parametrize("propagation", ["shared", "rshared", "slave", "private", "rprivate"])
def test_rootfs_propagation(runtime: Runtime, placed_factory: BundleFactory,
                            propagation: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared: the runtime makes
    the rootfs's parent private first, and applies a shared propagation after."""
    config = sh("awk '$5 == \"/\" {print $7}' /proc/self/mountinfo; echo ran")
    config["linux"]["rootfsPropagation"] = propagation
    result = run_and_get_output(runtime, placed_factory, config)
    assert result.returncode == 0, result.stderr
    root_tag, ran = result.stdout.split()
    assert ran == "ran"
    if propagation.endswith("private"):
        assert root_tag == "-"
    if propagation.endswith("shared") and runtime.name == "dockyard-runtime":
        # runc does this from 1.2.7/1.3 (opencontainers/runc#4724); Debian's 1.1.5
        # leaves the root private
        assert root_tag.startswith("shared:")


def _mounts_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


def test_without_a_mount_namespace(runtime: Runtime, factory: BundleFactory) -> None:
    """No mount namespace in the config: the container shares the runtime's, its
    mounts are made there and it is chrooted into its rootfs (runc's behaviour).
    runc leaves those mounts on the host when the container goes; dockyard-runtime
    removes them with the container."""
    import os

    config = sh("readlink /proc/self/ns/mnt; ls / | tr '\\n' ' '")
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] != "mount"]
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    bundle = factory.make(config)
    try:
        result = runtime.run_bundle(bundle)
        left = _mounts_below(bundle / "rootfs")
    finally:
        subprocess.run(["umount", "-R", "-l", str(bundle / "rootfs")], capture_output=True,
                       check=False)
    assert result.returncode == 0, result.stderr
    ns, listing = result.stdout.splitlines()
    assert ns == os.readlink("/proc/self/ns/mnt")
    assert listing.split() == ["bin", "dev", "etc", "proc", "root", "sys", "tmp"]
    if runtime.name == "dockyard-runtime":
        assert left == []
