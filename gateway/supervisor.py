"""The one owner of the gateway's long-running tasks, and the one backoff they all use.

Every task (each source, the broker session, the timers) is started through ``Supervisor.spawn``. A task that
dies is logged once with its reason (the traceback only the first time that reason is seen, so a bug that
repeats does not flood the log) and restarted after a jittered backoff; a ``ConfigError`` cannot heal by
retrying, so it stops the gateway, which then exits non-zero.

``Backoff`` doubles from ``min_s`` to ``max_s`` with ±20 % jitter: gateways that lost the same server at the
same instant must not come back in lock-step.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from datafactory.errors import ConfigError

_log = logging.getLogger(__name__)

JITTER = 0.2


class Backoff:
    """Exponential backoff with jitter: ``next()`` gives the delay before the next attempt."""

    def __init__(self, min_s: float = 0.5, max_s: float = 5.0, *, rng: Callable[[], float] = random.random) -> None:
        self.min_s, self.max_s = min_s, max_s
        self._delay = min_s
        self._rng = rng

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self.max_s)
        return delay * (1 - JITTER + 2 * JITTER * self._rng())

    def reset(self) -> None:
        self._delay = self.min_s


class Supervisor:
    """Starts, restarts and stops named tasks; ``fatal`` holds the error that stopped the gateway, if any."""

    def __init__(self, on_fatal: Callable[[BaseException], None]) -> None:
        self._on_fatal = on_fatal
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.fatal: BaseException | None = None
        self.restarts: dict[str, int] = {}

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``factory()`` as task ``name`` until cancelled, restarting it whenever it dies."""
        task = asyncio.create_task(self._guard(name, factory), name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._tasks.pop(name, None) if self._tasks.get(name) is t else None)
        return task

    def running(self, name: str) -> bool:
        return name in self._tasks

    async def _guard(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff()
        seen: set[str] = set()
        while True:
            try:
                await factory()
                reason = "it returned"
            except asyncio.CancelledError:
                raise
            except ConfigError as err:
                _log.error("%s: configuration error, stopping the gateway: %s", name, err)
                self.fatal = err
                self._on_fatal(err)
                return
            except Exception as err:  # a bug: keep the gateway running, keep the traceback once
                reason = f"{type(err).__name__}: {err}"
                delay = backoff.next()
                _log.error("task %s died (%s); restarting in %.1f s", name, reason, delay, exc_info=reason not in seen)
                seen.add(reason)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                await asyncio.sleep(delay)
                continue
            delay = backoff.next()
            _log.error("task %s ended (%s); restarting in %.1f s", name, reason, delay)
            self.restarts[name] = self.restarts.get(name, 0) + 1
            await asyncio.sleep(delay)

    async def cancel(self, name: str, timeout_s: float = 5.0) -> None:
        """Cancel task ``name`` and wait for it a bounded time: library code that swallows a cancellation
        (seen in asyncua while a connect is in progress on a loaded machine) must not keep the gateway up."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            # Repeated until the task ends: a cancellation can be swallowed — Python 3.11's asyncio.wait_for
            # (inside pymodbus and asyncua requests) drops it when the awaited reply completes at the same
            # moment, which a source polling back to back hits within seconds.
            task.cancel()
            remaining = deadline - loop.time()
            if remaining <= 0:
                _log.warning("%s did not stop within %.0f s; abandoning it", name, timeout_s)
                return
            done, _ = await asyncio.wait({task}, timeout=min(0.1, remaining))
            if done:
                return

    async def cancel_all(self) -> None:
        await asyncio.gather(*(self.cancel(name) for name in list(self._tasks)))
