"""Where a key is in a YAML file: the line of a key path, for errors that name it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Path = Sequence[str | int]


class LineIndex:
    """The node tree of one file (anchors and ``<<`` merges followed), read on first use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._root: Any = None

    def line(self, path: Path) -> int | None:
        """The 1-based line of the deepest key of ``path`` found in the file."""
        import yaml

        if self._root is None:
            try:
                self._root = yaml.compose(self.text, Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                return None
        node, line = self._root, None
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            mark, node = child
            line = mark + 1
        return line


def _child(node: Any, part: str | int) -> tuple[int, Any] | None:
    import yaml

    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if part < len(node.value):
            item = node.value[part]
            return item.start_mark.line, item
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == str(part) and key.value != "<<":
            return key.start_mark.line, value
    for key, value in node.value:  # `<<: *anchor` or `<<: [*a, *b]`
        if isinstance(key, yaml.ScalarNode) and key.value == "<<":
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                found = _child(source, part)
                if found is not None:
                    return found
    return None
