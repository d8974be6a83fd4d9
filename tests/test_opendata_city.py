"""A small synthetic city, published and analysed, shared by the open-data and bulletin test modules.

No tests here. ``city_db`` builds the city once per pytest process through the bureau's own functions
(simulate → publish → analyse) in a database cloned from the migrated template, and drops it when the session
ends. Both modules carry the xdist group ``bureau_city`` so that ``--dist loadgroup`` may keep them on one
worker; where the scheduler spreads them anyway, each worker that runs one of them builds its own copy.
"""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest
from psycopg import sql

from bureau.statistics.macro_run import run_macro
from bureau.statistics.publish import publish_month
from datafactory.db.connect import with_database
from simulator.city import simulate
from tests.conftest import PG_SERVER, _admin

MONTH = date(2026, 10, 1)
GROUP = pytest.mark.xdist_group("bureau_city")
_CITY = pytest.StashKey[str]()


def _drop(name: str) -> None:
    with _admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def city_db(request: pytest.FixtureRequest, template_db: str) -> str:
    stash = request.config.stash
    if _CITY not in stash:
        name = f"dft_city_{uuid.uuid4().hex[:8]}"
        with _admin() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                             sql.Identifier(template_db)))
        request.config.add_cleanup(lambda: _drop(name))
        url = with_database(PG_SERVER, name)
        with psycopg.connect(url) as conn:
            simulate(conn, enterprises=400, towns=12, months=26, seed=3, end=MONTH)
            publish_month(conn, MONTH)
            run_macro(conn, MONTH)
        stash[_CITY] = url
    return stash[_CITY]
