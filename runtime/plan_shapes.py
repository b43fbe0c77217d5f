"""Plan IR nodes of shaped datasets: the row sources (time index, arrivals, seed file),
series and lookup columns, and the steps that came with them (unnest, validate, sample,
sessionize). Part of the IR of :mod:`runtime.plan`,
which re-exports every name here; import them from there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, TypeAlias

if TYPE_CHECKING:
    from runtime.plan import Column

Scalar: TypeAlias = str | int | float | bool


# --------------------------------------------------------------------------- series parts


@dataclass(frozen=True)
class Trend:
    """``linear``: ``+ rate`` per ``per_us`` of elapsed time since the index start;
    ``exponential``: ``x (1 + rate)`` per ``per_us``."""

    KIND: ClassVar[str] = "trend"
    kind: Literal["linear", "exponential"]
    rate: float
    per_us: int


@dataclass(frozen=True)
class Seasonality:
    """A periodic term of the given ``shape`` with peak-to-mean ``amplitude``; the phase
    is measured on the index's local wall clock, so a 24h period follows local days."""

    KIND: ClassVar[str] = "seasonality"
    period_us: int
    amplitude: float
    phase_us: int = 0
    shape: Literal["sine", "square", "sawtooth"] = "sine"


@dataclass(frozen=True)
class Noise:
    """Additive noise with marginal standard deviation ``sd``: ``normal`` or ``student_t``
    (``df`` degrees of freedom, scaled to ``sd``); ``ar1`` != 0 makes it an AR(1) process
    with that lag-1 autocorrelation (innovations scaled so the marginal sd stays ``sd``)."""

    KIND: ClassVar[str] = "noise"
    dist: Literal["normal", "student_t"] = "normal"
    sd: float = 1.0
    df: float = 0.0
    ar1: float = 0.0


@dataclass(frozen=True)
class Walk:
    """A random walk per entity: ``arithmetic`` adds normal steps (``sd``, ``drift`` per
    step); ``geometric`` multiplies the level by ``exp`` of such steps (log returns)."""

    KIND: ClassVar[str] = "walk"
    kind: Literal["arithmetic", "geometric"] = "arithmetic"
    sd: float = 1.0
    drift: float = 0.0


@dataclass(frozen=True)
class Anomalies:
    """At a fraction ``rate`` of points: ``spike`` adds +-``scale`` x the noise sd (x 1
    without noise) to that point; ``level_shift`` adds it from that point on (the shifts
    accumulate); ``dropout`` makes the point null."""

    KIND: ClassVar[str] = "anomalies"
    kind: Literal["spike", "level_shift", "dropout"]
    rate: float
    scale: float = 0.0


@dataclass(frozen=True)
class SeriesColumn:
    """A value per (entity, timestamp) of the plan's :class:`TimeIndex`:
    ``((base + linear trend) x exponential trend + seasonality) (x exp(walk) | + walk)
    + noise``, then anomalies, clipping and rounding. ``vary`` gives per-entity relative
    variation (sd of a normal factor) of ``base``, ``trend``, ``amplitude``, ``noise`` and
    ``walk``, sorted by name. Values never depend on the chunking: stateful parts (walk,
    AR(1), level shifts) are computed in fixed blocks of the index, keyed by the spec."""

    KIND: ClassVar[str] = "series"
    name: str
    base: float = 0.0
    trend: Trend | None = None
    seasonality: tuple[Seasonality, ...] = ()
    noise: Noise | None = None
    walk: Walk | None = None
    anomalies: tuple[Anomalies, ...] = ()
    vary: tuple[tuple[str, float], ...] = ()
    min: float | None = None
    max: float | None = None
    round: int | None = None
    nulls: float = 0.0


SeedFormat = Literal["csv", "jsonl", "parquet"]


@dataclass(frozen=True)
class LookupColumn:
    """Values of ``column`` of a local seed file, drawn per row (uniformly, or in
    proportion to the numeric column ``weights``). ``path`` is where the compiler found
    the file (absolute); ``digest`` (xxh3-128 of its bytes) is what the plan hash keeps,
    and the runtime refuses a file whose bytes no longer match. ``dtype`` is the Polars
    type of the column (its text form)."""

    KIND: ClassVar[str] = "lookup"
    name: str
    path: str
    digest: str
    format: SeedFormat
    column: str
    dtype: str
    weights: str | None = None
    nulls: float = 0.0


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Unnest:
    """A struct column becomes one column per field (named ``prefix`` + field), in place."""

    KIND: ClassVar[str] = "unnest"
    column: str
    prefix: str = ""


