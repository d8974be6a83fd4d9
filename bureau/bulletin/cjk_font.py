"""Noto Sans CJK SC as matplotlib knows it, also when the font was installed after matplotlib cached its list.

matplotlib scans the system's fonts once and caches the list (``~/.cache/matplotlib``). A font installed later —
``.ci/run`` installing ``fonts-noto-cjk`` on a machine where matplotlib already ran — stays invisible to it, and
the bulletin would silently fall back: charts in DejaVu Sans without Chinese glyphs, no embedded web font, and a
PDF printed with the browser's system font whose text layer reads Kangxi radicals (⼯, U+2F2F) for ideographs
(工, U+5DE5). So the CJK font files are added to matplotlib's list whenever the family is missing from it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from matplotlib import font_manager

from datafactory.render import CJK_FAMILY

__all__ = ["CJK_FAMILY", "cjk_font_known"]
_FILE_PREFIX = "NotoSansCJK"  # Debian: /usr/share/fonts/opentype/noto/NotoSansCJK-{Regular,Bold}.ttc


def _known() -> bool:
    return any(entry.name == CJK_FAMILY for entry in font_manager.fontManager.ttflist)


@cache
def cjk_font_known() -> bool:
    """True if matplotlib knows Noto Sans CJK SC, after adding the system's files of it if it did not."""
    if _known():
        return True
    for path in font_manager.findSystemFonts():
        if Path(path).name.startswith(_FILE_PREFIX):
            font_manager.fontManager.addfont(path)
    return _known()
