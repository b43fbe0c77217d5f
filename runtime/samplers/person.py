"""``person`` columns: coherent fake people from hand-written per-locale data.

Every field of a person is drawn from the *identity* stream ``"\\x01person\\x00{group}"``
(not the column's), so all person columns of one group describe the same person in a
row: ``first_name``, ``last_name``, ``name`` and ``email`` agree, and so do ``city`` and
``street_address``. Emails are ASCII (names folded: ``Jürgen Groß`` -> ``jurgen.gross``;
Japanese names by their romaji) at the reserved domains example.com/.net/.org; phone
numbers use ranges set aside for fiction (US 555-01xx, the German and French regulators'
film ranges) or unassigned blocks (ja_JP 0000).

All fields are vectorized: NumPy index draws, then Polars gathers and ``concat_str``.
"""

from __future__ import annotations

import json
import string
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from runtime.plan import PersonColumn
from runtime.samplers.arrow import fixed_width_strings
from runtime.samplers.base import I64, Chunk, Stream, uniform_ints

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
LOCALES = ("en_US", "de_DE", "fr_FR", "ja_JP")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")

# Draw indices of the identity stream (fixed: changing one changes data).
_FIRST, _LAST, _EMAIL_STYLE, _EMAIL_NUMBER, _EMAIL_DOMAIN = 0, 1, 2, 3, 4
_PHONE_FORMAT, _PHONE_DIGITS = 10, 11
_COMPANY_FORMAT, _COMPANY_SUFFIX, _COMPANY_LAST = 20, 21, 22  # 22.. one per {lastN}
_CITY, _STREET, _ADDRESS_NUMBER = 30, 31, 32  # 32.. one per number placeholder

# Email local-part styles: (first initial only, separator, with last name, with number).
_EMAIL_STYLES = (
    (False, ".", True, False),  # jane.doe
    (False, "", True, False),  # janedoe
    (True, ".", True, False),  # j.doe
    (False, "_", True, False),  # jane_doe
    (False, ".", True, True),  # jane.doe42
    (False, "", False, True),  # jane42
    (True, "", True, True),  # jdoe7
)
_SEPARATORS = (".", "", "_")
_EMAIL_NUMBERS = 99  # numbered styles append 1..99
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th"})


# German spells umlauts out when it has to drop them (Jörg -> joerg, not jorg).
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_LOCALE_FOLDS = {"de_DE": _UMLAUTS}


def ascii_fold(text: str, locale: str = "") -> str:
    """Lowercase ASCII letters and digits only: accents stripped (German umlauts spelled
    out for de_DE), ß -> ss, and spaces, hyphens and apostrophes dropped ("Le Gall" ->
    "legall", "O'Brien" -> "obrien")."""
    lowered = text.lower().translate(_LOCALE_FOLDS.get(locale, {}))
    decomposed = unicodedata.normalize("NFKD", lowered.translate(_FOLD))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum())


@dataclass(frozen=True)
class Locale:
    """One locale's data, as Polars Series ready to gather from."""

    country: str
    last_first: bool
    first: pl.Series
    last: pl.Series
    email_first: pl.Series  # folded first names, then their initials
    email_rest: pl.Series  # separator + folded last name for each separator, then ""
    email_tail: pl.Series  # ("" | "1".."99") + "@" + domain
    cities: pl.Series
    streets: pl.Series
    address: tuple[tuple[str, str | None], ...]  # (literal, placeholder) pairs
    address_numbers: tuple[tuple[str, int, int], ...]
    companies: tuple[tuple[tuple[str, str | None], ...], ...]
    company_suffixes: pl.Series
    phones: tuple[str, ...]


def _names(entries: list[Any], locale: str) -> tuple[list[str], list[str]]:
    """(display names, folded ASCII names); entries are "Name" or ["名前", "romaji"]."""
    display = [e if isinstance(e, str) else e[0] for e in entries]
    folded = [ascii_fold(e if isinstance(e, str) else e[1], locale) for e in entries]
    return display, folded


def _pattern(fmt: str) -> tuple[tuple[str, str | None], ...]:
    return tuple((literal, name) for literal, name, _, _ in string.Formatter().parse(fmt))


@cache
def locale(name: str) -> Locale:
    """The data of locale ``name`` (loaded once per process)."""
    if name not in LOCALES:
        raise ValueError(f"unknown person locale {name!r} (known: {', '.join(LOCALES)})")
    data = json.loads((DATA_DIR / f"person_{name}.json").read_text(encoding="utf-8"))
    first, first_ascii = _names(data["first_names"], name)
    last, last_ascii = _names(data["last_names"], name)
    rest = [sep + n for sep in _SEPARATORS for n in last_ascii] + [""]
    tails = [f"{n or ''}@{d}" for n in [None, *range(1, _EMAIL_NUMBERS + 1)] for d in EMAIL_DOMAINS]
    return Locale(
        country=data["country"],
        last_first=data["name_order"] == "last_first",
        first=pl.Series(first, dtype=pl.String),
        last=pl.Series(last, dtype=pl.String),
        email_first=pl.Series(first_ascii + [n[:1] for n in first_ascii], dtype=pl.String),
        email_rest=pl.Series(rest, dtype=pl.String),
        email_tail=pl.Series(tails, dtype=pl.String),
        cities=pl.Series(data["cities"], dtype=pl.String),
        streets=pl.Series(data["streets"], dtype=pl.String),
        address=_pattern(data["street_address"]),
        address_numbers=tuple((k, lo, hi) for k, (lo, hi) in data["address_numbers"].items()),
        companies=tuple(_pattern(f) for f in data["company_formats"]),
        company_suffixes=pl.Series(data["company_suffixes"], dtype=pl.String),
        phones=tuple(data["phone_formats"]),
    )


