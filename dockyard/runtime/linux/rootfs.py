"""Build a container's root filesystem inside its new mount namespace.

Runs in the init stage, after unshare(CLONE_NEWNS).  The steps follow runc's
order: make the host's mounts slaves, bind the rootfs onto itself, perform the
spec's mounts in order (each destination resolved by ``paths.resolve_in_root``),
create device nodes and /dev links, then pivot_root; masked paths, read-only
paths and a read-only root are applied after the pivot, from inside.  A config
without a mount namespace shares the runtime's: the same mounts are made there
(the runtime records and later removes them) and the init chroots instead.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.errors import InvalidSpec, KernelError
from dockyard.oci.runtime_spec import Device, Mount, Spec
from dockyard.runtime.linux import mountopts, paths
from dockyard.runtime.linux import syscalls as sc
from dockyard.stdlite import TYPE_CHECKING, NamedTuple, suppress

if TYPE_CHECKING:  # (collections, which collections.abc imports first: ~1.7 ms)
    from collections.abc import Mapping, Sequence

DEFAULT_DEVICES: tuple[Device, ...] = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)

DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


def _propagation_flags(spec: Spec) -> int:
    name = spec.linux.rootfs_propagation or "rslave"
    return mountopts.PROPAGATION[name]


def prepare(spec: Spec, rootfs: str, bundle: str, cgroup_paths: Mapping[str, str], *,
            own_namespace: bool = True, user_namespace: bool = False) -> None:
    """Everything up to (not including) pivot_root.

    Without a mount namespace of its own (``own_namespace`` false) the container
    shares the runtime's: its mounts are made there, as runc makes them, but the
    propagation of mounts the runtime did not make is left alone.  In a user
    namespace (``user_namespace``) this runs as its root: device nodes are the
    host's, bound (mknod is not allowed there), and sysfs, when the kernel refuses
    it (a network namespace the user namespace does not own), is the host's /sys
    bound recursively.
    """
    if own_namespace:
        sc.mount(None, "/", None, _propagation_flags(spec), None)
        _make_parent_mount_private(rootfs)
    try:
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC, None)
    except KernelError as exc:
        if user_namespace and exc.errno == errno.EACCES:
            raise InvalidSpec(f"root.path: {rootfs} is out of reach of the user namespace's "
                              "root: it and every directory above it must be searchable by "
                              "the host uid container root maps to") from exc
        raise
    for index, mnt in enumerate(spec.mounts):
        where = f"mounts[{index}] ({mnt.destination})"
        if mnt.type == "cgroup":
            _mount_cgroups(rootfs, mnt, cgroup_paths, where)
        elif mnt.type == "sysfs" and user_namespace:
            _mount_sysfs_or_bind(rootfs, mnt, where)
        else:
            _mount_one(rootfs, bundle, mnt, where)
    _create_devices(rootfs, spec, bind=user_namespace)
    for key, value in spec.linux.sysctl:
        _write_sysctl(key, value)


def _make_parent_mount_private(rootfs: str) -> None:
    """runc's rootfsParentMountPrivate: the mount holding the rootfs becomes private
    in our namespace when it is shared (a "shared" rootfsPropagation, or a systemd
    host where every mount is).  Otherwise pivot_root fails (the kernel refuses a
    new root whose parent mount is shared) and the rootfs bind mount, with every
    mount made under it, would propagate to the host.  An unbindable parent becomes
    private too, or the bind mount below is refused.
    """
    path = os.path.realpath(rootfs)
    parent: MountEntry | None = None
    for entry in mount_table():
        if _is_at_or_under(path, entry.point) and (
                parent is None or len(entry.point) >= len(parent.point)):
            parent = entry
    if parent is not None and any(tag.startswith("shared:") or tag == "unbindable"
                                  for tag in parent.tags):
        sc.mount(None, parent.point, None, sc.MS_PRIVATE, None)


class MountEntry(NamedTuple):
    id: int
    point: str
    tags: tuple[str, ...]  # optional fields: shared:N, master:N, unbindable


def mount_table() -> list[MountEntry]:
    """/proc/self/mountinfo in order (a mount stacked on another comes after it)."""
    entries = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split(" - ", 1)[0].split()
            entries.append(MountEntry(int(fields[0]), _unescape(fields[4]), tuple(fields[6:])))
    return entries


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    if "\\" not in field:
        return field
    head, *escaped = field.split("\\")
    parts = [head]
    for part in escaped:  # a backslash is itself written \134, so each starts an escape
        code = part[:3]
        if len(code) == 3 and all(digit in "01234567" for digit in code):
            parts.append(chr(int(code, 8)) + part[3:])
        else:
            parts.append("\\" + part)
    return "".join(parts)


def _is_at_or_under(path: str, point: str) -> bool:
    return point == "/" or path == point or path.startswith(point + "/")


def mounts_made_under(rootfs: str, before: set[int]) -> list[tuple[int, str]]:
    """(id, mount point) of the mounts at or under ``rootfs`` not in ``before``."""
    path = os.path.realpath(rootfs)
    return [(entry.id, entry.point) for entry in mount_table()
            if entry.id not in before and _is_at_or_under(entry.point, path)
            and entry.point != "/"]


def unmount_made(made: Sequence[tuple[int, str]]) -> None:
    """Detach mounts from ``mounts_made_under``, deepest first.

    A mount is detached only while it is still the topmost at its mount point, so
    one the container already removed never takes another (the image's) with it.
    """
    remaining = {mount_id: point for mount_id, point in made}
    while remaining:
        table = mount_table()
        present = {entry.id for entry in table}
        top = {entry.point: entry.id for entry in table}  # later entries are on top
        for mount_id in [i for i in remaining if i not in present]:
            del remaining[mount_id]
        candidates = [(point.count("/"), mount_id) for mount_id, point in remaining.items()
                      if top.get(point) == mount_id]
        if not candidates:
            return
        _depth, mount_id = max(candidates)
        with suppress(KernelError):
            sc.umount2(remaining[mount_id], sc.MNT_DETACH)
        del remaining[mount_id]


def apply_root_propagation(spec: Spec) -> None:
    """After pivot_root: a shared or unbindable rootfsPropagation applies to the new
    root itself (runc since 1.2.7/1.3); private and slave ones were applied before."""
    flags = _propagation_flags(spec)
    if flags & (sc.MS_SHARED | sc.MS_UNBINDABLE):
        sc.mount(None, "/", None, flags, None)


def _mount_one(rootfs: str, bundle: str, mnt: Mount, where: str) -> None:
    opts = mountopts.parse(mnt.options, where=where)
    is_bind = opts.is_bind or mnt.type == "bind"
    source = mnt.source
    if is_bind:
        source = source if source.startswith("/") else os.path.join(bundle, source)
        if not os.path.exists(source):
            raise InvalidSpec(f"{where}: bind source {mnt.source!r} does not exist")
    dest = paths.resolve_in_root(rootfs, mnt.destination, what=f"{where}: destination")
    _make_mountpoint(dest, source_is_dir=not is_bind or os.path.isdir(source), where=where)
    if is_bind:
        sc.mount(source, dest, None, sc.MS_BIND | (opts.flags & sc.MS_REC), None)
        extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra:
            kept = mountopts.flags_from_statvfs(os.statvfs(dest).f_flag)
            sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | kept | extra, None)
    else:
        data = opts.data or None
        sc.mount(source or mnt.type, dest, mnt.type, opts.flags, data)
    for flag in opts.propagation:
        sc.mount(None, dest, None, flag, None)


def _mount_sysfs_or_bind(rootfs: str, mnt: Mount, where: str) -> None:
    """sysfs needs the network namespace to belong to our user namespace; otherwise
    the host's /sys, recursively bound, with the mount's flags (runc 1.2's fallback)."""
    try:
        _mount_one(rootfs, "", mnt, where)
        return
    except KernelError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
    opts = mountopts.parse(mnt.options, where=where)
    dest = paths.resolve_in_root(rootfs, mnt.destination, what=f"{where}: destination")
    sc.mount("/sys", dest, None, sc.MS_BIND | sc.MS_REC, None)
    extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        kept = mountopts.flags_from_statvfs(os.statvfs(dest).f_flag)
        sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | kept | extra, None)


def _make_mountpoint(dest: str, *, source_is_dir: bool, where: str) -> None:
    if os.path.lexists(dest):
        if source_is_dir and not os.path.isdir(dest):
            raise InvalidSpec(f"{where}: destination exists and is not a directory")
        return
    if source_is_dir:
        os.makedirs(dest, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _mount_cgroups(rootfs: str, mnt: Mount, cgroup_paths: Mapping[str, str], where: str) -> None:
    """A tmpfs with each of the container's own cgroup directories bound into it."""
    opts = mountopts.parse(mnt.options, where=where)
    dest = paths.resolve_in_root(rootfs, mnt.destination, what=f"{where}: destination")
    os.makedirs(dest, mode=0o755, exist_ok=True)
    if "" in cgroup_paths:  # cgroup v2 only: one hierarchy
        _bind_cgroup(cgroup_paths[""], dest, opts.flags)
        return
    sc.mount("tmpfs", dest, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
    for name, host_path in sorted(cgroup_paths.items()):
        target = os.path.join(dest, name)
        os.makedirs(target, exist_ok=True)
        _bind_cgroup(host_path, target, opts.flags)
    # like runc, the tmpfs itself stays writable (only empty dirs live there); the
    # hierarchies bound into it carry the read-only flag


def _bind_cgroup(host_path: str, target: str, flags: int) -> None:
    sc.mount(host_path, target, None, sc.MS_BIND | sc.MS_REC, None)
    keep = flags & (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    if keep:
        # with the flags the mount has (in a user namespace the kernel refuses a
        # remount that would clear one of the host's)
        kept = mountopts.flags_from_statvfs(os.statvfs(target).f_flag)
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | kept | keep, None)


def _create_devices(rootfs: str, spec: Spec, *, bind: bool = False) -> None:
    for device in (*DEFAULT_DEVICES, *spec.linux.devices):
        if bind and device.type != "p":  # a FIFO needs no privilege to make
            _bind_device(rootfs, device)
        else:
            _create_device(rootfs, device)
    for target, link in DEV_SYMLINKS:
        _symlink(rootfs, target, link)
    if os.path.exists("/proc/kcore") and _mounts_proc(spec):
        _symlink(rootfs, "/proc/kcore", "/dev/core")
    if any(m.destination == "/dev/pts" and m.type == "devpts" for m in spec.mounts):
        ptmx = paths.resolve_in_root(rootfs, "/dev/ptmx", what="/dev/ptmx")
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)


def _mounts_proc(spec: Spec) -> bool:
    return any(m.type == "proc" for m in spec.mounts)


def _symlink(rootfs: str, target: str, link: str) -> None:
    path = paths.resolve_in_root(rootfs, link, what=link)
    if not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)


def _create_device(rootfs: str, device: Device) -> None:
    path = paths.resolve_in_root(rootfs, device.path, what=f"linux.devices {device.path}")
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    mode = kinds[device.type] | (device.file_mode if device.file_mode is not None else 0o666)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            raise InvalidSpec(f"linux.devices: {device.path} exists and is a directory")
        os.unlink(path)
    sc.os_call("mknod", path, os.mknod, path, mode, os.makedev(device.major, device.minor))
    os.chmod(path, mode & 0o7777)  # mknod honours the umask; the spec's mode does not
    os.chown(path, device.uid or 0, device.gid or 0)


def _bind_device(rootfs: str, device: Device) -> None:
    """runc's bindMountDeviceNode: the host's node at the same path, bound over an
    empty file (it keeps the host's owner and mode)."""
    path = paths.resolve_in_root(rootfs, device.path, what=f"linux.devices {device.path}")
    kind = stat.S_IFBLK if device.type == "b" else stat.S_IFCHR
    try:
        host = os.stat(device.path)
    except OSError:
        raise InvalidSpec(f"linux.devices: {device.path}: a user namespace cannot make device "
                          "nodes, and the host has none at that path to bind") from None
    if stat.S_IFMT(host.st_mode) != kind or host.st_rdev != os.makedev(device.major,
                                                                      device.minor):
        raise InvalidSpec(f"linux.devices: {device.path}: a user namespace cannot make device "
                          f"nodes, and the host's {device.path} is not {device.type} "
                          f"{device.major}:{device.minor}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            raise InvalidSpec(f"linux.devices: {device.path} exists and is a directory")
        os.unlink(path)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    sc.mount(device.path, path, None, sc.MS_BIND, None)


def _write_sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    if ".." in key.split("."):
        raise InvalidSpec(f"linux.sysctl: invalid key {key!r}")
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise InvalidSpec(f"linux.sysctl: cannot set {key}={value}: {exc.strerror}") from exc


def pivot(rootfs: str) -> None:
    """pivot_root(2) into ``rootfs`` and detach the old root (runc's '.'/'.' trick)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC, None)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def enter(rootfs: str, *, own_namespace: bool) -> None:
    """pivot_root in the container's own mount namespace; chroot in the runtime's
    (pivot_root there would move the root of every process on the host)."""
    if own_namespace:
        pivot(rootfs)
        return
    os.chroot(rootfs)
    os.chdir("/")


def finalize(spec: Spec, *, own_namespace: bool = True) -> None:
    """After pivot_root: the root's propagation, masked paths, read-only paths and root."""
    if own_namespace:
        apply_root_propagation(spec)
    for path in spec.linux.masked_paths:
        _mask(path)
    for path in spec.linux.readonly_paths:
        _make_readonly(path)
    if spec.root.readonly:
        kept = mountopts.flags_from_statvfs(os.statvfs("/").f_flag)
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | kept, None)


def _mask(path: str) -> None:
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND, None)


def _make_readonly(path: str) -> None:
    if not os.path.lexists(path):
        return
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC, None)
    kept = mountopts.flags_from_statvfs(os.statvfs(path).f_flag)
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | kept, None)
