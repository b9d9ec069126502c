"""Image config + ContainerSpec → OCI spec, with Docker's rules."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.engine import ocispec
from dockyard.engine.spec import ContainerSpec, TmpfsMount, Ulimit
from dockyard.errors import InvalidArgument, NotFound
from dockyard.oci.runtime_spec import parse_spec

IMAGE: dict[str, Any] = {"config": {"Entrypoint": ["/entry"], "Cmd": ["serve", "--port=80"],
                                    "Env": ["PATH=/bin", "MODE=prod"], "WorkingDir": "/app"}}


def build(spec: ContainerSpec) -> dict[str, Any]:
    return ocispec.build(IMAGE, spec, rootfs="rootfs", hostname="h", cgroup_path="/dy/x",
                         user=ocispec.UserIds(0, 0))


def test_entrypoint_and_cmd_rules() -> None:
    config = IMAGE["config"]
    assert ocispec.process_args(config, ContainerSpec("i")) == ["/entry", "serve", "--port=80"]
    assert ocispec.process_args(config, ContainerSpec("i", command=("x",))) == ["/entry", "x"]
    assert ocispec.process_args(config, ContainerSpec("i", entrypoint=("sh",))) == ["sh"]
    assert ocispec.process_args(config, ContainerSpec("i", entrypoint=(), command=("id",))) == \
        ["id"]
    with pytest.raises(InvalidArgument, match="no command specified"):
        ocispec.process_args({}, ContainerSpec("i"))


def test_env_overrides_by_key() -> None:
    assert ocispec.merge_env(["PATH=/bin", "MODE=prod"], ("MODE=dev", "NEW=1")) == \
        ["PATH=/bin", "MODE=dev", "NEW=1"]


def test_user_resolution() -> None:
    passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
    group = "root:x:0:\nstaff:x:50:app,other\napp:x:1001:\n"
    # Docker's additionalGids: the primary gid first, then the groups listing the user
    assert ocispec.resolve_user("app", passwd, group) == ocispec.UserIds(1000, 1001, (1001, 50))
    assert ocispec.resolve_user("0", passwd, group) == ocispec.UserIds(0, 0, (0,))
    # a named group replaces the primary one and brings no others (runc's GetExecUser)
    assert ocispec.resolve_user("1000:staff", passwd, group) == ocispec.UserIds(1000, 50, (50,))
    assert ocispec.resolve_user("4242:7", passwd, group) == ocispec.UserIds(4242, 7, (7,))
    assert ocispec.resolve_user("4242", passwd, group) == ocispec.UserIds(4242, 0, (0,))
    with pytest.raises(NotFound, match="unable to find group nope"):
        ocispec.resolve_user("app:nope", passwd, group)
    with pytest.raises(NotFound, match="unable to find user ghost"):
        ocispec.resolve_user("ghost", passwd, group)


def test_capabilities_add_drop_privileged() -> None:
    caps = ocispec.capabilities(ContainerSpec("i", cap_add=("net_admin",), cap_drop=("CHOWN",)))
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps
    assert ocispec.capabilities(ContainerSpec("i", cap_drop=("ALL",), cap_add=("KILL",))) == \
        ["CAP_KILL"]
    assert len(ocispec.capabilities(ContainerSpec("i", privileged=True))) >= 40
    with pytest.raises(InvalidArgument, match="invalid capability"):
        ocispec.capabilities(ContainerSpec("i", cap_add=("FLY",)))


def test_full_spec_is_valid_and_carries_the_options() -> None:
    spec = ContainerSpec("i", env=("A=1",), working_dir="/w", read_only=True, memory=64 << 20,
                         nano_cpus=1_500_000_000, pids_limit=50, no_new_privileges=True,
                         ulimits=(Ulimit("nofile", 100, 200),), labels={"k": "v"},
                         tmpfs=(TmpfsMount("/run", "size=1m"),))
    oci = build(spec)
    parsed = parse_spec(oci)
    assert parsed.process is not None
    assert parsed.process.cwd == "/w"
    assert parsed.root.readonly
    assert parsed.linux.resources.memory_limit == 64 << 20
    assert parsed.linux.resources.cpu_quota == 150_000
    assert parsed.linux.resources.pids_limit == 50
    assert parsed.process.no_new_privileges
    assert parsed.process.rlimits[0].type == "RLIMIT_NOFILE"
    assert parsed.annotations == {"k": "v"}
    assert any(m.destination == "/run" and "size=1m" in m.options for m in parsed.mounts)
    assert parsed.linux.seccomp is not None


def test_privileged_and_unconfined() -> None:
    oci = build(ContainerSpec("i", privileged=True))
    assert "seccomp" not in oci["linux"]
    assert oci["linux"]["maskedPaths"] == []
    assert "seccomp" not in build(ContainerSpec("i", seccomp_profile="unconfined"))["linux"]


def test_host_network_keeps_the_host_namespace() -> None:
    types = {n["type"] for n in build(ContainerSpec("i", network_mode="host"))["linux"][
        "namespaces"]}
    assert "network" not in types and "pid" in types


def test_init_runs_in_front_of_the_command() -> None:
    oci = ocispec.build(IMAGE, ContainerSpec("i", init=True), rootfs="r", hostname="h",
                        cgroup_path="/x", user=ocispec.UserIds(0, 0),
                        init_binary="/usr/bin/tini-static")
    assert oci["process"]["args"][:2] == ["/sbin/docker-init", "--"]
    assert {"destination": "/sbin/docker-init", "type": "bind",
            "source": "/usr/bin/tini-static",
            "options": ["bind", "ro", "nosuid", "nodev"]} in oci["mounts"]
    with pytest.raises(InvalidArgument, match="no init binary"):
        ocispec.build(IMAGE, ContainerSpec("i", init=True), rootfs="r", hostname="h",
                      cgroup_path="/x", user=ocispec.UserIds(0, 0))


def test_devices_become_nodes_and_cgroup_rules() -> None:
    from dockyard.engine.ocispec import device_nodes
    from dockyard.errors import InvalidArgument

    nodes, rules = device_nodes(("/dev/null:/dev/mynull:r", "/dev/zero", "/dev/full:rw"))
    assert [(n["path"], n["type"], n["major"], n["minor"]) for n in nodes] == [
        ("/dev/mynull", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7)]
    assert [(r["allow"], r["major"], r["minor"], r["access"]) for r in rules] == [
        (True, 1, 3, "r"), (True, 1, 5, "rwm"), (True, 1, 7, "rw")]
    for bad in ("/etc/passwd", "/dev/null:/x:rwz", "/no/such/dev"):
        with pytest.raises(InvalidArgument):
            device_nodes((bad,))
