"""The intruder who keeps every open-data release: twelve monthly enterprise directories of a synthetic city,
attacked as a whole. Three attacks — unique combinations of all published quasi-identifiers (bands included),
a hidden size class recovered from the bands next to it, and records intersected across releases by pseudonym —
succeed on the directory as it was exported before (stable pseudonyms, k-anonymity on town × division × size
only, exact bands beside a hidden size class; rebuilt here from its rules) and fail on today's export path."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date

import pandas as pd
import psycopg
import pytest

from bureau.bulletin.period import Period, parse_period
from bureau.opendata.deid import (
    ANY,
    EMPLOYMENT_BANDS,
    OUTPUT_BANDS,
    QUASI_IDENTIFIERS,
    PseudonymKey,
    band,
    k_anonymise,
)
from bureau.opendata.export import enterprise_directory
from bureau.statistics.facts import enterprise_frame
from datafactory.codes.calendar import add_months
from tests.test_opendata_city import GROUP, MONTH, city_db  # noqa: F401  (module-scoped fixture)

pytestmark = [pytest.mark.integration, GROUP]
KEY = PseudonymKey(b"longitudinal-test-key-01", "test")
K = 3
MONTHS = [add_months(MONTH, -i) for i in range(11, -1, -1)]  # the 12 months up to October 2026
OLD_QIS = ("town", "division", "size_class")
OLD_LEVELS = (OLD_QIS, ("town", "division"), ("town", "size_class"), ("division", "size_class"), ("town",),
              ("division",), ())

Directory = Callable[[psycopg.Connection, Period], pd.DataFrame]


def _old_directory(conn: psycopg.Connection, period: Period) -> pd.DataFrame:
    """The export before this change: one stable pseudonym per enterprise for every release, k-anonymity on
    (town, division, size class) only, output and employment bands published exactly beside it."""
    frame = enterprise_frame(conn, period.last)
    codes: dict[int, str] = dict(conn.execute("SELECT id, credit_code FROM bureau_enterprises").fetchall())
    rows = pd.DataFrame({
        "pseudonym": [hmac.new(KEY.key, codes[e].encode(), hashlib.sha256).hexdigest()[:20]
                      for e in frame["enterprise_id"]],
        "town": frame["town"].to_numpy(), "division": frame["division"].to_numpy(),
        "size_class": frame["size_class"].to_numpy(),
        "output_band": [band(v, OUTPUT_BANDS) for v in frame["output_value"]],
        "employment_band": [band(v, EMPLOYMENT_BANDS) for v in frame["employment"]],
    })
    return k_anonymise(rows, K, OLD_QIS, OLD_LEVELS)


def _new_directory(conn: psycopg.Connection, period: Period) -> pd.DataFrame:
    return enterprise_directory(conn, period, KEY, K)[0]


def _releases(url: str, directory: Directory) -> dict[date, pd.DataFrame]:
    with psycopg.connect(url) as conn:
        return {m: directory(conn, parse_period(f"{m:%Y-%m}")) for m in MONTHS}


def _truth(url: str, pseudonym_of: Callable[[date, str], str]) -> dict[tuple[date, str], str]:
    """(release, pseudonym) -> true size class; the test holds the key, the intruder does not."""
    out: dict[tuple[date, str], str] = {}
    with psycopg.connect(url) as conn:
        codes: dict[int, str] = dict(conn.execute("SELECT id, credit_code FROM bureau_enterprises").fetchall())
        for m in MONTHS:
            frame = enterprise_frame(conn, m)
            for e, size in zip(frame["enterprise_id"], frame["size_class"], strict=True):
                out[(m, pseudonym_of(m, codes[e]))] = size
    return out


def unique_records(releases: dict[date, pd.DataFrame]) -> int:
    """Attack 1: records whose combination of every published quasi-identifier is shared by fewer than k."""
    total = 0
    for rows in releases.values():
        sizes = rows.groupby(list(QUASI_IDENTIFIERS))["pseudonym"].transform("size")
        total += int((sizes < K).sum())
    return total


def size_recovered(releases: dict[date, pd.DataFrame], truth: dict[tuple[date, str], str]) -> tuple[int, int]:
    """Attack 2: for a record whose size class is '*', learn from the same release which size classes go with
    its (output band, employment band) among records that show their size; one class = a guess. Returns
    (records with a hidden size class, guesses that are right)."""
    hidden = right = 0
    for month, rows in releases.items():
        shown = rows[rows["size_class"] != ANY]
        classes: dict[tuple[str, str], set[str]] = defaultdict(set)
        for ob, eb, size in zip(shown["output_band"], shown["employment_band"], shown["size_class"], strict=True):
            classes[(ob, eb)].add(size)
        for _, row in rows[rows["size_class"] == ANY].iterrows():
            hidden += 1
            guess = classes.get((row["output_band"], row["employment_band"]), set())
            if len(guess) == 1 and next(iter(guess)) == truth[(month, row["pseudonym"])]:
                right += 1
    return hidden, right


def intersected(releases: dict[date, pd.DataFrame]) -> tuple[int, int, int]:
    """Attack 3: follow each pseudonym through every release, take the most specific town, division and size
    class it was ever shown with, and count (pseudonyms seen in more than one release, pseudonyms so pinned to
    one town × division × size, of those the ones fewer than k pseudonyms share that profile with)."""
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    releases_of: Counter[str] = Counter()
    for rows in releases.values():
        for record in rows.to_dict("records"):
            releases_of[record["pseudonym"]] += 1
            for q in OLD_QIS:
                if record[q] != ANY:
                    seen[record["pseudonym"]][q].add(record[q])
    profiles = {p: tuple(min(v[q]) if len(v[q]) == 1 else ANY for q in OLD_QIS) for p, v in seen.items()}
    for p in releases_of:
        profiles.setdefault(p, (ANY,) * len(OLD_QIS))
    pinned = {p: prof for p, prof in profiles.items() if ANY not in prof}
    share = Counter(profiles.values())
    # A record shown generalised in every release was in a class of ≥ k at that release; pinning it later is
    # the leak. Count only pseudonyms some release showed generalised.
    generalised = {record["pseudonym"] for rows in releases.values() for record in rows.to_dict("records")
                   if ANY in (record["town"], record["division"], record["size_class"])}
    leaked = [p for p, prof in pinned.items() if p in generalised and share[prof] < K]
    return sum(1 for n in releases_of.values() if n > 1), sum(1 for p in pinned if p in generalised), len(leaked)


@pytest.fixture(scope="module")
def old(city_db: str) -> dict[date, pd.DataFrame]:  # noqa: F811
    return _releases(city_db, _old_directory)


@pytest.fixture(scope="module")
def new(city_db: str) -> dict[date, pd.DataFrame]:  # noqa: F811
    return _releases(city_db, _new_directory)


def test_bands_as_quasi_identifiers(old: dict[date, pd.DataFrame], new: dict[date, pd.DataFrame]) -> None:
    assert unique_records(old) > 100  # the old directory: 3-anonymous on three columns, unique on five
    assert unique_records(new) == 0
    for rows in new.values():
        assert min(Counter(map(tuple, rows[list(QUASI_IDENTIFIERS)].to_numpy())).values()) >= K
        assert len(rows) > 150  # information loss stays bounded: most enterprises are still released


def test_hidden_size_class_cannot_be_read_off_the_bands(city_db: str, old: dict[date, pd.DataFrame],  # noqa: F811
                                                       new: dict[date, pd.DataFrame]) -> None:
    old_truth = _truth(city_db, lambda _m, code: hmac.new(KEY.key, code.encode(), hashlib.sha256).hexdigest()[:20])
    hidden, right = size_recovered(old, old_truth)
    assert hidden > 50 and right > 100, (hidden, right)  # 318 of 1,086 on this city
    new_truth = _truth(city_db, lambda m, code: KEY.pseudonym(f"{m:%Y-%m}", code))
    hidden, right = size_recovered(new, new_truth)
    assert hidden > 50 and right == 0, (hidden, right)
    for rows in new.values():  # why: a hidden size class never stands next to a band
        masked = rows[rows["size_class"] == ANY]
        assert (masked["output_band"] == ANY).all() and (masked["employment_band"] == ANY).all()


def test_union_of_twelve_monthly_exports_is_3_anonymous(old: dict[date, pd.DataFrame],
                                                        new: dict[date, pd.DataFrame]) -> None:
    linked, pinned, leaked = intersected(old)
    assert linked > 300 and pinned > 20 and leaked > 5, (linked, pinned, leaked)
    linked, pinned, leaked = intersected(new)
    assert (linked, leaked) == (0, 0), (linked, pinned, leaked)
    # The union, as the intruder holds it: every linkable unit (a pseudonym) with everything published about it
    # over the twelve releases is shared by at least k units.
    trajectories: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    for month, rows in new.items():
        for record in rows[["pseudonym", *QUASI_IDENTIFIERS]].itertuples(index=False):
            trajectories[record[0]].append((month, *record[1:]))
    share = Counter(tuple(sorted(t)) for t in trajectories.values())
    assert len(trajectories) == sum(len(rows) for rows in new.values())
    assert min(share.values()) >= K
