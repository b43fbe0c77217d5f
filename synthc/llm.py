"""The front end of LLM runs: options from flags, the live progress, the end summary, the
``--dry-run`` report and ``synthc plan``'s call and cost estimate.

Nothing here imports LiteLLM: estimates read LiteLLM's bundled price list as a file
(:mod:`runtime.llm.prices`), and a run imports LiteLLM only when a cell misses the cache.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from synthc.errors import SynthcError, UsageError

if TYPE_CHECKING:
    from runtime.llm.outcome import ColumnTally, LLMOptions, LLMSummary
    from runtime.llm.run import LLMRun
    from runtime.plan import Plan

# Output tokens assumed per call when the params set no max_tokens (estimates only).
ASSUMED_OUTPUT_TOKENS = 256


def parse_model_overrides(pairs: Sequence[str], plan: Plan) -> dict[str, str]:
    """``["writer=openai/gpt-4o"]`` → ``{"writer": "openai/gpt-4o"}``; UsageError for a
    pair without ``=``, an empty side, or an alias the spec does not declare."""
    overrides: dict[str, str] = {}
    known = [m.name for m in plan.models]
    for pair in pairs:
        alias, sep, model = pair.partition("=")
        alias, model = alias.strip(), model.strip()
        if not sep or not alias or not model:
            raise UsageError(f"--model takes ALIAS=MODEL (e.g. writer=openai/gpt-4o-mini), not {pair!r}")
        if alias not in known:
            declared = ", ".join(known) if known else "none"
            raise UsageError(
                f"--model {pair}: the spec declares no model alias {alias!r} (declared: {declared})"
            )
        overrides[alias] = model
    return overrides


def options(
    *,
    cache: str | os.PathLike[str] | None = None,
    no_cache: bool = False,
    max_cost: float | None = None,
    max_failures: str | int = 0,
    dry_run: bool = False,
    replay: Sequence[str | os.PathLike[str]] = (),
    offline: bool = False,
) -> LLMOptions:
    """LLM options from the command line / API arguments; UsageError when one is wrong."""
    from runtime.llm.outcome import FailurePolicy, LLMOptions, default_cache

    if max_cost is not None and not max_cost >= 0:
        raise UsageError(f"--max-cost must be a number of USD ≥ 0, not {max_cost}")
    try:
        policy = FailurePolicy.parse(max_failures)
    except ValueError as exc:
        raise UsageError(f"--max-failures: {exc}") from None
    path = None if no_cache else Path(cache) if cache is not None else default_cache()
    packs = tuple(Path(p) for p in replay)
    return LLMOptions(
        cache=path, max_cost=max_cost, max_failures=policy, dry_run=dry_run, replay=packs, offline=offline
    )


@contextlib.contextmanager
def opened(plan: Plan, llm_options: LLMOptions) -> Iterator[LLMRun | None]:
    """The run's LLM side (None for a plan without LLM columns), closed afterwards.
    A cache that cannot be opened is a UsageError naming the file."""
    if not plan.uses_models:
        yield None
        return
    from runtime.cache import CacheError
    from runtime.execute import sample_column
    from runtime.llm.run import LLMRun

    try:
        run = LLMRun(plan, llm_options, sample_column)
    except CacheError as exc:
        raise SynthcError(str(exc)) from None
    with run:
        yield run


# --------------------------------------------------------------------------- labels


def model_label(model: str) -> str:
    """The model string, marked when it is an offline fake model."""
    from runtime.llm.fake import FAKE_LABEL, is_fake

    return f"{model} {FAKE_LABEL}" if is_fake(model) else model


def _alias_text(plan: Plan, alias: str) -> str:
    model = plan.model(alias)
    text = f"{alias} → {model_label(model.model)}"
    if model.fallbacks:
        text += f" (fallbacks: {', '.join(model_label(m) for m in model.fallbacks)})"
    return text


# --------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class ColumnEstimate:
    column: str
    alias: str
    model: str
    cells: int  # rows that make a request (after `nulls`)
    cached: int
    calls: int  # cells not in the cache (including those whose inputs are not known yet)
    prompt_tokens: int  # estimated, for the calls
    completion_tokens: int  # estimated, for the calls
    cost: float | None  # USD, None when the model has no price


def estimate(plan: Plan, llm_options: LLMOptions) -> tuple[list[ColumnEstimate], dict[str, ColumnTally]]:
    """Render every prompt (no call), look each up in the cache (read only), and estimate
    the calls left, their tokens and cost per LLM column; also the tallies (with the
    first rendered prompts of each column)."""
    from dataclasses import replace

    from runtime.execute import generate

    dry = replace(llm_options, dry_run=True)
    with opened(plan, dry) as run:
        if run is None:
            return [], {}
        for _ in generate(plan, llm=run):
            pass
        estimates = [_estimate(plan, name, tally) for name, tally in run.tallies.items()]
        if plan.llm_source is not None and run.source_tally is not None:
            estimates.insert(0, _source_estimate(plan, run.source_tally))
        return estimates, dict(run.tallies)


def _source_estimate(plan: Plan, tally: ColumnTally) -> ColumnEstimate:
    """The LLM source's calls: the ones its rows need that the cache lacks (records that
    turn out to be duplicates may need a few more)."""
    import json

    from runtime.llm import prices

    source = plan.llm_source
    assert source is not None
    model = plan.model(source.model)
    per_call_out = int(json.loads(model.params).get("max_tokens") or ASSUMED_OUTPUT_TOKENS * 4)
    prompt_tokens = prices.estimate_tokens("x" * tally.prompt_chars) if tally.prompt_chars else 0
    completion_tokens = per_call_out * tally.would_call
    return ColumnEstimate(
        column="(source)", alias=source.model, model=model.model, cells=tally.cells,
        cached=tally.cells - tally.would_call, calls=tally.would_call, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=prices.estimate_cost(model.model, prompt_tokens, completion_tokens),
    )  # fmt: skip


def _estimate(plan: Plan, name: str, tally: ColumnTally) -> ColumnEstimate:
    from runtime.llm import prices
    from runtime.plan import LLMColumn

    col = plan.column(name)
    assert isinstance(col, LLMColumn)
    model = plan.model(col.model)
    per_call_out = _output_tokens(plan, name)
    # Cells whose inputs are answers not cached yet cannot be rendered: assume the
    # average of the rendered ones.
    if tally.rendered:
        prompt_tokens = prices.estimate_tokens("x" * tally.prompt_chars) * tally.would_call // tally.rendered
    else:  # the template's text plus the answers it reads (at their assumed length)
        per_call = prices.estimate_tokens(col.prompt + (col.system or ""))
        per_call += sum(
            _output_tokens(plan, dep) for dep in col.inputs if isinstance(plan.column(dep), LLMColumn)
        )
        prompt_tokens = per_call * tally.would_call
    completion_tokens = per_call_out * tally.would_call
    cost = prices.estimate_cost(model.model, prompt_tokens, completion_tokens)
    return ColumnEstimate(
        column=name, alias=col.model, model=model.model, cells=tally.cells - tally.nulls,
        cached=tally.cached + tally.replayed, calls=tally.would_call, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, cost=cost,
    )  # fmt: skip


def _output_tokens(plan: Plan, name: str) -> int:
    """Output tokens assumed per call of LLM column ``name``: its max_tokens, else a default."""
    import json

    from runtime.plan import LLMColumn

    col = plan.column(name)
    assert isinstance(col, LLMColumn)
    params = {**json.loads(plan.model(col.model).params), **json.loads(col.params)}
    return int(params.get("max_tokens") or ASSUMED_OUTPUT_TOKENS)


def estimate_lines(plan: Plan, estimates: Sequence[ColumnEstimate]) -> list[str]:
    """The ``llm`` section of ``synthc plan``."""
    if not estimates:
        return []
    lines = ["llm calls (estimate; tokens ≈ characters / 4)"]
    total_cost: float | None = 0.0
    for e in estimates:
        cost = "unknown price" if e.cost is None else f"${e.cost:,.4f}"
        lines.append(
            f"  {e.column}  {_alias_text(plan, e.alias)}: {e.cells:,} cells, {e.cached:,} cached, "
            f"{e.calls:,} to call, ~{e.prompt_tokens:,} in + ~{e.completion_tokens:,} out tokens, {cost}"
        )
        total_cost = None if e.cost is None or total_cost is None else total_cost + e.cost
    calls = sum(e.calls for e in estimates)
    total = "unknown (a model has no price)" if total_cost is None else f"${total_cost:,.4f}"
    lines.append(f"  total  {calls:,} calls, {total}")
    return lines


# --------------------------------------------------------------------------- after a run


def summary_lines(plan: Plan, run: LLMSummary) -> list[str]:
    """What the run's LLM cells did: per column, then totals and where failures went."""
    stats, errors_file = run.stats, run.errors_path
    lines = []
    source = getattr(run, "source_tally", None)
    if source is not None and plan.llm_source is not None:
        lines.append(
            f"  (source) ({_alias_text(plan, plan.llm_source.model)}): {source.cached:,} calls cached, "
            f"{source.called:,} called"
        )
    for name, tally in run.tallies.items():
        col = plan.column(name)
        alias = getattr(col, "model", "")
        replayed = f"{tally.replayed:,} from packs, " if tally.replayed else ""
        text = f"  {name} ({_alias_text(plan, alias)}): {replayed}{tally.cached:,} cached, {tally.called:,} called"
        if tally.failed:
            text += f", {tally.failed:,} failed"
        lines.append(text)
    tokens = stats.prompt_tokens + stats.completion_tokens
    totals = f"  {stats.calls:,} calls ({stats.retries:,} retries, {stats.fallbacks:,} fallbacks"
    totals += f", {stats.repairs:,} repairs), {tokens:,} tokens, ${stats.cost:,.4f}"
    if stats.unknown_cost_calls:
        totals += f" (+{stats.unknown_cost_calls:,} calls of unpriced models)"
    lines.append(totals)
    if run.errors:
        allowed = run.allowed_failures
        where = f": see {errors_file}" if errors_file is not None else ""
        noun = "cell" if len(run.errors) == 1 else "cells"
        lines.append(f"  {len(run.errors):,} failed {noun} (allowed: {allowed:,}){where}")
        kinds: dict[str, int] = {}
        for error in run.errors:
            kinds[error.kind] = kinds.get(error.kind, 0) + 1
        lines.append("  by kind: " + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())))
        first = run.errors[0]
        lines.append(f"  first: column `{first.column}`, row {first.row}: {first.message}")
    return ["llm", *lines]


