"""``datafactory bulletin --period 2026-10 [--lang en]``: the bureau's monthly or quarterly bulletin.

Reads every number as the ``bureau`` role from the disclosure-controlled views (``bureau.bulletin.data``), writes
one self-contained HTML page (``bureau.bulletin.html``) and prints it to PDF with headless Chromium
(``datafactory.render``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from bureau.bulletin.data import BulletinData, BulletinError, load
from bureau.bulletin.html import render
from bureau.bulletin.period import Period
from datafactory.render import print_pdf

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class BulletinFiles:
    html: Path
    pdf: Path | None
    data: BulletinData


def write_bulletin(conn: psycopg.Connection, period: Period, out_dir: Path, *, lang: str = "zh",
                   pdf: bool = True) -> BulletinFiles:
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {LANGUAGES}, not {lang!r}")
    data = load(conn, period)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bulletin-{period.label}-{lang}"
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(render(data, lang), encoding="utf-8")
    pdf_path = None
    if pdf:
        pdf_path = out_dir / f"{stem}.pdf"
        print_pdf(html_path, pdf_path, error=BulletinError,
                  missing="no Chromium found (install Debian's `chromium`) — or pass --no-pdf")
    return BulletinFiles(html_path, pdf_path, data)
