"""The leak checker's pure parts: which mounts count, which processes are dockyard's
daemons, where cgroup hierarchies are, what a removal looks like."""

from __future__ import annotations

from pathlib import Path

from dockyard.testing import leaks

# A fresh machine after its first `ip netns add foo` (iproute2 bind-mounts /run/netns
# onto itself), with a propagation twin of it under a shared bind of /run at /srv/run.
FRESH = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:23 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
30 22 0:23 / /srv/run rw,nosuid shared:5 - tmpfs tmpfs rw
40 25 0:23 /netns /run/netns rw,relatime shared:9 - tmpfs tmpfs rw
41 30 0:23 /netns /srv/run/netns rw,relatime shared:9 - tmpfs tmpfs rw
42 40 0:4 net:[4026532179] /run/netns/foo rw shared:10 - nsfs nsfs rw
43 41 0:4 net:[4026532179] /srv/run/netns/foo rw shared:10 - nsfs nsfs rw
44 22 0:23 /netns /tmp/x/netns-elsewhere rw shared:9 - tmpfs tmpfs rw
"""


def test_netns_dir_mount_and_its_twins_are_not_counted() -> None:
    assert leaks._mounts(FRESH) == {"/", "/run", "/srv/run", "/run/netns/foo",
                                    "/srv/run/netns/foo", "/tmp/x/netns-elsewhere"}


def test_netns_files_count_without_the_dir_mount() -> None:
    plain = "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
    # the directory not a mount at all (a host where /run/netns never was mounted)
    assert leaks._mounts(plain + "42 22 0:4 net:[1] /run/netns/foo rw - nsfs nsfs rw\n") == {
        "/", "/run/netns/foo"}


def test_a_mount_elsewhere_named_netns_still_counts() -> None:
    text = ("22 1 254:0 / / rw - ext4 /dev/vda rw\n"
            "23 22 0:50 / /tmp/t/netns rw - tmpfs tmpfs rw\n")
    assert leaks._mounts(text) == {"/", "/tmp/t/netns"}


def test_dockyard_daemons_are_recognised_by_module() -> None:
    zygote = ["/opt/dockyard-test/bin/python", "-P", "-m", "dockyard.supervise.zygote",
              "/tmp/r/run", "dockyard.runtime.driver"]
    assert leaks.is_dockyard_daemon(zygote)
    assert leaks.is_dockyard_daemon(["python3", "-W", "error", "-m",
                                     "dockyard.supervise.monitor", "--id", "x"])
    # the reconcile loop of `kube play --detach`
    assert leaks.is_dockyard_daemon(["python3", "-m", "dockyard.kube.controller", "/r",
                                     "/r/kube/controllers/x.json"])
    for other in (["python3", "-m", "dockyard.cli.main", "ps"],
                  ["python3", "script.py", "-m", "dockyard.supervise.zygote"],
                  ["python3", "-c", "pass", "-m", "dockyard.supervise.zygote"],
                  ["sleep", "dockyard.supervise.zygote"], ["python3", "-m"], []):
        assert not leaks.is_dockyard_daemon(other), other


def _snapshot(**kinds: object) -> leaks.HostSnapshot:
    empty: frozenset[str] = frozenset()
    fields: dict[str, object] = {kind: empty for kind in leaks.HostSnapshot._fields}
    fields["children"] = frozenset[int]()
    fields["taken_at"] = 1000
    fields.update(kinds)
    return leaks.HostSnapshot(**fields)  # type: ignore[arg-type]


def test_only_daemons_started_since_the_snapshot_count() -> None:
    before = _snapshot(daemons=frozenset({"10@900: python -m dockyard.supervise.zygote"}))
    after = _snapshot(daemons=frozenset({"10@900: python -m dockyard.supervise.zygote",
                                         "11@950: python -m dockyard.supervise.zygote",
                                         "12@1000: python -m dockyard.supervise.zygote"}))
    assert leaks.leaked(before, after) == {
        "daemons": ["12@1000: python -m dockyard.supervise.zygote"]}


def test_removals_of_host_objects_are_reported() -> None:
    before = _snapshot(links=frozenset({"lo", "eth0", "docker0"}),
                       mounts=frozenset({"/", "/mnt"}), netns=frozenset({"a"}),
                       chains=frozenset({"DY-x"}), cgroups=frozenset({"/c/dockyard-1"}))
    after = _snapshot(links=frozenset({"lo", "eth0", "dy1"}), mounts=frozenset({"/"}))
    assert leaks.leaked(before, after) == {
        "links": ["dy1"], "removed_links": ["docker0"], "removed_mounts": ["/mnt"],
        "removed_netns": ["a"], "removed_chains": ["DY-x"]}


def test_cgroup_hierarchies_v1_v2_and_v2_only() -> None:
    hybrid = ("30 22 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n"
              "31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
              "32 30 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
              "33 22 0:29 / /srv/a\\040b rw shared:7 - ext4 /dev/vdb rw\n")
    assert leaks._cgroup_hierarchies(hybrid) == [Path("/sys/fs/cgroup/memory"),
                                                 Path("/sys/fs/cgroup/unified")]
    v2_only = "30 22 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    assert leaks._cgroup_hierarchies(v2_only) == [Path("/sys/fs/cgroup")]


def test_test_cgroups_at_a_hierarchy_root_and_below(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    (unified / "dockyard-a").mkdir(parents=True)
    (unified / "system.slice" / "dockyard-b").mkdir(parents=True)
    (unified / "other").mkdir()
    (unified / "dockyard-file").write_text("")  # a control file, not a cgroup
    assert leaks._test_cgroups([unified, tmp_path / "absent"]) == {
        str(unified / "dockyard-a"), str(unified / "system.slice" / "dockyard-b")}


def test_a_changed_host_setting_is_reported_both_ways() -> None:
    """Turning the host's forwarding on (or its FORWARD policy to DROP) is a leak: the
    new value is extra, the old one removed."""
    before = _snapshot(settings=frozenset({"net.ipv4.ip_forward=0", "FORWARD ACCEPT"}))
    after = _snapshot(settings=frozenset({"net.ipv4.ip_forward=1", "FORWARD DROP"}))
    assert leaks.leaked(before, after) == {
        "settings": ["FORWARD DROP", "net.ipv4.ip_forward=1"],
        "removed_settings": ["FORWARD ACCEPT", "net.ipv4.ip_forward=0"]}
    assert leaks.leaked(before, before) == {}
