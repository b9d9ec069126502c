"""The global flags before a command, read without click: one reader for the warm
path (``cli.warm``, which only needs ``--root`` and the command's name) and the fast
path (``cli.fast``), light enough for a process that imports almost nothing."""

TYPE_CHECKING = False  # (typing itself costs ~5 ms of a command that only connects)
if TYPE_CHECKING:
    from collections.abc import Sequence

NAMES = ("--root", "--insecure-registry", "--policy", "--registries.d")


class GlobalFlags:
    """What the flags said, and ``end``: the index of the command."""

    __slots__ = ("end", "insecure", "policy", "registries_d", "root")

    def __init__(self, root: str | None, insecure: list[str], policy: str | None,
                 registries_d: str | None, end: int) -> None:
        self.root = root
        self.insecure = insecure
        self.policy = policy
        self.registries_d = registries_d
        self.end = end


def read(argv: "Sequence[str]") -> GlobalFlags | None:
    """``--root``, ``--insecure-registry``, ``--policy`` and ``--registries.d`` before
    the command (as the click group reads them); None for any other flag, or one
    without its value (click words the error)."""
    values: dict[str, str] = {}
    insecure: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if name not in NAMES:
            return None
        if not eq:
            if i + 1 >= len(argv):
                return None
            i += 1
            value = argv[i]
        if name == "--insecure-registry":
            insecure.append(value)
        else:
            values[name] = value
        i += 1
    return GlobalFlags(values.get("--root"), insecure, values.get("--policy"),
                       values.get("--registries.d"), i)
