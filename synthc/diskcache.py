"""Small, boring, safe on-disk caches for the compiler.

One JSON file per entry, named by the xxh3-128 of its key; written atomically
(temporary file, then rename), so concurrent runs never see half an entry. A missing,
unreadable or corrupt entry is a miss; a place that cannot be written means no cache.
The root is ``$SYNTHC_CACHE_DIR`` or ``.synthc`` in the working directory.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import xxhash


def cache_root() -> Path:
    return Path(os.environ.get("SYNTHC_CACHE_DIR", ".synthc"))


class JsonCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{xxhash.xxh3_128_hexdigest(key.encode())}.json"

    def get(self, key: str) -> Any:
        """The stored data, or None on any kind of miss."""
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, data: Any) -> None:
        path = self._path(key)
        try:
            if not self.directory.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                _ignore_in_git(self.directory.parent)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only place just means no cache


def _ignore_in_git(root: Path) -> None:
    """Like .pytest_cache: the cache folder tells git to ignore itself."""
    marker = root / ".gitignore"
    if root == cache_root() and not marker.exists():
        marker.write_text("# created by synthc: caches are not for version control\n*\n", encoding="utf-8")


def file_identity(path: str | Path) -> str:
    """Cheap stand-in for a file's content in cache keys: path, size and mtime."""
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path}:missing"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def module_identity(name: str) -> str:
    """Which version of an installed package is importable, without importing it."""
    from importlib.util import find_spec

    spec = find_spec(name)
    return file_identity(spec.origin) if spec and spec.origin else f"{name}:missing"


@cache
def compiler_identity() -> str:
    """Changes whenever the compiler's code, the schema or the plan IR changes (also
    in a development checkout, where the version number stays the same)."""
    import synthc
    from runtime import plan
    from synthc.schema import schema_path

    here = Path(synthc.__file__).parent
    files = [*sorted(here.glob("*.py")), Path(plan.__file__), schema_path()]
    return ";".join(file_identity(f) for f in files)
