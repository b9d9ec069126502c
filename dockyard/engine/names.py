"""Container names: Docker's rule for valid names, and generated adjective_name pairs."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

_VALID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LEFT = ("admiring", "brave", "calm", "dazzling", "eager", "focused", "gallant", "happy",
         "jolly", "keen", "loving", "modest", "nifty", "peaceful", "quirky", "relaxed",
         "serene", "tender", "upbeat", "vibrant", "wizardly", "xenial", "youthful", "zealous")
_RIGHT = ("archimedes", "babbage", "curie", "darwin", "euclid", "fermat", "galileo", "hopper",
          "hypatia", "johnson", "kepler", "lovelace", "meitner", "noether", "pasteur",
          "ritchie", "shannon", "tesla", "turing", "volhard", "wozniak", "yalow", "zhukovsky")


def valid(name: str) -> bool:
    return bool(_VALID.match(name))


def generate(taken: Callable[[str], bool]) -> str:
    for attempt in range(100):
        name = f"{_pick(_LEFT)}_{_pick(_RIGHT)}"
        if attempt > 10:
            name += str(1 + _below(99))
        if not taken(name):
            return name
    raise RuntimeError("could not generate a free container name")


def _below(n: int) -> int:
    """A uniform-enough number in [0, n) (``random`` costs ~1 ms of imports per
    command; a name needs no statistics)."""
    return int.from_bytes(os.urandom(4), "little") % n


def _pick(choices: tuple[str, ...]) -> str:
    return choices[_below(len(choices))]
