"""Waiting in tests and benches without timed assertions: poll until a condition holds,
failing only at a generous deadline (a slow machine waits longer, it does not fail)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(what: str, check: Callable[..., Any], timeout: float = 30,
          every: float = 0.02) -> Any:
    """Poll ``check`` until it returns something true and return that; past the
    deadline, fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(every)
