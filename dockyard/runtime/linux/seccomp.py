"""The spec's seccomp section compiled and loaded through libseccomp (pyseccomp).

``compile_filter`` validates and builds the filter without loading it, so a bad
profile fails ``create`` with a clear error before any process is set up;
``SeccompFilter.load`` is the one irreversible step, done last before exec.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidSpec, NotImplementedFeature
from dockyard.oci.runtime_spec import Seccomp, SyscallArg, SyscallRule
from dockyard.stdlite import TYPE_CHECKING, suppress

if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

_OPS = {
    "SCMP_CMP_NE": "NE",
    "SCMP_CMP_LT": "LT",
    "SCMP_CMP_LE": "LE",
    "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE",
    "SCMP_CMP_GT": "GT",
    "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}

_NATIVE_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


class SeccompFilter:
    """A compiled filter — the classic BPF program libseccomp generated for the
    profile — ready to load into the calling process."""

    def __init__(self, program: bytes) -> None:
        if not program or len(program) % 8:
            raise InvalidSpec("linux.seccomp: the compiled filter is not a BPF program")
        self.program = program

    def load(self) -> None:
        """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): what libseccomp's seccomp_load
        does with the same program (no TSYNC, no flags; no_new_privs is the spec's)."""
        from dockyard.runtime.linux import syscalls as sc

        try:
            sc.set_seccomp_filter(self.program)
        except OSError as exc:
            raise InvalidSpec(f"linux.seccomp: loading the filter failed: {exc}") from exc


# bump when what is cached changes meaning
_CACHE_FORMAT = "bpf-1"
# compiled programs by profile digest, shared by every runtime root (content-addressed,
# written atomically); on /run, a tmpfs: a reboot (a new libseccomp) starts it afresh
SECCOMP_CACHE = "/run/dockyard-runtime/seccomp"


def cache_key(profile: Seccomp) -> str:
    """The profile's digest: its parsed form (NamedTuples of plain values, whose repr
    is exact), the machine and the cache format."""
    import hashlib

    text = f"{_CACHE_FORMAT}\n{os.uname().machine}\n{profile!r}"
    return hashlib.sha256(text.encode()).hexdigest()


def _action(lib: Any, name: str, errno_ret: int | None, where: str) -> int:
    simple = {
        "SCMP_ACT_ALLOW": "ALLOW",
        "SCMP_ACT_KILL": "KILL",
        "SCMP_ACT_KILL_THREAD": "KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS": "KILL_PROCESS",
        "SCMP_ACT_TRAP": "TRAP",
        "SCMP_ACT_LOG": "LOG",
    }
    if name in simple:
        return int(getattr(lib, simple[name]))
    if name == "SCMP_ACT_ERRNO":
        return int(lib.ERRNO(1 if errno_ret is None else errno_ret))
    if name == "SCMP_ACT_TRACE":
        return int(lib.TRACE(1 if errno_ret is None else errno_ret))
    if name == "SCMP_ACT_NOTIFY":
        raise NotImplementedFeature(f"{where}: SCMP_ACT_NOTIFY needs a listener socket, "
                                    "which dockyard-runtime does not support")
    raise InvalidSpec(f"{where}: unknown seccomp action {name!r}")


def _arg(lib: Any, arg: SyscallArg, where: str) -> Any:
    op = _OPS.get(arg.op)
    if op is None:
        raise InvalidSpec(f"{where}: unknown seccomp operator {arg.op!r}")
    return lib.Arg(arg.arg_index, getattr(lib, op), arg.value, arg.value_two)


def _arg_groups(lib: Any, rule: SyscallRule, where: str) -> list[list[Any]]:
    """runc's rule: several conditions on the same argument are alternatives (OR)."""
    args = [_arg(lib, a, where) for a in rule.args]
    indexes = {a.arg_index for a in rule.args}
    if len(args) > 1 and len(indexes) == 1:
        return [[a] for a in args]
    return [args]


_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


def _import_pyseccomp() -> Any:
    """pyseccomp finds its libraries with ctypes.util.find_library, which runs
    ``ldconfig -p`` twice (~15 ms per container start); the sonames are fixed on Linux,
    so they are answered directly while it loads."""
    import ctypes.util

    original = ctypes.util.find_library
    ctypes.util.find_library = lambda name: _SONAMES.get(name) or original(name)
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = original
    return pyseccomp


def compile_filter(profile: Seccomp, cache_dir: StrPath | None = None) -> SeccompFilter:
    """The profile as a BPF program.  libseccomp's rule building and BPF generation
    cost ~20 ms for Docker's profile, on every start; with ``cache_dir`` the program
    is kept there by profile digest (``cache_key``), so a profile is compiled once
    and every later start reads ~6 KiB.  A cached program is only ever one this code
    wrote (atomically) for the very same parsed profile: a changed profile is a new
    key, never a stale filter."""
    key = cache_key(profile) if cache_dir is not None else ""
    if cache_dir is not None:
        try:
            with open(os.path.join(cache_dir, f"{key}.bpf"), "rb") as handle:
                return SeccompFilter(handle.read())
        except (OSError, InvalidSpec):
            pass
    program = _compile(profile)
    if cache_dir is not None:
        from dockyard.store.atomic import atomic_write

        with suppress(OSError):  # a read-only state dir: compile each time
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            atomic_write(os.path.join(cache_dir, f"{key}.bpf"), program, 0o600, durable=False)
    return SeccompFilter(program)


def _compile(profile: Seccomp) -> bytes:
    import tempfile

    lib = _import_pyseccomp()  # deferred: only specs with seccomp pay for it

    default = _action(lib, profile.default_action, profile.default_errno_ret,
                      "linux.seccomp.defaultAction")
    handle = lib.SyscallFilter(defaction=default)
    # libseccomp sets no_new_privs on load by default; the spec's
    # process.noNewPrivileges decides that, so turn the library's habit off (as runc)
    handle.set_attr(lib.Attr.CTL_NNP, 0)
    native = _NATIVE_ARCH.get(os.uname().machine)
    for arch in profile.architectures:
        if arch == native:
            continue
        name = arch.removeprefix("SCMP_ARCH_")
        if not hasattr(lib.Arch, name):
            raise InvalidSpec(f"linux.seccomp.architectures: unknown architecture {arch!r}")
        try:
            handle.add_arch(getattr(lib.Arch, name))
        except OSError as exc:
            raise InvalidSpec(f"linux.seccomp.architectures: cannot add {arch}: {exc}") from exc
    for i, rule in enumerate(profile.syscalls):
        _add_rule(lib, handle, rule, default, f"linux.seccomp.syscalls[{i}]")
    with tempfile.TemporaryFile() as out:
        try:
            handle.export_bpf(out)
        except OSError as exc:
            raise InvalidSpec(f"linux.seccomp: generating the filter failed: {exc}") from exc
        out.seek(0)
        return out.read()


def _add_rule(lib: Any, handle: Any, rule: SyscallRule, default: int, where: str) -> None:
    action = _action(lib, rule.action, rule.errno_ret, where)
    if action == default:
        return  # libseccomp refuses rules equal to the default; they change nothing
    for name in rule.names:
        if lib.resolve_syscall(lib.system_arch(), name) == -1:
            continue  # unknown to libseccomp: skipped, as runc does
        for group in _arg_groups(lib, rule, where):
            try:
                handle.add_rule(action, name, *group)
            except OSError as exc:
                raise InvalidSpec(f"{where}: rule for {name!r} rejected: {exc}") from exc