@dataclass(frozen=True)
class Check:
    """What one column's values must satisfy (null passes unless ``not_null``):
    ``min``/``max`` (inclusive), ``regex`` (searched; anchor it for a full match),
    ``values`` (one of), ``min_length``/``max_length`` (strings), ``schema`` (canonical
    JSON Schema; struct columns are validated as JSON objects)."""

    KIND: ClassVar[str] = "check"
    column: str
    min: int | float | None = None
    max: int | float | None = None
    regex: str | None = None
    values: tuple[Scalar, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    not_null: bool = False
    schema: str | None = None


@dataclass(frozen=True)
class Validate:
    """Rows failing any check: ``drop`` them, ``fail`` the run (naming the check, the
    column, how many rows failed and the first failing value), or ``flag`` them in the
    boolean column ``flag`` (true = passed)."""

    KIND: ClassVar[str] = "validate"
    checks: tuple[Check, ...]
    on_fail: Literal["drop", "fail", "flag"] = "fail"
    flag: str = "valid"


@dataclass(frozen=True)
class Sample:
    """A seeded random subset, in the original order: ``n`` rows (blocking: keeps the n
    rows with the smallest keys) or each row with probability ``fraction`` (streaming);
    keys are a function of (seed, step occurrence, original row index)."""

    KIND: ClassVar[str] = "sample"
    n: int | None = None
    fraction: float | None = None


@dataclass(frozen=True)
class Sessionize:
    """Sessions per entity (``by``) over rows in ``time`` order: a new session starts when
    the gap since the entity's previous row exceeds ``gap_us``. ``session`` gets the
    entity's key and its session number ("<key>-<n>", n from 1); ``sequence`` (optional)
    the row's position in its session, from 1. Streaming; keeps one entry per entity."""

    KIND: ClassVar[str] = "sessionize"
    by: str
    time: str
    gap_us: int
    session: str = "session_id"
    sequence: str | None = None


# --------------------------------------------------------------------------- row sources


@dataclass(frozen=True)
class Entity:
    """One entity dimension: ``count`` keys, taken in order from ``values``, or made by
    ``column`` (a sampler column named like the entity) over entity rows 0..count-1, or
    the integers 1..count when both are empty."""

    KIND: ClassVar[str] = "entity"
    name: str
    count: int
    values: tuple[Scalar, ...] = ()
    column: Column | None = None


@dataclass(frozen=True)
class TimeIndex:
    """One row per (timestamp, entity): rows are time-major, so row ``r`` is timestamp
    ``r // E`` of entity combination ``r % E`` (E = product of the counts; the first
    entity varies slowest). Timestamp ``t`` is ``start`` plus ``t`` steps: ``step_us``
    (fixed), ``step_days`` (calendar days on the local wall clock of ``timezone``) or
    ``step_months`` (calendar months, day clipped to the month's end) - exactly one is
    non-zero. ``start`` is microseconds since the epoch (UTC)."""

    KIND: ClassVar[str] = "time_index"
    start: int
    periods: int
    step_us: int = 0
    step_days: int = 0
    step_months: int = 0
    timezone: str = "UTC"
    column: str = "timestamp"
    entities: tuple[Entity, ...] = ()


@dataclass(frozen=True)
class Profile:
    """How an event rate varies over time (a multiplier, normalized by the runtime to
    mean 1 over the window). ``constant``; ``diurnal`` (low at night, high in the
    afternoon, local time); ``weekly`` (diurnal, quieter weekends); ``ramp`` (linear from
    1 to ``height``); ``spike`` (x ``height`` for ``width_us`` around ``at_us``);
    ``points``: piecewise-linear through ``points`` (offset_us, multiplier), offsets from
    the window start, or from local midnight repeating daily when ``daily``."""

    KIND: ClassVar[str] = "profile"
    kind: Literal["constant", "diurnal", "weekly", "ramp", "spike", "points"] = "constant"
    points: tuple[tuple[int, float], ...] = ()
    daily: bool = False
    at_us: int = 0
    width_us: int = 0
    height: float = 1.0


@dataclass(frozen=True)
class Arrivals:
    """One row per event of a non-homogeneous Poisson process on ``[start, end)`` (µs):
    the window is cut into buckets of ``bucket_us``; bucket b gets a Poisson count with
    mean ``rate`` x seconds x profile multiplier, and its events uniform times inside it,
    sorted. ``rate`` is events per second over the whole window (all entities). With
    ``entities``, each event belongs to one entity combination drawn uniformly."""

    KIND: ClassVar[str] = "arrivals"
    rate: float
    start: int
    end: int
    bucket_us: int
    profile: Profile = Profile()
    timezone: str = "UTC"
    column: str = "timestamp"
    entities: tuple[Entity, ...] = ()


@dataclass(frozen=True)
class SeedFile:
    """One row per row of a local file (after ``shuffle`` and ``limit``), its ``columns``
    ((name, Polars dtype text), file order) as fields. ``path`` is absolute and not part
    of the plan hash; ``digest`` (xxh3-128 of the bytes) is. ``rows`` is the file's row
    count when compiled."""

    KIND: ClassVar[str] = "seed_file"
    path: str
    digest: str
    format: SeedFormat
    columns: tuple[tuple[str, str], ...]
    rows: int
    shuffle: bool = False
    limit: int | None = None
