"""Running one RUN step: an OCI bundle over the step's mounted snapshot, executed by
the engine's runtime CLI (``dockyard-runtime`` or runc) in the foreground.

The runtime is a subprocess, not a fork of the builder: stages build in threads,
and ``exec`` leaves no lock of another thread behind.  Mount points the runtime
has to create (``/proc`` in a scratch image, a secret's file, a cache mount's
directory) are removed again afterwards, so they never reach the layer.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.runtime.linux.paths import resolve_in_root

HOSTNAME = "buildkitsandbox"  # what BuildKit names a RUN step's host; scripts check it
_HOSTS = f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class StepProcess(NamedTuple):
    args: list[str]
    env: tuple[str, ...]
    cwd: str
    user: str
    network: str  # "default" (the host's network), "host" or "none"
    mounts: list[dict[str, Any]]  # extra OCI mounts (cache, bind, secret, tmpfs)
    stdin: bytes | None = None


def run_step(runtime_argv: list[str], runtime_root: Path, bundle: Path, rootfs: Path,
             config: dict[str, Any], step: StepProcess,
             on_output: Callable[[str], None]) -> int:
    """Run ``step`` in ``rootfs`` (mounted) with ``config`` (the OCI config the engine
    made for it, without the step's own mounts); returns its exit code."""
    hosts = bundle / "hosts"
    hosts.write_text(_HOSTS)
    extra = [{"destination": "/etc/hosts", "type": "bind", "source": str(hosts),
              "options": ["rbind", "ro"]}]
    if step.network != "none" and os.path.exists("/etc/resolv.conf"):
        extra.append({"destination": "/etc/resolv.conf", "type": "bind",
                      "source": os.path.realpath("/etc/resolv.conf"), "options": ["rbind", "ro"]})
    config["mounts"] += extra + step.mounts
    (bundle / "config.json").write_text(json.dumps(config))
    import subprocess

    created = _missing_mount_points(rootfs, [m["destination"] for m in config["mounts"]])
    try:
        process = subprocess.Popen(
            [*runtime_argv, "--root", str(runtime_root), "run", "--bundle", str(bundle),
             bundle.name],
            stdin=subprocess.PIPE if step.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if step.stdin is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(step.stdin)
            process.stdin.close()
        assert process.stdout is not None
        for raw in process.stdout:
            on_output(raw.decode(errors="replace").rstrip("\n"))
        return process.wait()
    finally:
        _remove_mount_points(created)


def _missing_mount_points(rootfs: Path, destinations: list[str]) -> list[str]:
    """Host paths (inside ``rootfs``) the runtime will create as mount points."""
    missing: list[str] = []
    for destination in destinations:
        parts = [p for p in destination.split("/") if p]
        for depth in range(1, len(parts) + 1):
            inner = "/" + "/".join(parts[:depth])
            try:
                host = resolve_in_root(str(rootfs), inner)
            except Exception:  # an escaping symlink: the runtime refuses it anyway
                break
            if not os.path.lexists(host):
                missing.append(host)
    return sorted(set(missing), key=len, reverse=True)  # deepest first


def _remove_mount_points(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)  # only if the step left it empty
            elif os.path.getsize(path) == 0:
                os.unlink(path)
