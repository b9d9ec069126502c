"""Every raw Linux system call dockyard makes through ctypes, in one module.

Python 3.11 has no ``os.unshare``/``os.setns`` and no wrappers for mount(2),
pivot_root(2), capset(2) or prctl(2), so they are called here through libc.
Each wrapper turns a failure into :class:`~dockyard.errors.KernelError` carrying
the operation, the target and the errno, so no raw ``OSError`` leaves this module.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os

from dockyard.errors import KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:  # (typing's import is not paid on the runtime's start path)
    from collections.abc import Iterator

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91},
}
_NR = _SYSCALL_NUMBERS.get(os.uname().machine, _SYSCALL_NUMBERS["x86_64"])


def _check(result: int, op: str, target: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise KernelError(op, target, err, os.strerror(err))
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


def setns(fd: int, nstype: int, target: str = "") -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", target or str(fd))


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(result, f"mount {source or ''} ({fstype or 'bind'}) on", target)


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    result = _libc.syscall(ctypes.c_long(_NR["pivot_root"]), _b(new_root), _b(put_old))
    _check(result, "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = [ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    return _check(_libc.prctl(ctypes.c_int(option), *args), "prctl", str(option))


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def set_seccomp_filter(program: bytes) -> None:
    """Install a classic BPF seccomp program (``struct sock_filter`` array)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    result = _libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                         ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _check(result, "prctl", "PR_SET_SECCOMP")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's three capability sets from 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    result = _libc.syscall(ctypes.c_long(_NR["capset"]), ctypes.byref(header), data)
    _check(result, "capset", "self")


def capbset_drop(cap: int) -> None:
    try:
        prctl(PR_CAPBSET_DROP, cap)
    except KernelError as exc:
        if exc.errno != errno_mod.EINVAL:  # capability unknown to this kernel
            raise


def cap_supported(cap: int) -> bool:
    try:
        return prctl(PR_CAPBSET_READ, cap) >= 0
    except KernelError:
        return False


def ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_keep_caps(keep: bool) -> None:
    prctl(PR_SET_KEEPCAPS, 1 if keep else 0)


def set_child_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def is_child_subreaper() -> bool:
    value = ctypes.c_int(0)
    result = _libc.prctl(ctypes.c_int(PR_GET_CHILD_SUBREAPER), ctypes.byref(value),
                         ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _check(result, "prctl", "PR_GET_CHILD_SUBREAPER")
    return bool(value.value)


def set_parent_death_signal(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def os_call(op: str, target: str, func: object, *args: object) -> object:
    """Call an ``os`` function, translating ``OSError`` into ``KernelError``."""
    try:
        return func(*args)  # type: ignore[operator]
    except OSError as exc:
        raise KernelError(op, target, exc.errno or 0, exc.strerror or str(exc)) from exc


# inotify(7): what changed in a directory, told by the kernel as it happens (the API's
# container list keeps its rows until a container's folder says otherwise)
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def inotify_init1(flags: int) -> int:
    return _check(_libc.inotify_init1(ctypes.c_int(flags)), "inotify_init1", hex(flags))


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    """The watch descriptor; a ``KernelError`` (ENOENT: no such directory, ENOSPC: the
    user's watches are used up) otherwise."""
    return _check(_libc.inotify_add_watch(ctypes.c_int(fd), _b(path), ctypes.c_uint32(mask)),
                  "inotify_add_watch", path)


def inotify_rm_watch(fd: int, wd: int) -> None:
    _check(_libc.inotify_rm_watch(ctypes.c_int(fd), ctypes.c_int(wd)), "inotify_rm_watch",
           str(wd))


def inotify_events(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """The events in what a read of an inotify descriptor returned: (watch descriptor,
    mask, name — empty for the watched folder itself, NUL padding removed)."""
    import struct  # (here: the runtime's start path has no use for it)

    event = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len
    offset = 0
    while offset + event.size <= len(data):
        wd, mask, _cookie, length = event.unpack_from(data, offset)
        start = offset + event.size
        yield wd, mask, data[start:start + length].rstrip(b"\0")
        offset = start + length
