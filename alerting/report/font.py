"""The report's Chinese font, embedded: a subset of Noto Sans CJK SC (Debian ``fonts-noto-cjk``) holding exactly
the characters of the page, as a data URI.

Why not the system font by name: Chromium then prints the PDF with the system's full CJK font, whose text layer
maps many ideographs to their Kangxi-radical look-alikes (工 U+5DE5 reads back as ⼯ U+2F2F), so the PDF's text —
what a search or a copy sees — would be wrong. A subset web font maps each glyph to the one character it was made
for, and the HTML then shows the same glyphs on a machine without the font and without network.
"""

from __future__ import annotations

import base64
import io
import subprocess
from functools import cache
from pathlib import Path

FAMILY = "Noto Sans CJK SC"
FALLBACK_FILES = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",)


@cache
def _face() -> tuple[str, int] | None:
    """(file, face index) of Noto Sans CJK SC regular, or None when it is not installed."""
    from fontTools.ttLib import TTCollection

    candidates = list(FALLBACK_FILES)
    try:
        found = subprocess.run(["fc-match", "-f", "%{file}", f"{FAMILY}:style=Regular"], capture_output=True,
                               text=True, timeout=10, check=False).stdout.strip()
        candidates.insert(0, found)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no fontconfig: the Debian path is tried
    for path in candidates:
        if not path or not Path(path).is_file() or "CJK" not in Path(path).name:
            continue
        if not path.lower().endswith(".ttc"):
            return path, -1
        for index, face in enumerate(TTCollection(path, lazy=True).fonts):
            if face["name"].getDebugName(1) == FAMILY:
                return path, index
    return None


def font_face_css(text: str, family: str = "ReportCJK") -> str:
    """An @font-face rule with the CJK font subset to ``text``'s characters, or '' when it is not installed."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    face = _face()
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
