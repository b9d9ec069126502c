"""Mount option strings (``ro``, ``nosuid``, ``rbind``, ``mode=755``…) as flags: pure."""

from __future__ import annotations

from dockyard.errors import NotImplementedFeature
from dockyard.runtime.linux import syscalls as sc
from dockyard.stdlite import NamedTuple

# option -> (clear?, flag), as in mount(8) and runc
_FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, sc.MS_POSIXACL),
    "async": (True, sc.MS_SYNCHRONOUS),
    "atime": (True, sc.MS_NOATIME),
    "bind": (False, sc.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, sc.MS_NODEV),
    "diratime": (True, sc.MS_NODIRATIME),
    "dirsync": (False, sc.MS_DIRSYNC),
    "exec": (True, sc.MS_NOEXEC),
    "iversion": (False, sc.MS_I_VERSION),
    "lazytime": (False, sc.MS_LAZYTIME),
    "loud": (True, sc.MS_SILENT),
    "mand": (False, sc.MS_MANDLOCK),
    "noacl": (True, sc.MS_POSIXACL),
    "noatime": (False, sc.MS_NOATIME),
    "nodev": (False, sc.MS_NODEV),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "noexec": (False, sc.MS_NOEXEC),
    "noiversion": (True, sc.MS_I_VERSION),
    "nolazytime": (True, sc.MS_LAZYTIME),
    "nomand": (True, sc.MS_MANDLOCK),
    "norelatime": (True, sc.MS_RELATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "nosuid": (False, sc.MS_NOSUID),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "relatime": (False, sc.MS_RELATIME),
    "remount": (False, sc.MS_REMOUNT),
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "silent": (False, sc.MS_SILENT),
    "strictatime": (False, sc.MS_STRICTATIME),
    "suid": (True, sc.MS_NOSUID),
    "sync": (False, sc.MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

_RECURSIVE_ATTRS = {"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
                    "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime",
                    "ratime", "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow"}

# statvfs f_flag bits -> the mount flags a bind remount must keep
_ST_TO_MS = {1: sc.MS_RDONLY, 2: sc.MS_NOSUID, 4: sc.MS_NODEV, 8: sc.MS_NOEXEC,
             1024: sc.MS_NOATIME, 2048: sc.MS_NODIRATIME, 4096: sc.MS_RELATIME}


class MountOptions(NamedTuple):
    flags: int
    propagation: tuple[int, ...]
    data: str

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)


def parse(options: tuple[str, ...], *, where: str = "mount") -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        elif option in _RECURSIVE_ATTRS:
            raise NotImplementedFeature(f"{where}: recursive mount option {option!r} is not "
                                        "supported by dockyard-runtime")
        elif option in ("tmpcopyup", "idmap", "ridmap"):
            raise NotImplementedFeature(f"{where}: mount option {option!r} is not supported")
        else:
            data.append(option)
    return MountOptions(flags, tuple(propagation), ",".join(data))


def flags_from_statvfs(f_flag: int) -> int:
    """The mount flags to keep when remounting a bind mount (kernel 'locked' flags)."""
    return sum(ms for st, ms in _ST_TO_MS.items() if f_flag & st)


ALL_OPTIONS: tuple[str, ...] = tuple(sorted([*_FLAGS, *PROPAGATION]))
