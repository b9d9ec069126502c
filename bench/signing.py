"""Signing and policy-checked pulls: dockyard against skopeo, side by side.

Starts Debian's docker-registry on 127.0.0.1, makes a GPG key in a throw-away
GNUPGHOME and a busybox image, then times (median of N runs each, interleaved):
  sign+push    dockyard push --sign-by        vs skopeo copy --sign-by (docker-archive)
  policy pull  dockyard pull under signedBy   vs skopeo copy under signedBy (to dir:)
  policy cost  dockyard pull under signedBy   vs dockyard pull with no policy
and prints each pair and its ratio (below 1.0: dockyard, or the policy, is cheaper).
Usage (as root): python bench/signing.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.registry import local_registry


def _run(*argv: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for tool in ("docker-registry", "skopeo", "gpg"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="dy-sbench-"))
    home = work / "g"
    home.mkdir(mode=0o700)
    try:
        with local_registry(work) as registry:
            return _bench(args.runs, work, registry.address, home)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def _bench(runs: int, work: Path, address: str, home: Path) -> int:
    dockyard = str(Path(sys.executable).with_name("dockyard"))
    gpg_env = {"GNUPGHOME": str(home)}
    _run("gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Bench <b@example.invalid>",
         "ed25519", "sign", "never", env=gpg_env)
    fpr = next(line.split(":")[9] for line in _run(
        "gpg", "--with-colons", "--list-keys", env=gpg_env).splitlines()
        if line.startswith("fpr"))
    (work / "key.gpg").write_text(_run("gpg", "--armor", "--export", fpr, env=gpg_env))
    regd = work / "registries.d"
    regd.mkdir()
    (regd / "b.yaml").write_text(f"docker:\n  {address}:\n    lookaside: file://{work}/sigs\n"
                                 f"    lookaside-staging: file://{work}/sigs\n")
    policy = work / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys",
                                               "keyPath": str(work / "key.gpg")}]}))
    trust = ("--policy", str(policy), "--registries.d", str(regd))
    root = work / "root"
    _run(dockyard, "--root", str(root), "import", str(make_rootfs_tar(work)), "box:1")
    _run(dockyard, "--root", str(root), "save", "-o", str(work / "box.tar"), "box:1")
    results: dict[str, tuple[str, list[float], list[float]]] = {}

    def measure(label: str, peer: str, ours: Callable[[], None],
                theirs: Callable[[], None]) -> None:
        mine, other = [], []
        for _ in range(runs):
            mine.append(_timed(ours))
            other.append(_timed(theirs))
        results[label] = (peer, mine, other)

    def push_ours() -> None:
        ref = f"{address}/ours/{uuid.uuid4().hex[:6]}:1"
        _run(dockyard, "--root", str(root), "tag", "box:1", ref)
        _run(dockyard, "--root", str(root), *trust, "push", "-q", "--sign-by", fpr, ref,
             env=gpg_env)

    def push_skopeo() -> None:
        ref = f"{address}/skopeo/{uuid.uuid4().hex[:6]}:1"
        _run("skopeo", "--registries.d", str(regd), "copy", "--dest-tls-verify=false",
             "--sign-by", fpr, f"docker-archive:{work / 'box.tar'}", f"docker://{ref}",
             env=gpg_env)

    measure("sign+push", "skopeo", push_ours, push_skopeo)
    signed = f"{address}/signed/box:1"
    _run(dockyard, "--root", str(root), "tag", "box:1", signed)
    _run(dockyard, "--root", str(root), *trust, "push", "-q", "--sign-by", fpr, signed,
         env=gpg_env)

    def pull(*extra: str) -> Callable[[], None]:
        def go() -> None:
            fresh = work / f"pull-{uuid.uuid4().hex[:6]}"
            _run(dockyard, "--root", str(fresh), *extra, "pull", "-q", signed)
            shutil.rmtree(fresh)
        return go

    def pull_skopeo() -> None:
        fresh = work / f"skopeo-{uuid.uuid4().hex[:6]}"
        _run("skopeo", "--policy", str(policy), "--registries.d", str(regd), "copy",
             "--src-tls-verify=false", f"docker://{signed}", f"dir:{fresh}")
        shutil.rmtree(fresh)

    measure("policy pull", "skopeo", pull(*trust), pull_skopeo)
    (work / "accept.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    measure("policy cost", "no policy", pull(*trust),
            pull("--policy", str(work / "accept.json")))
    print(f"busybox image; medians of {runs} runs (noisy on a shared machine)")
    for label, (peer, mine, other) in results.items():
        a, b = statistics.median(mine), statistics.median(other)
        print(f"{label:12} dockyard {a * 1000:7.0f} ms   {peer} {b * 1000:7.0f} ms   "
              f"ratio {a / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
