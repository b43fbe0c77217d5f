"""Cost estimates from LiteLLM's bundled cost map, read without importing LiteLLM."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.llm import prices
from runtime.llm.prices import CostMapError, Price, estimate_cost, estimate_tokens, price

ROOT = Path(__file__).resolve().parents[1]


def bundled() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    entries: dict[str, Any] = json.loads(path.read_text())
    return entries


def test_known_models_are_priced_from_the_bundled_map() -> None:
    entry = bundled()["gpt-4o-mini"]
    want = Price(entry["input_cost_per_token"], entry["output_cost_per_token"])
    assert want.input > 0 and want.output > 0
    for model in ("gpt-4o-mini", "openai/gpt-4o-mini", "openai/GPT-4o-Mini"):
        assert price(model) == want, model
    assert prices.cost_map_path().name == "model_prices_and_context_window_backup.json"


def test_provider_prefixed_keys() -> None:
    entries = bundled()
    entry = entries["gemini/gemini-2.5-flash"]
    assert price("gemini/gemini-2.5-flash") == Price(
        entry["input_cost_per_token"], entry["output_cost_per_token"]
    )
    entry = entries["groq/openai/gpt-oss-120b"]  # a provider prefix and a name with a slash
    assert price("groq/openai/gpt-oss-120b") == Price(
        entry["input_cost_per_token"], entry["output_cost_per_token"]
    )


@pytest.mark.parametrize(
    "model",
    ["nosuch/model", "not-a-model", "anthropic/gpt-4o-mini", "openrouter/no/such", "", "sample_spec"],
)
def test_unknown_models_have_no_price(model: str) -> None:
    assert price(model) is None
    assert estimate_cost(model, 1000, 1000) is None


def test_fake_models_are_free() -> None:
    assert price("fake/writer") == Price(0.0, 0.0)
    assert estimate_cost("fake/writer", 10**6, 10**6) == 0.0


def test_estimate_cost_arithmetic() -> None:
    known = price("openai/gpt-4o-mini")
    assert known is not None
    assert estimate_cost("openai/gpt-4o-mini", 1200, 300) == pytest.approx(
        1200 * known.input + 300 * known.output
    )
    assert estimate_cost("openai/gpt-4o-mini", 0, 0) == 0.0


def test_estimate_tokens_is_characters_over_four() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde", "x" * 400)] == [0, 1, 1, 2, 100]
    assert estimate_tokens("héllo wörld ✓") == 4  # characters, not bytes


COMPARED = [
    "gpt-4o-mini",
    "openai/gpt-4o-mini",
    "openai/gpt-4o",
    "anthropic/claude-haiku-4-5",
    "claude-sonnet-4-5",
    "gemini/gemini-2.5-flash",
    "mistral/mistral-small-latest",
    "groq/openai/gpt-oss-120b",
    "azure/gpt-4o-mini",
    "deepseek/deepseek-chat",
    "bedrock/anthropic.claude-haiku-4-5-20251001-v1:0",
]


@pytest.mark.slow  # imports LiteLLM (about 3 s) when no earlier test did
def test_prices_agree_with_litellm() -> None:
    from runtime.llm.transport import load_litellm

    litellm: Any = load_litellm()
    for model in COMPARED:
        prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=1000, completion_tokens=250)
        assert estimate_cost(model, 1000, 250) == pytest.approx(prompt + completion, rel=1e-12), model


def test_prices_never_import_litellm() -> None:
    code = (
        "import sys; from runtime.llm import prices; "
        "p = prices.price('openai/gpt-4o-mini'); c = prices.estimate_cost('gemini/gemini-2.5-flash', 10, 10); "
        "print(p is not None and c is not None, 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    prices.cost_map_path.cache_clear()
    prices._cost_map.cache_clear()
    yield
    prices.cost_map_path.cache_clear()
    prices._cost_map.cache_clear()


def test_missing_litellm_is_a_clear_error(fresh_caches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CostMapError, match="LiteLLM is not installed"):
        price("openai/gpt-4o-mini")
    assert price("fake/x") == Price(0.0, 0.0)  # needs no map


def test_unreadable_map_is_a_clear_error(
    fresh_caches: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "model_prices_and_context_window_backup.json"
    broken.write_text("{not json")
    monkeypatch.setattr(prices, "cost_map_path", lambda: broken)
    with pytest.raises(CostMapError, match="cannot read LiteLLM's cost map"):
        price("openai/gpt-4o-mini")