def identity_stream(group: str, chunk: Chunk) -> Stream:
    return Stream.of(f"\x01person\x00{group}", chunk)


def sample_person(col: PersonColumn, chunk: Chunk) -> pl.Series:
    """One field of the row's person (see the module docstring); always String."""
    data, s = locale(col.locale), identity_stream(col.group, chunk)
    match col.field:
        case "first_name":
            out = data.first.gather(_index(s, _FIRST, data.first.len()))
        case "last_name":
            out = data.last.gather(_index(s, _LAST, data.last.len()))
        case "name":
            out = _full_name(data, s)
        case "email":
            out = _email(data, s)
        case "phone":
            out = _phone(data, s)
        case "company":
            out = _company(data, s)
        case "city":
            out = data.cities.gather(_index(s, _CITY, data.cities.len()))
        case "country":
            out = pl.Series([data.country], dtype=pl.String).gather(np.zeros(s.size, dtype=np.int64))
        case "street_address":
            out = _street_address(data, s)
    return out.alias(col.name)


def _index(s: Stream, draw: int, size: int) -> I64:
    return uniform_ints(s.bits(draw), 0, size - 1)


def _concat(parts: list[pl.Series | str]) -> pl.Series:
    exprs = [pl.lit(p, dtype=pl.String) if isinstance(p, str) else pl.lit(p) for p in parts]
    return pl.select(pl.concat_str(exprs)).to_series()


def _full_name(data: Locale, s: Stream) -> pl.Series:
    first = data.first.gather(_index(s, _FIRST, data.first.len()))
    last = data.last.gather(_index(s, _LAST, data.last.len()))
    return _concat([last, " ", first] if data.last_first else [first, " ", last])


def _email(data: Locale, s: Stream) -> pl.Series:
    """``{first | initial}{sep}{last | ""}{number | ""}@{domain}`` by style."""
    n_first, n_last = data.first.len(), data.last.len()
    style = _index(s, _EMAIL_STYLE, len(_EMAIL_STYLES))
    initial, sep, with_last, numbered = (np.array(column) for column in zip(*_EMAIL_STYLES, strict=True))
    sep_index = np.array([_SEPARATORS.index(x) for x in sep])
    first = _index(s, _FIRST, n_first) + n_first * initial[style]
    rest = np.where(with_last[style], sep_index[style] * n_last + _index(s, _LAST, n_last), 3 * n_last)
    number = np.where(numbered[style], 1 + _index(s, _EMAIL_NUMBER, _EMAIL_NUMBERS), 0)
    tail = number * len(EMAIL_DOMAINS) + _index(s, _EMAIL_DOMAIN, len(EMAIL_DOMAINS))
    return _concat(
        [data.email_first.gather(first), data.email_rest.gather(rest), data.email_tail.gather(tail)]
    )


def _phone(data: Locale, s: Stream) -> pl.Series:
    """A format picked per row; ``#`` is any digit, ``%`` a digit 1-9. Each format has a
    fixed width, so rows are built as bytes in NumPy."""
    choice = _index(s, _PHONE_FORMAT, len(data.phones))
    digits = s.bits(_PHONE_DIGITS)
    return _pick(choice, [_fill_digits(fmt, digits) for fmt in data.phones])


def _fill_digits(fmt: str, words: Any) -> pl.Series:
    template = np.frombuffer(fmt.encode(), dtype=np.uint8)
    out = np.repeat(template[None, :], words.size, axis=0)
    rest = words.copy()
    for position, char in enumerate(fmt.encode()):
        if char in (ord("#"), ord("%")):
            base = np.uint64(10 if char == ord("#") else 9)
            digit = (rest % base).astype(np.uint8)
            out[:, position] = digit + (ord("0") if char == ord("#") else ord("1"))
            rest //= base
    return fixed_width_strings("phone", out)


def _company(data: Locale, s: Stream) -> pl.Series:
    choice = _index(s, _COMPANY_FORMAT, len(data.companies))
    suffix = data.company_suffixes.gather(_index(s, _COMPANY_SUFFIX, data.company_suffixes.len()))
    lasts = [data.last.gather(_index(s, _COMPANY_LAST + k, data.last.len())) for k in range(3)]
    values = {"last": lasts[0], "last2": lasts[1], "last3": lasts[2], "suffix": suffix}
    return _pick(choice, [_render(pattern, values) for pattern in data.companies])


def _pick(choice: I64, candidates: list[pl.Series]) -> pl.Series:
    """Row by row, the candidate whose index ``choice`` names (one format per row)."""
    result = candidates[0]
    for i, candidate in enumerate(candidates[1:], start=1):
        result = candidate.zip_with(pl.Series(choice == i), result)
    return result


def _render(pattern: tuple[tuple[str, str | None], ...], values: dict[str, pl.Series]) -> pl.Series:
    parts: list[pl.Series | str] = []
    for literal, name in pattern:
        if literal:
            parts.append(literal)
        if name is not None:
            parts.append(values[name])
    return _concat(parts)


def _street_address(data: Locale, s: Stream) -> pl.Series:
    values = {"street": data.streets.gather(_index(s, _STREET, data.streets.len()))}
    for k, (key, low, high) in enumerate(data.address_numbers):
        number = uniform_ints(s.bits(_ADDRESS_NUMBER + k), low, high)
        values[key] = pl.Series(number).cast(pl.String)
    return _render(data.address, values)
