"""Token prices for cost estimates, read from LiteLLM's bundled cost map without importing it.

``synthc plan`` estimates what a run will cost. Importing LiteLLM takes seconds, so this
module reads the JSON cost map LiteLLM ships (``model_prices_and_context_window_backup.json``,
the same map `runtime.llm.transport` uses for actual costs) straight from the installed
package, once, on first use. The map's version is therefore the pinned LiteLLM's.

The lookup follows the way LiteLLM's map is keyed (`price`); the few provider aliases
LiteLLM also accepts (Azure AI using Azure or OpenAI prices, ...) are not all mirrored, so
an estimate can be None where LiteLLM would find a price for the actual call.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.llm.fake import is_fake

COST_MAP_FILE = "model_prices_and_context_window_backup.json"
CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with OpenAI-style tokenizers


@dataclass(frozen=True)
class Price:
    """USD per token, for prompt (input) and completion (output) tokens."""

    input: float
    output: float


ZERO = Price(0.0, 0.0)


class CostMapError(Exception):
    """LiteLLM's bundled cost map cannot be found or read (a broken installation)."""


@functools.cache
def cost_map_path() -> Path:
    """Where the installed LiteLLM keeps its bundled cost map (found without importing it)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise CostMapError("LiteLLM is not installed: cannot read its cost map")
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    if not path.is_file():
        raise CostMapError(f"LiteLLM's cost map is missing: {path}")
    return path


@functools.cache
def _cost_map() -> tuple[Mapping[str, Any], Mapping[str, str]]:
    """The map's entries, and its keys by lower-case key (LiteLLM matches case-insensitively)."""
    path = cost_map_path()
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CostMapError(f"cannot read LiteLLM's cost map {path}: {exc}") from exc
    if not isinstance(entries, dict):
        raise CostMapError(f"LiteLLM's cost map {path} is not a JSON object")
    entries.pop("sample_spec", None)  # documentation, not a model
    lower: dict[str, str] = {}
    for key in sorted(entries):  # sorted: which of two case variants wins is fixed
        lower.setdefault(key.lower(), key)
    return entries, lower


def _entry(key: str) -> Mapping[str, Any] | None:
    entries, lower = _cost_map()
    found = entries.get(key)
    if found is None and key.lower() in lower:
        found = entries[lower[key.lower()]]
    return found if isinstance(found, Mapping) else None


def _serves(entry: Mapping[str, Any], provider: str) -> bool:
    """Whether an entry's prices apply to `provider` (LiteLLM's own matching: families such
    as ``vertex_ai-language-models`` and ``bedrock_converse`` share a prefix)."""
    listed = entry.get("litellm_provider")
    if listed is None or listed == provider:
        return True
    return isinstance(listed, str) and any(
        provider == family and listed.startswith(family)
        for family in ("vertex_ai", "fireworks_ai", "bedrock")
    )


def price(model: str) -> Price | None:
    """The per-token price of a LiteLLM model string, or None when the map has no entry.

    ``fake/...`` models cost nothing. Otherwise the full string is looked up first (the map
    has keys like ``gemini/gemini-2.5-flash`` and ``groq/...``), then, for
    ``provider/name``, the bare ``name`` if its entry is for that provider (``gpt-4o-mini``
    for ``openai/gpt-4o-mini``). Keys match case-insensitively. A missing per-token price
    in a found entry counts as 0, as LiteLLM counts it."""
    if is_fake(model):
        return ZERO
    entry = _entry(model)
    if entry is None and "/" in model:
        provider, name = model.split("/", 1)
        bare = _entry(name)
        entry = bare if bare is not None and _serves(bare, provider) else None
    if entry is None:
        return None
    return Price(
        _per_token(entry.get("input_cost_per_token")), _per_token(entry.get("output_cost_per_token"))
    )


def _per_token(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def estimate_tokens(text: str) -> int:
    """A token count estimate: ``ceil(len(text) / 4)`` characters per token. No tokenizer is
    downloaded or loaded; for English prose this is typically within ±25% of OpenAI's."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for that many tokens at `model`'s price (see `price`); None when it is unknown."""
    known = price(model)
    if known is None:
        return None
    return prompt_tokens * known.input + completion_tokens * known.output
