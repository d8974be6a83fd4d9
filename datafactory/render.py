"""Self-contained, printable HTML pages: the CJK font embedded as a subset, and PDF printing by headless Chromium.

Used by the bulletin (``bureau.bulletin``) and the shift report (``alerting.report``); it lives in the core because
two services need it (docs/architecture.md) and it knows nothing of either.

* Font: a subset of Noto Sans CJK SC (Debian ``fonts-noto-cjk``) holding exactly the characters of the page, as a
  data URI. Not the system font by name: Chromium would then print the PDF with the system's full CJK font, whose
  text layer maps many ideographs to their Kangxi-radical look-alikes (工 U+5DE5 reads back as ⼯ U+2F2F), so the
  PDF's text — what a search or a copy sees — would be wrong. A subset web font maps each glyph to the one
  character it was made for, and the page shows the same glyphs on a machine without the font and without network.
* PDF: headless Chromium (Debian ``chromium``) prints the page. Chosen over WeasyPrint because the engine the tests
  open the page with also prints it (one renderer, one layout), it is already a system dependency of the suite,
  and it embeds the page's web font, so CJK glyphs render in the PDF.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from datafactory.errors import DataFactoryError

CJK_FAMILY = "Noto Sans CJK SC"
CJK_FALLBACK_FILES = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",)
CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


class RenderError(DataFactoryError):
    """A page could not be printed (no Chromium, or it failed); services pass their own error type instead."""


@cache
def _cjk_face() -> tuple[str, int] | None:
    """(file, face index) of Noto Sans CJK SC regular, or None when it is not installed."""
    from fontTools.ttLib import TTCollection

    candidates = list(CJK_FALLBACK_FILES)
    try:
        found = subprocess.run(["fc-match", "-f", "%{file}", f"{CJK_FAMILY}:style=Regular"], capture_output=True,
                               text=True, timeout=10, check=False).stdout.strip()
        candidates.insert(0, found)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no fontconfig: the Debian path is tried
    for path in candidates:
        # fc-match answers with its best substitute when the family is missing: only a CJK file will do.
        if not path or not Path(path).is_file() or "CJK" not in Path(path).name:
            continue
        if not path.lower().endswith(".ttc"):
            return path, -1
        for index, face in enumerate(TTCollection(path, lazy=True).fonts):
            if face["name"].getDebugName(1) == CJK_FAMILY:
                return path, index
    return None


def font_face_css(text: str, family: str) -> str:
    """An @font-face rule for ``family`` with the CJK font subset to ``text``'s characters (and printable ASCII),
    or '' when the font is not installed."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

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
    return (f"@font-face {{ font-family: '{family}'; src: url(data:font/otf;base64,{data}) format('opentype');"
            " font-weight: 100 900; }")


def chromium() -> str | None:
    """The Chromium executable, or None when none is installed."""
    return next((found for c in CHROMIUM if (found := shutil.which(c))), None)


def print_pdf(html: Path, pdf: Path, *, error: Callable[[str], Exception] = RenderError,
              missing: str = "no Chromium found to print the PDF (install Debian's `chromium`), or pass --no-pdf",
              timeout_s: float = 120.0) -> None:
    """Print ``html`` to ``pdf`` with headless Chromium; raises ``error(message)`` when that is not possible
    (``missing`` is the message when there is no Chromium at all)."""
    browser = chromium()
    if browser is None:
        raise error(missing)
    with tempfile.TemporaryDirectory(prefix="df-print-") as profile:
        command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as err:
            raise error(f"Chromium did not print {html} within {timeout_s:.0f} s") from err
    if done.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        detail = " ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise error(f"Chromium failed to print {html} (exit {done.returncode}): {detail}")
