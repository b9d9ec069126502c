"""Reading a bundle: config.json parsed and validated, rootfs located."""

from __future__ import annotations

import os

from dockyard import jsonlite
from dockyard.errors import InvalidSpec
from dockyard.oci.runtime_spec import Spec, parse_spec
from dockyard.stdlite import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any


class Bundle(NamedTuple):
    path: str
    spec: Spec
    raw: dict[str, Any]

    @property
    def rootfs(self) -> str:
        root = self.spec.root.path
        return os.path.normpath(root if root.startswith("/") else os.path.join(self.path, root))


def load_bundle(path: str) -> Bundle:
    bundle = os.path.abspath(path)
    config = os.path.join(bundle, "config.json")
    try:
        with open(config, "rb") as handle:
            raw = jsonlite.loads(handle.read())
    except FileNotFoundError:
        raise InvalidSpec(f"JSON specification file {config} not found") from None
    except ValueError as exc:  # json.JSONDecodeError, or bytes that are not UTF-8
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = f" at line {line} column {column}" if line is not None else ""
        raise InvalidSpec(f"{config}: malformed JSON{where}: {getattr(exc, 'msg', exc)}"
                          ) from exc
    except OSError as exc:
        raise InvalidSpec(f"{config}: {exc.strerror}") from exc
    result = Bundle(bundle, parse_spec(raw), raw)
    if not os.path.isdir(result.rootfs):
        raise InvalidSpec(f"root.path: rootfs {result.rootfs} does not exist or is not a "
                          "directory")
    return result
