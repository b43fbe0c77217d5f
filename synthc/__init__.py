"""synthc: compile declarative YAML dataset specs into reproducible datasets.

    import synthc

    problems = synthc.check("orders.yaml")        # list[Diagnostic]; [] when valid
    df = synthc.generate("orders.yaml", rows=100, seed=7)   # a polars.DataFrame
    synthc.write("orders.yaml", "orders.parquet")

See :mod:`synthc.api` for what a *spec* argument can be and what each function
guarantees. Importing ``synthc`` is cheap: the API and the heavy libraries behind it
(polars, numpy, jsonschema) load on first use of an attribute that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.errors import ExecutionError, OutputError
    from runtime.plan import Plan
    from synthc.api import agenerate, awrite, check, compile, estimate, generate, stream, write, write_stream
    from synthc.diagnostics import Diagnostic, Span
    from synthc.errors import SpecError, SynthcError, UsageError

    __version__: str

__all__ = [
    "Diagnostic",
    "ExecutionError",
    "OutputError",
    "Plan",
    "Span",
    "SpecError",
    "SynthcError",
    "UsageError",
    "__version__",
    "agenerate",
    "awrite",
    "check",
    "compile",
    "estimate",
    "generate",
    "stream",
    "write",
    "write_stream",
]

# attribute -> module that defines it; imported on first access (PEP 562)
_LAZY: dict[str, str] = {
    "agenerate": "synthc.api",
    "awrite": "synthc.api",
    "estimate": "synthc.api",
    "check": "synthc.api",
    "compile": "synthc.api",
    "generate": "synthc.api",
    "stream": "synthc.api",
    "write": "synthc.api",
    "write_stream": "synthc.api",
    "Diagnostic": "synthc.diagnostics",
    "Span": "synthc.diagnostics",
    "SynthcError": "synthc.errors",
    "SpecError": "synthc.errors",
    "UsageError": "synthc.errors",
    "Plan": "runtime.plan",
    "ExecutionError": "runtime.errors",
    "OutputError": "runtime.errors",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("synthc")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'synthc' has no attribute {name!r}")
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
