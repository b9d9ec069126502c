"""The last steps before a container process runs, shared by ``create`` and ``exec``.

Order (runc's): rlimits and oom score while still privileged; seccomp first when
no_new_privileges is off (loading then needs CAP_SYS_ADMIN); drop the bounding
set, switch user keeping capabilities, set the capability sets; set
no_new_privileges; after the start signal, seccomp when no_new_privileges is on
(so the filter never sees the runtime's own syscalls), then execve.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.errors import ExecutableNotFound, InvalidSpec, NotExecutable
from dockyard.oci.runtime_spec import Process
from dockyard.runtime.linux import capabilities, rlimits, syscalls
from dockyard.runtime.linux.seccomp import SeccompFilter
from dockyard.stdlite import suppress

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_value(env: tuple[str, ...], key: str) -> str | None:
    prefix = key + "="
    for item in env:
        if item.startswith(prefix):
            return item[len(prefix):]
    return None


def lookup_executable(name: str, env: tuple[str, ...]) -> str:
    """Resolve args[0] in the container's PATH, as execvp would, with runc's errors.
    A directory met in the search is skipped, as Go's LookPath does (so an empty name,
    which joins to each PATH directory itself, is not found: Docker's 127)."""
    if "/" in name:
        candidates = [name]
    else:
        search = env_value(env, "PATH") or DEFAULT_PATH
        candidates = [os.path.join(d or ".", name) for d in search.split(":")]
    denied = False
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            denied = denied or "/" in name  # a path naming a directory: EISDIR, 126
            continue
        if os.access(path, os.X_OK):
            return path
        denied = True
    if denied:
        raise NotExecutable(name)
    raise ExecutableNotFound(name)


def write_oom_score_adj(value: int | None) -> None:
    if value is not None:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(value))


def enter_cwd(cwd: str) -> None:
    if not os.path.isdir(cwd):
        os.makedirs(cwd, mode=0o755, exist_ok=True)
    os.chdir(cwd)


def drop_privileges(process: Process, seccomp: SeccompFilter | None) -> None:
    """Everything from rlimits to no_new_privileges; call as root, before 'ready'."""
    rlimits.apply(process.rlimits)
    if seccomp is not None and not process.no_new_privileges:
        seccomp.load()
    caps = process.capabilities
    if caps is not None:
        capabilities.drop_bounding(caps)
        syscalls.set_keep_caps(True)
    _switch_user(process)
    user = process.user
    if user.umask is not None:
        os.umask(user.umask)
    if caps is not None:
        syscalls.set_keep_caps(False)
        capabilities.apply_sets(caps)
    if process.no_new_privileges:
        syscalls.set_no_new_privs()


def _switch_user(process: Process) -> None:
    """setgroups, setgid, setuid; in a user namespace the ids are the namespace's,
    and where setgroups is denied there the groups are left alone (runc's rule)."""
    from dockyard.runtime.linux import userns

    user = process.user
    if userns.setgroups_allowed():
        os.setgroups(list(user.additional_gids))
    for kind, call, value in (("gid", os.setgid, user.gid), ("uid", os.setuid, user.uid)):
        try:
            call(value)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            raise InvalidSpec(f"process.user.{kind}: cannot set {kind} to unmapped user in "
                              f"user namespace ({value})") from exc


def exec_process(process: Process, executable: str, seccomp: SeccompFilter | None) -> None:
    """Load a late seccomp filter and execve; returns only by raising."""
    if seccomp is not None and process.no_new_privileges:
        seccomp.load()
    os.execve(executable, list(process.args), _env_dict(process.env))


def _env_dict(env: tuple[str, ...]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def keep_fds(preserve: int) -> None:
    """Let fds 3..3+preserve-1 survive exec; mark every other fd close-on-exec."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < 3:
            continue
        with suppress(OSError):  # the listdir's own fd, already closed
            os.set_inheritable(fd, fd < 3 + preserve)
