"""matplotlib finds the CJK font even when its cached font list predates the font's installation."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from matplotlib import font_manager

from bureau.bulletin.cjk_font import CJK_FAMILY, cjk_font_known


def _installed() -> bool:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    return CJK_FAMILY in subprocess.run([fc_list], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not _installed(), reason="fonts-noto-cjk is not installed (.ci/run installs it)")
def test_a_font_missing_from_matplotlibs_cached_list_is_added() -> None:
    manager = font_manager.fontManager
    saved = list(manager.ttflist)
    try:
        # As on a machine where matplotlib cached its font list before fonts-noto-cjk was installed.
        manager.ttflist = [entry for entry in saved if "CJK" not in entry.name]
        cjk_font_known.cache_clear()
        assert cjk_font_known()
        assert any(e.name == CJK_FAMILY and e.fname.endswith(".ttc") for e in manager.ttflist)
    finally:
        manager.ttflist = saved
        cjk_font_known.cache_clear()
