"""Making the bulletin self-contained and printable.

* Font: the page embeds a subset of Noto Sans CJK SC (Debian ``fonts-noto-cjk``) holding exactly the characters
  it uses, as a data URI, so it shows the same glyphs on a machine without CJK fonts and without network.
* PDF: headless Chromium (Debian ``chromium``) prints the HTML page. Chosen over WeasyPrint because the same
  engine that the test opens the page with also prints it (one renderer, the same layout), it is already a
  system dependency of the test suite, and it embeds the page's web font, so CJK glyphs render in the PDF.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont
from matplotlib import font_manager

from bureau.bulletin.cjk_font import CJK_FAMILY, cjk_font_known
from bureau.bulletin.data import BulletinError

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


@cache
def _cjk_face() -> tuple[str, int] | None:
    """(file, face index) of Noto Sans CJK SC, or None when the font is not installed."""
    if not cjk_font_known():
        return None
    for entry in font_manager.fontManager.ttflist:
        if entry.name != CJK_FAMILY or entry.weight not in (400, "normal", "regular"):
            continue
        if not entry.fname.lower().endswith(".ttc"):
            return entry.fname, -1
        for index, face in enumerate(TTCollection(entry.fname, lazy=True).fonts):
            if face["name"].getDebugName(1) == CJK_FAMILY:
                return entry.fname, index
    return None


def font_face_css(text: str) -> str:
    """An @font-face rule with the CJK font subset to ``text``'s characters, or '' when it is not installed."""
    face = _cjk_face()
    if face is None:
        return ""
    path, index = face
    font = TTFont(path, fontNumber=index) if index >= 0 else TTFont(path)
    options = subset.Options()
    options.layout_features = []  # horizontal CJK text needs no OpenType features; keeps the subset small
    options.name_IDs = ["*"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(set(text) | set(map(chr, range(32, 127))))))
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.save(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"@font-face {{ font-family: 'BulletinCJK'; src: url(data:font/otf;base64,{data}) format('opentype');"
            " font-weight: 100 900; }")


def chromium() -> str | None:
    for candidate in CHROMIUM:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def print_pdf(html: Path, pdf: Path, *, timeout_s: float = 120.0) -> None:
    """Print ``html`` to ``pdf`` with headless Chromium; raises BulletinError when that is not possible."""
    browser = chromium()
    if browser is None:
        raise BulletinError("no Chromium found (install Debian's `chromium`) — or pass --no-pdf")
    with tempfile.TemporaryDirectory(prefix="df-bulletin-") as profile:
        command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as err:
            raise BulletinError(f"Chromium did not print {html} within {timeout_s:.0f} s") from err
    if done.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BulletinError(f"Chromium failed to print {html} (exit {done.returncode}): {' '.join(detail)}")
