"""``settle_heap``: what a service holds when it starts is frozen, and young collections are rarer."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc
from datafactory.runtime import YOUNG_THRESHOLD, settle_heap
before = gc.get_freeze_count(), gc.get_threshold()
kept = [[i] for i in range(20_000)]  # start-up state: containers the collector would walk on every full pass
settle_heap()
frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
assert before[0] == 0, before
assert frozen >= 20_000, frozen
assert threshold == (YOUNG_THRESHOLD,) + before[1][1:], (before, threshold)
garbage = []
garbage.append(garbage)  # a cycle made after start-up is still collected
del garbage
assert gc.collect() >= 1
print("ok")
"""


def test_settle_heap_freezes_the_start_up_heap_and_still_collects_new_cycles() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
