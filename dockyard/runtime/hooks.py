"""OCI lifecycle hooks: run with the container state on stdin, env and timeout as given."""

from __future__ import annotations

from dockyard import jsonlite
from dockyard.errors import InvalidSpec
from dockyard.runtime.linux import signals
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:  # runtime_spec is ~2 ms of imports that state and kill do without
    from dockyard.oci.runtime_spec import Hook


def run_hooks(hooks: tuple[Hook, ...], state: dict[str, object], kind: str) -> None:
    """Run each hook in order; the first failure raises (callers decide warn or fail)."""
    import subprocess  # deferred: only bundles with hooks pay for it

    payload = jsonlite.dumps(state).encode()
    for hook in hooks:
        argv = list(hook.args) or [hook.path]
        try:
            result = subprocess.run(
                argv, executable=hook.path, input=payload, env=dict(_split_env(hook.env)),
                capture_output=True, timeout=hook.timeout, check=False,
                preexec_fn=signals.reset,  # the runtime's own dispositions stay here
            )
        except subprocess.TimeoutExpired as exc:
            raise InvalidSpec(f"{kind} hook {hook.path} timed out after {hook.timeout}s") from exc
        except OSError as exc:
            raise InvalidSpec(f"{kind} hook {hook.path}: {exc.strerror}") from exc
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).decode(errors="replace").strip()[-400:]
            raise InvalidSpec(
                f"{kind} hook {hook.path} failed with exit status {result.returncode}"
                + (f": {tail}" if tail else "")
            )


def _split_env(env: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for item in env:
        key, _, value = item.partition("=")
        pairs.append((key, value))
    return pairs
