"""The per-container supervisor: owns one container's process from start to exit.

It sits below the runtime in DESIGN.md's layers and drives it the way conmon
drives runc: through the runc-compatible command line (``dockyard-runtime`` or
``runc``), as a child subreaper, so the container's init — orphaned when
``create`` exits — becomes its child and its exit status is ours to read.

Started in its own session (the container outlives the CLI), it creates the
container with stdout/stderr on pipes, reports "ok" or the runtime's error on the
ready pipe, starts it, copies output into Docker's json-file log, writes the
container's status atomically to ``status.json`` after every change, applies the
restart policy with Docker's back-off (unless a ``stop-requested`` file says the
user stopped it), deletes the runtime state, and finally runs the exit hook the
engine gave it (unmount, ``--rm``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dockyard.store.atomic import atomic_write

PR_SET_CHILD_SUBREAPER = 36


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.id
        self.bundle = Path(args.bundle)
        self.runtime: list[str] = json.loads(args.runtime)
        self.runtime_root: str = args.runtime_root
        self.restart, _, retries = args.restart.partition(":")
        self.max_retries = int(retries or 0)
        self.exit_hook: list[str] = json.loads(args.exit_hook)
        self.log = open(self.bundle / "container.log", "ab")  # noqa: SIM115 - process-long
        self.status: dict[str, Any] = {"state": "created", "pid": 0, "exit_code": 0,
                                       "started_at": "", "finished_at": "", "restart_count": 0,
                                       "oom_killed": False, "error": "",
                                       "supervisor_pid": os.getpid()}

    def save(self, **changes: Any) -> None:
        self.status.update(changes)
        atomic_write(self.bundle / "status.json", json.dumps(self.status).encode(),
                     durable=False)

    def runtime_call(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.runtime, "--root", self.runtime_root, *args],
                              check=False, **kwargs)

    def start_once(self) -> tuple[int, list[int]]:
        """create (stdio on pipes) + start; returns (init pid, read fds)."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid_file = self.bundle / "init.pid"
        if os.path.exists(os.path.join(self.runtime_root, self.id)):  # left by a crash
            self.runtime_call("delete", "--force", self.id, capture_output=True)
        created = subprocess.run(
            [*self.runtime, "--root", self.runtime_root, "--log", str(self.bundle / "runtime.log"),
             "--log-format", "json", "create", "--bundle", str(self.bundle), "--pid-file",
             str(pid_file), self.id],
            stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, check=False)
        os.close(out_w)
        os.close(err_w)
        if created.returncode != 0:
            os.close(out_r)
            os.close(err_r)
            raise RuntimeError(self._runtime_error())
        pid = int(pid_file.read_text())
        started = self.runtime_call("start", self.id, capture_output=True)
        if started.returncode != 0:
            self.runtime_call("delete", "--force", self.id, capture_output=True)
            raise RuntimeError(started.stderr.decode(errors="replace").strip())
        return pid, [out_r, err_r]

    def _runtime_error(self) -> str:
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = (self.bundle / "runtime.log").read_text().splitlines()
            for line in reversed(lines):
                entry = json.loads(line)
                if entry.get("level") == "error":
                    return str(entry.get("msg", ""))
        return "the runtime failed to create the container"

    def pump(self, pid: int, fds: list[int]) -> int:
        """Copy output into the log until the container exits; returns its exit code."""
        streams = {fds[0]: "stdout", fds[1]: "stderr"}
        partial = {fd: b"" for fd in fds}
        open_fds = list(fds)
        while open_fds:
            ready, _, _ = select.select(open_fds, [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    open_fds.remove(fd)
                    if partial[fd]:
                        self._write(streams[fd], partial[fd])
                    os.close(fd)
                    continue
                *lines, partial[fd] = (partial[fd] + data).split(b"\n")
                for line in lines:
                    self._write(streams[fd], line + b"\n")
        return self._reap(pid)

    @staticmethod
    def _reap(pid: int) -> int:
        """Wait for the init (we are its subreaper), reaping any other orphans on the way."""
        while True:
            try:
                child, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 255  # not ours after all: the status is lost
            if child == pid:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code

    def _write(self, stream: str, line: bytes) -> None:
        entry = {"log": line.decode(errors="replace"), "stream": stream, "time": now_iso()}
        self.log.write(json.dumps(entry).encode() + b"\n")
        self.log.flush()

    def wants_restart(self, code: int) -> bool:
        if (self.bundle / "stop-requested").exists():
            return False
        if self.restart in ("always", "unless-stopped"):
            return True
        return self.restart == "on-failure" and code != 0 and (
            self.max_retries == 0 or self.status["restart_count"] < self.max_retries)

    def run(self, ready_fd: int) -> int:
        try:
            pid, fds = self.start_once()
        except RuntimeError as exc:
            self.save(state="exited", exit_code=128, error=str(exc), supervisor_pid=0)
            os.write(ready_fd, str(exc).encode() or b"error")
            os.close(ready_fd)
            self._exit_hook()
            return 1
        self.save(state="running", pid=pid, started_at=now_iso())
        os.write(ready_fd, b"ok\n")
        os.close(ready_fd)
        delay = 0.1
        while True:
            code = self.pump(pid, fds)
            oom = self._oom_killed()
            again = self.wants_restart(code)
            if not again:
                # the exit is recorded first: whoever waits for it need not wait for us
                self.save(state="exited", pid=0, exit_code=code, finished_at=now_iso(),
                          oom_killed=oom, supervisor_pid=0)
                self.runtime_call("delete", "--force", self.id, capture_output=True)
                break
            self.runtime_call("delete", "--force", self.id, capture_output=True)
            self.save(state="restarting", pid=0, exit_code=code, finished_at=now_iso(),
                      oom_killed=oom)
            time.sleep(delay)  # Docker's back-off: doubling from 100 ms
            delay = min(delay * 2, 60.0)
            if (self.bundle / "stop-requested").exists():
                self.save(state="exited")
                break
            try:
                pid, fds = self.start_once()
            except RuntimeError as exc:
                self.save(state="exited", error=str(exc))
                break
            self.save(state="running", pid=pid, started_at=now_iso(),
                      restart_count=self.status["restart_count"] + 1)
        self.save(supervisor_pid=0)
        self._exit_hook()
        return 0

    def _oom_killed(self) -> bool:
        config = json.loads((self.bundle / "config.json").read_text())
        path = Path("/sys/fs/cgroup/memory") / config["linux"]["cgroupsPath"].lstrip("/")
        with contextlib.suppress(OSError, ValueError):
            for line in (path / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                    return True
        return False

    def _exit_hook(self) -> None:
        """Unmount and ``--rm`` happen in the hook, after the exit is already recorded."""
        if self.exit_hook:
            subprocess.run(self.exit_hook, check=False, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(prog="dockyard-supervisor")
    parser.add_argument("--id", required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--runtime", required=True, help="JSON argv of the runtime")
    parser.add_argument("--runtime-root", required=True)
    parser.add_argument("--restart", default="no")
    parser.add_argument("--exit-hook", default="[]", help="JSON argv run after the last exit")
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The one prctl outside runtime/linux/syscalls.py: supervise sits below the runtime
    # and may not import it.  As subreaper we inherit the init when `create` exits.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return Supervisor(args).run(args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
