"""Send due outbox rows through apprise; a row is marked sent only after the receiver accepted it.

A failed attempt is retried with exponential back-off and its error kept on the row; after ``max_attempts`` the
row is ``failed`` — still in the table, listed by ``datafactory alerts outbox`` and re-queued by
``alerts retry``. The notification URL (which carries the token or password) is read from the environment
variable the receiver names, at send time, and never logged or stored.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import psycopg

from datafactory.config.alerting import RECEIVER_SCHEMES, ReceiverKind
from datafactory.errors import DataFactoryError

log = logging.getLogger(__name__)


class DeliveryError(DataFactoryError):
    """A notification could not be handed to its receiver."""


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def receiver_url(url_env: str, kind: str, env: Mapping[str, str]) -> str:
    url = env.get(url_env, "")
    if not url:
        raise DeliveryError(f"environment variable {url_env} is not set: put the receiver's notification URL there")
    scheme = urlsplit(url).scheme
    allowed = RECEIVER_SCHEMES[ReceiverKind(kind)]
    if scheme not in allowed:
        raise DeliveryError(f"{url_env} holds a {scheme or 'scheme-less'}:// URL, a {kind} receiver needs "
                            f"{' or '.join(s + '://' for s in allowed)}")
    if kind == ReceiverKind.DINGTALK and "@" in urlsplit(url).netloc:
        # apprise URL-encodes the signature and then hands it to requests as a parameter, which encodes it again;
        # DingTalk compares the once-decoded value and answers 310000 "sign not match" (tests/test_alerting_rules).
        raise DeliveryError(f"{url_env}: signed DingTalk robots (dingtalk://SECRET@TOKEN/) are refused by DingTalk "
                            "when apprise signs them; set the robot's security to keywords or an IP allow-list "
                            "and use dingtalk://TOKEN/")
    return url


# apprise's WeCom bot sends the body only (a text message has no title field): the title goes first in the body.
TITLE_IN_BODY = frozenset({ReceiverKind.WECOM.value})


def send(url: str, title: str, body: str, attach: str | None = None, *, kind: str = "") -> None:
    """Hand one message to apprise; raise DeliveryError with apprise's own reason when it refuses."""
    import apprise

    if kind in TITLE_IN_BODY:
        title, body = "", f"{title}\n{body}"
    client = apprise.Apprise()
    if not client.add(url):
        raise DeliveryError("apprise does not accept the receiver URL (check its syntax)")
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = client.notify(body=body, title=title, attach=attach)
        if not ok:
            # apprise's log lines start "date time - LEVEL - ": keep the reason only.
            lines = [re.sub(r"^\S+ \S+ - [A-Z]+ - ", "", ln.strip()) for ln in captured.getvalue().splitlines()
                     if ln.strip()]
            raise DeliveryError("; ".join(lines[-3:]) or "the receiver did not accept the notification")


DUE = """
SELECT id, url_env, kind, title, body, attach, attempts, max_attempts FROM alert_outbox
WHERE status = 'pending' AND not_before <= %s ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""


def deliver_due(conn: psycopg.Connection, now: datetime, *, env: Mapping[str, str] | None = None,
                retry_base_s: float = 30.0, limit: int = 200) -> DeliveryStats:
    """Send every due row, committing after each so a sent row is never sent again after a crash."""
    env = os.environ if env is None else env
    stats = DeliveryStats()
    # One row at a time, locked until its outcome is committed: a second sender skips it instead of sending it too.
    for _ in range(limit):
        row = conn.execute(DUE, (now,)).fetchone()
        if row is None:
            break
        oid, url_env, kind, title, body, attach, attempts, max_attempts = row
        try:
            send(receiver_url(url_env, kind, env), title, body, attach, kind=kind)
        except DeliveryError as err:
            attempts += 1
            final = attempts >= max_attempts
            delay = min(retry_base_s * 2 ** (attempts - 1), 3600.0)
            conn.execute(
                "UPDATE alert_outbox SET attempts = %s, last_error = %s, status = %s, not_before = %s WHERE id = %s",
                (attempts, str(err), "failed" if final else "pending", now + timedelta(seconds=delay), oid))
            if final:
                stats.failed += 1
                log.error("notification %d to %s failed for good after %d attempts: %s", oid, url_env, attempts, err)
            else:
                stats.retried += 1
                log.warning("notification %d to %s failed (attempt %d), retrying in %.0f s: %s",
                            oid, url_env, attempts, delay, err)
        else:
            conn.execute("UPDATE alert_outbox SET status = 'sent', sent_at = %s, attempts = attempts + 1"
                         " WHERE id = %s", (now, oid))
            stats.sent += 1
        conn.commit()
    conn.commit()
    return stats
