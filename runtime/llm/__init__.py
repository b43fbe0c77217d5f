"""LLM calls: the transport the scheduler calls (see `runtime.llm.transport`).

- `runtime.llm.transport`: one chat completion through LiteLLM (`LiteLLMTransport`).
- `runtime.llm.fake`: offline ``fake/...`` models served through LiteLLM (`is_fake`, `FAKE_LABEL`).
- `runtime.llm.prices`: cost estimates from LiteLLM's bundled cost map, without LiteLLM.
- `runtime.llm.structured`: JSON Schema output: parsing, validation, column types
  (imported on its own: it loads Polars and jsonschema).

Importing this package is cheap: LiteLLM is imported on the first call only."""

from __future__ import annotations

from runtime.llm.fake import FAKE_LABEL, is_fake
from runtime.llm.prices import Price, estimate_cost, estimate_tokens, price
from runtime.llm.transport import (
    Completion,
    CompletionRequest,
    ErrorKind,
    LiteLLMTransport,
    Transport,
    TransportError,
    load_litellm,
)

__all__ = [
    "FAKE_LABEL",
    "Completion",
    "CompletionRequest",
    "ErrorKind",
    "LiteLLMTransport",
    "Price",
    "Transport",
    "TransportError",
    "estimate_cost",
    "estimate_tokens",
    "is_fake",
    "load_litellm",
    "price",
]
