"""The Jinja environment templates run in (compiler and runtime use the same one).

Sandboxed and immutable (a template cannot call methods that mutate its inputs or reach
Python internals), ``StrictUndefined`` (an unknown name is an error, never ""), no
autoescaping (output is data, not HTML), and nothing non-deterministic: the ``random``
filter and the ``lipsum`` global (which uses ``random``) are removed, and no clock
global (``now``) is ever added.
"""

from __future__ import annotations

from functools import cache

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

REMOVED_FILTERS = ("random",)  # not reproducible
_NONDETERMINISTIC_GLOBALS = ("lipsum",)


@cache
def environment() -> ImmutableSandboxedEnvironment:
    """The process-wide template environment (built once; do not modify it)."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    for name in REMOVED_FILTERS:
        env.filters.pop(name, None)
    for name in _NONDETERMINISTIC_GLOBALS:
        env.globals.pop(name, None)
    return env
