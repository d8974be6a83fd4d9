"""The polling loop's read sent ahead (``gateway.polling``): a read the poll no longer waits for is cancelled, and
whatever it ends with is collected, also when it ends after ``discard`` with its connection's error instead of the
cancellation (an S7 read cancelled at a stop while the PLC closes the connection did: asyncio then logged
"Task exception was never retrieved" with three tracebacks)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

from gateway.polling import discard, send_ahead


async def _read_that_fails_when_cancelled() -> bytes:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0)  # the connection closes while the cancellation is handled
        raise ConnectionResetError("connection closed by peer") from None
    return b""


def _reported(give_up: Callable[[asyncio.Task[bytes]], object]) -> list[dict[str, Any]]:
    """What the loop's exception handler was told after a read sent ahead is given up with ``give_up``."""
    reported: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        task = await send_ahead(_read_that_fails_when_cancelled())
        give_up(task)
        for _ in range(5):
            await asyncio.sleep(0)
        assert task.done() and not task.cancelled()  # it ended with the connection's error
        del task
        gc.collect()

    asyncio.run(main())
    return [ctx for ctx in reported if "never retrieved" in str(ctx.get("message", ""))]


def test_a_discarded_read_that_ends_with_an_error_is_collected() -> None:
    assert _reported(discard) == []


def test_cancelling_alone_leaves_the_error_for_asyncio_to_report() -> None:
    """The control: the same read only cancelled is reported, so the test above can fail."""
    assert len(_reported(lambda task: task.cancel())) == 1
