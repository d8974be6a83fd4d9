"""Logging a repeated problem once with a count, instead of a line (or a traceback) per message.

A hostile or broken publisher can send the same bad message thousands of times a second; one log line each would
drown everything else an operator needs to see, and a traceback each would cost more than the message. The first
occurrence of a key is logged at once; repeats within ``window_s`` are only counted, and the count is logged as
one line ("… ×1234 in the last 60 s") when the window has passed (``tick``, called by the writer lanes every
batch) or the worker stops (``flush``). Thread-safe: the MQTT thread and the writer lanes share one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_MAX_KEYS = 1000  # distinct problems tracked at once; past it repeats of untracked keys are logged as they come


@dataclass(slots=True)
class _Window:
    started: float
    repeats: int
    level: int
    summary: str  # what the count line says the repeats were
    latest: str  # where the latest repeat came from (e.g. its topic)


class RepeatLog:
    def __init__(
        self, logger: logging.Logger, *, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def report(
        self,
        key: str,
        level: int,
        message: str,
        *,
        summary: str,
        latest: str = "",
        times: int = 1,
        exc_info: BaseException | None = None,
    ) -> None:
        """``times`` occurrences of problem ``key``: log ``message`` if it is new, else count it."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None and len(self._windows) < _MAX_KEYS:
                self._windows[key] = _Window(now, times - 1, level, summary, latest)
            elif window is not None:
                window.repeats += times
                window.latest = latest or window.latest
                return
        self.logger.log(level, message, exc_info=exc_info)

    def tick(self, *, force: bool = False) -> None:
        """Log the count of every window that has passed (every window with ``force``) and close it."""
        now = self._clock()
        due: list[tuple[_Window, float]] = []
        with self._lock:
            for key, window in list(self._windows.items()):
                if force or now - window.started >= self.window_s:
                    del self._windows[key]
                    if window.repeats:
                        due.append((window, now - window.started))
        for window, age in due:
            where = f", latest {window.latest}" if window.latest else ""
            # The count includes the occurrence logged when the window opened.
            self.logger.log(
                window.level, "%s (×%d in the last %.0f s%s)", window.summary, window.repeats + 1, age, where
            )

    def flush(self) -> None:
        self.tick(force=True)
