"""Healthchecks, run by the supervisor in a thread beside the container's stdio.

Every ``interval`` the check runs inside the container (``runtime exec``) with a
``timeout``; ``retries`` consecutive failures make the container ``unhealthy``,
a success makes it ``healthy``; failures inside ``start_period`` do not count.
While the start period lasts and the container is still ``starting``, the check
runs every ``start_interval`` instead (5 s unless set), as Docker 25 does: a slow
``interval`` does not hold back the first healthy report.
Results go into the supervisor's status (``health``), in Docker's shape.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from dockyard.supervise.logfile import now_iso

DEFAULT_START_INTERVAL = 5.0  # Docker's defaultStartInterval


class HealthChecker:
    def __init__(self, config: dict[str, Any], exec_argv: list[str],
                 report: Callable[[dict[str, Any]], None]) -> None:
        test = list(config["test"])
        self.command = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
        self.interval = float(config.get("interval") or 30)
        self.timeout = float(config.get("timeout") or 30)
        self.retries = int(config.get("retries") or 3)
        self.start_period = float(config.get("start_period") or 0)
        self.start_interval = float(config.get("start_interval") or DEFAULT_START_INTERVAL)
        self.exec_argv = exec_argv
        self.report = report
        self.state: dict[str, Any] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.report(self.state)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 1)

    def next_wait(self) -> float:
        """Seconds to the next check: ``start_interval`` while the start period lasts
        and nothing has been reported healthy or unhealthy yet, else ``interval``."""
        starting = self.state["Status"] == "starting"
        if starting and time.monotonic() - self._started < self.start_period:
            return self.start_interval
        return self.interval

    def _loop(self) -> None:
        while not self._stop.wait(self.next_wait()):
            self.check_once()

    def check_once(self) -> None:
        started = now_iso()
        try:
            result = subprocess.run([*self.exec_argv, *self.command], capture_output=True,
                                    timeout=self.timeout, check=False,
                                    stdin=subprocess.DEVNULL)
            code, output = result.returncode, (result.stdout + result.stderr).decode(
                errors="replace")
        except subprocess.TimeoutExpired:
            code, output = -1, f"Health check exceeded timeout ({self.timeout:g}s)"
        if self._stop.is_set():
            return
        entry = {"Start": started, "End": now_iso(), "ExitCode": code, "Output": output[-4096:]}
        self.state["Log"] = (self.state["Log"] + [entry])[-5:]
        if code == 0:
            self.state["Status"] = "healthy"
            self.state["FailingStreak"] = 0
        elif time.monotonic() - self._started >= self.start_period:
            self.state["FailingStreak"] += 1
            if self.state["FailingStreak"] >= self.retries:
                self.state["Status"] = "unhealthy"
        self.report(self.state)
