"""Local JSON Schema references (``$ref: "#/$defs/x"``), shared by the structured-output
reader and the fake model's answer generator. Standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resolve_ref(ref: str, root: Any) -> Any:
    """The node a local JSON-pointer ``$ref`` (``#`` or ``#/$defs/x``) names in ``root``,
    or None when it is not local or names nothing."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
