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
user stopped it), and at the last exit runs the exit hook the engine gave it
(unmount, ``--rm``) beside its own last step, the runtime state's delete.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import importlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard import trace
from dockyard.stdcopy import DONE, FAILED, HOOK_STREAM, frame
from dockyard.store.atomic import atomic_write
from dockyard.supervise.driver import CliDriver, RuntimeDriver
from dockyard.supervise.fdpass import receive_fd
from dockyard.supervise.health import HealthChecker
from dockyard.supervise.helper import keep_out_of_forks, release, run_in_fork
from dockyard.supervise.iohub import IOHub
from dockyard.supervise.logfile import JsonLog, now_iso
from dockyard.supervise.process import (
    PAUSE_ENV,
    is_alive,
    open_verified,
    pause_at,
    rename,
    start_time,
    wait_exit,
)

PR_SET_CHILD_SUBREAPER = 36

# Docker's restart manager: the first restart waits 100 ms, each next one twice as long,
# at most a minute; a container that ran 10 s or more starts again at 100 ms
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0
# how long a supervisor waits for the live CLI of a foreground run to attach (it does
# at once; this only bounds a client that never comes)
ATTACH_WAIT = 120.0


def restart_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart, given the last one (0 at first) and how long
    the container ran before this exit (moby's ``RestartManager.ShouldRestart``)."""
    if ran_for >= BACKOFF_RESET_AFTER:
        previous = 0.0
    if previous == 0.0:
        return BACKOFF_FIRST
    return min(previous * 2, BACKOFF_MAX)


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.id
        self.bundle = Path(args.bundle)
        self.runtime: list[str] = json.loads(args.runtime)
        self.runtime_root: str = args.runtime_root
        self.restart, _, retries = args.restart.partition(":")
        self.max_retries = int(retries or 0)
        self.exit_hook: list[str] = json.loads(args.exit_hook)
        # called with the new status when the health status changes (engine's events)
        self.health_hook: list[str] = json.loads(args.health_hook)
        self.tty: bool = args.tty
        self.stdin: bool = args.stdin
        self.wait_attach: bool = args.wait_attach
        # the ready fd is a socket pair's end whose other end is the client to attach,
        # its first line sent: it becomes that client's connection after "ok"
        self.attach_on_ready: bool = args.attach_on_ready
        uid, _, gid = args.stdio_owner.partition(":")
        self.stdio_owner = (int(uid), int(gid)) if gid else None
        self.answered = False  # the CLI's one line went out (see _answer)
        pid, _, start = args.attach_client.partition(":")
        self.attach_client = (int(pid or 0), int(start or 0))  # PID:START to wait for
        self.pause_at: str = args.pause_at  # tests only: see supervise.process.pause_at
        # re-adoption: a running init whose supervisor died (not our child)
        self.adopted = (0, 0)
        if args.adopt:
            pid, _, start = args.adopt.partition(":")
            self.adopted = (int(pid), int(start or 0))
        self.driver = load_driver(args.driver, self.runtime, self.runtime_root)
        self.log = JsonLog(self.bundle / "container.log", args.log_max_size, args.log_max_file)
        self.hub = IOHub(self.bundle, self.log, tty=self.tty)
        self.health_config: dict[str, Any] | None = json.loads(args.health) \
            if args.health else None
        self.network: dict[str, Any] = json.loads(args.network) if args.network else {}
        self.proxies: list[Any] = []
        self.dnat_published = False
        self.dns: Any = None
        self.health: HealthChecker | None = None
        self._lock = threading.Lock()
        # set (by SIGUSR1 from the engine) when a stop is requested: ends a back-off wait
        self.wake = threading.Event()
        self.status: dict[str, Any] = {"state": "created", "pid": 0, "pid_start": 0,
                                       "exit_code": 0, "started_at": "", "finished_at": "",
                                       "restart_count": args.restart_count,
                                       "oom_killed": False, "error": "",
                                       "supervisor_pid": os.getpid(),
                                       "supervisor_start": start_time(os.getpid()) or 0}
        # never cleared, unlike supervisor_pid (cleared once the exit is recorded): who
        # is still finishing the container's exit (its exit hook: unmount, --rm).  The
        # exit is recorded with ``exit_pending`` (runtime state, DNAT rules, mount and
        # --rm still to go), which the exit hook clears when all is done: a supervisor
        # killed in between is noticed by the next command (``ContainerService``)
        self.status.update(monitor_pid=self.status["supervisor_pid"],
                           monitor_start=self.status["supervisor_start"])
        if self.adopted[0]:  # what the dead supervisor knew that still holds
            with contextlib.suppress(OSError, ValueError):
                old = json.loads((self.bundle / "status.json").read_text())
                self.status["started_at"] = str(old.get("started_at", ""))

    def save(self, **changes: Any) -> None:
        with self._lock:  # the health thread saves too
            self.status.update(changes)
            atomic_write(self.bundle / "status.json", json.dumps(self.status).encode(),
                         durable=False)

    def _start_health(self) -> None:
        if self.health_config is None:
            return
        exec_argv = self.driver.exec_argv(self.id)
        self.health = HealthChecker(self.health_config, exec_argv, self._health_report)
        self.health.start()

    def _health_report(self, state: dict[str, Any]) -> None:
        """A check's result saved; a change to healthy or unhealthy told to the health
        hook (``@python`` form only), as dockerd logs ``health_status`` events."""
        before = (self.status.get("health") or {}).get("Status")
        self.save(health=dict(state))
        now = state["Status"]
        if now != before and now in ("healthy", "unhealthy") and \
                self.health_hook[:1] == [PYTHON_HOOK]:
            _run_python_hook([*self.health_hook[1:], now])

    def _stop_health(self) -> None:
        if self.health is not None:
            self.health.stop()
            self.health = None

    def start_once(self, ready_fd: int = -1) -> int:
        """create (stdio wired to the hub) + start; returns the init's pid.

        When a client is to attach first, "ok" goes out on ``ready_fd`` right after
        create (the client attaches only once it hears it), then we wait for it.
        """
        with _Stdio(self.tty, self.stdin, self.bundle, self.stdio_owner) as stdio:
            try:
                # the interfaces made by the create's helper, right after the init
                pid = self.driver.create(self.id, self.bundle, stdio,
                                         self._attach if self._to_attach() else None)
            except RuntimeError:
                stdio.abandon()
                raise
            trace.mark("runtime create done")
            stdio.hand_over(self.hub)
        if self.tty and self.hub.input_fd is not None:
            # a copy in the zygote: the terminal outlives us if we are killed
            from dockyard.supervise.zygote import park_console

            park_console(self.id, pid, self.hub.input_fd)
        pause_at("after-create", self.bundle, self.pause_at, container_pid=pid)
        if self.network:
            self._connect()
        if self.wait_attach and ready_fd >= 0:
            # the client (a foreground run's CLI) attaches as soon as it hears "ok":
            # waited for while it lives (a pidfd opened first: a CLI killed before the
            # answer is not waited for), 10 s when it is not known
            client = open_verified(*self.attach_client) if self.attach_client[0] else None
            if self.attach_on_ready:
                self._answer_attaching(ready_fd)
            else:
                self._answer(ready_fd, "ok")
            try:  # (a client known to be gone already is not waited for at all)
                if client is not None or not self.attach_client[0]:
                    self.hub.wait_for_client(ATTACH_WAIT if client is not None else 10.0,
                                             client)
            finally:
                if client is not None:
                    os.close(client)
            self.wait_attach = False
            trace.mark("client attached")
        self.driver.start(self.id)
        trace.mark("runtime start done")
        return pid

    def _to_attach(self) -> bool:
        """Whether the create's helper has interfaces to make: not for ``--network
        none`` when the runtime's init sets ``lo`` up itself (as the config asks,
        ``engine.ocispec``)."""
        return bool(self.network) and (bool(self.network["endpoints"]) or
                                       not self.driver.sets_loopback_up)

    def _attach(self, pid: int) -> None:
        """The container's interfaces on its networks (``lo`` up alone on none).  Run by
        the runtime driver's create helper, right after the init is made: what this
        code writes of the shared pages (CPython's reference counts, ~1 MiB) goes away
        with that process instead of staying private to the supervisor for the
        container's whole life."""
        from dockyard.network.bridge import Attachment, loopback_up
        from dockyard.network.bridge import attach as attach_to

        endpoints = self.network["endpoints"]
        if not endpoints:
            loopback_up(pid)
        for endpoint in endpoints:
            attachment = Attachment(endpoint["bridge"], endpoint["address"],
                                    int(endpoint["prefix"]), endpoint["gateway"],
                                    endpoint["host_ifname"], endpoint["ifname"],
                                    bool(endpoint["default_route"]),
                                    bool(endpoint.get("hairpin")))
            attach_to(pid, attachment)

    def _connect(self, *, ours: bool = True) -> None:
        """Between create and start, once the create's helper made the container's
        interfaces (``_attach``): (the first time) the published ports bound and the
        embedded DNS listening, so a taken port fails before anything runs.  A failure
        deletes the container when it is ``ours`` (not an adopted one, which runs on
        without its ports)."""
        from dockyard.network.publish import open_ports, route_ports

        net = self.network
        try:
            if not self.proxies and net["endpoints"]:
                # bound (relayed only where the kernel cannot: network.publish), then
                # DNATed, in a fork whose pages go with it
                self.proxies = open_ports(net)
                if net.get("ports") and net.get("firewall_root"):
                    self.dnat_published = True
                    run_in_fork(functools.partial(route_ports, self.id, net))
            self._serve_dns()
            trace.mark("network connected")
        except Exception as exc:  # noqa: BLE001 - any failure here fails the start
            self._unpublish_dnat()
            if ours:
                self.driver.delete(self.id)
            raise RuntimeError(str(exc)) from exc

    def _unpublish_dnat(self) -> None:
        if self.dnat_published:
            from dockyard.network import firewall

            with contextlib.suppress(Exception):
                firewall.unpublish_ports(self.network["firewall_root"], self.id)
            self.dnat_published = False

    def _serve_dns(self) -> None:
        """The embedded DNS on the gateways of this container's user networks (again
        after ``network connect``, which signals SIGUSR2: new networks get listeners)."""
        dns = self.network.get("dns") or {}
        listen = [e["gateway"] for e in self.network.get("endpoints", []) if e.get("dns")]
        if not listen:
            return
        if self.dns is None:
            from dockyard.network.dns import DnsServer
            from dockyard.network.names import Resolver

            resolver = Resolver(Path(dns["tables"]))
            self.dns = DnsServer(resolver.lookup, list(dns.get("upstreams") or []))
        for address in listen:
            self.dns.listen(address)

    def reload_network(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.network = json.loads((self.bundle / "network.json").read_text())
            self._serve_dns()

    def pump(self, pid: int) -> int:
        """Serve stdio until the container's output closes; returns its exit code."""
        self._start_health()
        try:
            self.hub.run()
            if pid == self.adopted[0]:
                # not our child: we can see it go, but its status went with the
                # supervisor that was its parent (Docker's "unknown": 255)
                wait_exit(*self.adopted, None)
                return 255
            return self._reap(pid)
        finally:
            self._stop_health()

    def adopt(self) -> int:
        """Take over a running container whose supervisor died: its output pipes
        reopened through /proc, or its pty master taken back from the zygote, its
        published ports and DNS served again; the interfaces are already in place."""
        pid, start = self.adopted
        if not is_alive(pid, start):  # it died after the engine looked: its exit (255,
            return pid  # unknown) is recorded, runtime state deleted, policy applied
        if self.tty:  # the pty master the zygote kept for us (see start_once)
            from dockyard.supervise.zygote import unpark_console

            master = unpark_console(self.id)
            if master is not None:
                self.hub.outputs[master] = "stdout"
                self.hub.input_fd = master
        else:
            seen: set[int] = set()
            for fd, stream in ((1, "stdout"), (2, "stderr")):
                with contextlib.suppress(OSError):
                    info = os.stat(f"/proc/{pid}/fd/{fd}")
                    if stat.S_ISFIFO(info.st_mode) and info.st_ino not in seen:
                        reopened = os.open(f"/proc/{pid}/fd/{fd}",
                                           os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                        os.set_blocking(reopened, True)
                        self.hub.outputs[reopened] = stream
                        seen.add(info.st_ino)
        if self.network:
            self.dnat_published = True
            self._unpublish_dnat()  # the dead supervisor's rules, if any, once
            try:
                self._connect(ours=False)
            except RuntimeError as exc:
                print(f"supervisor: adopted without its published ports: {exc}",
                      file=sys.stderr, flush=True)
        return pid

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

    def wants_restart(self, code: int) -> bool:
        if (self.bundle / "stop-requested").exists():
            return False
        if self.restart in ("always", "unless-stopped"):
            return True
        return self.restart == "on-failure" and code != 0 and (
            self.max_retries == 0 or self.status["restart_count"] < self.max_retries)

    def run(self, ready_fd: int) -> int:
        self.save()  # our pid is visible from the first instant (see ContainerService._locked)
        if self.adopted[0]:
            pause_at("before-adopt", self.bundle, self.pause_at)
        try:
            pid = self.adopt() if self.adopted[0] else self.start_once(ready_fd)
        except RuntimeError as exc:
            self.save(state="exited", exit_code=128, error=str(exc), supervisor_pid=0,
                      exit_pending=True)
            # (also when a client was to attach: create failed before "ok" went out,
            # and the CLI, waiting for a word, holds the lock our exit hook takes)
            self._answer(ready_fd, str(exc).replace("\n", " ") or "error")
            self.hub.close()
            self._exit_hook()
            return 1
        pid_start = self.adopted[1] if self.adopted[0] else start_time(pid) or 0
        self.save(state="running", pid=pid, pid_start=pid_start, exit_code=0,
                  started_at=self.status["started_at"] if self.adopted[0] else now_iso())
        self._answer(ready_fd, "ok")
        delay = 0.0
        started = time.monotonic()
        leaving: threading.Thread | None = None
        hook: _PythonHook | None = None
        taker: socket.socket | None = None
        while True:
            code = self.pump(pid)
            trace.follow(str(self.bundle), "supervisor")  # a traced rm -f/stop's
            trace.mark(f"container exited ({code})")
            pause_at("exit-seen", self.bundle, self.pause_at)
            ran_for = time.monotonic() - started
            oom = self._oom_killed()
            again = self.wants_restart(code)
            if not again:
                # the exit is recorded first: whoever waits for it need not wait for us
                # (`stop`, `kill`, `wait`; the fork below costs us ~0.7 ms)
                self.save(state="exited", pid=0, pid_start=0, exit_code=code,
                          finished_at=now_iso(), oom_killed=oom, supervisor_pid=0,
                          exit_pending=True)
                # the attached foreground run's answer; a client that takes the exit
                # hook over (``supervise.iohub``) stays connected
                taker = self.hub.exited(code, last=True)
                trace.mark("exit recorded and sent")
                # its engine and database opened while we delete the runtime's state;
                # it waits for that before its work (see below)
                hook = None if taker is not None else self._begin_exit_hook()
                leaving = self._leave_networks()
                pause_at("exit-recorded", self.bundle, self.pause_at)
                break  # (the runtime's delete: beside the exit hook, below)
            self.driver.delete(self.id)
            delay = restart_delay(delay, ran_for)
            # Docker counts the restart as it decides it, and shows "Restarting (code)"
            self.save(state="restarting", pid=0, pid_start=0, exit_code=code,
                      finished_at=now_iso(), oom_killed=oom,
                      restart_count=self.status["restart_count"] + 1,
                      restart_delays=[*self.status.get("restart_delays", []), delay][-20:])
            self.hub.exited(code)  # Docker's run waits for the next exit, not the last
            self.wake.wait(delay)
            self.wake.clear()
            if (self.bundle / "stop-requested").exists():
                self.save(state="exited", supervisor_pid=0, exit_pending=True)
                break
            try:
                pid = self.start_once()
            except RuntimeError as exc:
                self.save(state="exited", error=str(exc), supervisor_pid=0,
                          exit_pending=True)
                break
            started = time.monotonic()
            # Docker's SetRunning: a running container's exit code is 0 again
            self.save(state="running", pid=pid, pid_start=start_time(pid) or 0, exit_code=0,
                      error="", oom_killed=False, started_at=now_iso())
            if (self.bundle / "stop-requested").exists():
                # asked to stop while restarting, too late for the check above: the
                # engine saw no process to signal, so the one just started goes now
                os.kill(pid, signal.SIGKILL)  # our own child, not yet reaped: that pid
        for proxy in self.proxies:
            proxy.close()
        self._unpublish_dnat()
        if self.dns is not None:
            self.dns.close()
        self.hub.close()
        if taker is not None:
            self._exit_taken(taker)
        else:
            self._exit_hook(delete_runtime=True, begun=hook)
        if leaving is not None:
            leaving.join()
        trace.mark("exit hook done")
        # (its folder may be gone with the container: the marker goes beside it)
        pause_at("exit-hook-done", self.bundle.parent, self.pause_at)
        return 0

    def _leave_networks(self) -> threading.Thread | None:
        """The container's veth pairs deleted as its last exit is recorded, in a thread:
        the kernel would delete them only once it dismantles the dead namespace, which
        lags, and the exit hook must see them gone before the addresses are released
        (``engine.container_network.leave_networks``).  A deletion waits ~10-15 ms for
        an RCU grace period with little CPU; begun here it overlaps the runtime's
        delete and the hook's start instead of adding to ``rm -f``.  The hook's gate
        does not wait for it: the hook's own check finds the pair gone, or waits on
        the kernel's lock for it."""
        names = [str(e["host_ifname"]) for e in self.network.get("endpoints", [])]
        if not names:
            return None
        from dockyard.network.bridge import delete_link

        def delete() -> None:
            for name in names:
                with contextlib.suppress(Exception):  # (the hook tries again)
                    delete_link(name)
            trace.mark("veth pairs deleted")

        thread = threading.Thread(target=delete, name="dy-leave-networks")
        thread.start()
        return thread

    def _answer(self, ready_fd: int, answer: str) -> None:
        """The CLI's one line, once: "ok" (after create when a client is to attach,
        else after start) or why the container could not start."""
        if not self.answered and ready_fd >= 0:
            self.answered = True
            _answer_cli(ready_fd, answer)

    def _answer_attaching(self, ready_fd: int) -> None:
        """"ok" on the CLI's socket pair, which then stays open as its attached
        connection (its ``attach exit`` line waits there already: ``wait_for_client``
        finds it at once)."""
        if self.answered:
            return
        self.answered = True
        release(ready_fd)
        conn = socket.socket(fileno=ready_fd)
        try:
            conn.sendall(b"ok\n")
        except OSError as exc:
            print(f"supervisor: the CLI is gone ({exc.strerror}); carrying on",
                  file=sys.stderr, flush=True)
            conn.close()
            return
        self.hub.adopt(conn)

    def _oom_killed(self) -> bool:
        config = json.loads((self.bundle / "config.json").read_text())
        path = Path("/sys/fs/cgroup/memory") / config["linux"]["cgroupsPath"].lstrip("/")
        with contextlib.suppress(OSError, ValueError):
            for line in (path / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                    return True
        return False

    def _begin_exit_hook(self) -> _PythonHook | None:
        """The ``@python`` exit hook's fork, started now and held at its gate (None for
        a hook that is a command: it runs at the end, as it always did)."""
        if self.exit_hook[:1] != [PYTHON_HOOK]:
            return None
        return _PythonHook(self.exit_hook[1:], gated=True)

    def _exit_hook(self, *, delete_runtime: bool = False,
                   begun: _PythonHook | None = None) -> None:
        """Unmount and ``--rm`` happen in the hook, after the exit is already recorded.
        A hook ``["@python", MODULE, FUNCTION, *ARGS]`` is a call in a fork of this
        process (its module preloaded by the zygote: no new interpreter), ``begun``
        already when the exit was seen; any other is a command.  ``delete_runtime``:
        the runtime's state and cgroup go first — here, beside the python hook's fork,
        which waits for that (this process ends right after: no helper forked for it)."""
        if self.exit_hook[:1] == [PYTHON_HOOK]:
            hook = begun or _PythonHook(self.exit_hook[1:], gated=delete_runtime)
            hook.finish((lambda: self._delete_runtime(self.driver.delete_last))
                        if delete_runtime else None)
            return
        if delete_runtime:
            self._delete_runtime(self.driver.delete)
        if self.exit_hook:
            subprocess.run(self.exit_hook, check=False, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _exit_taken(self, taker: socket.socket) -> None:
        """The exit hook's work done by the client that took it over (``supervise.iohub``):
        the runtime's state deleted here meanwhile, as beside a hook of ours, and the
        client told; once it hangs up, the hook runs as ever if the container's folder
        is still there (the client died, or failed; the hook finds a removed container
        gone and does nothing)."""
        deleted = True
        try:
            self._delete_runtime(self.driver.delete_last)
        except Exception as exc:  # noqa: BLE001 - the hook below tries again
            deleted = False
            print(f"supervisor: runtime delete: {exc!r}", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            taker.sendall(frame(HOOK_STREAM, DONE if deleted else FAILED))
            while taker.recv(4096):
                pass
        taker.close()
        trace.mark("exit taken")
        if self.bundle.is_dir():
            self._exit_hook(delete_runtime=not deleted)

    def _delete_runtime(self, delete: Callable[[str], None]) -> None:
        delete(self.id)
        trace.mark("runtime delete done")


PYTHON_HOOK = "@python"  # an exit hook that is a function call (engine.exit_hook)
HOOK_NAME = "dy-exit-hook"  # the hook process's name (comm), for ps and tests


def _run_python_hook(hook_argv: list[str]) -> None:
    """``MODULE FUNCTION ARGS…`` called in a fork of ours, waited for."""
    _PythonHook(hook_argv, gated=False).finish()


class _PythonHook:
    """``MODULE FUNCTION ARGS…`` called in a fork of ours: the module is preloaded by
    the zygote (a fork, not an interpreter's start and imports), and, as a hook run as
    a command, it finishes its work if we are killed meanwhile.

    ``gated``: the hook is called with ``beside_done``, a wait it calls before it
    touches what we still do meanwhile (the runtime's delete), and
    ``finish`` opens the gate once its ``beside`` is done; the wait says whether it
    was (not when ``beside`` failed, or we died).  The exit hook forks as soon as
    the container's last exit is recorded: its first steps (an engine, the
    database: ~3-5 ms of CPU, and the fork itself) then overlap ours, on another core
    (two processes: threads would share one GIL).  Our death opens the gate too (the
    pipe's end closes with us), unsaid: the hook then withdraws what the runtime left.

    The fork keeps only its stdio, the gate and the trace: the attach socket and its
    clients, the container's stdio and published ports are ours to close (a client
    waits for their EOF, a port must be free when the container is gone)."""

    def __init__(self, hook_argv: list[str], *, gated: bool) -> None:
        module, function, *args = hook_argv
        self.name = f"{module}.{function}"
        gate = os.pipe() if gated else None
        self.gate = gate[1] if gate else -1
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                rename(HOOK_NAME)
                if gate is not None:
                    os.close(gate[1])  # (ours would keep the gate shut for good)
                _drop_descriptors({0, 1, 2, trace.descriptor(), gate[0] if gate else -1})
                call = getattr(importlib.import_module(module), function)
                if gate is None:
                    call(*args)
                else:
                    call(*args, beside_done=_closed_waiter(gate[0]))
                code = 0
            except BaseException as exc:  # noqa: BLE001 - reported; the next command recovers
                with contextlib.suppress(Exception):
                    print(f"supervisor: hook {self.name} failed: {exc!r}",
                          file=sys.stderr, flush=True)
            finally:
                os._exit(code)
        if gate is not None:
            os.close(gate[0])

    def finish(self, beside: Callable[[], None] | None = None) -> None:
        """``beside`` run here, the gate opened (saying done if ``beside`` did not
        fail), and the hook waited for."""
        try:
            if beside is not None:
                beside()
            if self.gate >= 0:
                os.write(self.gate, GATE_DONE)
        except Exception as exc:  # noqa: BLE001 - the hook runs all the same
            print(f"supervisor: beside hook {self.name}: {exc!r}", file=sys.stderr,
                  flush=True)
        finally:
            if self.gate >= 0:
                os.close(self.gate)
                self.gate = -1
        os.waitpid(self.pid, 0)


def _drop_descriptors(keep: set[int]) -> None:
    """Every descriptor but ``keep`` pointed at /dev/null: what it referred to is let
    go, while the number stays taken (a Python object of ours may still name it: a
    number freed here could be reused by a file the hook opens, then closed under it)."""
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep and fd != devnull:
                with contextlib.suppress(OSError):  # (the listing's own, closed by now)
                    os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


GATE_DONE = b"done"  # the supervisor's last word on an exit hook's gate: its part done


def _closed_waiter(fd: int) -> Callable[[], bool]:
    """A wait until the gate's other end is closed; whether the supervisor said its
    part was done (``GATE_DONE``) before: False when it died, or its part failed.  The
    first call waits and closes ``fd``; a later one gives the same answer at once."""
    said = b""
    answer: bool | None = None

    def wait() -> bool:
        nonlocal said, answer, fd
        if answer is None:
            with contextlib.suppress(OSError):
                while chunk := os.read(fd, 64):
                    said += chunk
            os.close(fd)
            fd, answer = -1, said == GATE_DONE
        return answer

    return wait


def _answer_cli(ready_fd: int, answer: str) -> None:
    """The one line the CLI waits for.  The CLI may be gone (killed, its terminal
    closed): the container goes on without it, as a detached one would (EPIPE is not
    our death: a supervisor ignores SIGPIPE, as every Python program does)."""
    try:
        os.write(ready_fd, answer.encode() + b"\n")
    except OSError as exc:
        print(f"supervisor: the CLI is gone ({exc.strerror}); "
              "carrying on", file=sys.stderr, flush=True)
    finally:
        release(ready_fd)
        os.close(ready_fd)


class _Stdio:
    """The container's end of its stdio for one ``create``: pipes, or a pty received
    over a console socket.  The socket lives in the container's bundle (nothing is
    written outside dockyard's own directories); its path is given as
    ``/proc/PID/fd/N/c.sock`` — the bundle held by a descriptor of ours — because a
    bundle path may be longer than a socket path can be."""

    def __init__(self, tty: bool, stdin: bool, bundle: Path,
                 owner: tuple[int, int] | None = None) -> None:
        self.tty = tty
        self._dir_fd = -1
        self.console_path = ""
        self._console: socket.socket | None = None
        self._dir = ""
        self._parent: dict[str, int] = {}
        self.child_in: int = subprocess.DEVNULL
        self.child_out: int = subprocess.DEVNULL
        self.child_err: int = subprocess.DEVNULL
        if tty:
            self._dir = str(bundle / "console")
            shutil.rmtree(self._dir, ignore_errors=True)  # a crashed create's, ours
            os.mkdir(self._dir, 0o700)
            self._dir_fd = os.open(self._dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.console_path = f"/proc/{os.getpid()}/fd/{self._dir_fd}/c.sock"
            self._console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._console.bind(self.console_path)
            self._console.listen(1)
            return
        out_r, self.child_out = os.pipe()
        err_r, self.child_err = os.pipe()
        self._parent = {"stdout": out_r, "stderr": err_r}
        if stdin:
            self.child_in, in_w = os.pipe()
            self._parent["stdin"] = in_w
        if owner is not None:  # /dev/stdout reopens in a user namespace (containerd's
            for fd in (self.child_in, self.child_out, self.child_err):  # NewPipeIO)
                if fd >= 0:
                    os.fchown(fd, *owner)

    def hand_over(self, hub: IOHub) -> None:
        if self._console is not None:
            self._console.settimeout(10)
            conn, _ = self._console.accept()
            with conn:
                master = receive_fd(conn)
            hub.outputs[master] = "stdout"
            hub.input_fd = master
            return
        hub.outputs[self._parent["stdout"]] = "stdout"
        hub.outputs[self._parent["stderr"]] = "stderr"
        hub.input_fd = self._parent.get("stdin")

    def abandon(self) -> None:
        for fd in self._parent.values():
            os.close(fd)

    def __enter__(self) -> _Stdio:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in (self.child_in, self.child_out, self.child_err):
            if fd >= 0:
                os.close(fd)
        if self._console is not None:
            self._console.close()
            os.close(self._dir_fd)
            shutil.rmtree(self._dir, ignore_errors=True)


def load_driver(module: str, runtime: list[str], root: str) -> RuntimeDriver:
    """``cli`` (any runc-compatible binary) or a module exposing ``Driver``, named by the
    engine; imported by name so this layer never imports the runtime package."""
    if module in ("", "cli"):
        return CliDriver(runtime, root)
    driver: RuntimeDriver = importlib.import_module(module).Driver(runtime, root)
    return driver


REQUIRED = object()  # an option without a default
# (option, type, default, help): the options the engine writes, read by ``parse_args``
# and by argparse alike; the flags (store_true) are in ``_FLAGS``
_OPTIONS: tuple[tuple[str, Callable[[str], Any], Any, str], ...] = (
    ("--id", str, REQUIRED, ""),
    ("--bundle", str, REQUIRED, ""),
    ("--runtime", str, REQUIRED, "JSON argv of the runtime"),
    ("--runtime-root", str, REQUIRED, ""),
    ("--driver", str, "cli", "cli, or a module with a Driver"),
    ("--restart", str, "no", ""),
    ("--exit-hook", str, "[]", "JSON argv run after the last exit"),
    ("--ready-fd", int, REQUIRED, ""),
    ("--health", str, "", "JSON healthcheck config"),
    ("--health-hook", str, "[]", "JSON @python hook called with each new health status"),
    ("--network", str, "", "JSON bridge attachment and ports"),
    ("--attach-client", str, "", "PID:START of the process to attach (waited for while alive)"),
    ("--log-max-size", int, 0, ""),
    ("--log-max-file", int, 1, ""),
    ("--pause-at", str, "", "test hook: phases to pause at"),
    ("--restart-count", int, 0, "restarts so far"),
    ("--adopt", str, "", "PID:START of a running init to adopt"),
    ("--trace", str, "", "DOCKYARD_TRACE's file (dockyard.trace)"),
    ("--stdio-owner", str, "",
     "UID:GID of the container's root (a user namespace): its pipes' owner"),
    ("--on-lost", str, "", "JSON hook the zygote runs if this supervisor is killed"),
)
_FLAGS = ("--tty", "--stdin", "--wait-attach", "--attach-on-ready")


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """For what ``parse_args`` leaves to argparse: ``--help``, and wording errors."""
    parser = argparse.ArgumentParser(prog="dockyard-supervisor")
    for option, kind, default, text in _OPTIONS:
        if default is REQUIRED:
            parser.add_argument(option, type=kind, required=True, help=text or None)
        else:
            parser.add_argument(option, type=kind, default=default, help=text or None)
    for flag in _FLAGS:
        parser.add_argument(flag, action="store_true")
    return parser


def parse_args(argv: list[str]) -> Any:
    """argparse's Namespace for ``argv``, read without argparse when it is as the
    engine writes it (``--option value`` and flags, each once at most).  Why: a
    supervisor forked by the zygote that ran argparse's ``parse_args`` kept ~450 KiB
    more private memory (measured), because reading argparse's objects writes their
    reference counts and so copies the pages they are on.  Anything else — a
    ``--option=value``, an abbreviation, ``--help``, a missing or bad value — goes to
    argparse, which parses or words the error as before."""
    import types

    values = {option[2:].replace("-", "_"): default for option, _kind, default, _text
              in _OPTIONS}
    values.update((flag[2:].replace("-", "_"), False) for flag in _FLAGS)
    kinds = {option: kind for option, kind, _default, _text in _OPTIONS}
    seen: set[str] = set()
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in seen:
            return build_parser().parse_args(argv)
        seen.add(word)
        if word in _FLAGS:
            values[word[2:].replace("-", "_")] = True
            index += 1
            continue
        kind = kinds.get(word)
        if kind is None or index + 1 >= len(argv) or argv[index + 1].startswith("--"):
            return build_parser().parse_args(argv)
        try:
            values[word[2:].replace("-", "_")] = kind(argv[index + 1])
        except ValueError:
            return build_parser().parse_args(argv)
        index += 2
    if any(value is REQUIRED for value in values.values()):
        return build_parser().parse_args(argv)
    return types.SimpleNamespace(**values)


def warm_up() -> None:
    """Create the lazily-built caches a supervisor would otherwise build after the fork."""
    parse_args(["--id", "x", "--bundle", "/", "--runtime", "[]", "--runtime-root", "/",
                "--ready-fd", "0", "--network", "{}", "--trace", "", "--tty"])
    json.loads(json.dumps({"warm": [1, "x", None]}))
    # ~130 ms to import: once here, not per container (the message classes too:
    # network.rtnl imports them as it encodes)
    import pyroute2  # noqa: F401
    import pyroute2.netlink.rtnl.ifaddrmsg  # noqa: F401
    import pyroute2.netlink.rtnl.ifinfmsg  # noqa: F401
    import pyroute2.netlink.rtnl.rtmsg  # noqa: F401

    import dockyard.network.bridge
    import dockyard.network.dns
    import dockyard.network.firewall
    import dockyard.network.names
    import dockyard.network.netns
    import dockyard.network.proxy
    import dockyard.network.publish
    import dockyard.network.rtnl  # noqa: F401 - imported to be shared, not used here
    now_iso()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.pause_at:  # tests only: the runtime's create, in our helper, pauses by it
        os.environ[PAUSE_ENV] = args.pause_at
    trace.join(args.trace, "supervisor")
    trace.mark("forked")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The one prctl outside runtime/linux/syscalls.py: supervise sits below the runtime
    # and may not import it.  As subreaper we inherit the init when `create` exits.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a vanished CLI is an EPIPE, not a death
    keep_out_of_forks(args.ready_fd)  # no container's init may hold the CLI's pipe
    supervisor = Supervisor(args)
    signal.signal(signal.SIGUSR2, lambda *_: supervisor.reload_network())
    # before our pid and start time are published (the first save): the engine pokes
    # us when it asks a container waiting to restart to stop
    signal.signal(signal.SIGUSR1, lambda *_: supervisor.wake.set())
    return supervisor.run(args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
