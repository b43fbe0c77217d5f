"""LLM calls: the transport the scheduler calls (see `runtime.llm.transport`).

Importing this package is cheap: LiteLLM is imported on the first call only."""

from __future__ import annotations

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
    "Completion",
    "CompletionRequest",
    "ErrorKind",
    "LiteLLMTransport",
    "Transport",
    "TransportError",
    "load_litellm",
]
