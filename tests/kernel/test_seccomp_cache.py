"""Compiled seccomp programs cached by profile digest: written once, read after, a
changed profile is a new entry, a damaged entry is compiled again, and a cached
program filters exactly as a freshly compiled one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.oci.runtime_spec import Seccomp, SyscallRule
from dockyard.runtime.linux.seccomp import cache_key, compile_filter

pytestmark = pytest.mark.root


def _profile(*denied: str) -> Seccomp:
    return Seccomp(default_action="SCMP_ACT_ALLOW", architectures=(), syscalls=tuple(
        SyscallRule(names=(name,), action="SCMP_ACT_ERRNO", errno_ret=1) for name in denied))


def _uname_in_a_filtered_child(program_filter: object) -> int:
    """Exit status of a child that loads the filter and calls uname(2): 0 if it was
    allowed, 1 if the filter refused it."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            program_filter.load()  # type: ignore[attr-defined]
            try:
                os.uname()
                code = 0
            except PermissionError:
                code = 1
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_program_is_compiled_once_and_read_after(tmp_path: Path) -> None:
    profile = _profile("uname")
    entry = tmp_path / f"{cache_key(profile)}.bpf"
    first = compile_filter(profile, tmp_path)
    assert entry.read_bytes() == first.program and len(first.program) % 8 == 0
    entry.write_bytes(first.program)  # what a second start finds
    os.utime(entry, (1, 1))
    second = compile_filter(profile, tmp_path)
    assert second.program == first.program and entry.stat().st_mtime == 1  # read, not made
    assert _uname_in_a_filtered_child(second) == 1


def test_a_changed_profile_is_a_new_entry(tmp_path: Path) -> None:
    denying = compile_filter(_profile("uname"), tmp_path)
    allowing = compile_filter(_profile("getppid"), tmp_path)
    assert cache_key(_profile("uname")) != cache_key(_profile("getppid"))
    assert len(list(tmp_path.iterdir())) == 2
    assert _uname_in_a_filtered_child(denying) == 1
    assert _uname_in_a_filtered_child(allowing) == 0


def test_a_damaged_entry_is_compiled_again(tmp_path: Path) -> None:
    profile = _profile("uname")
    entry = tmp_path / f"{cache_key(profile)}.bpf"
    good = compile_filter(profile, None).program  # no cache: compiled
    entry.write_bytes(good[:-3])  # torn: not whole sock_filter entries
    again = compile_filter(profile, tmp_path)
    assert again.program == good and entry.read_bytes() == good
    assert _uname_in_a_filtered_child(again) == 1
