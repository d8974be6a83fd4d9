"""De-identification for open data: keyed per-release pseudonyms, value bands and k-anonymity (pure functions).

* Pseudonyms are HMAC-SHA256 of the release (period label) and the credit code under a secret key from
  ``DATAFACTORY_PSEUDONYM_KEY`` (at least 16 bytes). Without the key nobody can test a guessed credit code
  against a pseudonym. They are **per release**: the same enterprise has unrelated pseudonyms in the October and
  the November directory, so nobody can intersect exports record by record (a stable pseudonym let twelve
  monthly exports, each 3-anonymous, be combined into unique records). Re-exporting one period gives the same
  pseudonyms. The key id (``DATAFACTORY_PSEUDONYM_KEY_ID``, or the first 8 hex digits of SHA-256 over the key) is
  recorded in the metadata; the key itself is never written.
* Exact figures of a single enterprise are replaced by bands; the bands are quasi-identifiers like the rest.
* k-anonymity on all five published quasi-identifiers (town, division, size class, output band, employment
  band): records whose combination is shared by fewer than k records are generalised along one fixed ladder —
  the bands go first, and once the size class is hidden the bands stay hidden too (size class is a function of
  employment and revenue, so bands next to a '*' size class gave it back); records still in a group smaller
  than k are withheld. The ladder is the same in every export.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from datafactory.errors import ConfigError

KEY_VAR = "DATAFACTORY_PSEUDONYM_KEY"
KEY_ID_VAR = "DATAFACTORY_PSEUDONYM_KEY_ID"
MIN_KEY_BYTES = 16
QUASI_IDENTIFIERS = ("town", "division", "size_class", "output_band", "employment_band")
ANY = "*"
# Generalisation ladder: which quasi-identifiers are kept at each level (the rest become '*'). The bands are
# dropped before anything else and never kept without the size class (they would give it back).
LEVELS: tuple[tuple[str, ...], ...] = (
    QUASI_IDENTIFIERS,
    ("town", "division", "size_class"),
    ("town", "division"),
    ("town", "size_class"),
    ("division", "size_class"),
    ("town",),
    ("division",),
    (),
)
OUTPUT_BANDS = (0.0, 100.0, 500.0, 2_000.0, 10_000.0, 50_000.0)        # 万元 in the period
EMPLOYMENT_BANDS = (0.0, 20.0, 100.0, 300.0, 1_000.0)                   # persons


@dataclass(frozen=True)
class PseudonymKey:
    key: bytes
    key_id: str

    def pseudonym(self, release: str, identifier: str) -> str:
        """The pseudonym of ``identifier`` in ``release`` (a period label): unlinkable across releases."""
        message = f"{release}\x1f{identifier}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:20]


def key_from_env(env: Mapping[str, str] | None = None) -> PseudonymKey:
    env = os.environ if env is None else env
    raw = env.get(KEY_VAR, "")
    if len(raw.encode()) < MIN_KEY_BYTES:
        state = "unset" if not raw else "too short"
        raise ConfigError("environment", [(KEY_VAR, f"must hold a secret of at least {MIN_KEY_BYTES} bytes (it is"
                                                    f" {state}); open-data pseudonyms are keyed with it")])
    key = raw.encode()
    key_id = env.get(KEY_ID_VAR) or hashlib.sha256(key).hexdigest()[:8]
    return PseudonymKey(key, key_id)


def band(value: float, edges: Sequence[float]) -> str:
    """'500–2000' for a value in [500, 2000); the top band is open ('≥50000')."""
    for low, high in itertools.pairwise(edges):
        if low <= value < high:
            return f"{low:g}–{high:g}"
    return f"≥{edges[-1]:g}"


def k_anonymise(frame: pd.DataFrame, k: int, qis: Sequence[str] = QUASI_IDENTIFIERS,
                levels: Sequence[Sequence[str]] = LEVELS) -> pd.DataFrame:
    """Generalise quasi-identifiers until every released combination is shared by ≥ k records; withhold the
    rest. Returns the released rows with a ``generalised`` column naming what was replaced by '*'."""
    remaining = frame.copy()
    released: list[pd.DataFrame] = []
    for kept in levels:
        if remaining.empty:
            break
        trial = remaining.copy()
        hidden = [q for q in qis if q not in kept]
        for q in hidden:
            trial[q] = ANY
        sizes = trial.groupby(list(qis), dropna=False)[qis[0]].transform("size")
        ok = sizes >= k
        if ok.any():
            chunk = trial[ok].copy()
            chunk["generalised"] = ",".join(hidden)
            released.append(chunk)
        remaining = remaining[~ok.to_numpy()]
    if not released:
        return frame.iloc[0:0].assign(generalised="")
    return pd.concat(released, ignore_index=True)


def smallest_class(frame: pd.DataFrame, qis: Sequence[str] = QUASI_IDENTIFIERS) -> int:
    """The size of the smallest equivalence class on the quasi-identifiers (0 for no rows)."""
    if frame.empty:
        return 0
    return int(frame.groupby(list(qis), dropna=False).size().min())
