"""Reading a bundle: config.json parsed and validated, rootfs located."""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from dockyard.errors import InvalidSpec
from dockyard.oci.runtime_spec import Spec, parse_spec


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
            raw = json.load(handle)
    except FileNotFoundError:
        raise InvalidSpec(f"JSON specification file {config} not found") from None
    except json.JSONDecodeError as exc:
        raise InvalidSpec(f"{config}: malformed JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from exc
    except OSError as exc:
        raise InvalidSpec(f"{config}: {exc.strerror}") from exc
    result = Bundle(bundle, parse_spec(raw), raw)
    if not os.path.isdir(result.rootfs):
        raise InvalidSpec(f"root.path: rootfs {result.rootfs} does not exist or is not a "
                          "directory")
    return result