def dry_run_lines(
    plan: Plan,
    estimates: Sequence[ColumnEstimate],
    run_tallies: Mapping[str, ColumnTally],
    cache: Path | None,
) -> list[str]:
    """``--dry-run``: the estimate, then the first rendered prompts of each column."""
    lines = [
        f"cache {cache if cache is not None else '(none: --no-cache)'}",
        *estimate_lines(plan, estimates),
    ]
    for name, tally in run_tallies.items():
        for i, messages in enumerate(tally.samples, 1):
            lines.append(f"prompt {name} #{i}")
            for message in messages:
                lines.append(f"  [{message['role']}] {message['content']}")
    return lines


def live_text(run: LLMRun) -> str:
    """One line of live counters for the progress bar."""
    stats = run.stats
    tokens = stats.prompt_tokens + stats.completion_tokens
    text = f"{stats.in_flight} in flight · {stats.cache_hits:,} cached · {stats.answered:,} answered"
    if stats.retries:
        text += f" · {stats.retries:,} retries"
    if run.errors:
        text += f" · {len(run.errors):,} failed"
    return text + f" · {tokens:,} tokens · ${stats.cost:,.4f}"


# --------------------------------------------------------------------------- synthc cache


def cache_stats_lines(path: Path) -> list[str]:
    """``synthc cache stats``: entries, size, models, tokens and what they cost."""
    from runtime.cache import Cache, CacheError

    if not path.exists():
        return [f"{path}: no cache yet (it is made by the first run that calls a model)"]
    try:
        with Cache.open(path, readonly=True) as cache:
            stats = cache.stats()
    except CacheError as exc:
        raise SynthcError(str(exc)) from None
    lines = [
        f"cache    {stats.path}",
        f"entries  {stats.entries:,}",
        f"size     {stats.size_bytes / 1e6:,.1f} MB",
        f"tokens   {stats.prompt_tokens:,} in + {stats.completion_tokens:,} out",
        f"cost     ${stats.cost:,.4f} (what these answers cost when they were made)",
    ]
    for model, count in stats.models:
        lines.append(f"  {model_label(model)}: {count:,}")
    return lines


