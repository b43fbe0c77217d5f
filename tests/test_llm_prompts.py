"""Occurrence indexes and keys of LLM requests (runtime.llm.prompts)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.cache import request_key
from runtime.llm.prompts import ColumnRequests, Occurrences, derived_seed

DIGESTS = st.one_of(st.integers(0, 12), st.integers(0, 2**64 - 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(DIGESTS, max_size=40), max_size=6))
def test_occurrences_count_earlier_equal_digests_across_batches(batches: list[list[int]]) -> None:
    seen = Occurrences()
    counts: dict[int, int] = {}
    for batch in batches:
        expected = []
        for digest in batch:
            expected.append(counts.get(digest, 0))
            counts[digest] = counts.get(digest, 0) + 1
        assert seen.occurrences(batch) == expected
    assert len(seen) == len(counts)


def requests(seed: int = 7) -> ColumnRequests:
    return ColumnRequests("openai/gpt-4o-mini", {"temperature": 0.5}, None, seed)


def user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


def test_keys_are_request_keys_with_the_occurrence_and_the_spec_seed() -> None:
    keys = requests().keys([user("a"), None, user("a"), user("b")])
    assert keys[1] is None
    params = {"temperature": 0.5, "seed": 7}
    for keyed, (text, occurrence) in zip(
        [keys[0], keys[2], keys[3]], [("a", 0), ("a", 1), ("b", 0)], strict=True
    ):
        assert keyed == (
            request_key(
                model="openai/gpt-4o-mini", messages=user(text), params=params, output_schema=None,
                occurrence=occurrence,
            ),
            occurrence,
        )  # fmt: skip


def test_keys_do_not_depend_on_how_rows_are_split() -> None:
    rows = [user(t) for t in "abacabbca"]
    whole = requests().keys(rows)
    split = requests()
    assert split.keys(rows[:4]) + split.keys(rows[4:]) == whole


def test_each_occurrence_sends_its_own_seed_unless_the_spec_sets_one() -> None:
    own = requests()
    assert own.sent_params(0) == {"temperature": 0.5, "seed": derived_seed(7, 0)}
    assert derived_seed(7, 0) != derived_seed(7, 1) and 0 <= derived_seed(7, 1) < 2**31
    fixed = ColumnRequests("m/x", {"seed": 3}, None, 7)
    assert fixed.sent_params(5) == {"seed": 3}
