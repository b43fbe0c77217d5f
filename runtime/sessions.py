"""The ``sessionize`` step: number each entity's sessions, split by idle gaps.

Rows stream through in their order; each entity's rows must come in non-decreasing
time. A row starts a new session when it is the entity's first or when the time since
the entity's previous row exceeds the gap. Per chunk the work is vectorized (a stable
sort by entity, differences, cumulative sums); between chunks one entry per entity is
carried (last time, session number, position in the session).

Guarantees: the added columns depend only on the rows and their order, never on the
chunking; the rows keep their order. Rows with a null entity or time get null session
and sequence and do not touch any entity's state.
"""

from __future__ import annotations

import polars as pl

from runtime.errors import ExecutionError
from runtime.plan import Sessionize

_DAY_US = 86_400_000_000
# Working column names (prefixed: never a user column).
_K, _T, _I, _NEW, _SESS, _POS = "__k", "__t", "__i", "__new", "__sess", "__pos"
_LAST, _BASE, _CARRY, _D = "__last", "__base", "__carry", "__d"
_R, _FIRST, _START = "__r", "__first", "__start"


class Sessions:
    """The running state of one sessionize step: feed it the frames in order."""

    def __init__(self, step: Sessionize, where: str) -> None:
        self.step = step
        self.where = where  # the step as the spec writes it, for errors
        # one row per entity seen: its key, last time, session number, position
        self.state: pl.DataFrame | None = None

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        """``df`` with the session (and sequence) columns appended, state carried on."""
        step = self.step
        times, gap = self._times(df.get_column(step.time))
        rows = pl.DataFrame({_K: df.get_column(step.by), _T: times}).with_row_index(_I)
        rows = rows.filter(pl.col(_K).is_not_null() & pl.col(_T).is_not_null())
        numbered = self._number(rows, gap) if rows.height else None
        if numbered is None:
            session = pl.repeat(None, df.height, dtype=pl.String, eager=True)
            position = pl.repeat(None, df.height, dtype=pl.Int64, eager=True)
        else:
            every = pl.DataFrame({_I: pl.int_range(df.height, dtype=pl.get_index_type(), eager=True)})
            placed = every.join(numbered, on=_I, how="left", maintain_order="left")
            session, position = placed.get_column(_SESS), placed.get_column(_POS)
        added = [session.alias(step.session)]
        if step.sequence is not None:
            added.append(position.alias(step.sequence))
        return df.hstack(added)

    def _number(self, rows: pl.DataFrame, gap: int) -> pl.DataFrame:
        """Per row (index ``_I``): its session text and position; updates the state.

        Rows are sorted by entity (stably), so every per-entity quantity is a global
        running one restarted where the entity changes: no window functions needed."""
        by_entity = rows.sort(_K, maintain_order=True).with_row_index(_R)
        if self.state is not None:
            by_entity = by_entity.join(self.state, on=_K, how="left", maintain_order="left")
        else:
            by_entity = by_entity.with_columns(
                pl.lit(None, dtype=pl.Int64).alias(c) for c in (_LAST, _BASE, _CARRY)
            )
        first = pl.col(_K).ne_missing(pl.col(_K).shift(1))
        previous = pl.when(first).then(pl.col(_LAST)).otherwise(pl.col(_T).shift(1))
        by_entity = by_entity.with_columns(first.alias(_FIRST), (pl.col(_T) - previous).alias(_D))
        self._check_order(by_entity)
        new = pl.col(_D).is_null() | (pl.col(_D) > gap)
        row = pl.col(_R).cast(pl.Int64)
        numbered = by_entity.with_columns(new.alias(_NEW)).with_columns(
            _restarted_sum(pl.col(_NEW).cast(pl.Int64)).alias(_SESS),
            # where this entity's current session started in the chunk; -1: before it
            pl.when(_NEW).then(row).when(_FIRST).then(-1).otherwise(None).forward_fill().alias(_START),
        )
        in_chunk = row - pl.when(_FIRST).then(row).otherwise(None).forward_fill()
        numbered = numbered.with_columns(
            (pl.col(_BASE).fill_null(0) + pl.col(_SESS)).alias(_SESS),
            pl.when(pl.col(_START) < 0)
            .then(pl.col(_CARRY) + in_chunk + 1)
            .otherwise(row - pl.col(_START) + 1)
            .alias(_POS),
        )
        self._carry(numbered)
        text = pl.col(_K).cast(pl.String) + pl.lit("-") + pl.col(_SESS).cast(pl.String)
        return numbered.select(_I, text.alias(_SESS), _POS)

    def _carry(self, numbered: pl.DataFrame) -> None:
        """Keep each entity's last time, session number and position for the next chunk."""
        last = pl.col(_K).ne_missing(pl.col(_K).shift(-1))
        latest = numbered.filter(last).select(
            _K, pl.col(_T).alias(_LAST), pl.col(_SESS).alias(_BASE), pl.col(_POS).alias(_CARRY)
        )
        if self.state is None:
            self.state = latest
        else:
            self.state = pl.concat([self.state.join(latest, on=_K, how="anti"), latest], how="vertical")

    def _check_order(self, by_entity: pl.DataFrame) -> None:
        back = by_entity.filter(pl.col(_D) < 0)
        if back.height:
            key = back.get_column(_K)[0]
            raise ExecutionError(
                f"step `{self.where}` failed: sessionize needs rows in time order: sort by "
                f"{self.step.time} first (`{self.step.time}` goes back in time for {self.step.by} = {key!r})"
            )

    def _times(self, series: pl.Series) -> tuple[pl.Series, int]:
        """Times as Int64 in one unit, and the gap in that unit: microseconds, or
        nanoseconds for a nanosecond column. Integer columns are taken as microseconds."""
        gap = self.step.gap_us
        dtype = series.dtype
        if isinstance(dtype, pl.Datetime):
            physical = series.to_physical()
            if dtype.time_unit == "ns":
                return physical, gap * 1000
            return (physical * 1000 if dtype.time_unit == "ms" else physical), gap
        if dtype == pl.Date:
            return series.to_physical().cast(pl.Int64) * _DAY_US, gap
        if dtype.is_integer():
            return series.cast(pl.Int64), gap
        raise ExecutionError(
            f"step `{self.where}` failed: column `{self.step.time}` is {dtype}, not a date, datetime or integer"
        )


def _restarted_sum(values: pl.Expr) -> pl.Expr:
    """The running sum of ``values`` over rows sorted by entity, restarted at each
    entity's first row (column ``_FIRST``)."""
    running = values.cum_sum()
    before = pl.when(_FIRST).then(running - values).otherwise(None).forward_fill()
    return running - before
