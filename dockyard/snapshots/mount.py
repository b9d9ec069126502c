"""Mount data returned by snapshotters, and the one place that mounts a rootfs."""

from __future__ import annotations

from typing import NamedTuple


class Mount(NamedTuple):
    """What mount(2) needs, minus the target: plain data a test can assert on."""

    type: str
    source: str
    options: tuple[str, ...] = ()


# mount(2) takes its data in one page; longer overlay options are shortened below
MOUNT_DATA_MAX = 4096 - 1


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
        elif mnt.type == "overlay":
            _mount_overlay(mnt.source, target, flags, data)
        else:
            sc.mount(mnt.source, target, mnt.type, flags, ",".join(data) or None)


_volatile_refused = False  # this kernel predates overlayfs's "volatile" (Linux 5.10)


def _mount_overlay(source: str, target: str, flags: int, data: list[str]) -> None:
    """An overlay; without ``volatile`` where the kernel does not know it (EINVAL: a
    speed-up only, see ``OverlaySnapshotter.mounts``)."""
    global _volatile_refused
    import errno

    from dockyard.errors import KernelError

    if _volatile_refused and "volatile" in data:
        data = [option for option in data if option != "volatile"]
    try:
        if len(",".join(data)) > MOUNT_DATA_MAX:
            _mount_overlay_by_fd(source, target, flags, data)
        else:
            from dockyard.runtime.linux import syscalls as sc

            sc.mount(source, target, "overlay", flags, ",".join(data))
    except KernelError as exc:
        if exc.errno != errno.EINVAL or "volatile" not in data:
            raise
        _volatile_refused = True
        _mount_overlay(source, target, flags, [o for o in data if o != "volatile"])


def _mount_overlay_by_fd(source: str, target: str, flags: int, data: list[str]) -> None:
    """An image of many layers: 125 absolute lower paths overflow mount(2)'s one page
    of data, so each lower directory is opened and named by its short
    ``/proc/self/fd/N`` link for the duration of the call (overlay2 uses short link
    names for the same reason; a descriptor needs no extra files and no chdir)."""
    import os

    from dockyard.runtime.linux import syscalls as sc

    opened: list[int] = []
    try:
        shortened = []
        for option in data:
            if option.startswith("lowerdir="):
                paths = option[len("lowerdir="):].split(":")
                opened += [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in paths]
                option = "lowerdir=" + ":".join(f"/proc/self/fd/{fd}" for fd in
                                                opened[-len(paths):])
            shortened.append(option)
        sc.mount(source, target, "overlay", flags, ",".join(shortened))
    finally:
        for fd in opened:
            os.close(fd)


def unmount(target: str) -> None:
    from dockyard.runtime.linux import syscalls as sc

    sc.umount2(target, sc.MNT_DETACH)
