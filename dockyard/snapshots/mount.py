"""Mount data returned by snapshotters, and the one place that mounts a rootfs."""

from __future__ import annotations

from typing import NamedTuple


class Mount(NamedTuple):
    """What mount(2) needs, minus the target: plain data a test can assert on."""

    type: str
    source: str
    options: tuple[str, ...] = ()




def mount_all(mounts: list[Mount], target: str) -> None:
    # syscalls (ctypes) only when something is mounted: listing and planning stay light
    from dockyard.runtime.linux import syscalls as sc

    flag_options = {"ro": sc.MS_RDONLY, "rbind": sc.MS_BIND | sc.MS_REC, "bind": sc.MS_BIND}
    for mnt in mounts:
        flags = 0
        data = []
        for option in mnt.options:
            if option in flag_options:
                flags |= flag_options[option]
            else:
                data.append(option)
        if mnt.type == "bind":
            sc.mount(mnt.source, target, None, flags | sc.MS_BIND, None)
            if flags & sc.MS_RDONLY:
                sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY, None)
        else:
            sc.mount(mnt.source, target, mnt.type, flags, ",".join(data) or None)


def unmount(target: str) -> None:
    from dockyard.runtime.linux import syscalls as sc

    sc.umount2(target, sc.MNT_DETACH)
