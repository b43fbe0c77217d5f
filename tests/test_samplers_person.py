"""Person columns: data files, coherence within a row, emails, phones, locales."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from runtime.plan import PersonColumn
from runtime.samplers import Chunk, sample
from runtime.samplers.person import DATA_DIR, LOCALES, ascii_fold, locale

FIELDS = ("name", "first_name", "last_name", "email", "phone", "company", "city", "country", "street_address")


def people(locale_name: str, n: int = 2000, group: str = "default", start: int = 0) -> pl.DataFrame:
    chunk = Chunk(3, start, start + n, pl.DataFrame(), {})
    return pl.DataFrame(
        [sample(PersonColumn(f, f, locale=locale_name, group=group), chunk) for f in FIELDS]  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", LOCALES)
def test_data_files_are_big_enough_and_distinct(name: str) -> None:
    data = json.loads((DATA_DIR / f"person_{name}.json").read_text(encoding="utf-8"))
    for key in ("first_names", "last_names"):
        entries = [e if isinstance(e, str) else tuple(e) for e in data[key]]
        assert len(entries) >= 150 and len(set(entries)) == len(entries)
    assert len(data["cities"]) >= 40
    folded = [ascii_fold(e if isinstance(e, str) else e[1]) for e in data["first_names"] + data["last_names"]]
    assert all(re.fullmatch(r"[a-z]+", f) for f in folded)


@pytest.mark.parametrize("name", LOCALES)
def test_fields_of_one_row_describe_one_person(name: str) -> None:
    rows = people(name)
    data = locale(name)
    firsts, lasts = data.first.to_list(), data.last.to_list()
    for row in rows.iter_rows(named=True):
        first, last = row["first_name"], row["last_name"]
        assert row["name"] == (f"{last} {first}" if data.last_first else f"{first} {last}")
        f = data.email_first[firsts.index(first)]
        s = data.email_rest[len(lasts) + lasts.index(last)]  # surname: the "" separator block
        styles = rf"({f}\.{s}|{f}{s}|{f[0]}\.{s}|{f}_{s}|{f}\.{s}\d+|{f}\d+|{f[0]}{s}\d+)"
        assert re.fullmatch(styles + r"@example\.(com|net|org)", row["email"]), row
        assert row["country"] == data.country
    assert rows["first_name"].n_unique() > 100 and rows["city"].n_unique() > 30


def test_email_styles_and_ascii_folding() -> None:
    emails = people("de_DE", 5000)["email"]
    assert emails.str.contains(r"^[a-z0-9._]+@example\.(com|net|org)$").all()
    assert emails.str.contains(r"\.").sum() > 1000 and emails.str.contains(r"\d@").sum() > 1000
    assert ascii_fold("Jürgen") == "jurgen" and ascii_fold("Groß") == "gross"
    assert ascii_fold("Le Gall") == "legall" and ascii_fold("O'Brien") == "obrien"


def test_ja_jp_names_are_kanji_and_emails_romaji() -> None:
    rows = people("ja_JP", 500)
    assert rows["last_name"].str.contains(r"^[\p{Han}\p{Hiragana}]+$").all()
    assert rows["email"].str.contains(r"^[a-z0-9._]+@").all()
    sato = rows.filter(pl.col("last_name") == "佐藤", ~pl.col("email").str.contains(r"^[a-z]+\d+@"))
    assert not sato.is_empty() and sato["email"].str.contains("sato").all()


def test_groups_are_independent_identities_and_fields_share_one() -> None:
    a = people("en_US", 500, group="buyer")
    b = people("en_US", 500, group="seller")
    assert (a["name"] != b["name"]).mean() > 0.9
    assert people("en_US", 500, group="buyer").equals(a)
    # the same identity in another chunking is the same person
    assert people("en_US", 250, group="buyer", start=250).equals(a.slice(250))


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("en_US", r"^(\(\d{3}\) |\d{3}-|\+1 \d{3}-)555-01\d\d$"),
        ("de_DE", r"^(030 23125|069 90009|040 66969|0221 4710|089 99998) \d{3}$"),
        ("fr_FR", r"^0[1-6] (99 00|61 91|53 01|65 71|36 49|39 98) \d\d \d\d$"),
        ("ja_JP", r"^0\d0?-0000-\d{4}$"),
    ],
)
def test_phones_use_fictional_ranges(name: str, pattern: str) -> None:
    phones = people(name, 1000)["phone"]
    assert phones.str.contains(pattern).all()
    assert phones.n_unique() > 200


def test_addresses_and_companies_follow_the_locale_patterns() -> None:
    us, de, jp = people("en_US", 300), people("de_DE", 300), people("ja_JP", 300)
    assert us["street_address"].str.contains(r"^\d{1,4} \S").all()
    assert de["street_address"].str.contains(r" \d{1,3}$").all()
    assert jp["street_address"].str.contains(r"\d丁目\d+-\d+$").all()
    assert de["company"].str.contains(r"(GmbH|AG|KG|e\.K\.|OHG|Gruppe|Werke)$").all()
    assert jp["company"].str.contains("会社").all()


def test_unknown_locale_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown person locale"):
        sample(PersonColumn("p", "name", locale="xx_XX"), Chunk(0, 0, 1, pl.DataFrame(), {}))


def test_german_emails_spell_umlauts_out() -> None:
    from runtime.samplers.person import ascii_fold

    assert [ascii_fold(n, "de_DE") for n in ("Jörg", "Krüger", "Jäger", "Weiß")] == [
        "joerg",
        "krueger",
        "jaeger",
        "weiss",
    ]
    assert ascii_fold("Jörg", "fr_FR") == "jorg"