def cache_clear(path: Path) -> str:
    """``synthc cache clear``: remove every entry; the file stays a valid, empty cache."""
    from runtime.cache import Cache, CacheError

    if not path.exists():
        return f"{path}: no cache, nothing to clear"
    try:
        with Cache.open(path) as cache:
            removed = cache.clear()
    except CacheError as exc:
        raise SynthcError(str(exc)) from None
    return f"removed {removed:,} entries from {path}"


def cache_merge(target: Path, sources: Sequence[Path]) -> str:
    """``synthc cache merge``: copy the entries of ``sources`` that ``target`` lacks into
    it (created when missing); the sources are only read. Keys are content addresses, so
    caches of shards, machines or colleagues merge without conflicts."""
    from runtime.cache import Cache, CacheError

    lines = []
    try:
        with Cache.open(target) as into:
            for source in sources:
                if source.resolve() == target.resolve():
                    raise SynthcError(f"{source} is the target cache: name other caches to merge into it")
                if not source.exists():
                    raise SynthcError(f"no cache at {source}")
                with Cache.open(source, readonly=True) as other:
                    read, written = into.merge_from(other)
                lines.append(f"merged {source} into {target}: {read:,} entries, {written:,} new")
    except CacheError as exc:
        raise SynthcError(str(exc)) from None
    return "\n".join(lines)
